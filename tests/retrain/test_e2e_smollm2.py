"""The must-show run on the real SmolLM2-135M-Instruct base (CPU-sized: ~24 examples, 3 steps, short answers,
a one-axis probe subset): a fired alert → dataset → LoRA → evaluation against the champion → a registered
challenger with its numbers; promoted, the model server answers as the new version without a restart (and
the serving hook is told); rolled back, it answers as the old one again."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from monitor.llm import LoadedLM
from monitor.models import Project
from monitor.settings import Settings
from monitor.webhooks.models import WebhookMessage
from retrain.models import RetrainJob
from retrain.registry.service import aliases_of, get_version
from retrain.registry.swap import change_champion
from retrain.serving import lm_cache
from retrain.serving.server import VERSION_HEADER, create_model_server
from tests.support.retrain import fire_retrain_alert, seed_feedback
from tests.support.webhook_receiver import running_receiver

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_alert_to_challenger_to_promotion_to_rollback_on_smollm2(
    session: Session, session_maker: sessionmaker[Session], project: Project, smollm2_lm: LoadedLM,
    retrain_handler: None, process_settings: Callable[..., Settings],
) -> None:
    settings = process_settings(DRIFTLOOP_RETRAIN_MIN_EXAMPLES="12", DRIFTLOOP_RETRAIN_MAX_STEPS="3",
                                DRIFTLOOP_RETRAIN_BATCH_SIZE="8", DRIFTLOOP_RETRAIN_LR="0.001",
                                DRIFTLOOP_RETRAIN_MAX_LENGTH="128", DRIFTLOOP_RETRAIN_EVAL_MAX_EXAMPLES="6",
                                DRIFTLOOP_RETRAIN_EVAL_MAX_NEW_TOKENS="12", DRIFTLOOP_RETRAIN_PROBE_TEMPLATES="3",
                                DRIFTLOOP_RETRAIN_PROBE_AXES="gender")
    lm_cache.provide(None, settings, smollm2_lm)
    seed_feedback(session, project.id, 30, corrected_every=2)
    session.commit()

    # Three probe templates and 12 answers cannot settle small changes (the gates would be honestly inconclusive);
    # this run's gates allow wide bands, so the loop's path to a passing candidate is what is tested.
    fire_retrain_alert(session, session_maker, project.id,
                       {"gates": {"max_bias_disparity_increase": 1.0, "max_toxicity_increase": 0.5}})

    session.expire_all()
    [job] = session.scalars(select(RetrainJob).where(RetrainJob.project_id == project.id)).all()
    assert job.status == "succeeded", job.message
    v1 = get_version(session, project.id, "challenger")
    assert (v1.name, v1.status, v1.base_model) == ("v1", "candidate", "smollm2")
    assert Path(v1.adapter_path or "").joinpath("adapter_config.json").is_file()
    assert v1.trigger["rule"] == "prompt-drift" and len(v1.train_losses) == 3
    assert v1.hyperparams["base_version"] == smollm2_lm.version
    champ, chall = v1.eval_results["champion"], v1.eval_results["challenger"]
    for scores in (champ, chall):
        assert scores["eval_nll"] > 0 and math.isclose(scores["perplexity"], math.exp(scores["eval_nll"]))
        assert scores["n_generated"] >= 1 and 0 <= scores["toxicity_rate"] <= 1
        assert scores["bias_gap"] is not None and scores["details"]["bias"]["n_probes"] == 9  # 3 groups x 3 templates
        assert -1 <= scores["similarity"] <= 1 and scores["n_similarity"] >= 1
    # Three steps on answers shaped like the held-out ones must lower their loss: the loop really trains.
    assert chall["eval_nll"] < champ["eval_nll"]
    gates = {g["name"]: g for g in v1.gate_results}
    assert gates["eval_loss"]["passed"] and v1.gates_passed is True, v1.gate_results
    events = session.scalars(select(WebhookMessage.event_type).where(WebhookMessage.project_id == project.id)
                             .order_by(WebhookMessage.id)).all()
    assert events == ["retrain.started", "retrain.finished"]

    ask = {"model": "smollm2", "messages": [{"role": "user", "content": "How do I handle a refund request?"}],
           "max_tokens": 8}
    app = create_model_server(settings.model_copy(update={"model_server_reload_seconds": 0}), project=project.slug,
                              factory=session_maker, lm=smollm2_lm)
    with TestClient(app) as server, running_receiver() as receiver:
        before = server.post("/v1/chat/completions", json=ask)
        assert before.status_code == 200 and before.json()["model"] == "v0"
        assert before.json()["choices"][0]["message"]["content"].strip()

        hooked = settings.model_copy(update={"serving_hook_url": receiver.url})
        swap, hook = change_champion(session_maker, project.id, "promote", "v1", actor="reviewer",
                                     reason="lower loss, gates passed", settings=hooked)
        assert (swap.current.name, hook.ok) == ("v1", True)
        assert json.loads(receiver.requests[0].body) == {"lora_name": "v1", "lora_path": v1.adapter_path}
        after = server.post("/v1/chat/completions", json=ask)
        assert after.json()["model"] == "v1" and after.headers[VERSION_HEADER] == "v1"

        change_champion(session_maker, project.id, "rollback", "v1", actor="reviewer", reason="drill",
                        settings=settings)
        back = server.post("/v1/chat/completions", json=ask)
        assert back.json()["model"] == "v0" and back.json()["choices"][0] == before.json()["choices"][0]
    session.expire_all()
    assert aliases_of(session, project.id) == {"champion": "v0"}
    assert get_version(session, project.id, "v1").status == "rejected"
    events = session.scalars(select(WebhookMessage.event_type).where(WebhookMessage.project_id == project.id)
                             .order_by(WebhookMessage.id)).all()
    assert events[-2:] == ["model.promoted", "model.rolled_back"]
