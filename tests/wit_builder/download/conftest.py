"""A loopback image web for the download tests: generated images, dead links, non-images, truncated and bomb PNGs,
a slow route, flaky 503s, X-Robots-Tag and redirects (to allowed and to refused places). Every request is recorded,
so tests can assert what reached the server."""

from __future__ import annotations

import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from image_web import IMAGE_ROUTE, SLOW_SECONDS, ImageWeb, declared_png, make_image


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
            if path.startswith("/notimage"):
                return self.send(200, b"<html><body>not an image</body></html>", "text/html")
            if path.startswith("/truncated"):
                data = make_image(400, 300, "png", 7)
                return self.send(200, data[: len(data) // 2])
            if path.startswith("/bomb"):  # 30000 x 30000: past Pillow's own DecompressionBombError threshold
                return self.send(200, declared_png(30000, 30000))
            if path.startswith("/bigarea"):  # 7000 x 7000 = 49 Mpx: under Pillow's threshold, over our 40 Mpx
                return self.send(200, declared_png(7000, 7000))
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
