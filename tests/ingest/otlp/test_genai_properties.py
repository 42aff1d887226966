"""Property: whatever attributes a span carries, mapping never fails the export and never emits an
event the collector would refuse."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.ingest.otlp import spans_to_events
from monitor.schemas import EventIn, Limits
from tests.ingest.otlp.build import make_request, make_span

KEYS = [
    "gen_ai.operation.name",
    "gen_ai.request.model",
    "gen_ai.response.model",
    "gen_ai.provider.name",
    "gen_ai.system",
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.prompt_tokens",
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.prompt",
    "gen_ai.completion",
    "gen_ai.prompt.0.role",
    "gen_ai.prompt.0.content",
    "gen_ai.prompt.1.user",
    "gen_ai.completion.0.content",
    "gen_ai.conversation.id",
    "gen_ai.prompt.name",
    "session.id",
    "user.id",
    "error.type",
    "openinference.span.kind",
    "llm.model_name",
    "llm.token_count.prompt",
    "llm.input_messages.0.message.role",
    "llm.input_messages.0.message.content",
    "llm.output_messages.0.message.contents.0.message_content.text",
    "input.value",
    "input.mime_type",
    "output.value",
    "langfuse.observation.type",
    "langfuse.observation.input",
    "langfuse.observation.output",
    "langfuse.observation.usage_details",
    "langfuse.observation.prompt.version",
    "langfuse.observation.level",
    "mlflow.spanType",
    "mlflow.spanInputs",
    "mlflow.spanOutputs",
    "mlflow.chat.tokenUsage",
    "driftloop.model_version",
    "driftloop.session_id",
    "driftloop.prompt_template.id",
    "driftloop.metadata.x",
]
EVENT_NAMES = ["gen_ai.user.message", "gen_ai.choice", "gen_ai.content.prompt", "exception", "other"]
EVENT_KEYS = ["content", "message", "index", "gen_ai.event.content", "gen_ai.prompt", "exception.message"]

json_like = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "role",
                    "content",
                    "parts",
                    "type",
                    "text",
                    "messages",
                    "choices",
                    "message",
                    "input",
                    "output",
                    "index",
                ]
            ),
            children,
            max_size=4,
        )
    ),
    max_leaves=20,
)
# Message lists shaped like the real conventions, so that prompt/response extraction is exercised too.
part = st.fixed_dictionaries(
    {"type": st.sampled_from(["text", "image", "tool_call", "input_text"])},
    optional={"content": st.text(max_size=30), "text": st.text(max_size=30)},
)
message = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant", "system", "model", "tool"])},
    optional={
        "content": st.text(max_size=30) | st.lists(part, max_size=2),
        "parts": st.lists(part, max_size=2),
    },
)
messages_json = st.lists(message, max_size=3).map(json.dumps) | message.map(json.dumps)
scalar = (
    messages_json
    | st.text(max_size=40)
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats()
    | st.booleans()
    | st.binary(max_size=8)
    | st.sampled_from(["chat", "embeddings", "LLM", "CHAIN", "generation", '"CHAT_MODEL"', "user", "ERROR"])
    | json_like.map(json.dumps)
)
attr_value = st.recursive(
    scalar,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=10,
)
attributes = st.dictionaries(st.sampled_from(KEYS), attr_value, max_size=8)
# Half the spans carry a model name, so that most examples go through the whole mapping.
span_attributes = attributes | attributes.map(lambda attrs: {"gen_ai.request.model": "m", **attrs})
events = st.lists(
    st.tuples(
        st.sampled_from(EVENT_NAMES), st.dictionaries(st.sampled_from(EVENT_KEYS), attr_value, max_size=3)
    ),
    max_size=3,
)
span_args = st.fixed_dictionaries(
    {
        "attrs": span_attributes,
        "events": events,
        # Mostly valid ids (so most examples reach the field mapping), sometimes broken ones.
        "trace_id": st.integers(1, 2**128 - 1).map(lambda n: n.to_bytes(16, "big"))
        | st.sampled_from([b"", b"\x00" * 16, b"\x01" * 15]),
        "span_id": st.integers(1, 2**64 - 1).map(lambda n: n.to_bytes(8, "big"))
        | st.sampled_from([b"", b"\x00" * 8]),
        "start": st.integers(0, 2**64 - 1) | st.just(1_750_000_000_000_000_000),
        "end": st.integers(0, 2**64 - 1) | st.just(1_750_000_000_500_000_000),
        "status": st.none() | st.tuples(st.integers(0, 2), st.text(max_size=20)),
    }
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spans=st.lists(span_args, min_size=1, max_size=4), resource=attributes, max_text=st.integers(1, 200))
def test_mapping_never_fails_and_only_emits_storable_events(spans, resource, max_text) -> None:
    limits = Limits(max_text_chars=max_text, max_metadata_bytes=2048)
    request = make_request(*(make_span(**args) for args in spans), resource=resource)
    result = spans_to_events(request, limits=limits)

    assert len(result.events) + result.ignored_spans + len(result.rejected) + result.duplicate_spans == len(
        spans
    )
    for span_id, reason in result.rejected:
        assert not reason.startswith("internal error"), (span_id, reason)
    for event in result.events:
        EventIn.model_validate(event, context={"limits": limits})
    assert len({event["event_id"] for event in result.events}) == len(result.events)
