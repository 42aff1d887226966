"""The collector's redaction policy for one project: global settings, then the project's `privacy` config.

Project config (`projects.config["privacy"]`, every key optional):
`{"enabled": true, "actions": {"email": "hash", "ip": "mask"} | "email=hash,ip=mask", "on_error": "withhold"}`.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from monitor.privacy import ner
from monitor.privacy.redact import Policy, parse_actions


class PrivacySettings(Protocol):
    @property
    def pii_redaction(self) -> bool: ...
    @property
    def pii_actions(self) -> str: ...
    @property
    def pii_on_error(self) -> Literal["refuse", "withhold"]: ...
    @property
    def pii_budget_ms(self) -> float: ...
    @property
    def pii_hash_secret(self) -> str | None: ...
    @property
    def pii_ner_model(self) -> str: ...
    @property
    def secret_key(self) -> str: ...


@dataclass(frozen=True)
class ProjectPrivacy:
    enabled: bool
    policy: Policy
    on_error: Literal["refuse", "withhold"]
    budget_seconds: float  # per item


def project_hash_key(settings: PrivacySettings, project_id: int) -> bytes:
    # One key per project, derived from the deployment secret: tokens join within a project, never across.
    base = (settings.pii_hash_secret or settings.secret_key).encode()
    return hmac.new(base, f"driftloop-pii-hash:{project_id}".encode(), hashlib.sha256).digest()


def project_privacy(settings: PrivacySettings, project_id: int, config: dict[str, Any] | None) -> ProjectPrivacy:
    own = (config or {}).get("privacy") or {}
    if not isinstance(own, dict):
        raise ValueError("project config `privacy` must be an object")
    actions = parse_actions(own.get("actions"), parse_actions(settings.pii_actions or None))
    if actions.get("person", "off") != "off":
        ner.use_model(settings.pii_ner_model)
    on_error = own.get("on_error", settings.pii_on_error)
    if on_error not in ("refuse", "withhold"):
        raise ValueError(f"project config privacy.on_error {on_error!r}: choose refuse or withhold")
    return ProjectPrivacy(
        enabled=bool(own.get("enabled", settings.pii_redaction)),
        policy=Policy(actions, project_hash_key(settings, project_id)),
        on_error=on_error,
        budget_seconds=float(own.get("budget_ms", settings.pii_budget_ms)) / 1000.0,
    )
