"""Build OTLP/JSON the way OTLP/JSON exporters do: proto3 JSON, except ids are hex and enums are ints."""

from __future__ import annotations

import base64
import json
from typing import Any

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

_ID_KEYS = {"traceId", "spanId", "parentSpanId"}


def _ids_to_hex(node: Any) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _ID_KEYS and isinstance(value, str):
                node[key] = base64.b64decode(value).hex()
            else:
                _ids_to_hex(value)
    elif isinstance(node, list):
        for item in node:
            _ids_to_hex(item)


def to_otlp_json(request: ExportTraceServiceRequest) -> bytes:
    document = json_format.MessageToDict(request, use_integers_for_enums=True)
    _ids_to_hex(document)
    return json.dumps(document).encode("utf-8")


def to_proto3_json(request: ExportTraceServiceRequest) -> bytes:
    """Plain proto3 JSON (base64 ids): not OTLP/JSON, but some tools emit it."""
    return json_format.MessageToJson(request).encode("utf-8")


# A hand-written OTLP/JSON export in the style of the spec's examples: upper-case hex ids, int64 as
# strings (and one as a number, which proto3 JSON also allows), integer enums, and the structured
# (array-of-kvlist) form of gen_ai.input.messages instead of a JSON string.
_OUTPUT_MESSAGES = [{"role": "assistant", "parts": [{"type": "text", "content": "TAP 1234 at 9:05"}]}]
HAND_WRITTEN = """
{
  "resourceSpans": [{
    "resource": {"attributes": [
      {"key": "service.name", "value": {"stringValue": "travel-agent"}},
      {"key": "driftloop.model_version", "value": {"stringValue": "2025-06-01"}}
    ]},
    "scopeSpans": [{
      "scope": {"name": "opentelemetry.instrumentation.openai_v2", "version": "0.50b0"},
      "spans": [
        {
          "traceId": "5B8EFFF798038103D269B633813FC60C",
          "spanId": "EEE19B7EC3C1B174",
          "parentSpanId": "EEE19B7EC3C1B173",
          "name": "chat gpt-4.1",
          "kind": 3,
          "startTimeUnixNano": "1544712660000000000",
          "endTimeUnixNano": 1544712661500000000,
          "attributes": [
            {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
            {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4.1"}},
            {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "31"}},
            {"key": "gen_ai.usage.output_tokens", "value": {"intValue": 12}},
            {"key": "gen_ai.conversation.id", "value": {"stringValue": "trip-77"}},
            {"key": "gen_ai.input.messages", "value": {"arrayValue": {"values": [
              {"kvlistValue": {"values": [
                {"key": "role", "value": {"stringValue": "user"}},
                {"key": "parts", "value": {"arrayValue": {"values": [{"kvlistValue": {"values": [
                  {"key": "type", "value": {"stringValue": "text"}},
                  {"key": "content", "value": {"stringValue": "Find me a flight to Lisbon"}}
                ]}}]}}}
              ]}}
            ]}}},
            {"key": "gen_ai.output.messages", "value": {"stringValue": OUTPUT_MESSAGES}}
          ],
          "status": {"code": 2, "message": "upstream timeout"},
          "someFieldFromTheFuture": {"ignored": true}
        },
        {
          "traceId": "5b8efff798038103d269b633813fc60c",
          "spanId": "eee19b7ec3c1b173",
          "parentSpanId": "",
          "name": "POST /plan",
          "kind": 2,
          "startTimeUnixNano": "1544712659000000000",
          "endTimeUnixNano": "1544712662000000000",
          "attributes": [{"key": "http.request.method", "value": {"stringValue": "POST"}}],
          "links": [{"traceId": "0123456789abcdef0123456789abcdef", "spanId": "0123456789abcdef"}]
        }
      ]
    }]
  }]
}
""".replace("OUTPUT_MESSAGES", json.dumps(json.dumps(_OUTPUT_MESSAGES)))
