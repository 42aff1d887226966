"""Turning result dataclasses into strict JSON-ready dicts (the one encoder, `monitor.encoding.json_safe`)."""

from __future__ import annotations

from monitor.encoding import json_safe

__all__ = ["json_safe"]
