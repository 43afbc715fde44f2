"""The loopback server: exact bytes, headers, 404s, no escape from the folder, many connections at once."""

import http.client
import socket
from concurrent.futures import ThreadPoolExecutor
from urllib.error import HTTPError
from urllib.parse import urlsplit
from urllib.request import urlopen

import pyarrow.parquet as pq
import pytest

from wit_builder.errors import WitError
from wit_builder.web.serve import make_server, serving


def _rebase(url: str, base: str) -> str:
    parts = urlsplit(url)
    return base + parts.path + (f"?{parts.query}" if parts.query else "")


def _get(url):
    try:
        with urlopen(url, timeout=10) as resp:
            return resp.status, resp.headers, resp.read()
    except HTTPError as err:
        return err.code, err.headers, err.read()


def test_every_url_of_the_pool_round_trips(small_web):
    out, _ = small_web
    pool = pq.read_table(out / "pool.parquet").to_pylist()
    by_url = {r["url"]: r for r in pool}
    with serving(out) as base, ThreadPoolExecutor(16) as pool_:
        results = dict(zip(by_url, pool_.map(lambda u: _get(_rebase(u, base)), by_url)))
    for url, (status, headers, body) in results.items():
        row = by_url[url]
        if row["noise"] == "dead_link":
            assert status == 404, url
            continue
        assert status == 200, url
        assert body == (out / row["image"]).read_bytes()
        assert int(headers["Content-Length"]) == len(body)
        assert headers["Content-Type"] == "image/png"


def test_head_has_the_length_without_a_body(small_web):
    out, _ = small_web
    image = next(p for p in (out / "img" / "emoji").iterdir())
    with serving(out) as base:
        conn = http.client.HTTPConnection(urlsplit(base).hostname, urlsplit(base).port, timeout=10)
        conn.request("HEAD", f"/img/emoji/{image.name}")
        resp = conn.getresponse()
        assert resp.status == 200 and resp.read() == b""
        assert int(resp.headers["Content-Length"]) == image.stat().st_size


@pytest.mark.parametrize(
    "path",
    [
        "/../../etc/passwd",
        "/img/../../../etc/hostname",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/img/%00",
        "/nonexistent.png",
        "/img",
    ],
)
def test_nothing_outside_the_folder_or_missing_is_served(small_web, path):
    out, _ = small_web
    with serving(out) as base:
        host, port = urlsplit(base).hostname, urlsplit(base).port
        conn = http.client.HTTPConnection(host, port, timeout=10)
        conn.request("GET", path)
        assert conn.getresponse().status == 404


def test_sixty_four_concurrent_connections(small_web):
    out, _ = small_web
    files = sorted((out / "img").rglob("*.png"))[:64]
    with serving(out) as base, ThreadPoolExecutor(64) as pool:
        urls = [f"{base}/{f.relative_to(out)}" for f in files] * 4
        results = list(pool.map(_get, urls))
    assert [status for status, _, _ in results] == [200] * len(urls)
    assert all(body == (out / url.split("/", 3)[3]).read_bytes() for url, (_, _, body) in zip(urls, results))


def test_loopback_only_and_port_in_use(small_web):
    out, _ = small_web
    with pytest.raises(WitError, match="loopback only"):
        make_server(out, host="0.0.0.0", port=0)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(WitError, match=f"port {port} is in use"):
            make_server(out, port=port)
    with pytest.raises(WitError, match="is not a folder"):
        make_server(out / "nope", port=0)


def test_a_client_that_hangs_up_is_not_reported(small_web, capfd):
    import struct
    import time

    out, _ = small_web
    with serving(out) as base:
        parts = urlsplit(base)
        for _ in range(5):
            sock = socket.create_connection((parts.hostname, parts.port), timeout=5)
            sock.sendall(b"GET /img/")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with a reset
            sock.close()
        time.sleep(0.5)
        assert _get(base + "/nonexistent.png")[0] == 404
    assert capfd.readouterr().err == ""
