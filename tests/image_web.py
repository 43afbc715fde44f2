"""A loopback image web for the download and build tests: generated images, dead links, non-images, truncated and
bomb PNGs, a slow route, flaky 503s, X-Robots-Tag, redirects (to allowed and to refused places), a route that
kills the process fetching it (to crash a download worker or a whole build on cue), and servers that never finish:
a body or headers dripping a byte per second, a connection accepted and never answered, a body that stalls half way
and a redirect chain of slow hops (DEADLINE_ROUTES). Every request is recorded, so tests can assert what reached the
server, and `held` records how long each never-finishing route was held open by its client. The session fixture
`image_web` is shared through tests/conftest.py."""

from __future__ import annotations

import io
import os
import re
import select
import signal
import struct
import sys
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

SLOW_SECONDS = 8.0  # > 2 attempts x the tests' 3 s timeout
HOLD_SECONDS = 60.0  # the never-finishing routes give up after this long (a client cut off sooner by its deadline)
HOP_SECONDS = 0.8  # each /slow-hop/N waits this long, then redirects to N-1 (N=0 serves an image)
# routes that never complete a response, each in its own way; a socket timeout longer than HOP_SECONDS cuts off
# /silent.png and /stall-body.png but none of the others (only a deadline bounds a drip or a chain of slow hops)
DEADLINE_ROUTES = ("/drip-body.png", "/drip-headers.png", "/silent.png", "/stall-body.png", "/slow-hop/4")


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def declared_png(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height grey pixels, with only a few rows of data: never allocated."""
    header = png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
    rows = zlib.compress(b"\x00" * (width + 1) * 4)
    return b"\x89PNG\r\n\x1a\n" + header + png_chunk(b"IDAT", rows) + png_chunk(b"IEND", b"")


def make_image(width: int, height: int, fmt: str, seed: int = 0) -> bytes:
    """A deterministic image with some structure (so JPEG sizes vary), in PNG, RGBA PNG or JPEG."""
    mode = "RGBA" if fmt == "rgba" else "RGB"
    image = Image.new(mode, (width, height), (seed * 37 % 256, seed * 91 % 256, 200, 255)[: len(mode)])
    for i in range(0, width, 16):
        image.paste((i % 256, 255 - i % 256, seed % 256, 128)[: len(mode)], (i, 0, min(i + 8, width), height))
    out = io.BytesIO()
    image.save(out, "JPEG" if fmt == "jpg" else "PNG", quality=90)
    return out.getvalue()


IMAGE_ROUTE = re.compile(r"^/img/(?P<w>\d+)x(?P<h>\d+)-(?P<seed>\d+)\.(?P<fmt>png|jpg|rgba)$")


KILL_ROUTE = re.compile(r"^/kill-(?P<what>worker|group)/(?P<name>[\w-]+)\.png$")


class ImageWeb:
    """Handle to the running server: base URL, recorded requests, a lock-protected flaky counter and kill budgets.

    /kill-worker/NAME.png kills (SIGKILL) the process that sent the request, /kill-group/NAME.png its whole process
    group, as long as `kills[NAME]` > 0 (each kill takes one); past the budget the route serves an image, so a
    rerun of the same pairs succeeds. `killed` lists (NAME, pid) of every kill. /call/NAME.png runs and drops
    `hooks[NAME]` (e.g. stop a storage server mid-download), then serves the same image."""

    def __init__(self, server):
        self.server = server
        self.port = server.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.allow = f"127.0.0.1:{self.port}"
        self.requests: list[str] = []
        self.flaky_seen: set[str] = set()
        self.kills: dict[str, int] = {}
        self.killed: list[tuple[str, int]] = []
        self.hooks: dict = {}
        self.held: dict[str, float] = {}  # never-finishing route -> seconds until its client went away
        self.lock = threading.Lock()

    def url(self, path: str) -> str:
        return self.base + path

    def clear(self) -> None:
        with self.lock:
            self.requests.clear()
            self.flaky_seen.clear()
            self.kills.clear()
            self.killed.clear()
            self.hooks.clear()
            self.held.clear()

    def take_kill(self, name: str) -> bool:
        with self.lock:
            if self.kills.get(name, 0) <= 0:
                return False
            self.kills[name] -= 1
            return True


def socket_owner(client_port: int, server_port: int) -> int | None:
    """The pid of the process holding the TCP socket from local port `client_port` to `server_port` (Linux /proc)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, remote = (int(f.rsplit(":", 1)[1], 16) for f in fields[1:3])
            if (local, remote) == (client_port, server_port) and fields[9] != "0":
                inodes.add(f"socket:[{fields[9]}]")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if int(pid) == os.getpid():
            continue  # the server's own end of the connection
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                    return int(pid)
            except OSError:
                continue
    return None


def _handler(web_ref: list):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def log_message(self, *args):  # quiet
            pass

        def send(self, code: int, body: bytes, ctype: str = "image/png", headers: dict | None = None):
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def hold(self, drip: bytes = b""):
            """Send `drip` one byte per second, over and over (or nothing), until the client goes away or
            HOLD_SECONDS pass; record in web.held how long that took."""
            start, sent = time.monotonic(), 0
            try:
                while time.monotonic() - start < HOLD_SECONDS:
                    if drip:
                        self.wfile.write(drip[sent % len(drip) :][:1])
                        sent += 1
                    if select.select([self.connection], [], [], 1.0)[0] and not self.connection.recv(1):
                        break  # end of stream: the client shut its socket
            except OSError:  # reset by the client
                pass
            with web_ref[0].lock:
                web_ref[0].held[self.path] = time.monotonic() - start
            self.close_connection = True

        def do_GET(self):  # noqa: N802 - http.server's naming
            web: ImageWeb = web_ref[0]
            path = self.path
            with web.lock:
                web.requests.append(path)
            match = IMAGE_ROUTE.match(path)
            if match:
                w, h, seed, fmt = int(match["w"]), int(match["h"]), int(match["seed"]), match["fmt"]
                ctype = "image/jpeg" if fmt == "jpg" else "image/png"
                return self.send(200, make_image(w, h, fmt, seed), ctype)
            kill = KILL_ROUTE.match(path)
            if kill:
                if web.take_kill(kill["name"]):
                    pid = socket_owner(self.client_address[1], web.port)
                    assert pid is not None, f"no process holds the client socket of {path}"
                    with web.lock:
                        web.killed.append((kill["name"], pid))
                    if kill["what"] == "group":
                        os.killpg(os.getpgid(pid), signal.SIGKILL)
                    else:
                        os.kill(pid, signal.SIGKILL)
                    return None
                return self.send(200, make_image(333, 300, "png", 11))
            if path.startswith("/call/"):
                with web.lock:
                    hook = web.hooks.pop(path[len("/call/") :].removesuffix(".png"), None)
                if hook is not None:
                    hook()
                return self.send(200, make_image(333, 300, "png", 11))
            if path.startswith("/notimage"):
                return self.send(200, b"<html><body>not an image</body></html>", "text/html")
            if path.startswith("/truncated"):
                data = make_image(400, 300, "png", 7)
                return self.send(200, data[: len(data) // 2])
            if path.startswith("/bomb"):  # 30000 x 30000: past Pillow's own DecompressionBombError threshold
                return self.send(200, declared_png(30000, 30000))
            if path.startswith("/bigarea"):  # 7000 x 7000 = 49 Mpx: under Pillow's threshold, over our 40 Mpx
                return self.send(200, declared_png(7000, 7000))
            if path.startswith("/drip-body"):  # headers at once, then a body of a byte per second, without end
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.end_headers()
                return self.hold(make_image(300, 300, "png", 6))
            if path.startswith("/drip-headers"):  # the status line and headers a byte per second, without end
                return self.hold(b"HTTP/1.0 200 OK\r\nContent-Type: image/png\r\nX-Drip: " + b"a" * 10_000)
            if path.startswith("/silent"):  # accepts, reads the request, never answers
                return self.hold()
            if path.startswith("/stall-body"):  # half the declared body, then nothing
                data = make_image(300, 300, "png", 8)
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2])
                return self.hold()
            hop = re.match(r"^/slow-hop/(\d+)$", path)
            if hop:
                time.sleep(HOP_SECONDS)
                if int(hop[1]) == 0:
                    return self.send(200, make_image(310, 300, "png", 12))
                return self.send(302, b"", "text/plain", {"Location": f"/slow-hop/{int(hop[1]) - 1}"})
            if path.startswith("/warn-bomb"):  # 10000 x 10000: Pillow warns (DecompressionBombWarning), ours refuses
                return self.send(200, declared_png(10000, 10000))
            if path.startswith("/slow"):
                time.sleep(SLOW_SECONDS)
                return self.send(200, make_image(300, 300, "png", 3))
            if path.startswith("/flaky"):
                with web.lock:
                    first = path not in web.flaky_seen
                    web.flaky_seen.add(path)
                if first:
                    return self.send(503, b"try again", "text/plain")
                return self.send(200, make_image(320, 300, "png", 5))
            if path.startswith("/noai"):
                return self.send(200, make_image(300, 300, "png", 4), headers={"X-Robots-Tag": "noai"})
            if path.startswith("/redirect-ok"):
                return self.send(302, b"", "text/plain", {"Location": "/img/500x400-9.jpg"})
            if path.startswith("/redirect-private"):
                return self.send(302, b"", "text/plain", {"Location": "http://10.0.0.1/x.png"})
            if path.startswith("/redirect-file"):
                return self.send(302, b"", "text/plain", {"Location": "file:///etc/hostname"})
            if path.startswith("/redirect-loopback"):  # same host, other port: not on the allow list
                return self.send(302, b"", "text/plain", {"Location": "http://127.0.0.1:9/x.png"})
            return self.send(404, b"File not found", "text/plain")

    return Handler


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):  # a client that timed out
            super().handle_error(request, client_address)


@pytest.fixture(scope="session")
def image_web():
    """A ThreadingHTTPServer on 127.0.0.1 (free port) serving the routes above; shut down at the end."""
    ref: list = []
    server = QuietServer(("127.0.0.1", 0), _handler(ref))
    web = ImageWeb(server)
    ref.append(web)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield web
    server.shutdown()
    server.server_close()
