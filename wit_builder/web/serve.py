"""Serve a demo web over HTTP on loopback only, many connections at once (img2dataset opens dozens).

GET and HEAD; Content-Type from the extension and an exact Content-Length; 404 for what is not published; the query
string is ignored (as static servers do, so `x.png?w=512` is the same image); paths cannot escape the folder.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import mimetypes
import os
import posixpath
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from wit_builder.errors import WitError

CHUNK = 1 << 16


class _Handler(BaseHTTPRequestHandler):
    server_version = "wit-web/1"
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002 - quiet: img2dataset makes thousands of requests
        pass

    def _resolve(self) -> Path | None:
        path = unquote(urlsplit(self.path).path)
        clean = posixpath.normpath("/" + path).lstrip("/")
        if clean.startswith("..") or "\x00" in clean:
            return None
        root: Path = self.server.root  # type: ignore[attr-defined]
        target = (root / clean).resolve()
        if root not in target.parents or not target.is_file():
            return None
        return target

    def _send(self, head_only: bool) -> None:
        target = self._resolve()
        try:
            fh = open(target, "rb") if target is not None else None
        except OSError:  # unreadable: as good as absent to a client
            fh = None
        if fh is None:
            body = b"not found\n"
            self.send_response(404)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head_only:
                self.wfile.write(body)
            return
        with fh:
            ctype = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
            size = os.fstat(fh.fileno()).st_size
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(size))
            self.end_headers()
            if head_only:
                return
            while chunk := fh.read(CHUNK):
                self.wfile.write(chunk)

    def do_GET(self):  # noqa: N802 - http.server's naming
        self._send(head_only=False)

    def do_HEAD(self):  # noqa: N802
        self._send(head_only=True)


class WebServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    allow_reuse_address = True

    def handle_error(self, request, client_address) -> None:
        """A client that hangs up (downloaders drop connections all the time) is not an error; anything else is one
        line on stderr, never a traceback on the user's terminal."""
        err = sys.exc_info()[1]
        if isinstance(err, (ConnectionError, TimeoutError)):
            return
        print(f"wit-web: request from {client_address[0]} failed: {type(err).__name__}: {err}", file=sys.stderr)


def _check_loopback(host: str) -> None:
    try:
        ok = ipaddress.ip_address(host).is_loopback
    except ValueError:
        ok = host == "localhost"
    if not ok:
        raise WitError(f"the demo web is served on loopback only: use --host 127.0.0.1 (got {host})")


def make_server(root: str | Path, host: str = "127.0.0.1", port: int = 8777) -> WebServer:
    """A bound, not yet running server for the folder; WitError when the folder is missing or the port is taken."""
    _check_loopback(host)
    root = Path(root).resolve()
    if not root.is_dir():
        raise WitError(f"{root} is not a folder: build the web first with `wit web build --out {root}`")
    try:
        server = WebServer((host, port), _Handler)
    except OSError as err:
        if err.errno == errno.EADDRINUSE:
            raise WitError(f"port {port} is in use on {host}: pass --port, or stop what listens there") from err
        raise WitError(f"cannot listen on {host}:{port}: {err.strerror}") from err
    server.root = root  # type: ignore[attr-defined]
    return server


@contextlib.contextmanager
def serving(root: str | Path, host: str = "127.0.0.1", port: int = 0):
    """Serve `root` in a background thread for the duration of the block; yields the base URL (port 0 = any free)."""
    server = make_server(root, host, port)
    thread = threading.Thread(target=server.serve_forever, name="wit-web", daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def port_of(base_url: str) -> int:
    return urlsplit(base_url).port or 80
