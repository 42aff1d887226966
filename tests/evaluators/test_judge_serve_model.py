"""End to end: the judge talks HTTP to `driftloop serve-model`'s app (uvicorn on a real socket) and a real model.

With the tiny random-weight model the replies are real generations that are never a verdict: the test shows the
whole path (request, chat template, generation, usage tokens charged to the budget, garbage -> item errors ->
evaluator failed, not the caller). With SmolLM2-135M (slow) it shows real verdicts parsed from a real judge.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import uvicorn
from sqlalchemy.orm import Session, sessionmaker

from monitor.evaluators.base import EvalItem, EvaluatorFailed
from monitor.evaluators.judge.client import JudgeClient
from monitor.evaluators.judge.evaluator import JudgeEvaluator, _Cache
from monitor.evaluators.judge.spend import SqlLedger
from monitor.llm import LoadedLM, load_causal_lm
from monitor.projects.service import get_or_create_project
from monitor.settings import Settings
from retrain.serving.server import create_model_server
from tests.support.factories import unique_slug
from tests.support.services import free_port
from tests.support.tiny_model import build_tiny_model_dir
from tests.support.waiting import wait_for


@contextmanager
def serving(settings: Settings, slug: str, factory: sessionmaker[Session], lm: LoadedLM) -> Iterator[str]:
    app = create_model_server(settings.model_copy(update={"model_server_reload_seconds": 3600}), project=slug,
                              factory=factory, lm=lm, seed=7)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, 30, "the model server to listen")
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


ITEMS = [EvalItem(i, q, a, None, None, None, None) for i, (q, a) in enumerate([
    ("What is the capital of France?", "The capital of France is Paris."),
    ("What is 2 + 2?", "2 + 2 = 5."),
    ("Name a primary colour.", "Red is a primary colour."),
    ("How many legs does a spider have?", "Spiders have eight legs."),
])]


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_tiny_model_judge_garbage_is_charged_and_fails_the_evaluator(
    session: Session, session_maker: sessionmaker[Session], settings: Settings,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    tiny_dir = build_tiny_model_dir(tmp_path_factory.mktemp("judge-tiny") / "tiny")
    lm = load_causal_lm(str(tiny_dir), device="cpu")
    project = get_or_create_project(session, unique_slug())
    session.commit()
    with serving(settings.model_copy(update={"base_model": str(tiny_dir)}), project.slug, session_maker, lm) as url:
        ledger = SqlLedger(session_maker, project.id, "judge", 100_000)
        ev = JudgeEvaluator(JudgeClient(url, "champion", max_tokens=12), rubric="helpfulness", ledger=ledger,
                            cache=_Cache(), window_deadline_s=120)
        with pytest.raises(EvaluatorFailed, match="no usable verdict in 4 replies") as info:
            ev.evaluate(ITEMS)
    results = info.value.results  # type: ignore[attr-defined]
    assert all(r.value is None and r.error.startswith("unusable verdict") for r in results)
    assert ev.stats.calls == 4 and ev.stats.tokens > 0
    assert ledger.spent() == ev.stats.tokens  # what the server reported, not the estimate
    assert ev.client.schema_supported is True  # the server accepted (and ignored) response_format


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_smollm2_judge_over_real_http(session: Session, session_maker: sessionmaker[Session],
                                      settings: Settings) -> None:
    """SmolLM2-135M is too small to follow the verdict format (measured: it echoes the rubric or answers in
    prose, see BENCHMARKS.md), so what this shows is the real-model path: every call answered and charged, each
    reply a verdict or an 'unusable verdict' item error, and when none parses the evaluator fails cleanly."""
    lm = load_causal_lm(None, device="cpu")
    project = get_or_create_project(session, unique_slug())
    session.commit()
    with serving(settings, project.slug, session_maker, lm) as url:
        ledger = SqlLedger(session_maker, project.id, "judge", 100_000)
        ev = JudgeEvaluator(JudgeClient(url, "champion", max_tokens=30, timeout_s=600, max_attempts=1),
                            rubric="helpfulness", ledger=ledger, cache=_Cache(), window_deadline_s=1800)
        try:
            results = ev.evaluate(ITEMS)
        except EvaluatorFailed as exc:
            assert "no usable verdict in 4 replies" in str(exc)
            results = exc.results  # type: ignore[attr-defined]
    assert ev.stats.calls == 4 and ledger.spent() == ev.stats.tokens > 0
    for r in results:
        assert (r.value is not None and 0.0 <= r.value <= 1.0) or (r.error or "").startswith("unusable verdict")
