"""Throughput of OTLP trace ingestion's pure part: decode + map, per body encoding.

Builds one export the way the OpenTelemetry SDK's OTLP exporter serializes it (its own encoder, no
network): N chat spans in the current GenAI convention (~600-character prompts, ~300-character answers)
plus N HTTP spans that must be ignored. Prints the median of several runs for protobuf, gzip protobuf and
OTLP/JSON.

    python -m bench.otlp_decode [--spans 1000] [--repeat 5]     (from the repository root)
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import statistics
import time

from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from monitor.ingest.otlp import decode_export_request, spans_to_events

LIMIT = 256 * 1024 * 1024


def build_request_bytes(n_spans: int) -> bytes:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "bench"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("bench")
    prompt = "Please summarise the following customer message in two sentences. " * 9
    answer = "The customer reports a delayed parcel and asks for a refund or a new delivery date. " * 4
    for i in range(n_spans):
        with (
            tracer.start_as_current_span("POST /chat", attributes={"http.request.method": "POST"}),
            tracer.start_as_current_span(
                "chat gpt-4o-mini",
                attributes={
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": "gpt-4o-mini",
                    "gen_ai.usage.input_tokens": 150 + i % 7,
                    "gen_ai.usage.output_tokens": 60,
                    "gen_ai.conversation.id": f"conv-{i % 97}",
                    "gen_ai.input.messages": json.dumps(
                        [{"role": "user", "parts": [{"type": "text", "content": f"{prompt} #{i}"}]}]
                    ),
                    "gen_ai.output.messages": json.dumps(
                        [{"role": "assistant", "parts": [{"type": "text", "content": answer}]}]
                    ),
                },
            ),
        ):
            pass
    provider.shutdown()
    return encode_spans(exporter.get_finished_spans()).SerializeToString()


def to_otlp_json(body: bytes) -> bytes:
    request = decode_export_request(body, "application/x-protobuf", None, max_bytes=LIMIT)
    document = json_format.MessageToDict(request, use_integers_for_enums=True)
    for resource_spans in document["resourceSpans"]:
        for scope_spans in resource_spans["scopeSpans"]:
            for span in scope_spans["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64decode(span[key]).hex()
    return json.dumps(document).encode()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spans", type=int, default=1000, help="LLM spans (plus as many HTTP spans)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    protobuf = build_request_bytes(args.spans)
    variants = {
        "protobuf": (protobuf, "application/x-protobuf", None),
        "protobuf+gzip": (gzip.compress(protobuf), "application/x-protobuf", "gzip"),
        "json": (to_otlp_json(protobuf), "application/json", None),
    }
    total_spans = 2 * args.spans
    print(f"{args.spans} LLM spans + {args.spans} HTTP spans per export; median of {args.repeat} runs")
    print(f"{'encoding':<15}{'body KiB':>10}{'decode ms':>11}{'map ms':>9}{'spans/s':>11}{'events/s':>10}")
    for name, (body, content_type, encoding) in variants.items():
        decode_times, map_times = [], []
        for _ in range(args.repeat):
            start = time.perf_counter()
            request = decode_export_request(body, content_type, encoding, max_bytes=LIMIT)
            decoded = time.perf_counter()
            result = spans_to_events(request)
            mapped = time.perf_counter()
            decode_times.append(decoded - start)
            map_times.append(mapped - decoded)
        assert len(result.events) == args.spans and result.ignored_spans == args.spans, result.rejected[:3]
        decode_s, map_s = statistics.median(decode_times), statistics.median(map_times)
        print(
            f"{name:<15}{len(body) / 1024:>10.0f}{decode_s * 1000:>11.1f}{map_s * 1000:>9.1f}"
            f"{total_spans / (decode_s + map_s):>11.0f}{args.spans / (decode_s + map_s):>10.0f}"
        )


if __name__ == "__main__":
    main()
