"""A real OTLP/HTTP endpoint for the real OpenTelemetry exporter to talk to.

The sink is a threaded `http.server` on 127.0.0.1 (port chosen by the OS) that records every request's
path, headers and raw body and answers 200 with an empty `ExportTraceServiceResponse`, which is what a
collector answers on full success. Tests then decode the captured bytes exactly as the route will.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Tracer


@dataclass(frozen=True)
class CapturedRequest:
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes


@dataclass
class OtlpSink:
    port: int
    requests: list[CapturedRequest] = field(default_factory=list)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/traces"

    def export(
        self,
        write_spans: Callable[[Tracer], object],
        *,
        compression: Compression = Compression.NoCompression,
        resource: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> CapturedRequest:
        """Run `write_spans` under a fresh SDK pipeline exporting here; return the one request it sent."""
        before = len(self.requests)
        provider = TracerProvider(
            resource=Resource.create(resource or {"service.name": "checkout-bot"}),
        )
        exporter = OTLPSpanExporter(endpoint=self.endpoint, compression=compression, headers=headers)
        provider.add_span_processor(BatchSpanProcessor(exporter, max_export_batch_size=512))
        write_spans(provider.get_tracer("tests.ingest.otlp", "1.0.0"))
        assert provider.force_flush(timeout_millis=10_000), "the exporter did not finish within 10 s"
        provider.shutdown()
        sent = self.requests[before:]
        assert len(sent) == 1, f"expected one export request, the exporter sent {len(sent)}"
        return sent[0]


@pytest.fixture
def otlp_sink(monkeypatch: pytest.MonkeyPatch) -> Iterator[OtlpSink]:
    # A proxy configured in the environment must not intercept loopback traffic.
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    captured: list[CapturedRequest] = []
    empty_response = ExportTraceServiceResponse().SerializeToString()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            headers = {name.lower(): value for name, value in self.headers.items()}
            captured.append(CapturedRequest(path=self.path, headers=headers, body=body))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(empty_response)))
            self.end_headers()
            self.wfile.write(empty_response)

        def log_message(self, format: str, *args: object) -> None:  # keep test output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    sink = OtlpSink(port=server.server_address[1])
    sink.requests = captured
    try:
        yield sink
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
