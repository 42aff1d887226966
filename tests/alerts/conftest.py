"""Fixtures of these tests: a loopback receiver, settings that allow it, and a project (tests/support/alerting.py)."""

from __future__ import annotations

from tests.support.alerting import local_hooks, project, receiver

__all__ = ["local_hooks", "project", "receiver"]
