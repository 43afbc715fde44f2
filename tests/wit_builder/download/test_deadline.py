"""The request deadline: a server that drips its body or headers, accepts and never answers, stalls half way or
redirects through slow hops is cut off at the deadline (each read on its own would never time out), on the opener
directly, in SafeDownloader.fetch with its retries, and in a whole download, where such pairs fail with reason
`deadline` and every good pair is kept."""

from __future__ import annotations

import socket
import threading
import time

import pyarrow as pa
import pytest
from image_web import DEADLINE_ROUTES, HOP_SECONDS

from wit_builder.download import status
from wit_builder.download.img2dataset_job import DownloadConfig, SafeDownloader, download_shards, shard_time_limit
from wit_builder.download.policy import DEADLINE_ERROR, AddressPolicy, Deadline, DeadlineExceeded, SafeOpener

SLACK = 1.5  # seconds past a deadline a test accepts for the watchdog and the scheduler of a loaded machine


def held_for(web, path: str, within: float = 5.0) -> float:
    """How long the server held `path` open before its client went away (waits until the server noticed)."""
    end = time.monotonic() + within
    while path not in web.held and time.monotonic() < end:
        time.sleep(0.05)
    return web.held[path]


@pytest.mark.parametrize("route", DEADLINE_ROUTES)
def test_opener_cuts_a_never_finishing_response_at_the_deadline(image_web, route):
    image_web.clear()
    opener = SafeOpener(AddressPolicy.from_allow_hosts(image_web.allow))
    start = time.monotonic()
    with Deadline(1.0) as deadline, pytest.raises(DeadlineExceeded) as caught:
        opener.fetch(image_web.url(route), deadline, timeout=5)  # every read returns within 5 s: no timeout fires
    elapsed = time.monotonic() - start
    assert str(caught.value) == f"{DEADLINE_ERROR}: no complete response within 1 s"
    assert 1.0 <= elapsed < 1.0 + SLACK
    if route.startswith("/slow-hop"):
        assert "/slow-hop/0" not in image_web.requests  # the chain was left before its end
    else:
        assert held_for(image_web, route) < 1.0 + SLACK  # the socket was shut at once, not left to the server


def test_good_response_and_redirect_within_the_deadline(image_web):
    opener = SafeOpener(AddressPolicy.from_allow_hosts(image_web.allow))
    with Deadline(5.0) as deadline:
        assert opener.fetch(image_web.url("/img/300x200-1.png"), deadline, timeout=5)[:4] == b"\x89PNG"
        assert opener.fetch(image_web.url("/redirect-ok"), deadline, timeout=5)[:2] == b"\xff\xd8"
        assert not deadline.expired
    with Deadline(5.0) as deadline:  # the size cap reads at most max_bytes + 1 bytes
        assert len(opener.fetch(image_web.url("/img/300x200-1.png"), deadline, timeout=5, max_bytes=10)) == 11


def test_passed_deadline_dials_nothing(image_web, connects):
    opener = SafeOpener(AddressPolicy.from_allow_hosts(image_web.allow))
    with Deadline(0.0) as deadline, pytest.raises(DeadlineExceeded):
        opener.fetch(image_web.url("/img/300x200-1.png"), deadline, timeout=5)
    assert connects == []


@pytest.fixture
def silent_listener():
    """A raw TCP listener that accepts connections and never sends or reads a byte."""
    server = socket.create_server(("127.0.0.1", 0))
    accepted = []
    stop = threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1], accepted
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_accepted_and_never_answered_even_in_the_tls_handshake(silent_listener, scheme):
    port, accepted = silent_listener
    opener = SafeOpener(AddressPolicy.from_allow_hosts(f"127.0.0.1:{port}"))
    start = time.monotonic()
    with Deadline(1.0) as deadline, pytest.raises(DeadlineExceeded):
        opener.fetch(f"{scheme}://127.0.0.1:{port}/a.png", deadline, timeout=5)
    assert 1.0 <= time.monotonic() - start < 1.0 + SLACK
    assert len(accepted) == 1


def downloader(web, **settings) -> SafeDownloader:
    values = dict(
        policy=AddressPolicy.from_allow_hosts(web.allow),
        max_image_area=40_000_000,
        max_image_bytes=10_000_000,
        retry_backoff=0.05,
        request_deadline=2.0,
    )
    values.update(settings)
    return SafeDownloader(
        sample_writer_class=None,
        resizer=None,
        thread_count=1,
        save_caption=True,
        extract_exif=False,
        output_folder="unused",
        column_list=["url"],
        timeout=5,
        number_sample_per_shard=1,
        oom_shard_count=5,
        compute_hash=None,
        verify_hash_type=None,
        encode_format="jpg",
        retries=0,
        user_agent_token="wit-clip",
        disallowed_header_directives=None,
        **values,
    )


def fetch(dl: SafeDownloader, url: str, timeout: float, retries: int, **newer):
    return dl.fetch(
        (7, url),
        timeout=timeout,
        retries=retries,
        user_agent_token="wit-clip",
        disallowed_header_directives={"noai"},
        **newer,
    )


def test_deadline_miss_is_not_retried(image_web):
    image_web.clear()
    start = time.monotonic()
    key, stream, error = fetch(
        downloader(image_web, request_deadline=1.0), image_web.url("/drip-body.png"), timeout=5, retries=3
    )
    assert (key, stream) == (7, None) and error == f"{DEADLINE_ERROR}: no complete response within 1 s"
    assert time.monotonic() - start < 1.0 + SLACK
    assert image_web.requests == ["/drip-body.png"]


def test_transient_failures_are_retried_only_while_time_remains(image_web):
    """Timeouts of 1 s on a server that answers after 8 s: retried (0.05 s, 0.1 s backoff) until the 2.5 s deadline,
    which then ends the pair: 2.5 s in all, not 6 x 1 s."""
    image_web.clear()
    start = time.monotonic()
    _, stream, error = fetch(
        downloader(image_web, request_deadline=2.5), image_web.url("/slow.png"), timeout=1, retries=5
    )
    assert stream is None and error.startswith(DEADLINE_ERROR)
    assert 2.5 <= time.monotonic() - start < 2.5 + SLACK
    assert image_web.requests == ["/slow.png"] * 3


def test_backoff_that_would_end_past_the_deadline_is_not_waited(image_web):
    image_web.clear()
    start = time.monotonic()
    _, stream, error = fetch(
        downloader(image_web, request_deadline=1.5, retry_backoff=1.0), image_web.url("/slow.png"), timeout=1, retries=2
    )
    assert stream is None and error == "timed out"  # the last attempt's own error: no time was left for another
    assert time.monotonic() - start < 1.0 + SLACK
    assert image_web.requests == ["/slow.png"]


def test_fetch_takes_arguments_a_later_img2dataset_may_add(image_web):
    _, stream, error = fetch(
        downloader(image_web), image_web.url("/flaky-new.png"), timeout=5, retries=1, some_new_option=True
    )
    assert error is None and stream.read(4) == b"\x89PNG"


def test_download_cuts_never_finishing_pairs_and_keeps_the_good_ones(image_web, tmp_path):
    good = [f"/img/{300 + i}x{260 + i}-{i}.jpg" for i in range(6)]
    paths = good + list(DEADLINE_ROUTES) + ["/warn-bomb.png"]
    table = pa.table(
        {
            "uid": [f"d{i:02d}" for i in range(len(paths))],
            "url": [image_web.url(p) for p in paths],
            "text": [f"caption {i}" for i in range(len(paths))],
        }
    )
    config = DownloadConfig(
        allow_hosts=(image_web.allow,),
        request_deadline=2.0,
        timeout=5.0,
        retries=2,
        retry_backoff=0.05,
        number_sample_per_shard=20,
        processes_count=1,
        thread_count=8,
    )
    bound = 10 * config.request_deadline * (config.retries + 1)  # 60 s; the shard's own limit is 70 s
    assert bound <= shard_time_limit(config, len(paths))
    image_web.clear()
    start = time.monotonic()
    accounting = download_shards(table, str(tmp_path / "shards"), config)
    assert time.monotonic() - start < bound
    rows = {path: r for path, r in zip(paths, accounting.sort_by("uid").to_pylist())}
    for path in good:
        assert (rows[path]["status"], rows[path]["reason"], rows[path]["error"]) == ("kept", None, None), rows[path]
    for path in DEADLINE_ROUTES:
        row = rows[path]
        assert (row["status"], row["reason"]) == ("failed", status.DEADLINE), row
        assert row["error"] == f"{DEADLINE_ERROR}: no complete response within 2 s"
        assert image_web.requests.count(path) == 1  # not retried
        if not path.startswith("/slow-hop"):
            assert held_for(image_web, path) < 2.0 + SLACK
    assert "/slow-hop/0" not in image_web.requests
    assert int(2.0 / HOP_SECONDS) <= sum(r.startswith("/slow-hop/") for r in image_web.requests) <= 4
    bomb = rows["/warn-bomb.png"]
    assert (bomb["status"], bomb["reason"], bomb["error"]) == (
        "failed",
        status.DOWNLOAD_FAILED,
        "image area too large (10000 x 10000)",
    )


def test_deadline_must_be_positive(tmp_path):
    from wit_builder.errors import WitError

    table = pa.table({"uid": ["a"], "url": ["http://x/a.png"], "text": ["t"]})
    with pytest.raises(WitError, match="--request-deadline must be a positive number of seconds, not 0"):
        download_shards(table, str(tmp_path / "s"), DownloadConfig(request_deadline=0))
