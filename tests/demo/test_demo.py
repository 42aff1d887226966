"""The demo, non-interactively, on the real SmolLM2 base: each stage's outcome is asserted (issue #8: the
one-command end-to-end demo closes the loop). Embedded here with --auto-approve; the Celery run is in
tests/demo/test_production.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from monitor.db import make_engine, session_factory
from monitor.demo.run import run_demo
from monitor.projects.service import get_project
from retrain.demo_loop import ACTOR, QUESTION
from retrain.models import AuditEntry, ModelVersion, RetrainJob
from retrain.registry.service import aliases_of
from retrain.serving import lm_cache
from tests.support.topics import topic_of
from tests.support.torch_threads import one_torch_thread  # noqa: F401  (fixture)

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


@pytest.fixture(autouse=True)
def _free_the_model() -> Iterator[None]:
    yield
    lm_cache.forget_all()  # the demo's SmolLM2 copy is not needed by the rest of the session
# Smaller than the demo's own sizes (the test runs on a machine shared with the rest of the suite), but the
# same stages: real LoRA steps on SmolLM2, a real evaluation of both models, a real promotion.
TEST_RETRAIN = {"lora": {"max_steps": 6}, "eval": {"max_examples": 4, "max_new_tokens": 12, "probe_templates": 10,
                                                    "probe_axes": ["gender"]}}


def stage_names(report: Any) -> list[str]:
    return [s.name for s in report.stages]


def test_demo_closes_the_loop_and_auto_approve_changes_the_served_version(tmp_path: Path) -> None:
    bars: dict[str, tuple[int, int]] = {}
    report = run_demo(tmp_path, events_per_window=100, auto_approve=True, retrain_overrides=TEST_RETRAIN,
                      progress=lambda bar, done, total: bars.__setitem__(bar, (done, total)))
    assert report.ok, [(s.name, s.detail) for s in report.stages if not s.ok]
    assert stage_names(report)[-6:] == [
        "model server answers as the champion", "retraining started by the alert's retrain action",
        "challenger registered with its evaluation", "approved and promoted (--auto-approve)",
        "model server answers as the new version", "loop events delivered as signed webhooks"]
    values = report.values

    # Drift: only the two shifted windows (the last two simulated hours) drift, explained by the new topics.
    assert report.events_stored == 600
    assert len(report.drift_windows) == 2
    topics = [topic_of(text) for text in report.explanation_examples]
    assert topics and sum(t in ("cooking", "travel") for t in topics) > len(topics) / 2, report.explanation_examples
    # The alert: delivered to the local receiver, which verified its Standard Webhooks signature.
    assert values["alert_firing"] >= 1 and "prompt-drift" in values["alert_rules"]
    assert "rude-answers" in values["alert_rules"]  # on the abuse signal, safety.profanity_rate.response
    assert "sudden-shift" in values["alert_rules"]  # the onset row: the shifted hours against the quiet ones before
    # Progress bars were fed by every long stage, the retraining one from the job's committed progress.
    assert bars["traffic"] == (200, 200) and bars["metrics"] == (6, 6) and bars["retrain"] == (100, 100)

    engine = make_engine(f"sqlite:///{tmp_path / 'driftloop-demo.db'}")
    try:
        with session_factory(engine)() as s:
            pid = get_project(s, report.project).id
            [job] = s.scalars(select(RetrainJob).where(RetrainJob.project_id == pid)).all()
            # Started by the alert's retrain action (one job for the firing), not by hand.
            assert job.created_by.startswith("alert:") and job.action_request_id is not None
            assert job.trigger["rule"] == "prompt-drift" and job.status == "succeeded"
            assert len(job.losses) == 6
            dataset = job.results["dataset"]
            assert dataset["train"] >= 24 and dataset["stats"]["corrected"] > 0 and dataset["stats"]["positive"] > 0

            v1 = s.scalars(select(ModelVersion).where(ModelVersion.job_id == job.id)).one()
            assert v1.name == values["challenger"] == "v1" and v1.base_model == "smollm2"
            assert Path(v1.adapter_path or "").joinpath("adapter_config.json").is_file()
            champ, chall = v1.eval_results["champion"], v1.eval_results["challenger"]
            # Toxicity is paired over the 4 held-out answers and the 30 gender probes (10 templates x 3 groups).
            assert champ["version"] == "v0" and champ["n_generated"] == chall["n_generated"] == 4 + 30
            # Six steps on the support team's answers lower their held-out loss: the loop really trained.
            assert chall["eval_nll"] < champ["eval_nll"]
            gates = {g["name"]: g for g in v1.gate_results}
            assert set(gates) == {"eval_loss", "toxicity_rate", "bias_gap", "similarity"}
            assert gates["eval_loss"]["passed"]
            assert values["gates"] == v1.gate_results and values["gates_passed"] is v1.gates_passed

            # --auto-approve: approved and promoted by the demo's actor; a failed gate is an audited override.
            assert aliases_of(s, pid) == {"champion": "v1"} and v1.status == "champion"
            actions = [(a.action, a.actor, a.reason) for a in s.scalars(
                select(AuditEntry).where(AuditEntry.project_id == pid).order_by(AuditEntry.id))]
            suffix = "" if v1.gates_passed else "_override"
            decided = [(a, r) for a, actor, r in actions if actor == ACTOR]
            assert [a for a, _ in decided] == [f"approve{suffix}", f"promote{suffix}"]
            assert values["override"] is (not v1.gates_passed)
            assert all(g["status"] in ("passed", "inconclusive", "skipped") or g["name"] == "eval_loss"
                       for g in gates.values()), gates  # no gate calls the challenger worse on noise
            if not v1.gates_passed:  # the reason names the blocking gates, and the summary says so
                failed = [n for n, g in gates.items() if not g["passed"]]
                assert all(all(n in r for n in failed) for _, r in decided)
                assert "OVERRIDE" in report.outcome("approved and promoted (--auto-approve)").detail  # type: ignore[union-attr]
    finally:
        engine.dispose()

    # The model server answered as v0 before and, without a restart, as v1 after the promotion.
    assert values["served_before"]["model"] == "v0" and values["served_after"]["model"] == "v1"
    assert values["served_before"]["question"] == QUESTION and values["served_after"]["answer"]
    assert values["ui_link"] == f"{report.collector_url}/ui/p/{report.project}/models/v1"
    _the_printed_sign_in_opens_the_challenger_page(report.database_url, values)
    # The loop's own events reached the receiver signed, like the alert.
    assert {"alert.firing", "retrain.started", "retrain.finished", "model.promoted"} <= set(values["webhook_types"])


def _the_printed_sign_in_opens_the_challenger_page(database_url: str, values: dict[str, Any]) -> None:
    """The demo's collector has stopped; the same app on the demo's database shows what the link points at."""
    from fastapi.testclient import TestClient

    from monitor.api.app import create_app
    from monitor.settings import Settings
    from tests.support.ui_session import sign_in

    creds = values["ui_sign_in"]
    path = "/ui/" + values["ui_link"].split("/ui/", 1)[1]
    with TestClient(create_app(Settings(database_url=database_url))) as client:
        assert sign_in(client, creds["username"], creds["password"], next_path=path).status_code == 303
        page = client.get(path)
        assert page.status_code == 200 and "v1" in page.text and "champion" in page.text
