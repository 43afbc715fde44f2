"""The address policy refuses non-http(s) schemes and non-public addresses before any connect, also on redirects;
allowed hosts are fetched. No packet leaves the machine: refused targets are never dialled (audit-hook checked)."""

from __future__ import annotations

import pytest

from wit_builder.download.policy import AddressPolicy, Refused, SafeOpener, address_problem, parse_allow_hosts


@pytest.mark.parametrize(
    "address, problem",
    [
        ("10.0.0.5", "a private address"),
        ("192.168.1.1", "a private address"),
        ("172.16.3.4", "a private address"),
        ("127.0.0.1", "a loopback address"),
        ("169.254.169.254", "a link-local address"),
        ("0.0.0.0", "an unspecified address"),
        ("224.0.0.1", "a multicast address"),
        ("240.0.0.1", "a reserved address"),
        ("100.64.0.1", "a non-public address"),
        ("::1", "a loopback address"),
        ("fe80::1", "a link-local address"),
        ("fc00::1", "a private address"),
        ("::ffff:10.0.0.1", "a private address"),
        ("::ffff:127.0.0.1", "a loopback address"),
        ("::ffff:169.254.169.254", "a link-local address"),
        ("::", "an unspecified address"),
        ("ff02::1", "a multicast address"),
        ("93.184.216.34", None),
        ("2606:4700::6810:84e5", None),
    ],
)
def test_address_problem(address, problem):
    assert address_problem(address) == problem


def test_parse_allow_hosts():
    assert parse_allow_hosts("127.0.0.1:8777, localhost,[::1]:80") == {
        ("127.0.0.1", 8777),
        ("localhost", None),
        ("::1", 80),
    }
    assert parse_allow_hosts(None) == frozenset()
    with pytest.raises(ValueError, match="bad --allow-hosts entry"):
        parse_allow_hosts("127.0.0.1:notaport")
    with pytest.raises(ValueError, match="bad --allow-hosts entry"):
        parse_allow_hosts("host/path")


@pytest.mark.parametrize(
    "url, message",
    [
        ("http://10.0.0.1/a.png", "refused: 10.0.0.1 is a private address (allow with --allow-hosts)"),
        ("http://192.168.1.1:8080/a.png", "refused: 192.168.1.1 is a private address (allow with --allow-hosts)"),
        ("http://169.254.169.254/latest/meta-data/", "refused: 169.254.169.254 is a link-local address"),
        ("https://[::ffff:10.0.0.1]/a.png", "refused: ::ffff:10.0.0.1 is a private address"),
        ("http://[fe80::1]/a.png", "refused: fe80::1 is a link-local address"),
        ("http://0.0.0.0/a.png", "refused: 0.0.0.0 is an unspecified address"),
        ("http://localhost/a.png", "refused: localhost (127.0.0.1) is a loopback address"),
        ("file:///etc/hostname", "refused: scheme 'file' is not http or https"),
        ("ftp://example.org/a.png", "refused: scheme 'ftp' is not http or https"),
        ("data:image/png;base64,AAAA", "refused: scheme 'data' is not http or https"),
        ("not a url", "refused: scheme 'none' is not http or https"),
        ("http:///a.png", "refused: no host"),
    ],
)
def test_refused_before_any_connect(url, message, connects):
    opener = SafeOpener(AddressPolicy())
    with pytest.raises(Refused) as caught:
        opener.open(url, timeout=1)
    assert str(caught.value).startswith(message)
    assert connects == []


def test_loopback_refused_without_allow_and_server_sees_nothing(image_web, connects):
    image_web.clear()
    with pytest.raises(Refused, match=r"^refused: 127\.0\.0\.1 is a loopback address"):
        SafeOpener(AddressPolicy()).open(image_web.url("/img/300x200-1.png"), timeout=2)
    assert connects == []
    assert image_web.requests == []


def test_allowed_host_is_fetched(image_web, connects):
    policy = AddressPolicy.from_allow_hosts(image_web.allow)
    with SafeOpener(policy).open(image_web.url("/img/300x200-1.png"), timeout=5) as response:
        assert response.read(8) == b"\x89PNG\r\n\x1a\n"
    assert connects == [("127.0.0.1", image_web.port)]


def test_allow_list_is_per_port(image_web, connects):
    other_port = AddressPolicy.from_allow_hosts(f"127.0.0.1:{image_web.port + 1}")
    with pytest.raises(Refused, match="loopback"):
        SafeOpener(other_port).open(image_web.url("/img/300x200-1.png"), timeout=2)
    any_port = AddressPolicy.from_allow_hosts("127.0.0.1")
    with SafeOpener(any_port).open(image_web.url("/img/300x200-1.png"), timeout=5) as response:
        assert response.status == 200
    assert connects == [("127.0.0.1", image_web.port)]


def test_allowed_redirect_is_followed(image_web, connects):
    policy = AddressPolicy.from_allow_hosts(image_web.allow)
    with SafeOpener(policy).open(image_web.url("/redirect-ok"), timeout=5) as response:
        assert response.url.endswith("/img/500x400-9.jpg")
        assert response.read(2) == b"\xff\xd8"
    assert connects == [("127.0.0.1", image_web.port)] * 2


@pytest.mark.parametrize(
    "route, message",
    [
        ("/redirect-private", "redirect to http://10.0.0.1/x.png refused: 10.0.0.1 is a private address"),
        ("/redirect-file", "redirect to file:///etc/hostname refused: scheme 'file' is not http or https"),
        ("/redirect-loopback", "redirect to http://127.0.0.1:9/x.png refused: 127.0.0.1 is a loopback address"),
    ],
)
def test_redirect_to_refused_target(image_web, connects, route, message):
    policy = AddressPolicy.from_allow_hosts(image_web.allow)
    with pytest.raises(Refused) as caught:
        SafeOpener(policy).open(image_web.url(route), timeout=5)
    assert str(caught.value).startswith(message)
    assert connects == [("127.0.0.1", image_web.port)]  # only the allowed server was dialled


def test_connection_goes_to_the_checked_address(image_web, connects):
    """A name allowed by address only: 'localhost' is resolved, judged and refused; never dialled."""
    policy = AddressPolicy.from_allow_hosts(image_web.allow)  # allows 127.0.0.1:PORT, not localhost:PORT
    with pytest.raises(Refused, match=r"localhost \(127\.0\.0\.1\) is a loopback address"):
        SafeOpener(policy).open(f"http://localhost:{image_web.port}/img/300x200-1.png", timeout=2)
    assert connects == []
