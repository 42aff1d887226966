"""Request bodies and the one HTTP call per batch (sentry-python splits worker and transport likewise)."""

from __future__ import annotations

import gzip
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

import httpx

from monitor import __version__
from monitor.privacy.redact import Policy, parse_actions
from monitor.sdk.items import Limits
from monitor.sdk.stats import Counters
from monitor.sdk.wire import Outcome, RetryPolicy, Verdict, classify_response

_GZIP_LEVEL: Final = 5  # most of level 9's ratio on JSON text at a fraction of its CPU


@dataclass(frozen=True)
class WorkerConfig:
    url: str  # collector base URL, no trailing slash
    headers: Mapping[str, str] = field(repr=False)  # Authorization (secret!), User-Agent, Content-Type
    batch_size: int
    flush_interval: float
    timeout: float
    gzip: bool
    limits: Limits
    retry: RetryPolicy
    default_model: str | None
    redact: Policy | None = None  # client-side PII redaction (monitor/privacy), None: off


class Batch:
    """One request body; keeps whichever of raw/gzipped form it was made from and derives the other once."""

    __slots__ = ("_gz", "_raw", "items", "kind")

    def __init__(self, kind: str, items: int, raw: bytes | None = None, gz: bytes | None = None) -> None:
        self.kind, self.items, self._raw, self._gz = kind, items, raw, gz

    @property
    def raw(self) -> bytes:
        if self._raw is None:
            self._raw = gzip.decompress(self._gz or b"")
        return self._raw

    @property
    def gz(self) -> bytes:
        """Gzipped body: what goes on the wire (by default) and what the spool stores."""
        if self._gz is None:
            self._gz = gzip.compress(self.raw, compresslevel=_GZIP_LEVEL, mtime=0)
        return self._gz


class Transport:
    """Owns the httpx client (keep-alive connections); used by the worker thread only."""

    def __init__(self, config: WorkerConfig, counters: Counters) -> None:
        self.config = config
        self._counters = counters
        self._http = httpx.Client(
            timeout=config.timeout, headers=dict(config.headers), follow_redirects=False
        )

    def post(self, batch: Batch) -> Outcome:
        """Send one batch; every failure becomes an `Outcome`, never an exception."""
        headers = {"Content-Encoding": "gzip"} if self.config.gzip else {}
        content = batch.gz if self.config.gzip else batch.raw
        self._counters.add("requests")
        try:
            response = self._http.post(f"{self.config.url}/v1/{batch.kind}", content=content, headers=headers)
        except Exception as exc:  # connection refused, timeouts, TLS, proxy trouble: all worth a retry
            return Outcome(Verdict.TRANSIENT, detail=f"{type(exc).__name__}: {exc}"[:300])
        return classify_response(response.status_code, response.headers, response.content, time.time())

    def close(self) -> None:
        self._http.close()


def build_config(
    url: str,
    api_key: str,
    batch_size: int,
    flush_interval: float,
    timeout: float,
    gzip: bool,
    limits: Limits | None,
    retry: RetryPolicy | None,
    default_model: str | None,
    redact: bool | str | Mapping[str, str] = False,
) -> WorkerConfig:
    """Check the constructor's arguments (ValueError says which is wrong) and freeze them for the worker."""
    limits = limits or Limits()
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ValueError(f"url must start with http:// or https://, got {url!r:.80}")
    if not isinstance(api_key, str):
        raise ValueError("api_key must be a str")
    if not 1 <= int(batch_size) <= limits.max_batch_items:
        raise ValueError(f"batch_size must be in [1, {limits.max_batch_items}], got {batch_size}")
    if not float(flush_interval) > 0 or not float(timeout) > 0:
        raise ValueError("flush_interval and timeout must be positive")
    headers = {"User-Agent": f"driftloop-sdk/{__version__}", "Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return WorkerConfig(
        url=url.rstrip("/"),
        headers=headers,
        batch_size=int(batch_size),
        flush_interval=float(flush_interval),
        timeout=float(timeout),
        gzip=bool(gzip),
        limits=limits,
        retry=retry or RetryPolicy(),
        default_model=default_model,
        redact=client_policy(redact),
    )


def client_policy(redact: bool | str | Mapping[str, str]) -> Policy | None:
    """`True`: the collector's default detectors, masking; a string or mapping: detector=action over those
    defaults (`hash` needs the project's key, which only the collector holds, so it is refused here)."""
    if redact is False or redact is None:
        return None
    actions = parse_actions(None if redact is True else redact)
    if "hash" in actions.values():
        raise ValueError("redact: the `hash` action is collector-side only (it needs the project's key)")
    return Policy(actions)
