"""Our distributors for img2dataset: a shard that fails is retried, then reported; a download worker that dies (the
image web kills the process that fetches a marked URL) ends the download with a clear error instead of a hang, and
rerunning the same download redoes only the unfinished shards and ends exactly as an uninterrupted download."""

from __future__ import annotations

import multiprocessing
import os
import time

import pyarrow as pa
import pytest

from wit_builder.download import distribute, shards
from wit_builder.download.img2dataset_job import DownloadConfig, download_shards
from wit_builder.errors import WitError

SHARD = 10


def pairs(web, kill: str | None = None, at: int = 22, n: int = 25) -> pa.Table:
    """n good image pairs (3 shards of 10); pair `at` (in the last shard) is a kill route when `kill` is given."""
    urls = [web.url(f"/img/{300 + i}x{260 + i}-{i}.jpg") for i in range(n)]
    if kill:
        urls[at] = web.url(kill)
    return pa.table({"uid": [f"p{i:03d}" for i in range(n)], "url": urls, "text": [f"caption {i}" for i in range(n)]})


def config(web, **overrides) -> DownloadConfig:
    values = dict(
        allow_hosts=(web.allow,),
        number_sample_per_shard=SHARD,
        processes_count=1,
        thread_count=4,
        timeout=5.0,
        retries=0,
    )
    return DownloadConfig(**{**values, **overrides})


def outcome(accounting: pa.Table) -> list[dict]:
    """What a rerun must reproduce: per pair its status, error, shard, key and the hash of the stored image."""
    columns = ["uid", "status", "error", "shard", "key", "sha256"]
    return accounting.select(columns).sort_by("uid").to_pylist()


def stamps(out: str, names) -> dict[str, int]:
    return {n: os.stat(f"{out}/{n}").st_mtime_ns for n in names}


@pytest.fixture(scope="module")
def reference(image_web, tmp_path_factory):
    """The uninterrupted download of the same pairs (the kill route serves an image when it has no kills left)."""
    image_web.clear()
    out = str(tmp_path_factory.mktemp("ref") / "shards")
    return outcome(download_shards(pairs(image_web, "/kill-worker/ref.png"), out, config(image_web)))


def test_killed_worker_process_fails_clearly_and_rerun_resumes(image_web, reference, tmp_path):
    image_web.clear()
    image_web.kills["mp"] = 1
    table, out = pairs(image_web, "/kill-worker/mp.png"), str(tmp_path / "shards")
    earlier = {c.pid for c in multiprocessing.active_children()}
    with pytest.raises(WitError) as err:
        download_shards(table, out, config(image_web))
    message = str(err.value)
    assert "1 of 3 shard(s) did not finish" in message
    assert "shard 00002: a download worker process died" in message
    assert "rerun the same command" in message
    assert [name for name, _ in image_web.killed] == ["mp"] and image_web.killed[0][1] != os.getpid()
    assert shards.shard_names(out) == ["00000", "00001"]  # finished before the crash, in order (one process)
    assert not left_alive(earlier)  # no worker or logger left behind

    finished = stamps(out, ["00000.tar", "00000.parquet", "00001.tar", "00001.parquet"])
    accounting = download_shards(table, out, config(image_web))  # the same call again: resumes
    assert outcome(accounting) == reference
    assert stamps(out, finished) == finished  # finished shards were not redone
    assert shards.verify(out) == {"samples": 25, "shards": 3}


class FlakyDownloader:
    """Stands in for SafeDownloader: shard s fails its first `failures[s]` attempts (counted in files, since every
    attempt may run in another process)."""

    def __init__(self, folder, failures: dict[int, int]):
        self.folder, self.failures = str(folder), failures

    def run_shard(self, row):
        shard, _ = row
        path = os.path.join(self.folder, f"attempts-{shard}")
        with open(path, "a") as handle:
            handle.write(".")
        if os.path.getsize(path) <= self.failures.get(shard, 0):
            return f"OSError: write failed ({os.path.getsize(path)})"
        return None


def attempts(folder, shard: int) -> int:
    path = folder / f"attempts-{shard}"
    return path.stat().st_size if path.exists() else 0


def test_failed_shard_is_retried_then_reported(tmp_path):
    downloader = FlakyDownloader(tmp_path, {1: 1, 2: 5})
    rows = [(i, f"staged-{i}") for i in range(4)]
    with pytest.raises(distribute.ShardsFailed) as err:
        distribute.process_distributor(2, downloader, iter(rows), None, max_shard_retry=2)
    assert err.value.failures == {2: "OSError: write failed (3)"} and err.value.total == 4
    assert [attempts(tmp_path, s) for s in range(4)] == [1, 2, 3, 1]  # 1 retried once, 2 three times in all


def test_no_failures_no_retries(tmp_path):
    downloader = FlakyDownloader(tmp_path, {})
    distribute.process_distributor(3, downloader, iter([(i, "x") for i in range(5)]), None, max_shard_retry=1)
    assert [attempts(tmp_path, s) for s in range(5)] == [1] * 5


@pytest.mark.slow
def test_ray_distributor_retries_and_reports_like_the_process_pool(tmp_path, ray_session):
    import sys

    ray_session.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray's workers cannot import tests
    downloader = FlakyDownloader(tmp_path, {1: 1, 2: 5})
    with pytest.raises(distribute.ShardsFailed) as err:
        distribute.ray_distributor(2, downloader, iter([(i, "x") for i in range(4)]), None, max_shard_retry=2)
    assert err.value.failures == {2: "OSError: write failed (3)"}
    assert [attempts(tmp_path, s) for s in range(4)] == [1, 2, 3, 1]


@pytest.mark.slow
def test_killed_ray_worker_is_retried_by_ray(image_web, reference, tmp_path, ray_session):
    """Ray reruns a task whose worker died: the download finishes in the same call, equal to an uninterrupted one."""
    image_web.clear()
    image_web.kills["ray-once"] = 1
    table, out = pairs(image_web, "/kill-worker/ray-once.png"), str(tmp_path / "shards")
    accounting = download_shards(table, out, config(image_web, distributor="ray"))
    assert [name for name, _ in image_web.killed] == ["ray-once"]
    assert outcome(accounting) == reference


@pytest.mark.slow
def test_ray_worker_that_keeps_dying_fails_clearly_and_rerun_resumes(image_web, reference, tmp_path, ray_session):
    image_web.clear()
    image_web.kills["ray-always"] = 2  # the first attempt and Ray's one retry (shard_retries=1)
    table, out = pairs(image_web, "/kill-worker/ray-always.png"), str(tmp_path / "shards")
    with pytest.raises(WitError) as err:
        download_shards(table, out, config(image_web, distributor="ray", shard_retries=1))
    assert "shard 00002: the Ray worker died" in str(err.value) and "rerun the same command" in str(err.value)
    assert len(image_web.killed) == 2 and image_web.kills["ray-always"] == 0
    assert shards.shard_names(out) == ["00000", "00001"]
    finished = stamps(out, ["00000.tar", "00001.tar"])
    accounting = download_shards(table, out, config(image_web, distributor="ray", shard_retries=1))
    assert outcome(accounting) == reference
    assert stamps(out, finished) == finished


@pytest.mark.slow
def test_s3_endpoint_lost_mid_download_fails_clearly_and_rerun_resumes(image_web, reference, tmp_path, monkeypatch):
    """The S3 server stops while the last shard downloads (its own SeaweedFS: the session's keeps running): the
    download fails naming the shard and the endpoint error; once the server is back, the same call resumes."""
    import s3_server

    from wit_builder import storage

    (tmp_path / "weed").mkdir()
    server = s3_server.start(str(tmp_path / "weed"))
    try:
        for key, value in server.env().items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")  # botocore gives up on a dead endpoint in seconds, not minutes
        image_web.clear()
        image_web.hooks["stop-s3"] = lambda: s3_server.stop(server)
        table, out = pairs(image_web, "/call/stop-s3.png"), f"s3://{server.bucket}/lost/shards"
        with pytest.raises(WitError) as err:
            download_shards(table, out, config(image_web, shard_retries=1))
        message = str(err.value)
        assert "1 of 3 shard(s) did not finish" in message and "shard 00002:" in message, message
        assert "Could not connect to the endpoint URL" in message, message
        assert server.process.poll() is not None and not image_web.hooks

        server = s3_server.start(server.data_dir, ports=server.ports)  # back, with its data
        assert shards.shard_names(out) == ["00000", "00001"]
        fs, path = storage.filesystem(out)
        finished = {p: fs.get_file_info(f"{path}/{p}").mtime for p in ("00000.tar", "00001.tar")}
        accounting = download_shards(table, out, config(image_web, shard_retries=1))
        assert outcome(accounting) == reference
        assert {p: fs.get_file_info(f"{path}/{p}").mtime for p in finished} == finished
    finally:
        s3_server.stop(server)


def test_stuck_shard_is_stopped_reported_and_retried(tmp_path, capfd):
    """Shard 1 hangs on its first attempt: past the shard time limit every pool worker is killed, the shard is
    reported and retried; the download ends as if nothing happened."""
    from stuck_downloader import StuckDownloader

    start = time.monotonic()
    earlier = {c.pid for c in multiprocessing.active_children()}
    distribute.process_distributor(
        2,
        StuckDownloader(tmp_path, {1: 1}),
        iter([(i, "x") for i in range(3)]),
        None,
        max_shard_retry=1,
        shard_timeout=4,
    )
    assert time.monotonic() - start < 2 * 4 + 10  # two attempts' limits, plus starting fresh workers
    assert attempts(tmp_path, 1) == 2 and attempts(tmp_path, 0) >= 1 and attempts(tmp_path, 2) >= 1
    assert "shard 00001: did not finish within 4 s (stuck worker?)" in capfd.readouterr().err
    assert not left_alive(earlier)


def test_shard_stuck_on_every_attempt_fails_clearly(tmp_path):
    from stuck_downloader import StuckDownloader

    earlier = {c.pid for c in multiprocessing.active_children()}  # other tests' pools are not this call's to stop
    with pytest.raises(distribute.ShardsFailed) as err:
        distribute.process_distributor(
            1, StuckDownloader(tmp_path, {0: 5}), iter([(0, "x")]), None, max_shard_retry=1, shard_timeout=3
        )
    assert err.value.failures == {0: "did not finish within 3 s (stuck worker?)"}
    assert attempts(tmp_path, 0) == 2
    assert not left_alive(earlier)


def left_alive(earlier: set[int], grace: float = 10.0) -> list:
    """Children started since `earlier` that are still alive after `grace` s: a killed worker is reaped by the pool's
    own thread too, so its exit can show a moment late; a stuck one sleeps for an hour and stays."""
    deadline = time.monotonic() + grace
    while True:
        alive = [c for c in multiprocessing.active_children() if c.is_alive() and c.pid not in earlier]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.2)


@pytest.mark.slow
def test_ray_stuck_task_is_cancelled_and_retried(tmp_path, ray_session, capfd):
    import stuck_downloader

    ray_session.cloudpickle.register_pickle_by_value(stuck_downloader)
    downloader = stuck_downloader.StuckDownloader(tmp_path, {1: 1, 2: 5})
    with pytest.raises(distribute.ShardsFailed) as err:
        distribute.ray_distributor(
            2, downloader, iter([(i, "x") for i in range(3)]), None, max_shard_retry=1, shard_timeout=5
        )
    assert err.value.failures == {2: "did not finish within 5 s (stuck worker?)"}
    assert [attempts(tmp_path, s) for s in range(3)] == [1, 2, 2]
    assert "shard 00001: did not finish within 5 s (stuck worker?)" in capfd.readouterr().err
