"""`driftloop demo`: the loop on a simulated support app, end to end.

Stages: a database and a collector on localhost → quiet traffic through the SDK (with user feedback) →
shifted traffic (new topics, some rude answers) → metrics and drift → the drift report → the alert, signed,
at a local webhook receiver → then the closed loop
(`retrain.demo_loop`: model server, retraining started by the alert, challenger with its evaluation, and with
`auto_approve` the promotion and the model server answering as the new version) → the loop's events as
signed webhooks. Each stage's outcome goes into `DemoReport`, which the tests assert on and the CLI prints.

Embedded (default): a fresh SQLite file, the in-process runner. Production (`production=True`): the configured
PostgreSQL and Redis, a Celery worker started for the run (see `monitor.demo.production`), a fresh project.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from monitor import migrations
from monitor.db import make_engine, run_unit, session_factory, utcnow
from monitor.demo.answers import canned_answer
from monitor.demo.production import DemoConfigError, celery_worker, check_production, redact, run_id
from monitor.demo.receiver import Received, webhook_receiver
from monitor.demo.report import DemoReport, Progress, wait_until
from monitor.demo.serving import running_collector
from monitor.demo.support_app import SupportApp
from monitor.demo.traffic import mixed
from monitor.metrics.queries import latest_drift, query_metrics
from monitor.pipeline.models import WindowState
from monitor.pipeline.windows import window_start
from monitor.projects.service import create_key, get_project
from monitor.queue import runs_inline
from monitor.runner import queue_windows, run_pending
from monitor.sdk import Client
from monitor.settings import Settings, environment, get_settings
from retrain.demo_loop import LoopRun, loop_stages, project_config, retrain_action_deferred

__all__ = ["DemoConfigError", "DemoReport", "run_demo"]

QUIET_MIX = {"account": 0.34, "billing": 0.33, "shipping": 0.33}
SHIFTED_MIX = {"account": 0.15, "billing": 0.15, "shipping": 0.1, "cooking": 0.3, "travel": 0.3}
DEMO_OPERATOR = "demo"
PROJECT = "support-demo"
DEMO_RULES = [
    {"name": "prompt-drift", "description": "What users ask moved away from the reference traffic.",
     "metric": "drift.prompt.mmd", "field": "flagged", "comparator": "==", "threshold": 1, "severity": "critical",
     "actions": [{"type": "webhook", "endpoints": ["demo-receiver"]}, {"type": "retrain"}]},
    {"name": "sudden-shift", "description": "This hour differs from the hours just before it (the onset row).",
     "metric": "drift.embeddings.onset", "field": "flagged", "comparator": "==", "threshold": 1, "severity": "warning",
     "actions": [{"type": "webhook", "endpoints": ["demo-receiver"]}]},
    {"name": "rude-answers", "metric": "safety.profanity_rate.response", "comparator": ">", "threshold": 0.05,
     "severity": "warning", "actions": [{"type": "webhook", "endpoints": ["demo-receiver"]}]},
]
METRICS_WAIT_SECONDS = 900.0  # production: the worker computes every window within this
WEBHOOK_WAIT_SECONDS = 120.0  # production: deliveries go through the worker's queue

Hold = Callable[[DemoReport], None]


def run_demo(
    workdir: Path, *, events_per_window: int = 150, quiet_windows: int = 4, shifted_windows: int = 2,
    progress: Progress | None = None, seed: int = 7, auto_approve: bool = False, production: bool = False,
    retrain_overrides: dict[str, Any] | None = None, hold: Hold | None = None,
) -> DemoReport:
    """Run every stage; `hold(report)` is called at the end while the collector and model server still run.

    Raises DemoConfigError before doing anything when `production` is asked for but not configured."""
    workdir = workdir.resolve()
    env = _environment(workdir, production)  # refuses an unconfigured --production before touching anything
    workdir.mkdir(parents=True, exist_ok=True)
    with _process_environment(env, production):
        settings = get_settings()
        slug = f"{PROJECT}-{env['_RUN']}" if production else PROJECT
        report = DemoReport(mode="production" if production else "embedded", project=slug,
                            database_url=redact(settings.database_url))
        engine = make_engine(settings.database_url)
        demo = _Demo(report, settings, session_factory(engine), workdir, progress or (lambda *_: None), seed,
                     events_per_window, quiet_windows, shifted_windows, auto_approve, retrain_overrides)
        try:
            with webhook_receiver() as (hook_url, received), ExitStack() as stack:
                if production and not report.stage(
                        "Celery worker started (queues default,gpu)",
                        lambda: _start_worker(stack, env, workdir / f"celery-worker-{env['_RUN']}.log", report)):
                    return report
                demo.run(hook_url, received, hold)
        finally:
            engine.dispose()
    return report


def _environment(workdir: Path, production: bool) -> dict[str, str]:
    """The demo's settings, as environment variables (what the workers and delivery code read)."""
    configured = Settings()
    # The base model's converted weights are cached in the data dir: the configured one, else the demo's own.
    data_dir = workdir / "data" if configured.data_dir == Settings.model_fields["data_dir"].default else (
        configured.data_dir.resolve())
    env = {"DRIFTLOOP_WEBHOOK_ALLOW_PRIVATE": "true",  # the receiver is on localhost
           "DRIFTLOOP_RETRAIN_ON_ALERT": "true", "DRIFTLOOP_DATA_DIR": str(data_dir), "_RUN": run_id()}
    if production:
        check_production(configured)
        env.update(DRIFTLOOP_DATABASE_URL=configured.database_url, DRIFTLOOP_REDIS_URL=configured.redis_url,
                   DRIFTLOOP_RUNNER="celery",
                   DRIFTLOOP_CELERY_KEY_PREFIX=f"{configured.celery_key_prefix}demo-{env['_RUN']}:")
    else:
        db_path = workdir / "driftloop-demo.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db_path}{suffix}").unlink(missing_ok=True)
        env.update(DRIFTLOOP_DATABASE_URL=f"sqlite:///{db_path}", DRIFTLOOP_RUNNER="inprocess")
    return env


@contextmanager
def _process_environment(env: dict[str, str], production: bool) -> Iterator[None]:
    def point_celery_at_settings() -> None:
        if production:  # this process sends the window tasks: same broker and key prefix as its worker
            from monitor.worker.app import reconfigure

            reconfigure(get_settings())

    try:
        with environment({k: v for k, v in env.items() if k.startswith("DRIFTLOOP_")}):
            point_celery_at_settings()
            yield
    finally:
        point_celery_at_settings()  # the environment is restored by now




def _start_worker(stack: ExitStack, env: dict[str, str], log: Path, report: DemoReport) -> tuple[bool, str]:
    worker_env = {k: v for k, v in env.items() if k.startswith("DRIFTLOOP_")}
    proc = stack.enter_context(celery_worker(worker_env, log))  # stopped when the demo ends, however it ends
    report.values["celery_worker_pid"] = proc.pid
    return True, f"pid {proc.pid}, key prefix {env['DRIFTLOOP_CELERY_KEY_PREFIX']!r}, log {log}"


@dataclass
class _Demo:
    report: DemoReport
    settings: Settings
    factory: sessionmaker[Session]
    workdir: Path
    tick: Progress
    seed: int
    events_per_window: int
    quiet_windows: int
    shifted_windows: int
    auto_approve: bool
    retrain_overrides: dict[str, Any] | None

    @property
    def celery(self) -> bool:
        return not runs_inline(self.settings)

    def run(self, hook_url: str, received: Received, hold: Hold | None) -> None:
        stage = self.report.stage
        key = self._setup(hook_url, received)
        if key is None:
            return
        with running_collector(self.settings) as url:
            self.report.collector_url = url
            client = Client(url, key, batch_size=200, flush_interval=0.2, spool_dir=self.workdir / "spool")
            app = SupportApp(client, lambda p: (canned_answer(p), "v0"), random.Random(self.seed))
            start = window_start(datetime.now(UTC) - timedelta(hours=self.quiet_windows + self.shifted_windows + 1),
                                 3600)
            stage("quiet traffic through the SDK", lambda: self._traffic(app, client, start, QUIET_MIX, 0, 0.0))
            stage("shifted traffic: new topics, rude answers",
                  lambda: self._traffic(app, client, start, SHIFTED_MIX, self.quiet_windows, 0.08))
            client.close(timeout=10)
            with self._retrain_deferred():
                stage(f"metrics and drift ({'Celery workers' if self.celery else 'in-process workers'})",
                      self._metrics)
            stage("drift detected on the shifted windows", lambda: (
                self.report.drift_detected,
                f"drift in {len(self.report.drift_windows)} window(s): {', '.join(self.report.drift_windows)}"
                if self.report.drift_detected else "no drift flagged"))
            if not stage("alert fired to a local webhook receiver", lambda: self._alert(received)):
                return
            with self._loop(url, key):
                stage("loop events delivered as signed webhooks", lambda: self._loop_webhooks(received))
                if hold is not None:
                    hold(self.report)

    def _setup(self, hook_url: str, received: Received) -> str | None:
        key: dict[str, str] = {}

        def setup() -> tuple[bool, str]:
            from monitor.alerts.rule_service import apply_rules
            from monitor.alerts.rules import RuleSpec
            from monitor.webhooks.endpoints import EndpointSpec, create_endpoint

            migrations.upgrade(self.settings.database_url)
            with self.factory() as s:
                # The demo's key goes where an application's would (the SDK, the model server's logging): it only
                # sends events and feedback. Its rules, endpoint and decisions are made here, not through the API.
                key["key"] = create_key(s, self.report.project, "demo", scopes="ingest").key
                project = get_project(s, self.report.project)
                project.config = {"window_seconds": 3600,
                                  "reference": {"kind": "first_n", "n": self.events_per_window * 2},
                                  "segment_keys": ["locale"], "drift_min_samples": min(100, self.events_per_window),
                                  **self._loop_config()}
                endpoint = create_endpoint(s, project.id, EndpointSpec(name="demo-receiver", url=hook_url),
                                           settings=self.settings)
                received.secret = endpoint.secret
                apply_rules(s, project.id, [RuleSpec.model_validate(rule) for rule in DEMO_RULES])
                self._ui_operator(s)
                s.commit()
            where = "SQLite" if self.settings.is_sqlite else "PostgreSQL"
            return True, (f"{where} at {self.report.database_url}, project {self.report.project!r}, "
                          f"{len(DEMO_RULES)} alert rules")

        return key["key"] if self.report.stage("set up the database", setup) else None

    def _ui_operator(self, session: Session) -> None:
        """An operator account for the approval UI, so the printed link can be opened. Created only when the name
        is free: on a shared production database an existing "demo" operator keeps its password."""
        import secrets

        from monitor.ui.accounts import create_operator, get_operator

        if get_operator(session, DEMO_OPERATOR) is None:
            password = secrets.token_urlsafe(12)
            create_operator(session, DEMO_OPERATOR, password)
            self.report.values["ui_sign_in"] = {"username": DEMO_OPERATOR, "password": password}

    def _loop_config(self) -> dict[str, Any]:
        return project_config(self.retrain_overrides)

    def _traffic(self, app: SupportApp, client: Client, start: datetime, mix: dict[str, float], offset: int,
                 toxic: float) -> tuple[bool, str]:
        windows = self.quiet_windows if offset == 0 else self.shifted_windows
        app.toxic_share = toxic
        total = windows * self.events_per_window
        for w in range(windows):
            texts = mixed(mix, self.events_per_window, seed=self.seed + offset + w)
            base = start + timedelta(hours=offset + w)
            for i, text in enumerate(texts):
                app.handle(text, base + timedelta(seconds=i * 3600 / self.events_per_window))
                self.tick("traffic", w * self.events_per_window + i + 1, total)
        delivered = client.flush(timeout=60)
        return delivered, f"{total} calls over {windows} h, with feedback" + ("" if delivered else
                                                                            " (not all delivered!)")

    def _project_id(self) -> int:
        with self.factory() as s:
            return get_project(s, self.report.project).id

    def _metrics(self) -> tuple[bool, str]:
        pid = self._project_id()
        windows = self.quiet_windows + self.shifted_windows
        if self.celery:
            ok, detail = self._metrics_celery(pid, windows)
        else:
            done = {"n": 0}

            def advance(_job: Any) -> None:
                done["n"] += 1
                self.tick("metrics", done["n"], windows)

            result = run_pending(factory=self.factory, project_ids=[pid], progress=advance)
            ok = not result.failures
            detail = f"{result.windows} windows, {result.rows} metric rows" + (
                f"; failures: {result.failures}" if result.failures else "")
        with self.factory() as s:
            _collect_drift(s, pid, self.report)
        return ok, detail

    def _metrics_celery(self, pid: int, windows: int) -> tuple[bool, str]:
        # Queued after the scan's commit: the tasks see the windows they are sent.
        jobs = run_unit(self.factory, lambda s: queue_windows(s, utcnow(), [pid]))

        def computed() -> int:
            with self.factory() as s:
                n = int(s.scalar(select(func.count()).select_from(WindowState).where(
                    WindowState.project_id == pid, WindowState.computed_at.is_not(None),
                    WindowState.dirty_since.is_(None))) or 0)
            self.tick("metrics", n, len(jobs))
            return n

        wait_until(lambda: computed() >= len(jobs), METRICS_WAIT_SECONDS, interval=0.5)
        n = computed()
        return n >= len(jobs) >= windows, f"{n} of {len(jobs)} windows computed by the Celery worker"

    def _alert(self, received: Received) -> tuple[bool, str]:
        def firing() -> list[dict[str, Any]]:
            return [m for m in received.verified if m.get("type") == "alert.firing"]

        wait_until(firing, WEBHOOK_WAIT_SECONDS if self.celery else 0)
        fired = firing()
        self.report.values["webhooks_verified"] = len(received.verified)
        self.report.values["alert_firing"] = len(fired)
        rules = sorted({str(m.get("data", {}).get("alert", {}).get("rule")) for m in fired})
        self.report.values["alert_rules"] = rules
        ok = bool(fired) and received.rejected == 0
        return ok, (f"{len(fired)} alert.firing webhook(s) ({', '.join(rules)}), signatures verified" if ok
                    else f"firing {len(fired)}, rejected signatures {received.rejected}")

    def _retrain_deferred(self) -> Any:
        if self.celery:
            return nullcontext()
        return retrain_action_deferred()

    def _loop(self, collector_url: str, key: str) -> Any:
        return loop_stages(LoopRun(self.report, self.settings, self.factory, self.report.project,
                                   self._project_id(), collector_url, key, self.tick, self.auto_approve))

    def _loop_webhooks(self, received: Received) -> tuple[bool, str]:
        expected = {"alert.firing"}
        if "retrain_job" in self.report.values:
            expected |= {"retrain.started", "retrain.finished"}
        if "promoted" in self.report.values:
            expected.add("model.promoted")

        def types() -> set[str]:
            return {str(m.get("type")) for m in received.verified}

        wait_until(lambda: expected <= types(), WEBHOOK_WAIT_SECONDS if self.celery else 5)
        got = types()
        self.report.values["webhook_types"] = sorted(got)
        missing = sorted(expected - got)
        return not missing and received.rejected == 0, (
            f"{len(received.verified)} verified: {', '.join(sorted(got))}" + (f"; missing {missing}" if missing else "")
            + (f"; {received.rejected} rejected" if received.rejected else ""))


def _collect_drift(session: Session, project_id: int, report: DemoReport) -> None:
    rows = query_metrics(session, project_id, metric="drift.prompt.mmd", segment="all")
    report.drift_windows = [r.window_start.strftime("%H:%M") for r in rows if r.flagged]
    report.drift_detected = bool(report.drift_windows)
    volume = query_metrics(session, project_id, metric="ops.volume", segment="all")
    report.events_stored = int(sum(r.value or 0 for r in volume))
    for r in latest_drift(session, project_id):
        expl = (r.details or {}).get("explanation")
        if expl:
            report.explanation_examples = [e for c in expl["clusters"] for e in c.get("examples", [])[:2] if e]
            break
