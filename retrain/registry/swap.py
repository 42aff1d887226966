"""Champion swaps with the serving hook: promote or roll back, then tell the serving stack.

Order, on purpose: (1) the alias move, its status changes, audit entry and `model.promoted` /
`model.rolled_back` event commit in one transaction; (2) then the optional serving hook is called (a POST
shaped like vLLM's `/v1/load_lora_adapter`: `{"lora_name": version, "lora_path": adapter_path}`); (3) its
outcome is written to the audit log in a transaction of its own. The registry is the source of truth and the
reference model server polls it, so an unreachable serving stack never blocks or undoes a promotion; a failed
hook shows up in the audit log (action `serving_hook`, `ok: false`) and can be repeated.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import httpx
from sqlalchemy.orm import Session, sessionmaker

from monitor import principals
from monitor.db import run_unit
from monitor.principals import Principal
from monitor.settings import Settings, get_settings
from retrain.registry.service import Swap, audit, promote, rollback


@dataclass(frozen=True)
class HookOutcome:
    called: bool
    ok: bool
    url: str | None
    status_code: int | None = None
    error: str | None = None
    lora_name: str | None = None


def call_serving_hook(url: str | None, swap: Swap, *, timeout: float = 10.0,
                      transport: httpx.BaseTransport | None = None) -> HookOutcome:
    """POST the new champion's adapter to `url`; never raises (the outcome says what happened)."""
    if not url:
        return HookOutcome(False, True, None, error="no serving hook configured")
    current = swap.current
    if current.adapter_path is None:
        return HookOutcome(False, True, url, error=f"{current.name} is the base model: no adapter to load",
                           lora_name=current.name)
    body = {"lora_name": current.name, "lora_path": current.adapter_path}
    try:
        with httpx.Client(timeout=timeout, transport=transport) as client:
            response = client.post(url, json=body)
    except httpx.HTTPError as exc:
        return HookOutcome(True, False, url, error=f"{type(exc).__name__}: {exc}", lora_name=current.name)
    ok = 200 <= response.status_code < 300
    return HookOutcome(True, ok, url, response.status_code, None if ok else response.text[:500], current.name)


def change_champion(
    factory: sessionmaker[Session], project_id: int, action: Literal["promote", "rollback"], name: str, *,
    actor: str, reason: str | None = None, override: bool = False, settings: Settings | None = None,
    transport: httpx.BaseTransport | None = None, principal: Principal | None = None,
) -> tuple[Swap, HookOutcome]:
    """Promote `name` (or roll back the champion `name`), commit, then call and audit the serving hook."""
    settings = settings or get_settings()
    if action == "promote":
        swap = run_unit(factory, lambda s: promote(s, project_id, name, actor=actor, reason=reason, override=override,
                                                   principal=principal))
    else:
        swap = run_unit(factory, lambda s: rollback(s, project_id, name, actor=actor, reason=reason,
                                                    principal=principal))
    outcome = call_serving_hook(settings.serving_hook_url, swap, timeout=settings.serving_hook_timeout_seconds,
                                transport=transport)
    if outcome.url is not None:
        run_unit(factory, lambda s: audit(s, project_id, actor="system", action="serving_hook",
                                       principal=principals.system("serving-hook"),
                                       version_id=swap.current.id,
                                       reason=f"after {action} of {swap.current.name}", details=asdict(outcome)))
    return swap, outcome
