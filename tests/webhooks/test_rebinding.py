"""DNS rebinding (issue #18, finding 1): a webhook host that answers a public address to the URL check and
127.0.0.1 to the connection must never reach loopback. The resolver is stubbed at `socket.getaddrinfo`, the
one function both the check and the standard library's `create_connection` call, so the request goes
through the real httpx transport and real sockets; a loopback server records whether anything arrived."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session

from monitor.models import Project
from monitor.settings import Settings
from monitor.webhooks.delivery import send_http
from monitor.webhooks.endpoints import EndpointSpec, create_endpoint
from monitor.webhooks.pinning import PinnedTransport, is_public
from tests.support.webhook_receiver import Answer, Receiver
from tests.webhooks.test_delivery import emit

PUBLIC = "93.184.215.14"
UNROUTABLE = "192.0.2.1"  # TEST-NET-1: connecting there would hang until the timeout
_real_getaddrinfo = socket.getaddrinfo


class Rebinder:
    """Answers `answers[i]` to the i-th lookup of `name` (the last answer thereafter); other names resolve
    normally (Postgres, the receiver's 127.0.0.1 literal)."""

    def __init__(self, name: str, *answers: str) -> None:
        self.name, self.answers, self.lookups = name, list(answers), 0

    def __call__(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        if host != self.name:
            return _real_getaddrinfo(host, port, *args, **kwargs)
        answer = self.answers[min(self.lookups, len(self.answers) - 1)]
        self.lookups += 1
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answer, int(port or 0)))]


@pytest.fixture
def rebinder(monkeypatch: pytest.MonkeyPatch) -> Rebinder:
    stub = Rebinder("hooks.rebind.test", PUBLIC)
    monkeypatch.setattr(socket, "getaddrinfo", stub)
    return stub


def test_a_name_that_rebinds_to_loopback_is_never_connected(
    session: Session, project: Project, receiver: Receiver, local_hooks: Settings, rebinder: Rebinder,
) -> None:
    strict = local_hooks.model_copy(update={"webhook_allow_private": False, "webhook_timeout_seconds": 2.0})
    url = f"http://{rebinder.name}:{receiver.port}/hook"
    # The endpoint is created while the name answers a public address (the create-time check passes).
    create_endpoint(session, project.id, EndpointSpec(name="rebind", url=url), settings=strict)
    session.commit()
    # From now on: public to the first lookup (the delivery-time check), 127.0.0.1 to every later one.
    rebinder.answers, rebinder.lookups = [PUBLIC, "127.0.0.1"], 0
    receiver.answer(Answer(500, body=b"internal admin panel"))
    d = emit(session, project, strict)
    assert rebinder.lookups == 2  # checked once, then resolved once more by the transport (which refused)
    assert receiver.count() == 0, "the webhook reached the loopback server"
    assert d.last_status_code is None
    assert d.last_error is not None and d.last_error.startswith("not sent:")
    assert "loopback" in d.last_error and "internal admin panel" not in d.last_error


def test_the_transport_judges_the_address_it_connects_to(receiver: Receiver, rebinder: Rebinder) -> None:
    rebinder.answers = ["127.0.0.1"]
    with httpx.Client(transport=PinnedTransport(allow_private=False), timeout=2.0) as client, \
            pytest.raises(httpx.ConnectError, match="loopback"):
        client.post(f"http://{rebinder.name}:{receiver.port}/hook", content=b"{}")
    assert receiver.count() == 0
    # an address literal is judged too
    with httpx.Client(transport=PinnedTransport(allow_private=False), timeout=2.0) as client, \
            pytest.raises(httpx.ConnectError, match="loopback"):
        client.post(receiver.url, content=b"{}")
    assert receiver.count() == 0


def test_the_connection_goes_to_the_one_address_resolved_and_keeps_the_host_name(
    receiver: Receiver, rebinder: Rebinder,
) -> None:
    # Allowed private targets (local development) are still pinned: one lookup, and that answer is used,
    # even though a second lookup would give an address that hangs.
    rebinder.answers = ["127.0.0.1", UNROUTABLE]
    receiver.answer(Answer(503, body=b"secret from an internal service"))
    result = send_http(f"http://{rebinder.name}:{receiver.port}/hook", b"{}", {}, 2.0, allow_private=True)
    assert rebinder.lookups == 1
    assert result.status_code == 503
    assert receiver.requests[0].headers["host"] == f"{rebinder.name}:{receiver.port}"
    # the reply came from a private address: its text is not kept for API readers
    assert result.error == "HTTP 503"


def test_public_is_judged_by_the_address_policy() -> None:
    assert is_public(PUBLIC) and not is_public("127.0.0.1") and not is_public("10.0.0.1") and not is_public(None)


# --- TLS: the certificate is checked against the name (SNI), not the pinned address ------------------------

def _certificates(tmp: Path, name: str) -> tuple[Path, Path, bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "driftloop test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
          .not_valid_after(now + dt.timedelta(hours=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    cert_file, key_file = tmp / "leaf.pem", tmp / "leaf.key"
    cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file, ca.public_bytes(serialization.Encoding.PEM)


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[int, list[str | None], bytes]]:
    cert, key, ca = _certificates(tmp_path, "hooks.rebind.test")
    seen: list[str | None] = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda _sock, server_name, _ctx: seen.append(server_name)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", "0")))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1]), seen, ca
    finally:
        server.shutdown()
        server.server_close()


def test_tls_verifies_the_name_and_sends_it_as_sni(
    tls_server: tuple[int, list[str | None], bytes], rebinder: Rebinder,
) -> None:
    port, seen, ca = tls_server
    rebinder.answers = ["127.0.0.1"]
    trust = ssl.create_default_context(cadata=ca.decode())
    with httpx.Client(transport=PinnedTransport(allow_private=True, verify=trust), timeout=2.0) as client:
        assert client.post(f"https://{rebinder.name}:{port}/hook", content=b"{}").status_code == 204
    assert seen == [rebinder.name]
