"""A scripted OpenAI-compatible judge on a real socket (127.0.0.1, ThreadingHTTPServer): valid verdicts,
garbage, errors, a hang, or a refusal of response_format; every request body recorded."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class JudgeServer:
    def __init__(self) -> None:
        self.mode = "json"  # json | garbage | fenced | error500 | hang | no_schema
        self.requests: list[dict[str, Any]] = []
        self.release = threading.Event()  # a hanging request returns when this is set
        self.url = ""

    def verdict(self, body: dict[str, Any]) -> str:
        # A deterministic "judge": answers mentioning "wrong" score 1, others 5.
        user = body["messages"][-1]["content"]
        answer = user.split("<assistant_answer>")[-1]
        score = 1 if "wrong" in answer else 5
        return json.dumps({"score": score, "label": "bad" if score == 1 else "good", "explanation": "scripted"})


@contextmanager
def judge_server() -> Iterator[JudgeServer]:
    state = JudgeServer()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, code: int, payload: str, ctype: str = "application/json") -> None:
            data = payload.encode()
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            body["_auth"] = self.headers.get("Authorization")
            state.requests.append(body)
            mode = state.mode
            if mode == "hang":
                state.release.wait(30)
                return self._send(200, "{}")
            if mode == "error500":
                return self._send(500, "upstream exploded")
            if mode == "no_schema" and "response_format" in body:
                return self._send(400, '{"error": "response_format is not supported"}')
            text = {"garbage": "I like turtles", "fenced": "Sure!\n```json\n" + state.verdict(body) + "\n```"}.get(
                mode, state.verdict(body))
            self._send(200, json.dumps({"choices": [{"message": {"role": "assistant", "content": text}}],
                                        "usage": {"prompt_tokens": 100, "completion_tokens": 20}}))

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    try:
        yield state
    finally:
        state.release.set()
        httpd.shutdown()
        httpd.server_close()
