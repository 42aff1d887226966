"""The demo's parts that need no model: its traffic's feedback makes a sensible training set, its retraining
sizes reach the job through the project config, and it leaves the process's retrain handler as it found it."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from monitor.alerts.actions import handler_for
from monitor.demo.answers import CANNED, NON_ANSWER, RUDE, TEAM_ANSWERS, canned_answer
from monitor.demo.run import QUIET_MIX, SHIFTED_MIX
from monitor.demo.support_app import SupportApp
from monitor.demo.traffic import mixed
from monitor.models import Project
from monitor.pipeline.config import project_config as pipeline_config
from monitor.safety.toxicity import ProfanityScorer, threshold_for
from monitor.settings import Settings
from retrain.dataset.builder import FeedbackRow, build_dataset
from retrain.demo_loop import DEMO_RETRAIN, project_config, retrain_action_deferred
from retrain.jobs.alerting import ACTION, handle_retrain_action, install, uninstall
from retrain.jobs.config import effective_config


@dataclass
class RecordingClient:
    """Stands in for the SDK client: keeps what the app logs, as the collector would store it."""

    events: dict[str, tuple[str, str]] = field(default_factory=dict)
    feedback_items: list[dict[str, Any]] = field(default_factory=list)

    def log(self, prompt: str, response: str, **_: Any) -> str:
        event_id = f"e{len(self.events)}"
        self.events[event_id] = (prompt, response)
        return event_id

    def feedback(self, event_id: str, **fields: Any) -> None:
        self.feedback_items.append({"event_id": event_id, **fields})


def demo_feedback(events_per_window: int = 150) -> list[FeedbackRow]:
    client = RecordingClient()
    app = SupportApp(client, lambda p: (canned_answer(p), "v0"), random.Random(7))  # type: ignore[arg-type]
    at = datetime(2026, 11, 20, tzinfo=UTC)
    for offset, (mix, windows, toxic) in enumerate([(QUIET_MIX, 4, 0.0), (SHIFTED_MIX, 2, 0.08)]):
        app.toxic_share = toxic
        for w in range(windows):
            for text in mixed(mix, events_per_window, seed=7 + offset * 4 + w):
                app.handle(text, at)
    return [FeedbackRow(f["event_id"], *client.events[f["event_id"]], f.get("score"), f.get("label"),
                        f.get("corrected_response")) for f in client.feedback_items]


def test_the_demo_traffic_feedback_is_a_sensible_training_set() -> None:
    rows = demo_feedback()
    cfg = effective_config(Settings(), project_config(), None)
    snapshot = build_dataset(rows, toxicity=lambda t: [float(x) for x in ProfanityScorer().score(t)],
                             toxicity_threshold=threshold_for(ProfanityScorer()), options=cfg.dataset)
    examples = snapshot.train + snapshot.eval
    assert len(snapshot.train) >= cfg.min_examples and len(snapshot.eval) >= 5
    targets = {e.response for e in examples}
    # Only what users liked or a person wrote: never a rude answer or the assistant's non-answer.
    assert not targets & {*RUDE, NON_ANSWER}
    assert targets <= {a for _, a in CANNED} | {a for _, a in TEAM_ANSWERS}
    # The corrections teach the topics the drift revealed.
    corrected = [e for e in examples if e.source == "corrected"]
    assert sum(canned_answer(e.prompt) == NON_ANSWER for e in corrected) >= 20  # questions it could not answer
    assert len({e.response for e in corrected} & {a for _, a in TEAM_ANSWERS}) >= 10
    assert snapshot.stats["positive"] > 0


def test_the_demo_sizes_reach_the_job_through_the_project_config() -> None:
    config = {"window_seconds": 3600, **project_config({"lora": {"max_steps": 3}, "min_examples": 30})}
    project = Project(slug="p", name="p", config=config)
    assert pipeline_config(project).retrain == config["retrain"]  # the pipeline carries the loop's section
    cfg = effective_config(Settings(), project.config, None)
    assert (cfg.lora.max_steps, cfg.lora.batch_size, cfg.min_examples) == (3, DEMO_RETRAIN["lora"]["batch_size"], 30)
    assert cfg.eval.probe_templates == 40 and DEMO_RETRAIN["lora"]["max_steps"] != 3  # the default is untouched
    with pytest.raises(ValueError, match="retrian"):  # the pipeline still refuses keys it does not know
        pipeline_config(Project(slug="p", name="p", config={"retrian": {}}))


@pytest.mark.parametrize("installed_before", [True, False])
def test_the_demo_leaves_the_retrain_handler_as_it_found_it(installed_before: bool) -> None:
    if installed_before:
        install(Settings())
    else:
        uninstall()
    try:
        with retrain_action_deferred():
            assert handler_for(ACTION) is None  # the alert's request waits for the demo's retrain stage
            install(Settings())
        assert (handler_for(ACTION) is handle_retrain_action) is installed_before
    finally:
        uninstall()
