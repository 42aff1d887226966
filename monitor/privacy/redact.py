"""Redaction: find PII with the detectors, then mask, hash, withhold or refuse, per detector. Standard library only.

Actions:
- `mask`: a typed placeholder, `<EMAIL>`.
- `hash`: `<EMAIL:3f9a12bc0d4e>`, the first 12 hex digits of HMAC-SHA256 under a per-project key, so the same
  value maps to the same token (joinable within a project, not across projects, and not reversible without the
  key).
- `drop`: the whole field is withheld (stored as null).
- `refuse`: the whole event is refused; the error names the field and the detector, never the value.
- `off`: the detector does not run.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from monitor.privacy.detectors import BY_NAME, DEFAULT_ON, DETECTORS, EXPLICIT_ONLY, Detector

ACTIONS: Final = ("off", "mask", "hash", "drop", "refuse")
_SEVERITY: Final = {"mask": 0, "hash": 0, "drop": 1, "refuse": 2}


class PiiRefused(Exception):
    """A field holds PII whose action is `refuse`. The message names the field and detector only."""

    def __init__(self, field: str, detector: str) -> None:
        self.message = f"contains {detector.replace('_', ' ')}, which this project refuses to store"
        super().__init__(f"{field} {self.message}")
        self.field = field
        self.detector = detector


def default_actions() -> dict[str, str]:
    return {d.name: ("mask" if d.name in DEFAULT_ON else "off") for d in DETECTORS}


def parse_actions(spec: str | Mapping[str, str] | None, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """`base` (default: the defaults) updated by `spec`: a mapping or `"email=hash,ip=mask"`. The key `all` (or
    `*`) sets every detector first, except those turned on only by name (`person`). Unknown detectors or actions
    are refused with a ValueError naming them."""
    actions = dict(base if base is not None else default_actions())
    if spec is None:
        return actions
    if isinstance(spec, str):
        pairs = [p.split("=", 1) for p in spec.replace(";", ",").split(",") if p.strip()]
        if any(len(p) != 2 for p in pairs):
            raise ValueError(f"PII actions {spec!r}: expected detector=action pairs separated by commas")
        items = [(k.strip().lower(), v.strip().lower()) for k, v in pairs]
    else:
        items = [(str(k).strip().lower(), str(v).strip().lower()) for k, v in spec.items()]
    for name, action in sorted(items, key=lambda kv: kv[0] not in ("all", "*")):
        if action not in ACTIONS:
            raise ValueError(f"unknown PII action {action!r} for {name!r}: choose from {', '.join(ACTIONS)}")
        if name in ("all", "*"):
            actions = {k: (v if k in EXPLICIT_ONLY else action) for k, v in actions.items()}
        elif name in BY_NAME:
            actions[name] = action
        else:
            raise ValueError(f"unknown PII detector {name!r}: choose from {', '.join(BY_NAME)}")
    return actions


@dataclass(frozen=True)
class Policy:
    actions: Mapping[str, str] = field(default_factory=default_actions)
    hash_key: bytes = b""  # per-project HMAC key; required when any action is `hash`

    def __post_init__(self) -> None:
        if "hash" in self.actions.values() and not self.hash_key:
            raise ValueError("the `hash` PII action needs a hash key")

    @property
    def active(self) -> tuple[tuple[Detector, str], ...]:
        return tuple((d, self.actions[d.name]) for d in DETECTORS if self.actions.get(d.name, "off") != "off")


def _normalise(detector: str, value: str) -> str:
    if detector == "email":
        return value.lower()
    if detector in ("card", "phone"):
        return "".join(ch for ch in value if ch.isdigit())
    if detector == "iban":
        return "".join(ch for ch in value if ch.isalnum()).upper()
    return value


def gates(detectors: Sequence[Detector]) -> tuple[re.Pattern[str], re.Pattern[str]] | None:
    """One character class joining the detectors' `chars`: a text without any of them is clean. Two versions: the
    class as written (`\\d`: any decimal digit), and for ASCII texts the same with `0-9`, which the regex engine
    scans about seven times faster. None when a detector names no characters (every text then runs them all)."""
    if not detectors or any(not d.chars for d in detectors):
        return None
    body = "".join(dict.fromkeys(d.chars for d in detectors))
    return re.compile(f"[{body}]"), re.compile("[" + body.replace(r"\d", "0-9") + "]")


Search = Callable[[str], "re.Match[str] | None"]


class Redactor:
    """Applies one policy; counts what it found per detector in `counts` (for metrics)."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._active = policy.active
        self._gates = gates([d for d, _ in self._active])
        # The active detectors' distinct prefilters, or None when one has none (it then runs on every text).
        prefilters = [d.prefilter for d, _ in self._active]
        self._prefilters: tuple[Callable[[str], bool], ...] | None = (
            None if any(p is None for p in prefilters) else tuple(dict.fromkeys(p for p in prefilters if p)))
        self.counts: Counter[str] = Counter()

    def gate_searches(self) -> tuple[Search, Search] | None:
        """The gate's two searches, for ASCII texts and for the others (a match or None), for a caller that runs
        them in its own loop; None when there is no gate (every text then may hold PII)."""
        return None if self._gates is None else (self._gates[1].search, self._gates[0].search)

    def may_hold_pii(self, text: str) -> bool:
        """False when no active detector could flag `text` (one scan of a character class); True otherwise."""
        if self._gates is None:
            return bool(self._active)
        return (self._gates[1] if text.isascii() else self._gates[0]).search(text) is not None

    def token(self, detector: str, value: str) -> str:
        digest = hmac.new(self.policy.hash_key, f"{detector}:{_normalise(detector, value)}".encode(),
                          hashlib.sha256).hexdigest()
        return f"<{detector.upper()}:{digest[:12]}>"

    def find(self, text: str) -> list[tuple[int, int, Detector, str]]:
        """Non-overlapping (start, end, detector, action) spans, earlier detectors winning overlaps."""
        gates: dict[Any, Any] = {}  # detectors share prefilters (three need digits): each runs once per text
        if self._prefilters is not None:
            # Most texts the gate lets through (a digit, a hyphen, a capital A) pass no detector's prefilter: they
            # are answered after the prefilters alone, without the loop's per-detector bookkeeping below. The
            # answers are kept in `gates`, so the loop does not run a prefilter again.
            for prefilter in self._prefilters:
                if gates.setdefault(prefilter, prefilter(text)):
                    break
            else:
                return []
        spans: list[tuple[int, int, Detector, str]] = []
        for detector, action in self._active:
            gate = detector.prefilter
            if gate is not None:
                passed = gates.get(gate)
                if passed is None:
                    passed = gates[gate] = gate(text)
                if not passed:
                    continue
            if detector.finder is not None:
                for start, end in detector.finder(text):
                    if not any(s < end and start < e for s, e, _, _ in spans):
                        spans.append((start, end, detector, action))
                continue
            where = detector.windows
            if where is None:
                windows: list[tuple[int, int]] = [(0, len(text))]
            else:
                found = gates.get(where)
                windows = found if found is not None else gates.setdefault(where, where(text))
            for lo, hi in windows:
                for m in detector.pattern.finditer(text, lo, hi):
                    start, end = m.span()
                    if any(s < end and start < e for s, e, _, _ in spans):
                        continue
                    if detector.validate is None or detector.validate(m.group(0)):
                        spans.append((start, end, detector, action))
        spans.sort(key=lambda s: s[0])
        return spans

    def redact_text(self, value: str, field: str) -> str | None:
        """The redacted text; None when the field is to be withheld; PiiRefused when the event is refused."""
        if not self.may_hold_pii(value):
            return value
        spans = self.find(value)
        if not spans:
            return value
        for _, _, detector, _ in spans:
            self.counts[detector.name] += 1
        worst = max(spans, key=lambda s: _SEVERITY[s[3]])
        if worst[3] == "refuse":
            raise PiiRefused(field, worst[2].name)
        if worst[3] == "drop":
            return None
        out: list[str] = []
        pos = 0
        for start, end, detector, action in spans:
            out.append(value[pos:start])
            out.append(self.token(detector.name, value[start:end]) if action == "hash" else f"<{detector.placeholder}>")
            pos = end
        out.append(value[pos:])
        return "".join(out)

    def value(self, value: Any, field: str) -> Any:
        """Strings anywhere inside a JSON value (metadata) redacted; keys are kept as they are."""
        if isinstance(value, str):
            return self.redact_text(value, field)
        if isinstance(value, dict | Mapping):  # dict first: the abstract class's check is the slower one
            return {k: self.value(v, f"{field}.{k}") for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v, f"{field}[{i}]") for i, v in enumerate(value)]
        return value
