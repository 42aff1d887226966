"""The route's partial success on both backends: a too-long LLM span is rejected with a reason, the rest is
stored, and the OTLP response says how many were rejected."""

from __future__ import annotations

from fastapi.testclient import TestClient
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from monitor.models import Event
from monitor.projects.service import get_project
from monitor.settings import Settings
from tests.ingest.otlp.build import make_request, make_span
from tests.support.factories import make_key


def test_partial_success(client: TestClient, session: Session, settings: Settings) -> None:
    client.app.state.settings = settings.model_copy(update={"max_text_chars": 50})  # type: ignore[attr-defined]
    key = make_key(session)
    session.commit()
    ok = make_span(attrs={"gen_ai.operation.name": "chat", "gen_ai.request.model": "m",
                          "gen_ai.prompt.0.role": "user", "gen_ai.prompt.0.content": "short question"})
    too_long = make_span(attrs={"gen_ai.operation.name": "chat", "gen_ai.request.model": "m",
                                "gen_ai.prompt.0.role": "user", "gen_ai.prompt.0.content": "x" * 80})
    http = make_span("GET /", attrs={"http.request.method": "GET"})
    body = make_request(ok, too_long, http).SerializeToString()
    r = client.post("/v1/traces", content=body, headers={"Authorization": f"Bearer {key.key}",
                                                         "Content-Type": "application/x-protobuf"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/x-protobuf"
    answer = ExportTraceServiceResponse.FromString(r.content)
    assert answer.partial_success.rejected_spans == 1
    assert "80" in answer.partial_success.error_message or "limit" in answer.partial_success.error_message
    pid = get_project(session, key.project_slug).id
    prompts = session.scalars(select(Event.prompt).where(Event.project_id == pid)).all()
    assert prompts == ["short question"]
    assert session.scalar(select(func.count()).select_from(Event).where(Event.project_id == pid)) == 1
