"""Where the downloader may connect: http(s) only, public addresses only, checked on the resolved address at connect
time and again for every redirect, unless a destination is allowed by name (`--allow-hosts HOST[:PORT],...`).

img2dataset fetches with a bare `urllib.request.urlopen`, which follows redirects anywhere, reads `file://` URLs and
dials private and loopback addresses, so a URL list could make a download worker fetch the cloud metadata service
(169.254.169.254) or an internal host. `SafeOpener` replaces that call:

- the URL's scheme must be http or https (a redirect too: urllib's own handler would also follow ftp);
- the host is resolved once with getaddrinfo; if ANY address is private, loopback, link-local, multicast, reserved,
  unspecified or otherwise not global (IPv4-mapped IPv6 is judged by its IPv4 address), the fetch is refused before
  a socket is opened;
- the connection then goes to the very addresses that were checked (no second lookup, so a DNS answer that changes
  between check and connect, "DNS rebinding", cannot slip a private address in); HTTPS still verifies the
  certificate against the host name;
- environment proxies are ignored (a proxy would make the address check meaningless);
- a `Deadline` bounds the whole request, from the first connect to the last byte of the body, over every redirect
  hop and the TLS handshake: a socket timeout alone bounds only each read, so a server that drips a byte per second
  would hold a download thread for ever. At the deadline a watchdog thread shuts the request's sockets down, which
  ends any blocked read at once; connects wait at most the time left. The DNS lookup is counted but cannot be
  interrupted (the system resolver bounds it).

Refusals raise `Refused`, whose message is what img2dataset records as the row's `error_message`, e.g.
"refused: 10.0.0.5 is a private address (allow with --allow-hosts)"; a missed deadline raises `DeadlineExceeded`:
"deadline exceeded: no complete response within 30 s" (the prefix is `DEADLINE_ERROR`).
"""

from __future__ import annotations

import functools
import heapq
import http.client
import ipaddress
import itertools
import os
import socket
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

ALLOWED_SCHEMES = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443}
DEADLINE_ERROR = "deadline exceeded"  # how every deadline miss's message starts (status.py maps it to a reason)


class Refused(OSError):
    """A destination the policy does not allow; the message is the user-facing reason."""


class DeadlineExceeded(OSError):
    """No complete response within the request's deadline."""

    def __init__(self, seconds: float):
        super().__init__(f"{DEADLINE_ERROR}: no complete response within {seconds:g} s")


class Deadline:
    """A time limit over one whole request: `seconds` from now, for every connect, hop, handshake and read. At expiry
    the watchdog shuts down the sockets registered with `watch`, so a blocked read returns at once (urllib then fails
    or, for a body without Content-Length, returns it cut short: check `expired` afterwards). Use as a context manager
    (or call `close`) so that the watchdog forgets it."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self.expired = False
        self.done = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        _WATCHDOG.add(self)

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def passed(self) -> bool:
        return self.expired or self.remaining() <= 0

    def error(self) -> DeadlineExceeded:
        return DeadlineExceeded(self.seconds)

    def watch(self, sock: socket.socket) -> None:
        """Shut `sock` down at the deadline (at once when it has passed)."""
        with self._lock:
            if not self.expired and not self.done:
                self._sockets.append(sock)
                return
        _shut(sock)

    def expire(self) -> None:
        with self._lock:
            if self.done:
                return
            self.expired = True
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            _shut(sock)

    def close(self) -> None:
        with self._lock:
            self.done = True
            self._sockets = []

    def __enter__(self) -> Deadline:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _shut(sock: socket.socket) -> None:
    try:  # socket.socket's own shutdown, also for an SSLSocket: only the file descriptor, not the TLS state
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:  # already closed or never connected
        pass


class _Watchdog:
    """One daemon thread per process that expires deadlines in time order; it ends after 5 s without any."""

    IDLE_EXIT_S = 5.0

    def __init__(self):
        self._heap: list[tuple[float, int, Deadline]] = []
        self._count = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def add(self, deadline: Deadline) -> None:
        with self._cond:
            heapq.heappush(self._heap, (deadline.at, next(self._count), deadline))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="wit-deadline-watchdog", daemon=True)
                self._thread.start()
            elif self._heap[0][2] is deadline:
                self._cond.notify()

    def _run(self) -> None:
        with self._cond:
            while True:
                while self._heap and self._heap[0][2].done:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cond.wait(self.IDLE_EXIT_S)
                    if not self._heap:
                        self._thread = None
                        return
                    continue
                wait = self._heap[0][0] - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._heap)[2].expire()

    def _after_fork(self) -> None:  # a forked child has no watchdog thread and maybe a held lock
        self.__init__()


_WATCHDOG = _Watchdog()
os.register_at_fork(after_in_child=_WATCHDOG._after_fork)  # noqa: SLF001


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
    def from_allow_hosts(cls, spec) -> AddressPolicy:
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


def _pinned_connection(
    policy: AddressPolicy,
    address: tuple[str, int],
    timeout=socket._GLOBAL_DEFAULT_TIMEOUT,  # noqa: SLF001
    source_address=None,
    deadline: Deadline | None = None,
):
    """socket.create_connection's signature, but only to addresses that passed the policy (the very addresses
    resolved during the check); with a deadline, connecting waits at most the time left and the socket is watched."""
    sock = _connect(policy, address, timeout, source_address, deadline)
    if deadline is not None:
        deadline.watch(sock)
    return sock


def _connect(policy, address, timeout, source_address, deadline):
    host, port = address
    infos = policy.resolve(host, port)
    if deadline is not None:
        if deadline.passed():
            raise deadline.error()
        if timeout is socket._GLOBAL_DEFAULT_TIMEOUT or timeout is None:  # noqa: SLF001
            timeout = deadline.remaining()
        timeout = min(timeout, deadline.remaining())
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

    def __init__(self, *args, deadline: Deadline | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        # HTTPConnection.__init__ sets this instance attribute to socket.create_connection; connect() calls it
        self._create_connection = functools.partial(_pinned_connection, self.policy, deadline=deadline)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    policy: AddressPolicy

    def __init__(self, *args, deadline: Deadline | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.deadline = deadline
        self._create_connection = functools.partial(_pinned_connection, self.policy, deadline=deadline)

    def connect(self):
        """HTTPSConnection.connect without proxy tunnels, with the TLS socket watched before its handshake (so the
        deadline bounds the handshake too); SNI and the certificate check use the host name."""
        http.client.HTTPConnection.connect(self)
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self.host, do_handshake_on_connect=False)
        if self.deadline is not None:
            self.deadline.watch(self.sock)
        self.sock.do_handshake()


class _SafeHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, policy: AddressPolicy):
        super().__init__()
        self._connection = type("PolicyHTTPConnection", (_PinnedHTTPConnection,), {"policy": policy})

    def http_open(self, req):
        return self.do_open(self._connection, req, deadline=getattr(req, "deadline", None))


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
        return self.do_open(self._connection, req, context=self._context, deadline=getattr(req, "deadline", None))


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

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        """The next hop carries the same deadline; none is started once it has passed."""
        deadline = getattr(req, "deadline", None)
        if deadline is not None and deadline.passed():
            fp.close()
            raise deadline.error()
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None:
            new.deadline = deadline
        return new


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
    """`open(url, headers, timeout, deadline)` under a policy; refusals raise Refused with a clean message (not
    wrapped in URLError), other failures raise what urllib raises. `fetch` reads a whole body under a deadline."""

    def __init__(self, policy: AddressPolicy):
        self.policy = policy
        self._opener = build_opener(policy)

    def open(
        self,
        url: str,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
        deadline: Deadline | None = None,
    ):
        """The response; `timeout` bounds each connect and read, `deadline` the whole request (its redirects too)."""
        self.policy.check_url(url)  # scheme first: never hand file:// or ftp:// to urllib
        request = urllib.request.Request(url, headers=headers or {})
        request.deadline = deadline
        try:
            return self._opener.open(request, timeout=timeout)
        except urllib.error.URLError as err:
            if isinstance(err.reason, (Refused, DeadlineExceeded)):
                raise err.reason from None
            raise

    def fetch(
        self,
        url: str,
        deadline: Deadline,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
        max_bytes: int = -1,
        check=None,
    ) -> bytes:
        """The body of `url` (at most max_bytes + 1 bytes when max_bytes >= 0), complete within `deadline`, else
        DeadlineExceeded, whatever else failed on the way. `check(response.headers)` may raise before the body is
        read."""
        try:
            with self.open(url, headers, timeout, deadline) as response:
                if check is not None:
                    check(response.headers)
                body = response.read(max_bytes + 1 if max_bytes >= 0 else None)
        except Exception as err:
            if deadline.passed() and not isinstance(err, Refused):
                raise deadline.error() from err
            raise
        if deadline.expired:  # the watchdog cut the body short (no Content-Length: it looked complete)
            raise deadline.error()
        return body
