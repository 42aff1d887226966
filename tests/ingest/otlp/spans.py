"""Spans written the way real instrumentations write them, through the real OpenTelemetry SDK.

One trace: an HTTP server span (not an LLM call) with children in each GenAI message convention, an
embeddings call (not a generation) and a failed call. `EXPECTED` is what driftloop must store for each
LLM span, keyed by span name; `write_sample_trace` returns the SDK span contexts so tests can check ids.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, Tracer

T0 = 1_750_000_000_000_000_000  # 2025-06-15T15:06:40Z in Unix nanoseconds
MS = 1_000_000
T0_DATETIME = datetime(2025, 6, 15, 15, 6, 40, tzinfo=UTC)

SEMCONV_INPUT = [
    {"role": "system", "parts": [{"type": "text", "content": "You are a support agent for ACME."}]},
    {"role": "user", "parts": [{"type": "text", "content": "Where is my order #1234?"}]},
    {"role": "assistant", "parts": [{"type": "text", "content": "It shipped yesterday."}]},
    {
        "role": "user",
        "parts": [{"type": "text", "content": "When will it "}, {"type": "text", "content": "arrive?"}],
    },
]
SEMCONV_OUTPUT = [
    {
        "role": "assistant",
        "parts": [{"type": "text", "content": "Tomorrow before noon."}],
        "finish_reason": "stop",
    }
]


def write_sample_trace(tracer: Tracer) -> dict[str, SpanContext]:
    contexts: dict[str, SpanContext] = {}
    root = tracer.start_span(
        "GET /orders/1234",
        kind=SpanKind.SERVER,
        attributes={
            "http.request.method": "GET",
            "url.path": "/orders/1234",
            "http.response.status_code": 200,
        },
        start_time=T0 - 10 * MS,
    )
    parent = trace.set_span_in_context(root)

    # (a) current semconv: messages as JSON attributes.
    span = tracer.start_span(
        "chat gpt-4o-mini",
        context=parent,
        kind=SpanKind.CLIENT,
        start_time=T0,
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
            "gen_ai.request.temperature": 0.2,
            "gen_ai.response.finish_reasons": ["stop"],
            "gen_ai.usage.input_tokens": 42,
            "gen_ai.usage.output_tokens": 7,
            "gen_ai.conversation.id": "conv-123",
            "gen_ai.input.messages": json.dumps(SEMCONV_INPUT),
            "gen_ai.output.messages": json.dumps(SEMCONV_OUTPUT),
            "driftloop.prompt_template.id": "support-answer",
            "driftloop.prompt_template.version": 3,
            "driftloop.metadata.tenant": "acme",
        },
    )
    span.end(end_time=T0 + 1250 * MS)
    contexts["chat gpt-4o-mini"] = span.get_span_context()

    # (c) OpenLLMetry: indexed prompt/completion attributes and the older token names.
    span = tracer.start_span(
        "openai.chat",
        context=parent,
        kind=SpanKind.CLIENT,
        start_time=T0 + 2000 * MS,
        attributes={
            "llm.request.type": "chat",
            "gen_ai.system": "openai",
            "gen_ai.request.model": "gpt-3.5-turbo",
            "gen_ai.response.model": "gpt-3.5-turbo-0125",
            "gen_ai.prompt.0.role": "system",
            "gen_ai.prompt.0.content": "You are terse.",
            "gen_ai.prompt.1.role": "user",
            "gen_ai.prompt.1.content": "Name a prime number.",
            "gen_ai.completion.0.role": "assistant",
            "gen_ai.completion.0.content": "7",
            "gen_ai.completion.0.finish_reason": "stop",
            "gen_ai.usage.prompt_tokens": 20,
            "gen_ai.usage.completion_tokens": 1,
            "session.id": "sess-9",
        },
    )
    span.end(end_time=T0 + 2500 * MS)
    contexts["openai.chat"] = span.get_span_context()

    # (b) span events: gen_ai.user.message / gen_ai.choice (body JSON in gen_ai.event.content).
    span = tracer.start_span(
        "chat llama3",
        context=parent,
        kind=SpanKind.CLIENT,
        start_time=T0 + 3000 * MS,
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.system": "ollama",
            "gen_ai.request.model": "llama3",
        },
    )
    span.add_event("gen_ai.system.message", {"content": "Be kind."}, timestamp=T0 + 3000 * MS)
    span.add_event("gen_ai.user.message", {"content": "Hello there"}, timestamp=T0 + 3000 * MS)
    span.add_event(
        "gen_ai.choice",
        {
            "gen_ai.event.content": json.dumps(
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": "Hi! How can I help?"},
                }
            )
        },
        timestamp=T0 + 3400 * MS,
    )
    span.end(end_time=T0 + 3400 * MS)
    contexts["chat llama3"] = span.get_span_context()

    # (b') gen_ai.content.prompt / gen_ai.content.completion events.
    span = tracer.start_span(
        "text_completion davinci",
        context=parent,
        start_time=T0 + 4000 * MS,
        attributes={"gen_ai.operation.name": "text_completion", "gen_ai.request.model": "davinci-002"},
    )
    span.add_event(
        "gen_ai.content.prompt", {"gen_ai.prompt": json.dumps([{"role": "user", "content": "Roses are"}])}
    )
    span.add_event(
        "gen_ai.content.completion",
        {"gen_ai.completion": json.dumps([{"role": "assistant", "content": "red"}])},
    )
    span.end(end_time=T0 + 4100 * MS)
    contexts["text_completion davinci"] = span.get_span_context()

    # A failed call: status ERROR with a message, plus the exception event the SDK records.
    span = tracer.start_span(
        "chat gpt-4o",
        context=parent,
        start_time=T0 + 5000 * MS,
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.input.messages": json.dumps(
                [{"role": "user", "parts": [{"type": "text", "content": "Hi"}]}]
            ),
            "error.type": "RateLimitError",
        },
    )
    span.record_exception(RuntimeError("rate limited"))
    span.set_status(Status(StatusCode.ERROR, "429 Too Many Requests"))
    span.end(end_time=T0 + 5030 * MS)
    contexts["chat gpt-4o"] = span.get_span_context()

    # Not a generation, although it names a model.
    span = tracer.start_span(
        "embeddings text-embedding-3-small",
        context=parent,
        start_time=T0 + 6000 * MS,
        attributes={"gen_ai.operation.name": "embeddings", "gen_ai.request.model": "text-embedding-3-small"},
    )
    span.end(end_time=T0 + 6010 * MS)

    root.end(end_time=T0 + 7000 * MS)
    contexts["GET /orders/1234"] = root.get_span_context()
    return contexts


# What each LLM span must become (event_id/trace_id/timestamp checked separately).
EXPECTED: dict[str, dict[str, Any]] = {
    "chat gpt-4o-mini": {
        "session_id": "conv-123",
        "model": "gpt-4o-mini-2024-07-18",
        "model_version": "v7",  # from the resource
        "prompt_template_id": "support-answer",
        "prompt_template_version": "3",
        "prompt": "When will it \narrive?",
        "response": "Tomorrow before noon.",
        "latency_ms": 1250.0,
        "prompt_tokens": 42,
        "completion_tokens": 7,
    },
    "openai.chat": {
        "session_id": "sess-9",
        "model": "gpt-3.5-turbo-0125",
        "model_version": "v7",
        "prompt": "Name a prime number.",
        "response": "7",
        "latency_ms": 500.0,
        "prompt_tokens": 20,
        "completion_tokens": 1,
    },
    "chat llama3": {
        "model": "llama3",
        "model_version": "v7",
        "prompt": "Hello there",
        "response": "Hi! How can I help?",
        "latency_ms": 400.0,
    },
    "text_completion davinci": {
        "model": "davinci-002",
        "model_version": "v7",
        "prompt": "Roses are",
        "response": "red",
        "latency_ms": 100.0,
    },
    "chat gpt-4o": {
        "model": "gpt-4o",
        "model_version": "v7",
        "prompt": "Hi",
        "error": "429 Too Many Requests",
        "latency_ms": 30.0,
    },
}
START_OFFSETS_MS = {
    "chat gpt-4o-mini": 0,
    "openai.chat": 2000,
    "chat llama3": 3000,
    "text_completion davinci": 4000,
    "chat gpt-4o": 5000,
}
RESOURCE = {"service.name": "checkout-bot", "service.version": "2.4.1", "driftloop.model_version": "v7"}
