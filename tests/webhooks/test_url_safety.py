"""Webhook URL safety: schemes, credentials, and private/loopback/link-local targets (SSRF)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from monitor.webhooks.urls import UnsafeURLError, address_problem, check_url


def fixed(*addresses: str):  # type: ignore[no-untyped-def]
    def resolve(host: str, port: int) -> Sequence[str]:
        return list(addresses)
    return resolve


@pytest.mark.parametrize("address", [
    "127.0.0.1", "127.8.9.1", "::1", "10.1.2.3", "172.16.0.9", "192.168.1.1", "169.254.169.254", "fe80::1",
    "0.0.0.0", "::", "224.0.0.1", "100.64.0.1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "fc00::1", "240.0.0.1",
    "2002:7f00:1::",  # 6to4 wrapping 127.0.0.1
])
def test_non_public_addresses_are_named(address: str) -> None:
    assert address_problem(address) is not None


@pytest.mark.parametrize("address", ["93.184.215.14", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_pass(address: str) -> None:
    assert address_problem(address) is None


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8080/hook", "http://[::1]/hook", "http://169.254.169.254/latest/meta-data",
    "http://10.0.0.5/x", "https://[::ffff:192.168.0.1]/",
])
def test_literal_private_targets_are_refused(url: str) -> None:
    with pytest.raises(UnsafeURLError, match="DRIFTLOOP_WEBHOOK_ALLOW_PRIVATE"):
        check_url(url, allow_private=False, resolve=fixed("1.1.1.1"))


def test_hostnames_are_judged_by_every_address_they_resolve_to() -> None:
    assert check_url("https://hooks.example.com/x", allow_private=False, resolve=fixed("93.184.215.14")) \
        == "https://hooks.example.com/x"
    # one private answer among public ones is enough to refuse (DNS rebinding tricks rotate answers)
    with pytest.raises(UnsafeURLError, match=r"10\.0\.0\.7 is a private address"):
        check_url("https://hooks.example.com/x", allow_private=False, resolve=fixed("93.184.215.14", "10.0.0.7"))
    with pytest.raises(UnsafeURLError, match="loopback"):
        check_url("http://localhost:9000/", allow_private=False)  # the system resolver


def test_unresolvable_hosts_are_refused() -> None:
    def broken(host: str, port: int) -> Sequence[str]:
        raise OSError("Name or service not known")

    with pytest.raises(UnsafeURLError, match="cannot resolve host"):
        check_url("https://no-such-host.invalid/", allow_private=False, resolve=broken)


@pytest.mark.parametrize(("url", "fragment"), [
    ("ftp://example.com/x", "scheme must be http or https"),
    ("file:///etc/passwd", "scheme"),
    ("example.com/hook", "scheme"),
    ("https://user:pw@example.com/", "credentials"),
    ("https:///path-only", "no host"),
    ("http://example.com:99999/", "malformed"),
    ("", "1-2048"),
    ("https://example.com/" + "a" * 2100, "1-2048"),
])
def test_malformed_urls(url: str, fragment: str) -> None:
    for allow in (False, True):
        with pytest.raises(UnsafeURLError, match=fragment):
            check_url(url, allow_private=allow, resolve=fixed("1.1.1.1"))


def test_allow_private_lets_local_development_post_to_loopback() -> None:
    assert check_url("http://127.0.0.1:8080/hook", allow_private=True) == "http://127.0.0.1:8080/hook"
