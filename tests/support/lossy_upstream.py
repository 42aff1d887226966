"""A collector whose answers are lost: a TCP relay that passes each request to a real collector, waits for the
whole response (so the batch is committed), then closes the connection without sending a byte of it.

What a collector crashing right after its commit looks like to nginx: nginx sees the connection close before a
response header and retries the (idempotent) ingest request on the next collector, which must store nothing
twice. Deterministic, where killing a process at exactly that moment is not."""

from __future__ import annotations

import socket
import threading

from tests.support.services import free_port


def _read_message(sock: socket.socket) -> bytes:
    """One HTTP/1.1 message with a Content-Length body (what nginx sends and uvicorn answers here)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


class LossyUpstream:
    """Listens on a free port; every request reaches `target` (host, port), every answer is dropped."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self.relayed: list[str] = []  # request lines passed on and answered by the collector, answer dropped
        self._server = socket.create_server(("127.0.0.1", self.port))
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="lossy-upstream", daemon=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> LossyUpstream:
        self._thread.start()
        return self

    def _serve(self) -> None:
        self._server.settimeout(0.2)
        while not self._stopped.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._relay, args=(conn,), daemon=True).start()

    def _relay(self, conn: socket.socket) -> None:
        with conn:
            request = _read_message(conn)
            if not request:
                return
            with socket.create_connection(self.target, timeout=30) as upstream:
                upstream.sendall(request)
                if _read_message(upstream):
                    self.relayed.append(request.split(b"\r\n", 1)[0].decode("latin-1"))
            conn.shutdown(socket.SHUT_RDWR)  # nothing of the answer goes back: as if the collector died after it

    def stop(self) -> None:
        self._stopped.set()
        self._server.close()
        self._thread.join(timeout=5)
