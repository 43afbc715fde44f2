"""Where the downloader may connect: http(s) only, public addresses only, checked on the resolved address at connect
time and again for every redirect, unless a destination is allowed by name (`--allow-hosts HOST[:PORT],...`).

img2dataset fetches with a bare `urllib.request.urlopen`, which follows redirects anywhere, reads `file://` URLs and
dials private and loopback addresses (STACK.md §3). `SafeOpener` replaces that call:

- the URL's scheme must be http or https (a redirect too: urllib's own handler would also follow ftp);
- the host is resolved once with getaddrinfo; if ANY address is private, loopback, link-local, multicast, reserved,
  unspecified or otherwise not global (IPv4-mapped IPv6 is judged by its IPv4 address), the fetch is refused before
  a socket is opened;
- the connection then goes to the very addresses that were checked (no second lookup, so a DNS answer that changes
  between check and connect, "DNS rebinding", cannot slip a private address in); HTTPS still verifies the
  certificate against the host name;
- environment proxies are ignored (a proxy would make the address check meaningless).

Refusals raise `Refused`, whose message is what img2dataset records as the row's `error_message`, e.g.
"refused: 10.0.0.5 is a private address (allow with --allow-hosts)".
"""

from __future__ import annotations

import functools
import http.client
import ipaddress
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

ALLOWED_SCHEMES = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443}


class Refused(OSError):
    """A destination the policy does not allow; the message is the user-facing reason."""


def address_problem(address: str) -> str | None:
    """Why an IP address is not a public destination ('private', 'loopback', ...), or None when it is global."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id ("fe80::1%eth0")
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for label, flag in (
        ("an unspecified", ip.is_unspecified),
        ("a loopback", ip.is_loopback),
        ("a link-local", ip.is_link_local),
        ("a multicast", ip.is_multicast),
        ("a reserved", ip.is_reserved),
        ("a private", ip.is_private),
    ):
        if flag:
            return f"{label} address"
    if not ip.is_global:
        return "a non-public address"
    return None


def parse_allow_hosts(spec: str | tuple[str, ...] | list[str] | None) -> frozenset[tuple[str, int | None]]:
    """'127.0.0.1:8777,localhost,[::1]:80' -> {(host, port or None)}; raises ValueError on a malformed entry."""
    if not spec:
        return frozenset()
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    allowed: set[tuple[str, int | None]] = set()
    for raw in items:
        item = raw.strip()
        if not item:
            continue
        parsed = urllib.parse.urlsplit("//" + item)
        try:
            port = parsed.port
        except ValueError as err:
            raise ValueError(f"bad --allow-hosts entry {item!r}: {err}") from err
        if not parsed.hostname or parsed.path or parsed.username:
            raise ValueError(f"bad --allow-hosts entry {item!r}: expected HOST or HOST:PORT")
        allowed.add((parsed.hostname.lower(), port))
    return frozenset(allowed)


@dataclass(frozen=True)
class AddressPolicy:
    """The destinations a fetch may reach. `allow` holds (host, port|None) pairs matched against the URL's host as
    written (a name or an IP literal) and its port (None = any port)."""

    allow: frozenset[tuple[str, int | None]] = frozenset()

    @classmethod
    def from_allow_hosts(cls, spec) -> "AddressPolicy":
        return cls(parse_allow_hosts(spec))

    def is_allowed(self, host: str, port: int) -> bool:
        host = host.lower()
        return (host, port) in self.allow or (host, None) in self.allow

    def check_url(self, url: str) -> tuple[str, int]:
        """Check scheme and host syntax; returns (host, port). Raises Refused."""
        parts = urllib.parse.urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ALLOWED_SCHEMES:
            raise Refused(f"refused: scheme {scheme or 'none'!r} is not http or https ({_short(url)})")
        try:
            port = parts.port or DEFAULT_PORTS[scheme]
        except ValueError as err:
            raise Refused(f"refused: bad port in {_short(url)}") from err
        if not parts.hostname:
            raise Refused(f"refused: no host in {_short(url)}")
        return parts.hostname, port

    def resolve(self, host: str, port: int) -> list[tuple]:
        """getaddrinfo results for (host, port) after checking every address; [] means 'allowed by name: connect
        normally'. Raises Refused (before any socket is opened) or OSError when the name does not resolve."""
        if self.is_allowed(host, port):
            return []
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        for *_, sockaddr in infos:
            problem = address_problem(sockaddr[0])
            if problem:
                shown = host if host == sockaddr[0] else f"{host} ({sockaddr[0]})"
                raise Refused(f"refused: {shown} is {problem} (allow with --allow-hosts)")
        return infos

    def check(self, url: str) -> list[tuple]:
        """Full pre-connect check of a URL: scheme, host, every resolved address."""
        return self.resolve(*self.check_url(url))


def _short(url: str, limit: int = 120) -> str:
    return url if len(url) <= limit else url[:limit] + "..."


def _pinned_connection(policy: AddressPolicy, address: tuple[str, int], timeout=socket._GLOBAL_DEFAULT_TIMEOUT,  # noqa: SLF001
                       source_address=None):
    """socket.create_connection's signature, but only to addresses that passed the policy (the very addresses
    resolved during the check)."""
    host, port = address
    infos = policy.resolve(host, port)
    if not infos:  # allowed by name
        return socket.create_connection((host, port), timeout, source_address)
    last_error: OSError | None = None
    for family, socktype, proto, _, sockaddr in infos:
        sock = socket.socket(family, socktype, proto)
        try:
            if timeout is not socket._GLOBAL_DEFAULT_TIMEOUT:  # noqa: SLF001 - the stdlib's own sentinel
                sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect(sockaddr)
            return sock
        except OSError as err:
            last_error = err
            sock.close()
    raise last_error or OSError(f"cannot connect to {host}:{port}")


class _PinnedHTTPConnection(http.client.HTTPConnection):
    policy: AddressPolicy

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # HTTPConnection.__init__ sets this instance attribute to socket.create_connection; connect() calls it
        self._create_connection = functools.partial(_pinned_connection, self.policy)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    policy: AddressPolicy

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # connect() dials through this, then wraps the socket in TLS with SNI and certificate check = host name
        self._create_connection = functools.partial(_pinned_connection, self.policy)


class _SafeHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, policy: AddressPolicy):
        super().__init__()
        self._connection = type("PolicyHTTPConnection", (_PinnedHTTPConnection,), {"policy": policy})

    def http_open(self, req):
        return self.do_open(self._connection, req)


@functools.lru_cache(maxsize=1)
def default_tls_context() -> ssl.SSLContext:
    """One verifying TLS context per process: loading the CA store costs 15-400 ms of CPU with OpenSSL 3, far too
    much to pay per opener (img2dataset's own urlopen pays it once per racing thread)."""
    return ssl.create_default_context()


class _SafeHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, policy: AddressPolicy, context: ssl.SSLContext | None = None):
        super().__init__(context=context or default_tls_context())
        self._connection = type("PolicyHTTPSConnection", (_PinnedHTTPSConnection,), {"policy": policy})

    def https_open(self, req):
        return self.do_open(self._connection, req, context=self._context)


class _SafeRedirectHandler(urllib.request.HTTPRedirectHandler):
    """Checks every redirect target (scheme and resolved addresses) before following it."""

    max_redirections = 5

    def __init__(self, policy: AddressPolicy):
        super().__init__()
        self.policy = policy

    def http_error_302(self, req, fp, code, msg, headers):
        location = headers.get("location") or headers.get("uri")
        if location:
            newurl = urllib.parse.urljoin(req.full_url, location)
            try:
                self.policy.check(newurl)
            except Refused as err:
                fp.close()
                raise Refused(f"redirect to {_short(newurl)} {err}") from None
        return super().http_error_302(req, fp, code, msg, headers)

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302


def build_opener(policy: AddressPolicy) -> urllib.request.OpenerDirector:
    """An opener with only http(s), the policy's pinned connections and checked redirects: no file://, ftp://,
    data: or proxy handlers."""
    opener = urllib.request.OpenerDirector()
    for handler in (
        urllib.request.UnknownHandler(),
        _SafeHTTPHandler(policy),
        _SafeHTTPSHandler(policy),
        urllib.request.HTTPDefaultErrorHandler(),
        _SafeRedirectHandler(policy),
        urllib.request.HTTPErrorProcessor(),
    ):
        opener.add_handler(handler)
    return opener


class SafeOpener:
    """`open(url, headers, timeout)` under a policy; refusals raise Refused with a clean message (not wrapped in
    URLError), other failures raise what urllib raises."""

    def __init__(self, policy: AddressPolicy):
        self.policy = policy
        self._opener = build_opener(policy)

    def open(self, url: str, headers: dict[str, str] | None = None, timeout: float | None = None):
        self.policy.check_url(url)  # scheme first: never hand file:// or ftp:// to urllib
        request = urllib.request.Request(url, headers=headers or {})
        try:
            return self._opener.open(request, timeout=timeout)
        except urllib.error.URLError as err:
            if isinstance(err.reason, Refused):
                raise err.reason from None
            raise
