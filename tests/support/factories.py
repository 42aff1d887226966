"""Factory functions with keyword overrides; every test makes the rows it needs."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy.orm import Session

from monitor.projects.service import SCOPES, CreatedKey, create_key

_counter = itertools.count()


def unique_slug(prefix: str = "proj") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def make_key(session: Session, project: str | None = None, name: str = "test",
             scopes: str | Iterable[str] = SCOPES) -> CreatedKey:
    """A key of `project` (a new one by default). Every scope by default: most tests are about what a route
    does for a caller allowed to call it; which scope each route needs is tested route by route in
    tests/system/test_security.py with keys that hold exactly one scope, and applications' own paths (SDK, OTLP
    exporter, model server) use `create_key`'s production default, `ingest`."""
    return create_key(session, project or unique_slug(), name, scopes=scopes)


def event_dict(**overrides: Any) -> dict[str, Any]:
    n = next(_counter)
    base: dict[str, Any] = {
        "event_id": uuid.uuid4().hex,
        "timestamp": "2026-11-22T10:00:00Z",
        "model": "smollm2-135m",
        "model_version": "v1",
        "prompt": f"How do I reset my password? ({n})",
        "response": "Open Settings, choose Security, then Reset password.",
        "latency_ms": 412.5,
        "prompt_tokens": 12,
        "completion_tokens": 14,
        "metadata": {"locale": "en-US", "plan": "pro"},
    }
    base.update(overrides)
    return base


def feedback_dict(event_id: str, **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"feedback_id": uuid.uuid4().hex, "event_id": event_id, "score": 1.0, "label": "thumbs_up"}
    base.update(overrides)
    return base
