"""openai_compatible_generator against a real HTTP server on 127.0.0.1 (no transport mocks)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from monitor.safety.generators import GenerationError, chat_completions_url, openai_compatible_generator


class _ChatHandler(BaseHTTPRequestHandler):
    """Minimal chat-completions server: echoes the last user message, upper-cased."""

    requests: list[dict] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _ChatHandler.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), **body})
        if self.path == "/broken/v1/chat/completions":
            self._send(500, {"error": "model exploded"})
        elif self.path == "/weird/v1/chat/completions":
            self._send(200, {"result": "not a chat completion"})
        else:
            text = body["messages"][-1]["content"].upper()
            self._send(200, {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]})

    def _send(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:  # keep test output quiet
        pass


@pytest.fixture()
def server() -> Iterator[str]:
    _ChatHandler.requests = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _ChatHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_generates_one_completion_per_prompt_in_order(server: str) -> None:
    generate = openai_compatible_generator(
        server, "tiny-model", api_key="sk-test", max_tokens=12, system="Be brief."
    )
    assert generate(["hello there", "second prompt"]) == ["HELLO THERE", "SECOND PROMPT"]
    first = _ChatHandler.requests[0]
    assert first["path"] == "/v1/chat/completions" and first["auth"] == "Bearer sk-test"
    assert first["model"] == "tiny-model" and first["max_tokens"] == 12 and first["temperature"] == 0.0
    assert first["messages"][0] == {"role": "system", "content": "Be brief."}


def test_http_error_names_status_and_prompt(server: str) -> None:
    generate = openai_compatible_generator(f"{server}/broken", "m")
    with pytest.raises(GenerationError, match=r"prompt 0\) returned HTTP 500: .*model exploded"):
        generate(["x"])


def test_malformed_reply_is_a_clear_error(server: str) -> None:
    generate = openai_compatible_generator(f"{server}/weird/v1", "m")
    with pytest.raises(GenerationError, match=r"expected choices\[0\]\.message\.content"):
        generate(["x"])


def test_unreachable_server_is_a_generation_error() -> None:
    # Port 9 on loopback: nothing listens there, so the connection is refused at once.
    generate = openai_compatible_generator("http://127.0.0.1:9", "m", timeout=2.0)
    with pytest.raises(GenerationError, match="failed"):
        generate(["x"])


def test_url_building() -> None:
    assert chat_completions_url("http://h:1") == "http://h:1/v1/chat/completions"
    assert chat_completions_url("http://h:1/v1/") == "http://h:1/v1/chat/completions"
    assert chat_completions_url("https://h/api/v1/chat/completions") == "https://h/api/v1/chat/completions"
    with pytest.raises(ValueError, match="http"):
        chat_completions_url("h:1")
