"""Find the user's prompt and the model's answer in the message shapes LLM instrumentations emit.

Shapes handled (all may arrive as JSON strings or as structured attribute values):
- GenAI semconv messages: `{"role": "user", "parts": [{"type": "text", "content": "..."}]}`;
- OpenAI-style messages: `{"role": "user", "content": "..." | [{"type": "text", "text": "..."}]}`;
- OpenAI responses: `{"choices": [{"message": {...}} | {"text": "..."}]}`;
- loose payloads (Langfuse, MLflow, OpenInference `input.value`): a string, a message list, or an object
  with `messages` / `prompt` / `output` ... keys.

The prompt is the *last user* message (earlier turns are context the app already sent before), the
response is the *first assistant* message (the first choice). Non-text parts (images, tool calls) are
skipped; several text parts of one message are joined with newlines.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from monitor.ingest.otlp.values import maybe_json

Side = Literal["input", "output"]

_USER_ROLES = {"user", "human"}
_ASSISTANT_ROLES = {"assistant", "model", "ai", "bot"}
_TEXT_PART_TYPES = {"text", "input_text", "output_text"}
# Keys that commonly hold the text itself in loose payloads, in the order they are tried.
_INPUT_KEYS = ("messages", "prompt", "input", "query", "question", "content", "text", "inputs")
_OUTPUT_KEYS = (
    "choices",
    "messages",
    "output",
    "response",
    "answer",
    "completion",
    "content",
    "text",
    "outputs",
)
# Loose payloads are walked at most this deep: deeper structure is not a message anymore.
_MAX_PAYLOAD_DEPTH = 4


def part_text(part: Any) -> str | None:
    """Text of one content part: a bare string, or a text-typed part (`content` or `text` field)."""
    if isinstance(part, str):
        return part
    if not isinstance(part, dict):
        return None
    kind = part.get("type")
    if kind is not None and kind not in _TEXT_PART_TYPES:
        return None
    for key in ("content", "text"):
        value = part.get(key)
        if isinstance(value, str):
            return value
    return None


def _join(parts: Iterable[Any]) -> str | None:
    texts = [text for text in (part_text(part) for part in parts) if text is not None]
    return "\n".join(texts) if texts else None


def content_text(content: Any) -> str | None:
    """Text of a message's content: a string, a JSON-encoded parts list, or a parts list."""
    content = maybe_json(content) if isinstance(content, str) and _looks_like_parts(content) else content
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return _join(content)
    if isinstance(content, dict):
        return part_text(content)
    return None


def _looks_like_parts(text: str) -> bool:
    """OpenLLMetry stores multimodal content as a JSON list of typed parts inside the content string.

    Only a list whose every item is a typed part is treated that way, so a prompt that merely starts
    with `[` stays as typed.
    """
    if not text.lstrip().startswith("["):
        return False
    parsed = maybe_json(text)
    return (
        isinstance(parsed, list)
        and bool(parsed)
        and all(isinstance(item, dict) and isinstance(item.get("type"), str) for item in parsed)
    )


def message_text(message: Any) -> str | None:
    """Text of one message in any of the shapes above. A bare string is the text itself (never parsed:
    a prompt that happens to be JSON must stay the prompt); callers parse attributes known to be JSON."""
    if isinstance(message, str):
        return message
    if not isinstance(message, dict):
        return None
    parts = message.get("parts")
    if isinstance(parts, list):
        return _join(parts)
    for key in ("content", "text"):
        if key in message:
            text = content_text(message[key])
            if text is not None:
                return text
    nested = message.get("message")  # gen_ai.choice bodies: {"index": 0, "message": {...}}
    if isinstance(nested, dict):
        parts = nested.get("parts")
        if isinstance(parts, list):
            return _join(parts)
        return content_text(nested.get("content"))
    if isinstance(nested, str):
        return nested
    return None


def _role(message: Any) -> str | None:
    if isinstance(message, dict):
        role = message.get("role")
        if isinstance(role, str):
            return role.lower()
        nested = message.get("message")
        if isinstance(nested, dict) and isinstance(nested.get("role"), str):
            return str(nested["role"]).lower()
    return None


def last_user_text(messages: list[Any]) -> str | None:
    """The last user message's text; if no message has a role at all, the last message's text."""
    roles = [_role(message) for message in messages]
    if all(role is None for role in roles):
        for message in reversed(messages):
            text = message_text(message)
            if text is not None:
                return text
        return None
    for message, role in zip(reversed(messages), reversed(roles), strict=True):
        if role in _USER_ROLES:
            text = message_text(message)
            if text is not None:
                return text
    return None


def first_assistant_text(messages: list[Any]) -> str | None:
    """The first output message with text whose role is an assistant's or is missing."""
    for message in messages:
        role = _role(message)
        if role is None or role in _ASSISTANT_ROLES:
            text = message_text(message)
            if text is not None:
                return text
    return None


def messages_text(messages: Any, side: Side) -> str | None:
    """Prompt (side="input") or response (side="output") from a message list, JSON or structured."""
    messages = maybe_json(messages)
    if isinstance(messages, dict):
        messages = [messages]
    if not isinstance(messages, list):
        return None
    return last_user_text(messages) if side == "input" else first_assistant_text(messages)


def payload_text(payload: Any, side: Side) -> str | None:
    """Best-effort text from a loose input/output payload; None when nothing text-like is found."""
    return _payload_text(maybe_json(payload), side, 0)


def _payload_text(payload: Any, side: Side, depth: int) -> str | None:
    if isinstance(payload, str):
        return payload
    if depth > _MAX_PAYLOAD_DEPTH:
        return None
    if isinstance(payload, list):
        if any(isinstance(item, dict) for item in payload):
            return messages_text(payload, side)
        return _join(payload)
    if not isinstance(payload, dict):
        return None
    if "role" in payload or "parts" in payload:
        return message_text(payload)
    for key in _INPUT_KEYS if side == "input" else _OUTPUT_KEYS:
        if key not in payload:
            continue
        value = payload[key]
        if key == "choices" and isinstance(value, list) and value:
            text = message_text(value[0])
        elif isinstance(value, list) and any(isinstance(item, dict) for item in value):
            text = messages_text(value, side)
        else:
            text = _payload_text(value, side, depth + 1)
        if text is not None:
            return text
    return None
