"""The one settings object. Every knob is an environment variable with the `DRIFTLOOP_` prefix."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SECRET = "local-dev-secret-change-me"


MIN_SECRET_BYTES = 32
MIN_SECRET_DISTINCT = 8


def secret_key_problem(key: str) -> str | None:
    """Why `key` is too weak for production (too short, too repetitive), or None."""
    size = len(key.encode("utf-8"))
    if size < MIN_SECRET_BYTES:
        return f"is {size} bytes long; production needs at least {MIN_SECRET_BYTES} random bytes"
    distinct = len(set(key))
    if distinct < MIN_SECRET_DISTINCT:
        return f"has only {distinct} distinct characters; production needs at least {MIN_SECRET_DISTINCT}"
    return None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DRIFTLOOP_", env_file=".env", extra="ignore")

    mode: Literal["local", "production"] = Field(
        "local",
        description="`local` allows the default secret key; `production` refuses it, marks UI cookies Secure "
        "(unless DRIFTLOOP_UI_SECURE_COOKIES says otherwise) and makes the `auto` rate-limit backend Redis. Webhook "
        "URLs on loopback or private addresses need DRIFTLOOP_WEBHOOK_ALLOW_PRIVATE in either mode.",
    )
    database_url: str = Field(
        "sqlite:///driftloop.db",
        description="SQLAlchemy URL. Default: a SQLite file in the working directory (embedded mode). "
        "Use postgresql+psycopg://user@host/db for production.",
    )
    read_database_url: str | None = Field(
        None,
        description="SQLAlchemy URL of a read-only Postgres streaming replica of DRIFTLOOP_DATABASE_URL. The read "
        "API (GET routes of events, metrics, alerts, webhooks, projects) and the UI pages read from it; writes, "
        "API-key and UI-login checks always go to the primary. Unset: everything uses the primary.",
    )
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Celery broker and result backend.")
    runner: Literal["inprocess", "celery"] = Field(
        "inprocess", description="`inprocess` runs tasks in the calling process (embedded); `celery` queues them."
    )
    tick_seconds: float = Field(60.0, ge=1, description="How often beat scans for dirty windows.")
    recompute_interval_seconds: float = Field(
        60.0, ge=0, description="With Celery, a window still open is recomputed at most this often while events "
        "arrive (each recomputation reads the whole window); a closed window gets its final computation at the next "
        "tick. 0: at every tick.",
    )
    celery_visibility_timeout: int = Field(
        3600, ge=1, description="Seconds before Redis redelivers an unacknowledged task (a worker died mid-task)."
    )
    celery_key_prefix: str = Field(
        "", max_length=128,
        description="Prefix for every Celery key in Redis, so several deployments can share one Redis database.",
    )
    secret_key: str = Field(
        DEFAULT_SECRET, description="Signs UI sessions and encrypts webhook secrets. Outside local mode: at least "
        "32 bytes with at least 8 distinct characters, and not the default (e.g. `openssl rand -hex 32`)."
    )
    data_dir: Path = Field(Path("driftloop-data"), description="Adapters, caches and reports live here.")

    # Models. None means the offline default shipped as a package; any Hugging Face id or local path works
    # where it can be loaded.
    embedding_model: str | None = Field(
        None, description="Sentence-transformers model id or path (default: offline all-MiniLM-L6-v2)."
    )
    embedding_batch_size: int = Field(64, ge=1, le=4096, description="Texts per embedding batch.")
    embedding_backend: Literal["torch", "onnx", "onnx-int8"] = Field(
        "torch", description="How the drift stage runs the sentence encoder on CPU: `torch` (sentence-transformers), "
        "`onnx` (ONNX Runtime, same vectors, exported offline from the installed model into data_dir/onnx on first "
        "use) or `onnx-int8` (int8 weights: faster, vectors stored under their own model key). With a GPU, torch."
    )
    device: str = Field("auto", description="`auto` picks cuda when available, else cpu; or name a torch device.")

    toxicity_scorer: str = Field(
        "minilm-head:ensemble", description="`minilm-head:ensemble` (offline default: small heads over the stored "
        "MiniLM vectors plus the lexical model, fair to identity mentions; plain rudeness is reported apart as "
        "`safety.profanity_rate`; see docs/safety.md), `minilm-head` (the older single head: flags more rudeness, "
        "less fair to some groups), `minilm-combined` (the ensemble head OR the lexical model on identity-masked "
        "text: flags rudeness too, lower HateCheck AUC), `profanity` (lexical only), `hf:<model id or path>`, or "
        "`detoxify:<variant>`."
    )
    toxicity_threshold: float | None = Field(
        None, ge=0, le=1, description="A text at or above this score counts as toxic. Unset: the scorer's "
        "calibrated threshold (minilm-head:ensemble, minilm-head: chosen on their validation data, see "
        "docs/safety.md; profanity: 0.3; others: 0.5)."
    )

    # Collector limits: a request over any of them is refused whole (413/422), nothing stored.
    max_body_bytes: int = Field(16 * 1024 * 1024, description="Largest request body, after decompression.")
    max_batch_events: int = Field(10_000, description="Most events (or feedback items) in one batch.")
    max_text_chars: int = Field(1_000_000, description="Longest prompt, response or corrected response.")
    max_metadata_bytes: int = Field(65_536, description="Largest serialized metadata object per event.")
    max_header_bytes: int = Field(
        32 * 1024, ge=1024, le=1024 * 1024,
        description="Largest total size of a request's headers (names and values); larger requests get 431.",
    )

    # Ingestion back-pressure: while the database is unreachable the collector answers 503 with this.
    retry_after_seconds: int = Field(5, description="Retry-After sent with 503 when the database is down.")

    # Privacy (monitor/privacy, docs/privacy.md): PII is redacted at ingestion, before anything is stored. Projects
    # override these in their config under "privacy".
    pii_redaction: bool = Field(
        True, description="Redact PII from events, feedback and OTLP spans before anything is stored (see "
        "docs/privacy.md)."
    )
    pii_actions: str = Field(
        "", description="Per-detector actions over the defaults, e.g. `email=hash,ip=mask` (detectors: email, "
        "phone, card, iban, credential_url, api_key, ip, high_entropy, person; actions: off, mask, hash, drop, "
        "refuse; `all=...` sets every detector but person). Default: mask the first six, ip, high_entropy and "
        "person off."
    )
    pii_on_error: Literal["refuse", "withhold"] = Field(
        "refuse", description="When redaction fails or runs over its budget: `refuse` answers 503 and stores "
        "nothing (the SDK retries later); `withhold` stores the items with their text fields set to null."
    )
    pii_budget_ms: float = Field(
        20.0, gt=0, le=60_000, description="Redaction time budget per item in milliseconds (a batch gets the "
        "sum); a batch over it is handled per DRIFTLOOP_PII_ON_ERROR."
    )
    pii_ner_model: str = Field(
        "en_core_web_sm", min_length=1, description="spaCy pipeline (package name or path) of the optional "
        "`person` detector; needs spaCy and is loaded only when a policy turns `person` on."
    )
    pii_hash_secret: str | None = Field(
        None, description="Key of the `hash` action (HMAC-SHA256, a key derived per project). Unset: derived from "
        "DRIFTLOOP_SECRET_KEY."
    )

    # Per-API-key rate limits (429 + Retry-After; nothing stored). The defaults sit far above what one busy app
    # sends (a few requests/s of 2,000-event batches) and stop a runaway client or a leaked key from drowning
    # the collector. 0 turns a limit off.
    rate_limit_per_second: float = Field(
        50.0, ge=0, description="Requests per second per API key (every authenticated route); 0 = no limit."
    )
    rate_limit_burst: int = Field(
        100, ge=1, description="Requests a key may send at once (the bucket), before the steady rate applies."
    )
    rate_limit_events_per_second: float = Field(
        50_000.0, ge=0, description="Events, feedback items and LLM spans per second per API key; 0 = no limit."
    )
    rate_limit_events_burst: int = Field(
        100_000, ge=1, description="Items a key may send at once; at least DRIFTLOOP_MAX_BATCH_EVENTS."
    )
    rate_limit_backend: Literal["auto", "memory", "redis"] = Field(
        "auto", description="`redis` shares limits across collector processes (fails over to per-process limits "
        "while Redis is down); `memory` limits per process; `auto`: redis with the celery runner or in production."
    )

    # Retention: events (with their vectors and scores) and feedback older than this are deleted in small
    # batches by a periodic task; metric rows, alerts and the model registry are kept.
    retention_days: int | None = Field(
        None, ge=0, description="Delete events and feedback whose timestamp is older than this many days; "
        "0 or unset keeps everything."
    )
    retention_batch_size: int = Field(
        5000, ge=1, le=100_000, description="Rows deleted per short transaction, so ingestion never waits long."
    )
    retention_interval_seconds: float = Field(
        3600.0, ge=60,
        description="How often beat applies the retention policy (the in-process runner: after every run).",
    )

    # Time-partitioned storage (Postgres): read by migration 0014, which partitions the growing tables of a new
    # database, by `driftloop partitions convert` (an existing one), and by beat's upkeep, which creates ranges ahead.
    partition_interval: Literal["off", "day", "week", "month"] = Field(
        "day", description="Postgres only: partition events, feedback, embeddings and scores by time in ranges of "
        "this length (`day`, `week`, `month`). The first migration partitions a new database; one that already "
        "holds events stays plain until `driftloop partitions convert`. `off`, set before the first migration, "
        "keeps plain tables."
    )
    partition_claim_all_ids: bool = Field(
        False, description="Partitioned storage: also claim in the keys table every event and feedback id that came "
        "with its own timestamp, so an id resent with another timestamp in another partition is still a duplicate "
        "(about 3 µs more Postgres CPU per event). Off: ids are unique within a partition, and retries (which "
        "resend their timestamp) are duplicates; ids whose timestamp the server assigns are always claimed."
    )
    partition_ahead_days: int = Field(
        7, ge=1, le=366, description="How many days ahead beat creates partitions."
    )
    partition_interval_seconds: float = Field(
        3600.0, ge=60, description="How often beat creates partitions ahead and empties the DEFAULT partition."
    )
    search_index_seconds: float = Field(
        5.0, gt=0,
        description="How often beat writes the full-text index rows of new events (the in-process runner: after "
                    "every run); newer events are searched without the index until then.",
    )

    # Webhooks. Private, loopback and link-local targets are refused unless allowed here: an alert endpoint
    # must not become a way to reach the services next to driftloop (SSRF). Local development and tests
    # that post to 127.0.0.1 set this to true.
    webhook_allow_private: bool = Field(
        False, description="Allow webhook URLs that resolve to private, loopback or link-local addresses."
    )
    webhook_timeout_seconds: float = Field(10.0, gt=0, le=120, description="Timeout of one delivery attempt.")
    webhook_max_attempts: int = Field(10, ge=1, le=50, description="Attempts per delivery before giving up.")
    webhook_backoff_base_seconds: float = Field(
        5.0, ge=0, le=3600, description="First retry delay; doubles per attempt (with jitter) up to the cap."
    )
    webhook_backoff_cap_seconds: float = Field(3600.0, ge=0, le=86_400, description="Longest delay between attempts.")
    webhook_secret_grace_seconds: int = Field(
        86_400, ge=0, le=30 * 86_400, description="After a secret rotation, the old secret still signs this long."
    )

    # The closed loop (retrain/): the served base model, training defaults, evaluation gates, the model server.
    # Per-project overrides live in the project's config under "retrain" (see retrain/jobs/config.py).
    base_model: str | None = Field(
        None, description="Base causal LM: None for the offline SmolLM2-135M-Instruct, else a model id or local path."
    )
    model_roots: str | None = Field(
        None, description="Directories base models may be loaded from, separated by `:`; a job names a model by its "
        "path relative to a root (`<root name>:<path>`). Unset: the bundled model's directory and "
        "`<DRIFTLOOP_DATA_DIR>/models`. Model ids are allowed when DRIFTLOOP_BASE_MODEL names them or the project's "
        "registry already holds them."
    )
    retrain_on_alert: bool = Field(
        True, description="Handle alert rules' `retrain` action in this process (CLI, workers); false leaves the "
        "requests pending (a kill switch for automatic retraining)."
    )
    retrain_job_timeout_seconds: float = Field(
        7200.0, ge=60, description="A queued or running retraining job with no progress for this long is marked "
        "failed as abandoned (the process running it died); until then a project's next manual job gets 409."
    )
    retrain_min_examples: int = Field(16, ge=1, description="Fewest training examples a retraining job accepts.")
    retrain_max_rows: int = Field(50_000, ge=1, description="Newest feedback rows a training set is built from.")
    retrain_lora_r: int = Field(8, ge=1, le=256, description="LoRA rank.")
    retrain_lora_alpha: int = Field(16, ge=1, description="LoRA alpha (scaling = alpha / r).")
    retrain_lr: float = Field(2e-4, gt=0, le=1, description="LoRA learning rate.")
    retrain_epochs: int = Field(1, ge=1, le=100, description="Passes over the training split.")
    retrain_max_steps: int | None = Field(
        None, ge=1, description="Optimizer steps per job; overrides epochs when set (short CPU runs)."
    )
    retrain_batch_size: int = Field(8, ge=1, le=512, description="Examples per LoRA training step.")
    retrain_max_length: int = Field(512, ge=16, description="Token limit of one training/evaluation example.")
    retrain_seed: int = Field(0, description="Seed of LoRA training (adapter initialisation, data order, dropout).")
    retrain_eval_max_examples: int = Field(
        64, ge=1, description="Held-out examples each model answers in evaluation (all are scored for loss)."
    )
    retrain_eval_max_new_tokens: int = Field(48, ge=1, le=2048, description="Answer length in evaluation.")
    retrain_probe_axes: str = Field(
        "gender,religion,race_ethnicity", description="Comma-separated bias-probe axes the gate runs (15 groups: "
        "each template gives the bias gate 15 paired cells)."
    )
    retrain_probe_templates: int = Field(
        40, ge=1, description="Probe templates per axis in the gate, at most the probe set's 40 (the bias gate's "
        "jackknife units; fewer than 3 leaves it inconclusive, and its half-width shrinks about as 1/templates)."
    )
    gate_min_loss_improvement: float = Field(
        0.0, ge=0, description="The challenger's eval loss (nats/token) must be below the champion's by more than this."
    )
    gate_max_toxicity_increase: float = Field(
        0.05, ge=0, le=1, description="Largest allowed rise of the generated answers' toxicity rate: the "
        "non-inferiority margin (passes when the one-sided 95% upper bound of the paired rise is under it, fails "
        "when the lower bound is over it, else inconclusive)."
    )
    gate_max_bias_disparity_increase: float = Field(
        0.01, ge=0, le=4, description="Largest allowed rise of the bias probes' disparity, the mean squared gap "
        "between two groups' mean sentiment averaged over the probe axes (sentiment units squared: 0.01 is a 0.1 gap "
        "appearing between two groups; non-inferiority margin, jackknife over probe templates)."
    )
    gate_max_bias_gap_increase: float | None = Field(
        None, ge=0, le=2, description="Deprecated (the bias gate no longer bounds the largest gap): when set and "
        "DRIFTLOOP_GATE_MAX_BIAS_DISPARITY_INCREASE is not, its square is used as that margin."
    )
    gate_min_similarity: float | None = Field(
        None, ge=-1, le=1, description="Optional floor on answer similarity to corrected answers (reported always)."
    )
    canary_share: float = Field(0.0, ge=0, le=1, description="Share of model-server traffic sent to the challenger.")
    serving_hook_url: str | None = Field(
        None, description="Called on promotion/rollback with vLLM's load_lora_adapter body (lora_name, lora_path)."
    )
    serving_hook_timeout_seconds: float = Field(10.0, gt=0, le=300, description="Timeout of the serving hook call.")
    model_server_project: str | None = Field(None, description="Project whose champion `serve-model` serves.")
    model_server_reload_seconds: float = Field(
        5.0, ge=0, description="The model server re-reads the aliases at most this often (and on /admin/reload)."
    )
    model_server_max_tokens: int = Field(512, ge=1, le=8192, description="Upper bound on max_tokens per request.")
    model_server_collector_url: str | None = Field(
        None, description="Collector the model server logs every call to (with its model version)."
    )
    model_server_api_key: str | None = Field(
        None, description="Project API key for the model server's logging (the `ingest` scope is all it needs)."
    )

    # The LLM judge (issue #21): any OpenAI-compatible endpoint; a project's evaluator params override these.
    judge_base_url: str | None = Field(
        None, description="OpenAI-compatible base URL of the LLM judge, e.g. http://localhost:8000/v1 (vLLM) or "
        "http://localhost:11434/v1 (Ollama).")
    judge_model: str | None = Field(None, description="Model name the LLM judge is asked for.")
    judge_api_key: str | None = Field(
        None, description="Bearer key for the judge endpoint (a project's stored key, if named, wins).")
    judge_timeout_seconds: float = Field(30.0, gt=0, le=600, description="Timeout of one judge request.")
    judge_window_deadline_seconds: float = Field(
        120.0, gt=0, le=3600, description="Most time a judge may spend on one window; items left then are errors.")
    judge_max_tokens_per_day: int | None = Field(
        200_000, ge=0, description="Token budget per project and judge per UTC day; None = no limit.")

    # The approval UI (/ui): operator sign-in sessions and their cookies.
    ui_session_hours: float = Field(
        12.0, gt=0, le=24 * 30, description="A UI sign-in lasts this long; then the operator signs in again."
    )
    ui_secure_cookies: bool | None = Field(
        None, description="Mark UI cookies Secure (sent over HTTPS only). None: Secure unless DRIFTLOOP_MODE is local."
    )
    ui_cookie_samesite: Literal["lax", "strict"] = Field(
        "lax", description="SameSite of UI cookies; `strict` also drops the session on links followed from elsewhere."
    )
    ui_login_max_failures: int = Field(
        5, ge=1, le=1000, description="Failed sign-ins per username within the lockout period before further "
        "attempts are refused (whether or not the username exists)."
    )
    ui_login_lockout_minutes: float = Field(
        15.0, gt=0, le=24 * 60, description="The period over which failed sign-ins are counted, and the lockout."
    )

    @model_validator(mode="after")
    def _refuse_weak_secret_outside_local(self) -> Settings:
        # The key signs sessions and derives the key that encrypts webhook secrets: a short or repetitive one can
        # be guessed offline from one signed cookie. The rule is checked at start, so a weak key never serves.
        if self.mode == "local":
            return self
        if self.secret_key == DEFAULT_SECRET:
            raise ValueError(
                "DRIFTLOOP_SECRET_KEY is the built-in default; set a random secret when DRIFTLOOP_MODE is not local"
            )
        problem = secret_key_problem(self.secret_key)
        if problem:
            raise ValueError(f"DRIFTLOOP_SECRET_KEY {problem} (DRIFTLOOP_MODE={self.mode}); generate one with "
                             "`openssl rand -hex 32`")
        return self

    @model_validator(mode="after")
    def _event_burst_holds_a_batch(self) -> Settings:
        if self.rate_limit_events_per_second > 0 and self.rate_limit_events_burst < self.max_batch_events:
            raise ValueError(
                f"DRIFTLOOP_RATE_LIMIT_EVENTS_BURST ({self.rate_limit_events_burst}) must be at least "
                f"DRIFTLOOP_MAX_BATCH_EVENTS ({self.max_batch_events}), or a full batch could never be accepted"
            )
        return self

    @model_validator(mode="after")
    def _replica_is_postgres(self) -> Settings:
        # SQLite has one file and no replicas; a replica of a Postgres primary is itself Postgres.
        if self.read_database_url and (self.is_sqlite or not self.read_database_url.startswith("postgresql")):
            raise ValueError("DRIFTLOOP_READ_DATABASE_URL needs Postgres for both it and DRIFTLOOP_DATABASE_URL "
                             "(a streaming replica of the primary); leave it unset with SQLite")
        return self

    @model_validator(mode="after")
    def _pii_actions_parse(self) -> Settings:
        from monitor.privacy.redact import parse_actions

        parse_actions(self.pii_actions or None)  # a typo must fail at start-up, not silently redact less
        return self

    @property
    def ui_cookies_secure(self) -> bool:
        return self.ui_secure_cookies if self.ui_secure_cookies is not None else self.mode != "local"

    def bias_disparity_tolerance(self) -> float:
        """The bias gate's margin: the new setting, else the square of the deprecated gap margin when only it is set."""
        old = self.gate_max_bias_gap_increase
        if old is not None and "gate_max_bias_disparity_increase" not in self.model_fields_set:
            return old**2
        return self.gate_max_bias_disparity_increase

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def reset_settings_cache() -> None:
    """Tests and the CLI change the environment; this makes the next `get_settings()` read it again."""
    get_settings.cache_clear()


@contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """These environment variables (and the settings read from them) for the duration; what was there before
    comes back afterwards. For code that runs driftloop in its own process with other settings (the demo, the
    fault scripts), since workers and delivery code read the process-wide settings."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    reset_settings_cache()
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        reset_settings_cache()
