"""spans_to_events: which spans are LLM calls, and what each convention's attributes become."""

from __future__ import annotations

import json
from typing import Any

import pytest

from monitor.ingest.otlp import is_llm_span, spans_to_events
from monitor.ingest.otlp.genai import MappingResult
from monitor.schemas import EventIn, Limits
from tests.ingest.otlp.build import MS, T0, make_request, make_span

ERROR = 2  # Status.STATUS_CODE_ERROR


def one_event(
    *spans: Any, resource: dict[str, Any] | None = None, limits: Limits | None = None
) -> dict[str, Any]:
    result = spans_to_events(make_request(*spans, resource=resource), limits=limits)
    assert result.rejected == [], result.rejected
    (event,) = result.events
    EventIn.model_validate(event)
    return event


# --- which spans are LLM calls --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attrs", "expected"),
    [
        ({"gen_ai.operation.name": "chat"}, True),
        ({"gen_ai.operation.name": "text_completion"}, True),
        ({"gen_ai.operation.name": "generate_content"}, True),
        ({"gen_ai.request.model": "gpt-4o"}, True),
        ({"gen_ai.system": "openai"}, True),
        ({"gen_ai.provider.name": "anthropic"}, True),
        ({"gen_ai.operation.name": "embeddings", "gen_ai.request.model": "text-embedding-3-small"}, False),
        ({"gen_ai.operation.name": "execute_tool", "gen_ai.provider.name": "openai"}, False),
        ({"gen_ai.operation.name": "invoke_agent", "gen_ai.request.model": "gpt-4o"}, False),
        ({"gen_ai.operation.name": "retrieval", "gen_ai.provider.name": "openai"}, False),
        ({"gen_ai.operation.name": "some_future_op"}, False),
        ({"gen_ai.operation.name": "some_future_op", "gen_ai.request.model": "m"}, True),
        ({"llm.request.type": "embedding", "gen_ai.system": "openai"}, False),
        ({"openinference.span.kind": "LLM"}, True),
        ({"openinference.span.kind": "CHAIN", "llm.model_name": "gpt-4o"}, False),
        ({"openinference.span.kind": "EMBEDDING", "gen_ai.system": "openai"}, False),
        ({"langfuse.observation.type": "generation"}, True),
        ({"langfuse.observation.type": "span"}, False),
        ({"mlflow.spanType": '"CHAT_MODEL"'}, True),
        ({"mlflow.spanType": '"LLM"'}, True),
        ({"mlflow.spanType": '"RETRIEVER"'}, False),
        ({"http.request.method": "GET", "url.path": "/"}, False),
        ({"db.system": "postgresql"}, False),
        ({}, False),
    ],
)
def test_llm_span_detection(attrs: dict[str, Any], expected: bool) -> None:
    assert is_llm_span(attrs) is expected


def test_non_llm_spans_are_counted_as_ignored() -> None:
    result = spans_to_events(
        make_request(
            make_span("GET /", {"http.request.method": "GET"}), make_span("SELECT", {"db.system": "x"})
        )
    )
    assert result == MappingResult(events=[], ignored_spans=2, rejected=[], duplicate_spans=0)


# --- conventions ------------------------------------------------------------------------------------


def test_openinference_llm_span() -> None:
    event = one_event(
        make_span(
            "ChatOpenAI",
            {
                "openinference.span.kind": "LLM",
                "llm.model_name": "gpt-4o-mini",
                "llm.provider": "openai",
                "llm.token_count.prompt": 15,
                "llm.token_count.completion": 4,
                "llm.input_messages.0.message.role": "system",
                "llm.input_messages.0.message.content": "Be brief.",
                "llm.input_messages.1.message.role": "user",
                "llm.input_messages.1.message.content": "Capital of France?",
                "llm.output_messages.0.message.role": "assistant",
                "llm.output_messages.0.message.content": "Paris.",
                "input.value": '{"messages": "not used: the messages above win"}',
                "input.mime_type": "application/json",
                "llm.prompt_template.version": "v2",
                "session.id": "s-1",
                "user.id": "u-42",
            },
        )
    )
    assert (event["prompt"], event["response"], event["model"]) == (
        "Capital of France?",
        "Paris.",
        "gpt-4o-mini",
    )
    assert (event["prompt_tokens"], event["completion_tokens"]) == (15, 4)
    assert event["prompt_template_version"] == "v2"
    assert event["session_id"] == "s-1"
    assert event["metadata"]["user.id"] == "u-42"
    assert event["metadata"]["gen_ai.provider.name"] == "openai"


def test_openinference_content_parts_skip_images() -> None:
    event = one_event(
        make_span(
            attrs={
                "openinference.span.kind": "LLM",
                "llm.input_messages.0.message.role": "user",
                "llm.input_messages.0.message.contents.0.message_content.type": "text",
                "llm.input_messages.0.message.contents.0.message_content.text": "Describe",
                "llm.input_messages.0.message.contents.1.message_content.type": "image",
                "llm.input_messages.0.message.contents.2.message_content.type": "text",
                "llm.input_messages.0.message.contents.2.message_content.text": "this photo",
            }
        )
    )
    assert event["prompt"] == "Describe\nthis photo"


@pytest.mark.parametrize(
    ("value", "mime", "expected"),
    [
        ("plain question", "text/plain", "plain question"),
        ("plain question", None, "plain question"),
        ('{"messages": [{"role": "user", "content": "from json"}]}', "application/json", "from json"),
        ('{"question": "asked"}', "application/json", "asked"),
        ('{"a": 1}', "application/json", '{"a": 1}'),  # nothing text-like: the recorded JSON itself
        ('{"looks": "like json"}', "text/plain", '{"looks": "like json"}'),  # text stays text
    ],
)
def test_input_value_fallback(value: str, mime: str | None, expected: str) -> None:
    attrs = {"openinference.span.kind": "LLM", "input.value": value}
    if mime:
        attrs["input.mime_type"] = mime
    assert one_event(make_span(attrs=attrs))["prompt"] == expected


def test_langfuse_generation() -> None:
    event = one_event(
        make_span(
            "generation",
            {
                "langfuse.observation.type": "generation",
                "langfuse.observation.model.name": "claude-sonnet-4",
                "langfuse.observation.input": json.dumps(
                    [{"role": "system", "content": "sys"}, {"role": "user", "content": "Plan a trip"}]
                ),
                "langfuse.observation.output": json.dumps({"role": "assistant", "content": "Day 1: ..."}),
                "langfuse.observation.usage_details": json.dumps({"input": 10, "output": 3, "total": 13}),
                "langfuse.observation.prompt.name": "trip-planner",
                "langfuse.observation.prompt.version": 4,
                "langfuse.session.id": "lf-session",
                "langfuse.user.id": "lf-user",
            },
        )
    )
    assert (event["prompt"], event["response"]) == ("Plan a trip", "Day 1: ...")
    assert event["model"] == "claude-sonnet-4"
    assert (event["prompt_tokens"], event["completion_tokens"]) == (10, 3)
    assert (event["prompt_template_id"], event["prompt_template_version"]) == ("trip-planner", "4")
    assert event["session_id"] == "lf-session"
    assert event["metadata"]["user.id"] == "lf-user"


def test_langfuse_error_level() -> None:
    event = one_event(
        make_span(
            attrs={
                "langfuse.observation.type": "generation",
                "langfuse.observation.level": "ERROR",
                "langfuse.observation.status_message": "content filter",
            }
        )
    )
    assert event["error"] == "content filter"


def test_mlflow_chat_model_span() -> None:
    outputs = {
        "id": "chatcmpl-1",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "42"}, "finish_reason": "stop"}],
    }
    event = one_event(
        make_span(
            "Completions",
            {
                "mlflow.spanType": '"CHAT_MODEL"',
                "mlflow.spanInputs": json.dumps(
                    {"messages": [{"role": "user", "content": "Meaning of life?"}], "model": "gpt-4o-mini"}
                ),
                "mlflow.spanOutputs": json.dumps(outputs),
                "mlflow.chat.tokenUsage": json.dumps(
                    {"input_tokens": 5, "output_tokens": 2, "total_tokens": 7}
                ),
            },
        )
    )
    assert (event["prompt"], event["response"]) == ("Meaning of life?", "42")
    assert (event["prompt_tokens"], event["completion_tokens"]) == (5, 2)


def test_indexed_attributes_order_numerically_past_nine() -> None:
    attrs: dict[str, Any] = {"gen_ai.system": "openai"}
    for index in range(12):
        attrs[f"gen_ai.prompt.{index}.role"] = "user" if index % 2 else "assistant"
        attrs[f"gen_ai.prompt.{index}.content"] = f"turn {index}"
    assert one_event(make_span(attrs=attrs))["prompt"] == "turn 11"


def test_legacy_completion_prompt_key() -> None:
    event = one_event(
        make_span(
            attrs={
                "gen_ai.system": "openai",
                "llm.request.type": "completion",
                "gen_ai.prompt.0.user": "Say hi",
                "gen_ai.completion.0.content": "hi",
            }
        )
    )
    assert (event["prompt"], event["response"]) == ("Say hi", "hi")


def test_openllmetry_multimodal_content_json() -> None:
    content = json.dumps(
        [{"type": "text", "text": "What is in this image?"}, {"type": "image_url", "image_url": {"url": "x"}}]
    )
    event = one_event(
        make_span(
            attrs={
                "gen_ai.system": "openai",
                "gen_ai.prompt.0.role": "user",
                "gen_ai.prompt.0.content": content,
            }
        )
    )
    assert event["prompt"] == "What is in this image?"


def test_prompt_that_is_json_text_stays_as_typed() -> None:
    typed = '{"order": 1234, "question": "where is it?"}'
    event = one_event(
        make_span(
            attrs={
                "gen_ai.system": "openai",
                "gen_ai.prompt.0.role": "user",
                "gen_ai.prompt.0.content": typed,
                "gen_ai.completion.0.content": "[1, 2, 3]",
            }
        )
    )
    assert (event["prompt"], event["response"]) == (typed, "[1, 2, 3]")


def test_structured_messages_and_tool_call_only_output() -> None:
    event = one_event(
        make_span(
            attrs={
                "gen_ai.operation.name": "chat",
                "gen_ai.input.messages": [
                    {"role": "user", "parts": [{"type": "text", "content": "weather?"}]}
                ],
                "gen_ai.output.messages": json.dumps(
                    [
                        {
                            "role": "assistant",
                            "parts": [{"type": "tool_call", "name": "get_weather", "arguments": {}}],
                        }
                    ]
                ),
            }
        )
    )
    assert event["prompt"] == "weather?"
    assert "response" not in event  # a tool call is not a text answer; nothing is invented


def test_operation_details_event() -> None:
    messages_in = json.dumps([{"role": "user", "parts": [{"type": "text", "content": "via event"}]}])
    messages_out = json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": "answered"}]}])
    event = one_event(
        make_span(
            attrs={"gen_ai.operation.name": "chat"},
            events=[
                (
                    "gen_ai.client.inference.operation.details",
                    {"gen_ai.input.messages": messages_in, "gen_ai.output.messages": messages_out},
                )
            ],
        )
    )
    assert (event["prompt"], event["response"]) == ("via event", "answered")


def test_choice_events_pick_index_zero_and_last_user_message() -> None:
    event = one_event(
        make_span(
            attrs={"gen_ai.operation.name": "chat"},
            events=[
                ("gen_ai.user.message", {"gen_ai.event.content": json.dumps({"content": "first question"})}),
                ("gen_ai.assistant.message", {"content": "an earlier answer"}),
                ("gen_ai.user.message", {"content": "second question"}),
                ("gen_ai.choice", {"index": 1, "message": json.dumps({"content": "choice one"})}),
                ("gen_ai.choice", {"index": 0, "message": json.dumps({"content": "choice zero"})}),
            ],
        )
    )
    assert (event["prompt"], event["response"]) == ("second question", "choice zero")


def test_source_priority_current_semconv_wins() -> None:
    event = one_event(
        make_span(
            attrs={
                "gen_ai.operation.name": "chat",
                "gen_ai.input.messages": json.dumps([{"role": "user", "content": "current"}]),
                "gen_ai.prompt.0.role": "user",
                "gen_ai.prompt.0.content": "indexed",
                "input.value": "generic",
            },
            events=[("gen_ai.user.message", {"content": "event"})],
        )
    )
    assert event["prompt"] == "current"


# --- fields -------------------------------------------------------------------------------------------


def test_model_tokens_and_driftloop_attributes() -> None:
    event = one_event(
        make_span(
            attrs={
                "gen_ai.request.model": "requested",
                "gen_ai.response.model": "served",
                "gen_ai.usage.input_tokens": "12",  # some SDKs send strings
                "gen_ai.usage.output_tokens": 3.0,  # or doubles
                "driftloop.model_version": "span-level",
                "driftloop.session_id": "explicit",
                "gen_ai.conversation.id": "conversation",
                "driftloop.prompt_template.id": "tpl",
                "driftloop.metadata.segment": "vip",
                "driftloop.metadata.score": 0.5,
            }
        ),
        resource={
            "service.name": "svc",
            "driftloop.model_version": "resource-level",
            "driftloop.metadata.region": "eu",
        },
    )
    assert event["model"] == "served"
    assert (event["prompt_tokens"], event["completion_tokens"]) == (12, 3)
    assert event["model_version"] == "span-level"
    assert event["session_id"] == "explicit"
    assert event["prompt_template_id"] == "tpl"
    assert {k: event["metadata"][k] for k in ("segment", "score", "region")} == {
        "segment": "vip",
        "score": 0.5,
        "region": "eu",
    }


@pytest.mark.parametrize("bad", ["12.5", True, -1.5, "many", [3]])
def test_unusable_token_counts_are_left_out(bad: Any) -> None:
    event = one_event(make_span(attrs={"gen_ai.request.model": "m", "gen_ai.usage.input_tokens": bad}))
    assert "prompt_tokens" not in event


def test_session_id_outside_the_id_charset_is_kept_in_metadata() -> None:
    event = one_event(make_span(attrs={"gen_ai.request.model": "m", "session.id": "jane@example.com #4"}))
    assert "session_id" not in event
    assert event["metadata"]["session.id"] == "jane@example.com #4"


def test_timestamps_and_latency() -> None:
    event = one_event(make_span(attrs={"gen_ai.request.model": "m"}, start=T0, end=T0 + 1_500_000))
    assert event["latency_ms"] == 1.5
    backwards = one_event(make_span(attrs={"gen_ai.request.model": "m"}, start=T0, end=T0 - 5 * MS))
    assert "latency_ms" not in backwards
    assert backwards["metadata"]["otel.invalid_latency_ms"] == -5.0
    unknown = one_event(make_span(attrs={"gen_ai.request.model": "m"}, start=0, end=0))
    assert "timestamp" not in unknown and "latency_ms" not in unknown


@pytest.mark.parametrize(
    ("attrs", "status", "events", "expected"),
    [
        ({}, (ERROR, "boom"), [], "boom"),
        ({"error.type": "TimeoutError"}, (ERROR, ""), [], "TimeoutError"),
        (
            {},
            (ERROR, ""),
            [("exception", {"exception.type": "ValueError", "exception.message": "bad"})],
            "ValueError: bad",
        ),
        ({}, (ERROR, ""), [], "error (span status ERROR, no message)"),
        ({"error.type": "500"}, None, [], "500"),
        ({}, (1, "fine"), [], None),  # STATUS_CODE_OK
    ],
)
def test_error_text(attrs: dict[str, Any], status: Any, events: list[Any], expected: str | None) -> None:
    event = one_event(make_span(attrs={"gen_ai.request.model": "m", **attrs}, status=status, events=events))
    assert event.get("error") == expected


def test_long_error_is_shortened_visibly() -> None:
    event = one_event(make_span(attrs={"gen_ai.request.model": "m"}, status=(ERROR, "x" * 20_000)))
    assert len(event["error"]) <= 8192
    assert event["error"].endswith("characters cut]")


# --- rejection, duplicates, limits ----------------------------------------------------------------------


def test_too_long_text_rejects_that_span_only() -> None:
    limits = Limits(max_text_chars=100)
    too_long = make_span(
        attrs={"gen_ai.request.model": "m", "gen_ai.prompt.0.content": "p" * 101},
        span_id=b"\x00" * 7 + b"\x09",
    )
    fine = make_span(attrs={"gen_ai.request.model": "m", "gen_ai.prompt.0.content": "p" * 100})
    result = spans_to_events(make_request(too_long, fine), limits=limits)
    assert len(result.events) == 1 and result.events[0]["prompt"] == "p" * 100
    ((span_id, reason),) = result.rejected
    assert span_id == "0000000000000009"
    assert "prompt" in reason and "101 characters" in reason and "limit is 100" in reason


def test_nul_character_rejects_the_span() -> None:
    result = spans_to_events(
        make_request(make_span(attrs={"gen_ai.request.model": "m", "output.value": "a\x00b"}))
    )
    assert result.events == []
    assert "NUL" in result.rejected[0][1]


@pytest.mark.parametrize(
    ("trace_id", "span_id", "fragment"),
    [
        (b"", b"\x01" * 8, "invalid trace id"),
        (b"\x00" * 16, b"\x01" * 8, "invalid trace id"),
        (b"\x01" * 16, b"", "invalid span id"),
        (b"\x01" * 16, b"\x00" * 8, "invalid span id"),
        (b"\x01" * 15, b"\x01" * 8, "invalid trace id"),
    ],
)
def test_invalid_ids_reject_the_span(trace_id: bytes, span_id: bytes, fragment: str) -> None:
    result = spans_to_events(
        make_request(make_span(attrs={"gen_ai.request.model": "m"}, trace_id=trace_id, span_id=span_id))
    )
    assert result.events == []
    assert fragment in result.rejected[0][1]


def test_duplicate_span_in_one_request_is_stored_once() -> None:
    span = make_span(attrs={"gen_ai.request.model": "m", "input.value": "hi"})
    result = spans_to_events(make_request(span, span))
    assert len(result.events) == 1
    assert result.duplicate_spans == 1


def test_error_message_summarises_rejections() -> None:
    result = MappingResult(rejected=[(f"{i:016x}", "too long") for i in range(7)])
    message = result.error_message()
    assert message.startswith("7 LLM span(s) rejected: span 0000000000000000: too long")
    assert message.endswith("; and 2 more")
    assert MappingResult().error_message() == ""
