"""Webhook connections pinned to the address that was checked (no DNS rebinding).

`check_url` resolves a host and judges its addresses, but if the HTTP client then resolved the name again
to connect, a hostile name server could answer a public address to the check and 127.0.0.1 to the connect
(DNS rebinding). Here the name is resolved exactly once per connection, inside the transport: every
address of that one answer is judged by the same policy as `check_url` (`address_problem`), and the socket
is opened to one of those checked addresses. The URL keeps its host name, so the Host header and the TLS
SNI / certificate check still use the name, not the address.

The transport is `httpx.HTTPTransport` with its connection pool swapped for an httpcore pool whose network
backend does the resolving and checking. `_pool` is a private attribute of httpx: `PinnedTransport`
asserts what it replaces, so an httpx upgrade that renames it fails loudly in the tests instead of silently
connecting unpinned.
"""

from __future__ import annotations

import functools
import ipaddress
import ssl
from collections.abc import Iterable

import httpcore
import httpx
from httpcore._backends.base import SOCKET_OPTION
from httpcore._backends.sync import SyncBackend

from monitor.webhooks.urls import Resolver, address_problem, system_resolver


class PinnedAddressError(httpcore.ConnectError):
    """The host resolved to an address that is not allowed; nothing was connected."""


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    return True


class PinnedBackend(SyncBackend):
    """Resolves once, judges every address of that answer, connects to a judged address.

    `connected` lists the addresses this backend opened sockets to (the last one is the peer of the
    latest connection), so a caller can tell whether a reply came from a private address.
    """

    def __init__(self, *, allow_private: bool, resolve: Resolver = system_resolver) -> None:
        self.allow_private = allow_private
        self.resolve = resolve
        self.connected: list[str] = []

    def addresses(self, host: str, port: int) -> list[str]:
        host = host.strip("[]")
        if _is_ip(host):
            addresses = [host]
        else:
            try:
                addresses = list(self.resolve(host, port))
            except (OSError, UnicodeError) as exc:
                raise httpcore.ConnectError(f"cannot resolve host {host!r}: {exc}") from None
        if not addresses:
            raise httpcore.ConnectError(f"host {host!r} resolves to no address")
        if not self.allow_private:
            for address in addresses:
                problem = address_problem(address)
                if problem:
                    raise PinnedAddressError(
                        f"host {host!r} resolves to a disallowed address at connect time ({problem}); "
                        "private, loopback and link-local targets need DRIFTLOOP_WEBHOOK_ALLOW_PRIVATE=true")
        return addresses

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[SOCKET_OPTION] | None = None) -> httpcore.NetworkStream:
        last: Exception | None = None
        for address in self.addresses(host, port):
            try:
                # An IP literal: the standard library connects to it without another name lookup.
                stream = super().connect_tcp(address, port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:
                last = exc
                continue
            self.connected.append(address)
            return stream
        assert last is not None
        raise last


@functools.cache
def _default_context() -> ssl.SSLContext:
    """One verifying context for every delivery (loading the CA bundle costs milliseconds; contexts are
    safe to share between threads)."""
    return httpx.create_ssl_context(verify=True, trust_env=False)


class PinnedTransport(httpx.HTTPTransport):
    """An httpx transport whose every connection goes through a `PinnedBackend`. No proxies, HTTP/1.1."""

    def __init__(self, *, allow_private: bool, resolve: Resolver = system_resolver,
                 verify: ssl.SSLContext | bool = True) -> None:
        context = verify if isinstance(verify, ssl.SSLContext) else _default_context() if verify else \
            httpx.create_ssl_context(verify=False)
        super().__init__(verify=context, trust_env=False, retries=0)
        replaced = getattr(self, "_pool", None)
        # If this fails, httpx changed how HTTPTransport holds its pool: fix the swap below before upgrading.
        assert isinstance(replaced, httpcore.ConnectionPool), "httpx.HTTPTransport._pool is not a ConnectionPool"
        self.backend = PinnedBackend(allow_private=allow_private, resolve=resolve)
        self._pool = httpcore.ConnectionPool(
            ssl_context=context,
            max_connections=1, max_keepalive_connections=0, http1=True, http2=False, retries=0,
            network_backend=self.backend,
        )
        replaced.close()

    @property
    def peer(self) -> str | None:
        """The address of the latest connection, or None when none was made."""
        return self.backend.connected[-1] if self.backend.connected else None


def is_public(address: str | None) -> bool:
    return address is not None and address_problem(address) is None
