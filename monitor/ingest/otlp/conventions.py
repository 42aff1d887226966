"""Where each tracing convention keeps the prompt, the response, the model and the token counts.

Sources are tried in a fixed order and the first one that yields a value wins:
1. GenAI semconv (current): `gen_ai.input.messages` / `gen_ai.output.messages` span attributes, or the same
   attributes on a `gen_ai.client.inference.operation.details` span event;
2. GenAI semconv span events: `gen_ai.user.message` / `gen_ai.choice` (body in `content`, `message` or the
   JSON `gen_ai.event.content`), and `gen_ai.content.prompt` / `gen_ai.content.completion` carrying
   `gen_ai.prompt` / `gen_ai.completion`;
3. indexed attributes `gen_ai.prompt.N.role|content` / `gen_ai.completion.N.content` (OpenLLMetry);
4. the deprecated `gen_ai.prompt` / `gen_ai.completion` span attributes;
5. OpenInference `llm.input_messages.N.message.*` / `llm.output_messages.N.message.*`;
6. Langfuse `langfuse.observation.input|output`, then MLflow `mlflow.spanInputs|spanOutputs`;
7. `input.value` / `output.value` (OpenInference and others), parsed when their mime type is JSON.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from monitor.ingest.otlp.messages import Side, content_text, messages_text, payload_text
from monitor.ingest.otlp.values import Attributes, as_int, as_text, first, maybe_json


@dataclass(frozen=True)
class SpanEvent:
    name: str
    attributes: Attributes


_INDEXED = re.compile(r"^gen_ai\.(prompt|completion)\.(\d+)\.(role|content|user)$")
_OPENINFERENCE = re.compile(
    r"^llm\.(input|output)_messages\.(\d+)\.message\.(?:(role|content)|contents\.(\d+)\.message_content\.(type|text))$"
)


def prompt_text(attrs: Attributes, events: Sequence[SpanEvent]) -> str | None:
    return _first_found(attrs, events, "input")


def response_text(attrs: Attributes, events: Sequence[SpanEvent]) -> str | None:
    return _first_found(attrs, events, "output")


def _first_found(attrs: Attributes, events: Sequence[SpanEvent], side: Side) -> str | None:
    sources: list[Callable[[], str | None]] = [
        lambda: _semconv_messages(attrs, side),
        lambda: _semconv_events(events, side),
        lambda: _indexed(attrs, side),
        lambda: payload_text(attrs.get("gen_ai.prompt" if side == "input" else "gen_ai.completion"), side),
        lambda: _openinference(attrs, side),
        lambda: payload_text(
            attrs.get("langfuse.observation.input" if side == "input" else "langfuse.observation.output"),
            side,
        ),
        lambda: payload_text(
            attrs.get("mlflow.spanInputs" if side == "input" else "mlflow.spanOutputs"), side
        ),
        lambda: _value_attribute(attrs, side),
    ]
    for source in sources:
        text = source()
        if text is not None:
            return text
    return None


def _semconv_messages(attrs: Attributes, side: Side) -> str | None:
    key = "gen_ai.input.messages" if side == "input" else "gen_ai.output.messages"
    return messages_text(attrs.get(key), side)


def _semconv_events(events: Sequence[SpanEvent], side: Side) -> str | None:
    messages_key = "gen_ai.input.messages" if side == "input" else "gen_ai.output.messages"
    for event in events:
        if messages_key in event.attributes:
            text = messages_text(event.attributes[messages_key], side)
            if text is not None:
                return text
    if side == "input":
        # The last user message of the conversation is the prompt.
        for event in reversed(events):
            if event.name == "gen_ai.user.message":
                text = _event_body_text(event.attributes)
                if text is not None:
                    return text
            elif event.name == "gen_ai.content.prompt":
                text = payload_text(event.attributes.get("gen_ai.prompt"), "input")
                if text is not None:
                    return text
        return None
    choices = [event for event in events if event.name == "gen_ai.choice"]
    # Choice 0 when the events say which is which, else the first one recorded.
    choices.sort(
        key=lambda event: 0 if as_int(_event_body(event.attributes).get("index")) in (0, None) else 1
    )
    for event in choices:
        text = _event_body_text(event.attributes)
        if text is not None:
            return text
    for event in events:
        if event.name == "gen_ai.content.completion":
            text = payload_text(event.attributes.get("gen_ai.completion"), "output")
            if text is not None:
                return text
    return None


def _event_body(attrs: Attributes) -> dict[str, Any]:
    """The event body: JSON in `gen_ai.event.content` (Azure / Semantic Kernel style) or the attributes."""
    body = maybe_json(attrs.get("gen_ai.event.content"))
    return body if isinstance(body, dict) else dict(attrs)


def _event_body_text(attrs: Attributes) -> str | None:
    body = _event_body(attrs)
    text = content_text(body.get("content"))
    if text is not None:
        return text
    message = maybe_json(body.get("message"))
    if isinstance(message, dict):
        return messages_text(message, "output")
    return message if isinstance(message, str) else None


def _indexed(attrs: Attributes, side: Side) -> str | None:
    wanted = "prompt" if side == "input" else "completion"
    by_index: dict[int, dict[str, Any]] = {}
    for key, value in attrs.items():
        match = _INDEXED.match(key)
        if match and match.group(1) == wanted:
            slot = by_index.setdefault(int(match.group(2)), {})
            if match.group(3) == "user":  # legacy completions: gen_ai.prompt.0.user = "<prompt>"
                slot.update(role="user", content=value)
            else:
                slot[match.group(3)] = value
    return _pick(by_index, side)


def _openinference(attrs: Attributes, side: Side) -> str | None:
    by_index: dict[int, dict[str, Any]] = {}
    for key, value in attrs.items():
        match = _OPENINFERENCE.match(key)
        if not match or match.group(1) != side:
            continue
        slot = by_index.setdefault(int(match.group(2)), {})
        if match.group(3):
            slot[match.group(3)] = value
        else:
            part = slot.setdefault("_parts", {}).setdefault(int(match.group(4)), {})
            part[match.group(5)] = value
    for slot in by_index.values():
        if "content" not in slot and "_parts" in slot:
            slot["content"] = [slot["_parts"][index] for index in sorted(slot["_parts"])]
    return _pick(by_index, side)


def _pick(by_index: dict[int, dict[str, Any]], side: Side) -> str | None:
    if not by_index:
        return None
    ordered = [
        {"role": slot.get("role"), "content": slot.get("content")}
        if "role" in slot
        else {"content": slot.get("content")}
        for _, slot in sorted(by_index.items())
    ]
    return messages_text(ordered, side)


def _value_attribute(attrs: Attributes, side: Side) -> str | None:
    value = attrs.get("input.value" if side == "input" else "output.value")
    if not isinstance(value, str) or value == "":
        return None
    mime = attrs.get("input.mime_type" if side == "input" else "output.mime_type")
    if mime == "application/json":
        # Fall back to the JSON text itself: it is what the app recorded as the call's input/output.
        return payload_text(value, side) or value
    return value


def model_name(attrs: Attributes) -> str | None:
    return as_text(
        first(
            attrs,
            "gen_ai.response.model",
            "gen_ai.request.model",
            "llm.model_name",
            "langfuse.observation.model.name",
        )
    )


def token_counts(attrs: Attributes) -> tuple[int | None, int | None]:
    """(prompt tokens, completion tokens) from whichever convention reports them."""
    prompt = as_int(
        first(attrs, "gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt")
    )
    completion = as_int(
        first(
            attrs,
            "gen_ai.usage.output_tokens",
            "gen_ai.usage.completion_tokens",
            "llm.token_count.completion",
        )
    )
    for key in ("langfuse.observation.usage_details", "mlflow.chat.tokenUsage"):
        usage = maybe_json(attrs.get(key))
        if isinstance(usage, dict):
            if prompt is None:
                prompt = as_int(first(usage, "input", "input_tokens", "prompt_tokens"))
            if completion is None:
                completion = as_int(first(usage, "output", "output_tokens", "completion_tokens"))
    return prompt, completion
