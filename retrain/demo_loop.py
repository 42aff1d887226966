"""The closed loop's stages of `driftloop demo`, after the drift alert has fired.

`monitor.demo.run` (the demo is a composition root, like the CLI and the API app) calls these; the import
contracts (`lint-imports`) allow no other `monitor` module to import `retrain`.

1. A model server (the reference one, `retrain.serving.server`) starts in this process and answers as the champion.
2. Retraining starts from the alert rule's `retrain` action — never by hand. Embedded, the alert's request
   waits (pending) while the metrics stage runs, and this stage hands it to the loop's action handler, which
   is what `driftloop run` does with pending requests; the job then runs here, in-process. With Celery, the
   worker that evaluated the rule already queued the job on the `gpu` queue; this stage follows it. Either
   way a progress bar follows the job's committed progress.
3. The challenger is registered with its evaluation and gate results.
4. `--auto-approve` approves and promotes it (`retrain.registry.swap.change_champion`, actor `demo --auto-approve`,
   an audited override with a reason when a gate failed) and the model server, without a restart, answers as
   the new version. Without it, the challenger waits for a person (CLI or UI).
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from monitor.db import run_unit
from monitor.demo.report import DemoReport, Progress, wait_until
from monitor.demo.serving import serving_in_thread
from monitor.queue import runs_inline
from monitor.settings import Settings
from retrain.jobs.alerting import ACTION, handle_retrain_action, install, uninstall
from retrain.jobs.service import list_jobs
from retrain.models import ModelVersion, RetrainJob

ACTOR = "demo --auto-approve"
QUESTION = "What wine goes with salmon and mushrooms?"  # a question of the shifted traffic
# Demo-sized retraining (the project's `config["retrain"]` layer, see retrain/jobs/config.py): a few LoRA steps and
# short answers, so the loop takes minutes on two CPU cores. The gates need enough paired units to decide, so
# the probes keep the defaults: 40 templates x the gender, religion and race/ethnicity groups (600 probes per
# model: the bias gate's units, and toxicity units with the held-out answers); with fewer the gates come out
# inconclusive and say how many would settle them.
DEMO_RETRAIN: dict[str, Any] = {
    "min_examples": 24,
    "lora": {"max_steps": 16, "batch_size": 8, "lr": 1e-3, "max_length": 128},
    "dataset": {"eval_fraction": 0.1},
    "eval": {"max_examples": 32, "max_new_tokens": 24, "probe_templates": 40, "batch_size": 8},
}
MAX_TOKENS = 32  # of the demo's chat completions
RETRAIN_TIMEOUT_SECONDS = 1800.0


def project_config(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The project config entry the demo sets: `{"retrain": DEMO_RETRAIN}`, sections updated by `overrides`."""
    retrain = copy.deepcopy(DEMO_RETRAIN)
    for key, value in (overrides or {}).items():
        if isinstance(value, dict) and isinstance(retrain.get(key), dict):
            retrain[key].update(value)
        else:
            retrain[key] = value
    return {"retrain": retrain}


@contextmanager
def _handler_kept() -> Iterator[None]:
    """Whatever the block does to the `retrain` action handler, the process gets back the state it had."""
    from monitor.alerts.actions import handler_for, register_action_handler

    installed = handler_for(ACTION) is handle_retrain_action
    try:
        yield
    finally:
        if installed:
            register_action_handler(ACTION, handle_retrain_action)
        else:
            uninstall()


@contextmanager
def retrain_action_deferred() -> Iterator[None]:
    """Embedded mode: while the metrics stage runs, a firing rule's `retrain` request stays pending (so the
    retraining shows as a stage of its own, with its own progress bar)."""
    with _handler_kept():
        uninstall()
        yield


@dataclass
class LoopRun:
    report: DemoReport
    settings: Settings  # the demo's process-wide settings (runner, database, data dir)
    factory: sessionmaker[Session]
    project: str
    project_id: int
    collector_url: str
    api_key: str
    tick: Progress
    auto_approve: bool
    retrain_timeout: float = RETRAIN_TIMEOUT_SECONDS

    @property
    def values(self) -> dict[str, Any]:
        return self.report.values


@contextmanager
def loop_stages(run: LoopRun) -> Iterator[None]:
    """Run the loop's stages; the model server stays up until the block ends (for the caller's last steps)."""
    with ExitStack() as stack:
        stack.enter_context(_handler_kept())  # the retrain stage installs it; the process gets its state back

        def start_server() -> tuple[bool, str]:
            url = stack.enter_context(_model_server(run))
            run.values["model_server_url"] = url
            return _served_before(run, url)

        if (run.report.stage("model server answers as the champion", start_server)
                and run.report.stage("retraining started by the alert's retrain action", lambda: _retrain(run))):
            run.report.stage("challenger registered with its evaluation", lambda: _evaluation(run))
            url = run.values["model_server_url"]
            if run.auto_approve:
                if run.report.stage("approved and promoted (--auto-approve)", lambda: _promote(run)):
                    run.report.stage("model server answers as the new version", lambda: _served_after(run, url))
            else:
                run.report.stage("challenger awaits a person's approval", lambda: _pending(run))
        yield


@contextmanager
def _model_server(run: LoopRun) -> Iterator[str]:
    from retrain.serving.lm_cache import get_lm
    from retrain.serving.server import create_model_server

    # Aliases re-read every second, so the promotion shows quickly; every answer is logged to the collector
    # with its model version, as a production app's traffic through the server would be.
    settings = run.settings.model_copy(update={
        "model_server_reload_seconds": 1.0, "canary_share": 0.0, "model_server_collector_url": run.collector_url,
        "model_server_api_key": run.api_key})
    lm = get_lm(settings.base_model, settings)  # embedded: the same loaded model the job trains on
    app = create_model_server(settings, project=run.project, factory=run.factory, lm=lm)
    with serving_in_thread(app, "demo-model-server") as url:
        yield url


def _ask(url: str) -> tuple[str, str]:
    body = {"messages": [{"role": "user", "content": QUESTION}], "max_tokens": MAX_TOKENS}
    response = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=300)
    response.raise_for_status()
    reply = response.json()
    return str(reply["model"]), str(reply["choices"][0]["message"]["content"]).strip()


def _served_champion(url: str) -> str | None:
    models = httpx.get(f"{url}/v1/models", timeout=30).json()["data"]
    return next((str(m["id"]) for m in models if m.get("alias") == "champion"), None)


def _served_before(run: LoopRun, url: str) -> tuple[bool, str]:
    model, answer = _ask(url)
    champion = _served_champion(url)
    run.values["served_before"] = {"model": model, "question": QUESTION, "answer": answer}
    return model == champion, f"{url}: champion {champion}; {QUESTION!r} → {model}: {answer[:80]!r}"


class _JobProgress(threading.Thread):
    """Feeds the progress bar from the job row's committed progress (the job may run in this very process)."""

    def __init__(self, run: LoopRun) -> None:
        super().__init__(name="demo-retrain-progress", daemon=True)
        self.run_, self.done = run, threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.5):
            self.poll()

    def poll(self) -> RetrainJob | None:
        job = _latest_job(self.run_)
        if job is not None:
            self.run_.tick("retrain", round(job.progress * 100), 100)
        return job


def _latest_job(run: LoopRun) -> RetrainJob | None:
    with run.factory() as session:
        jobs = list_jobs(session, run.project_id, limit=1)
        return jobs[0] if jobs else None


def _retrain(run: LoopRun) -> tuple[bool, str]:
    watcher = _JobProgress(run)
    watcher.start()
    try:
        if runs_inline(run.settings):
            from monitor.alerts.actions import run_pending_actions

            if not install(run.settings):
                return False, "the retrain action handler is switched off (DRIFTLOOP_RETRAIN_ON_ALERT=false)"
            # The handler creates the job from the alert's request; after the commit the job runs right here.
            handled = run_unit(run.factory, lambda s: run_pending_actions(s, run.project_id))
            if not handled:
                return False, "no pending retrain request from the alert"
        finished = wait_until(lambda: (j := _latest_job(run)) is not None and j.status in ("succeeded", "failed"),
                              run.retrain_timeout, interval=1.0)
        if not finished:
            return False, f"no finished retraining job after {run.retrain_timeout:.0f} s"
    finally:
        watcher.done.set()
        watcher.join(timeout=10)
    job = watcher.poll()
    assert job is not None
    dataset = (job.results or {}).get("dataset", {})
    stats = dataset.get("stats", {})
    losses = list(job.losses or [])
    run.values["retrain_job"] = {"id": job.id, "status": job.status, "created_by": job.created_by,
                                 "action_request_id": job.action_request_id, "rule": job.trigger.get("rule"),
                                 "dataset": {"train": dataset.get("train"), "eval": dataset.get("eval"), **stats},
                                 "losses": losses, "message": job.message}
    from_alert = job.action_request_id is not None and job.created_by.startswith("alert:")
    if job.status != "succeeded":
        return False, f"job {job.id} ({job.created_by}) failed: {job.message}"
    loss = f", loss {losses[0]:.2f} → {losses[-1]:.2f}" if losses else ""
    return from_alert, (f"job {job.id} from {job.created_by} (rule {job.trigger.get('rule')!r}): "
                        f"{dataset.get('train')} train / {dataset.get('eval')} held-out examples "
                        f"({stats.get('positive', 0)} thumbs-up, {stats.get('corrected', 0)} corrections), "
                        f"{len(losses)} LoRA steps on the base model{loss}")


def _evaluation(run: LoopRun) -> tuple[bool, str]:
    job_id = run.values["retrain_job"]["id"]
    with run.factory() as session:
        version = session.scalars(select(ModelVersion).where(ModelVersion.job_id == job_id)).first()
        if version is None:
            return False, f"job {job_id} registered no version"
        gates, results = list(version.gate_results), dict(version.eval_results)
        name, status, passed = version.name, version.status, version.gates_passed
    run.values.update(challenger=name, gates=gates, gates_passed=passed, eval_results=results,
                      ui_link=f"{run.collector_url}/ui/p/{run.project}/models/{name}")
    champion, challenger = results.get("champion", {}), results.get("challenger", {})
    measured = champion.get("eval_nll") is not None and challenger.get("eval_nll") is not None
    verdicts = ", ".join(f"{g['name']} {_verdict(g)}" for g in gates)
    loss = (f"held-out loss {champion['eval_nll']:.3f} ({champion.get('version')}) → {challenger['eval_nll']:.3f}"
            if measured else "held-out loss not measured")
    return (status == "candidate" and bool(gates) and measured,
            f"{name} is the challenger; {loss}; gates: {verdicts}")


def _verdict(gate: dict[str, Any]) -> str:
    status = gate.get("status") or ("skipped" if gate["skipped"] else "passed" if gate["passed"] else "failed")
    if status == "failed":
        return "FAILED"
    if status == "inconclusive":
        needed = gate.get("needed")
        return f"inconclusive (about {needed} samples would settle it)" if needed else "inconclusive"
    return str(status)


def _promote(run: LoopRun) -> tuple[bool, str]:
    from monitor.principals import system
    from retrain.registry.service import approve
    from retrain.registry.swap import change_champion

    name, passed = run.values["challenger"], bool(run.values["gates_passed"])
    failed = [f"{g['name']} {_verdict(g)}" for g in run.values["gates"] if not g["passed"]]
    reason = ("every evaluation gate passed" if passed else
              f"the demo promotes despite blocking gates ({', '.join(failed)}); a person would look first")
    who = system("demo")
    run_unit(run.factory, lambda s: approve(s, run.project_id, name, actor=ACTOR, reason=reason, override=not passed,
                                            principal=who))
    swap, _ = change_champion(run.factory, run.project_id, "promote", name, actor=ACTOR, reason=reason,
                              override=not passed, settings=run.settings, principal=who)
    run.values.update(promoted=swap.current.name, override=not passed, override_reason=None if passed else reason)
    previous = swap.previous.name if swap.previous else "nothing"
    how = "gates passed" if passed else f"OVERRIDE: {', '.join(failed)}; audited with the reason"
    return swap.current.name == name, f"{previous} → {swap.current.name} by {ACTOR!r} ({how})"


def _served_after(run: LoopRun, url: str) -> tuple[bool, str]:
    name = run.values["promoted"]
    wait_until(lambda: _served_champion(url) == name, 30)  # the server re-reads the aliases every second
    model, answer = _ask(url)
    run.values["served_after"] = {"model": model, "question": QUESTION, "answer": answer}
    before = run.values.get("served_before", {}).get("model")
    return model == name, f"no restart: {QUESTION!r} → {model} (was {before}): {answer[:80]!r}"


def _pending(run: LoopRun) -> tuple[bool, str]:
    name = run.values["challenger"]
    database = make_url(run.settings.database_url).render_as_string(hide_password=True)
    command = f"DRIFTLOOP_DATABASE_URL={database} driftloop models approve {name} -p {run.project}"
    if not run.values["gates_passed"]:  # a failed gate needs a person's explicit, audited override
        command += ' --override --reason "<why it may serve anyway>"'
    run.values["approve_command"] = command
    run.values["promote_command"] = command.replace(" approve ", " promote ")
    with run.factory() as session:
        status = session.scalar(select(ModelVersion.status).where(ModelVersion.project_id == run.project_id,
                                                                  ModelVersion.name == name))
    return status == "candidate", f"{name} is {status}: approve it in the UI or with `{command}`"
