"""Webhook URL safety: only http(s), no credentials in the URL, and no private, loopback, link-local,
multicast or reserved targets unless the operator allows them (`DRIFTLOOP_WEBHOOK_ALLOW_PRIVATE`).

A webhook URL is chosen by a user, and the request is sent from inside the operator's network, so without
this check an endpoint could read cloud metadata (169.254.169.254) or poke internal services (SSRF). The
check runs when an endpoint is created or changed AND before every delivery, because DNS can change.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

MAX_URL_CHARS = 2048
Resolver = Callable[[str, int], Sequence[str]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeURLError(ValueError):
    """The URL is malformed, uses another scheme, or points at an address that is not allowed."""


def system_resolver(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for `host`."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


def _unwrap(ip: IPAddress) -> IPAddress:
    # ::ffff:127.0.0.1 and 64:ff9b::7f00:1 style wrappers must be judged by the IPv4 address they carry.
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip.sixtofour is not None:
            return ip.sixtofour
    return ip


def address_problem(address: str) -> str | None:
    """Why this address may not be a webhook target, or None if it is a public unicast address."""
    try:
        ip = _unwrap(ipaddress.ip_address(address.split("%", 1)[0]))
    except ValueError:
        return f"{address!r} is not an IP address"
    for attr, label in (("is_loopback", "loopback"), ("is_link_local", "link-local"), ("is_multicast", "multicast"),
                        ("is_unspecified", "unspecified"), ("is_private", "private"), ("is_reserved", "reserved")):
        if getattr(ip, attr):
            return f"{ip} is a {label} address"
    if not ip.is_global:  # e.g. 100.64.0.0/10 (carrier-grade NAT) and other special-purpose ranges
        return f"{ip} is not a public address"
    return None


def check_url(url: str, *, allow_private: bool, resolve: Resolver = system_resolver) -> str:
    """The URL, stripped, if it may receive webhooks; raises UnsafeURLError naming the reason."""
    url = url.strip()
    if not url or len(url) > MAX_URL_CHARS:
        raise UnsafeURLError(f"url must be 1-{MAX_URL_CHARS} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeURLError(f"url is malformed: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise UnsafeURLError(f"url scheme must be http or https, not {parts.scheme or 'missing'!r}")
    if parts.username is not None or parts.password is not None:
        raise UnsafeURLError("url must not contain credentials; the webhook signature authenticates requests")
    host = parts.hostname
    if not host:
        raise UnsafeURLError("url has no host")
    if any(c.isspace() for c in url):
        raise UnsafeURLError("url must not contain whitespace")
    if allow_private:
        return url
    port = port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = [str(ipaddress.ip_address(host))]
    except ValueError:
        try:
            addresses = list(resolve(host, port))
        except (OSError, UnicodeError) as exc:
            raise UnsafeURLError(f"cannot resolve host {host!r}: {exc}") from None
    if not addresses:
        raise UnsafeURLError(f"host {host!r} resolves to no address")
    for address in addresses:
        problem = address_problem(address)
        if problem:
            raise UnsafeURLError(
                f"host {host!r} resolves to a disallowed address ({problem}); private, loopback and link-local "
                "targets need DRIFTLOOP_WEBHOOK_ALLOW_PRIVATE=true"
            )
    return url
