"""End to end on the loopback image web: img2dataset under our policy and guard downloads 50 curated pairs into
WebDataset shards; every pair is accounted (kept or failed with the expected error), shards read back with the
webdataset library, images decode, sha256 and sizes match, and a rerun or a changed config behave."""

from __future__ import annotations

import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from wit_builder.download import shards
from wit_builder.download.img2dataset_job import DownloadConfig, download_shards
from wit_builder.errors import WitError

# (path, expected status, expected error prefix or None)
GOOD = (
    [(f"/img/{400 + 10 * i}x300-{i}.jpg", "kept", None) for i in range(12)]
    + [(f"/img/300x{500 + 10 * i}-{i}.png", "kept", None) for i in range(8)]
    + [(f"/img/{320 + i}x280-{i}.rgba", "kept", None) for i in range(5)]
    + [(f"/img/{100 + i}x80-{i}.png", "kept", None) for i in range(5)]  # smaller than 256: upscaled
)
BAD = [
    ("/missing-1.png", "failed", "HTTP Error 404"),
    ("/missing-2.png", "failed", "HTTP Error 404"),
    ("/missing-3.jpg", "failed", "HTTP Error 404"),
    ("/notimage-1", "failed", "not a recognised image"),
    ("/notimage-2", "failed", "not a recognised image"),
    ("/truncated-1.png", "failed", "Image decoding error"),
    ("/truncated-2.png", "failed", "Image decoding error"),
    ("/bomb.png", "failed", "image area too large (900000000 px)"),
    ("/bigarea.png", "failed", "image area too large (7000 x 7000)"),
    ("/slow.png", "failed", "timed out"),
    ("/redirect-private", "failed", "redirect to http://10.0.0.1/x.png refused: 10.0.0.1 is a private address"),
    ("/redirect-ok", "kept", None),
    ("/noai.png", "failed", "Use of image disallowed by X-Robots-Tag directive"),
    ("/flaky-1.png", "kept", None),  # 503 once, then served: kept thanks to retries
    ("/flaky-2.png", "kept", None),
]
ABSOLUTE = [  # refused by the policy before any connect
    ("file:///etc/hostname", "failed", "refused: scheme 'file' is not http or https"),
    ("http://169.254.169.254/latest/meta-data/", "failed", "refused: 169.254.169.254 is a link-local address"),
    ("http://10.0.0.1/a.png", "failed", "refused: 10.0.0.1 is a private address"),
    ("http://192.168.1.1/a.png", "failed", "refused: 192.168.1.1 is a private address"),
    ("http://127.0.0.2:9/a.png", "failed", "refused: 127.0.0.2 is a loopback address"),
]

TEST_CONFIG = dict(
    number_sample_per_shard=20, processes_count=2, thread_count=8, timeout=3.0, retries=1, retry_backoff=0.05
)


def curated(web) -> tuple[pa.Table, dict[str, tuple[str, str | None]]]:
    rows = [(web.url(p), s, e) for p, s, e in GOOD + BAD] + ABSOLUTE
    assert len(rows) == 50
    expected = {f"u{i:03d}": (status, error) for i, (_, status, error) in enumerate(rows)}
    table = pa.table(
        {
            "uid": [f"u{i:03d}" for i in range(len(rows))],
            "url": [url for url, _, _ in rows],
            "text": [f"caption {i}" for i in range(len(rows))],
            "queries": [[f"q{i % 7}", f"q{i % 3}"] for i in range(len(rows))],
            "language": ["en" if i % 2 else "de" for i in range(len(rows))],
        }
    )
    return table, expected


@pytest.fixture(scope="module")
def downloaded(image_web, tmp_path_factory):
    image_web.clear()
    table, expected = curated(image_web)
    out = str(tmp_path_factory.mktemp("dl") / "shards")
    config = DownloadConfig(allow_hosts=(image_web.allow,), **TEST_CONFIG)
    accounting = download_shards(table, out, config)
    return out, table, expected, accounting, config


def test_every_pair_accounted_with_expected_outcome(downloaded):
    out, table, expected, accounting, _ = downloaded
    assert accounting.num_rows == 50
    got = {r["uid"]: r for r in accounting.to_pylist()}
    assert set(got) == set(expected)
    for uid, (status, error) in expected.items():
        row = got[uid]
        assert row["status"] == status, (uid, row)
        if error is None:
            assert row["error"] is None and row["sha256"], (uid, row)
        else:
            assert row["error"].startswith(error), (uid, row)
    kept = [r for r in got.values() if r["status"] == "kept"]
    assert len(kept) == 33
    assert {r["shard"] for r in got.values()} == {"00000.tar", "00001.tar", "00002.tar"}


def test_shard_layout_sizes_and_stats(downloaded):
    out, _, _, accounting, _ = downloaded
    names = sorted(os.listdir(out))
    assert names == [
        "00000.parquet",
        "00000.tar",
        "00000_stats.json",
        "00001.parquet",
        "00001.tar",
        "00001_stats.json",
        "00002.parquet",
        "00002.tar",
        "00002_stats.json",
        "_wit",
        "sizes.json",
    ]
    sizes = json.load(open(os.path.join(out, "sizes.json")))
    kept_per_shard = {}
    for row in accounting.to_pylist():
        if row["status"] == "kept":
            kept_per_shard[row["shard"]] = kept_per_shard.get(row["shard"], 0) + 1
    assert sizes == kept_per_shard and sum(sizes.values()) == 33
    stats = [json.load(open(os.path.join(out, f"{i:05d}_stats.json"))) for i in range(3)]
    assert sum(s["successes"] for s in stats) == 33 and sum(s["count"] for s in stats) == 50
    parquet = pq.read_table(os.path.join(out, "00000.parquet"))
    assert {
        "uid",
        "url",
        "caption",
        "queries",
        "language",
        "status",
        "error_message",
        "sha256",
        "source_sha256",
    } <= set(parquet.column_names)


def test_shards_read_back_with_webdataset(downloaded):
    import io

    import webdataset as wds
    from PIL import Image

    out, table, _, accounting, _ = downloaded
    assert shards.verify(out) == {"samples": 33, "shards": 3}
    by_uid = {r["uid"]: r for r in table.to_pylist()}
    kept = {r["uid"]: r for r in accounting.to_pylist() if r["status"] == "kept"}
    seen = set()
    tars = sorted(os.path.join(out, n) for n in os.listdir(out) if n.endswith(".tar"))
    dataset = wds.WebDataset(tars, shardshuffle=False).decode("pil").to_tuple("__key__", "jpg", "txt", "json")
    for key, image, caption, meta in dataset:
        source = by_uid[meta["uid"]]
        assert caption == source["text"] and meta["url"] == source["url"]
        assert meta["queries"] == source["queries"] and meta["language"] == source["language"]
        assert key == meta["key"] == kept[meta["uid"]]["key"]
        assert image.mode == "RGB" and min(image.size) == 256  # shorter side 256, smaller images upscaled too
        ratio = meta["original_width"] / meta["original_height"]
        assert abs(image.size[0] / image.size[1] - ratio) < 0.02  # aspect ratio kept
        assert (meta["width"], meta["height"]) == image.size
        seen.add(meta["uid"])
    assert seen == set(kept)
    with open(tars[0], "rb") as f:  # and the raw member bytes are what sha256 names
        import tarfile

        with tarfile.open(fileobj=f) as tar:
            members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
    for name, data in members.items():
        if name.endswith(".jpg"):
            meta = json.loads(members[name[:-4] + ".json"])
            import hashlib

            assert hashlib.sha256(data).hexdigest() == meta["sha256"]
            Image.open(io.BytesIO(data)).load()


def test_rerun_skips_finished_shards_and_changed_config_is_refused(downloaded, image_web):
    out, table, _, accounting, config = downloaded
    image_web.clear()
    mtimes = {n: os.path.getmtime(os.path.join(out, n)) for n in os.listdir(out) if n.endswith(".tar")}
    again = download_shards(table, out, config)
    assert image_web.requests == []  # nothing downloaded again
    assert again.to_pylist() == accounting.to_pylist()
    assert {n: os.path.getmtime(os.path.join(out, n)) for n in mtimes} == mtimes
    changed = DownloadConfig(**{**TEST_CONFIG, "allow_hosts": (image_web.allow,), "image_size": 224})
    with pytest.raises(WitError, match="different settings image_size"):
        download_shards(table, out, changed)


def test_resume_redoes_only_unfinished_shard(downloaded, image_web, tmp_path):
    """A crash after shard 00001 was written but before its stats: the rerun redoes 00001 only, nothing lost."""
    import shutil

    out, table, expected, accounting, config = downloaded
    copy = str(tmp_path / "shards")
    shutil.copytree(out, copy)
    os.remove(os.path.join(copy, "00001_stats.json"))
    with open(os.path.join(copy, "00001.tar"), "r+b") as f:  # and a half-written tar
        f.truncate(1000)
    with pytest.raises(WitError, match="1 of 3 download shards did not finish"):
        shards.check_complete(copy, 3)
    image_web.clear()
    again = download_shards(table, copy, config)
    fetched = {r.split("?")[0] for r in image_web.requests}
    shard1_urls = {
        u[len(image_web.base) :] for u in table.column("url").to_pylist()[20:40] if u.startswith(image_web.base)
    }
    assert fetched and fetched <= shard1_urls | {"/img/500x400-9.jpg"}
    assert [(r["uid"], r["status"]) for r in again.to_pylist()] == [
        (r["uid"], r["status"]) for r in accounting.to_pylist()
    ]
    assert shards.verify(copy) == {"samples": 33, "shards": 3}


def test_without_allow_hosts_loopback_is_refused_and_never_contacted(image_web, tmp_path):
    table, _ = curated(image_web)
    image_web.clear()
    accounting = download_shards(table.slice(0, 40), str(tmp_path / "shards"), DownloadConfig(**TEST_CONFIG))
    assert image_web.requests == []
    errors = accounting.column("error").to_pylist()
    assert all(e.startswith("refused: 127.0.0.1 is a loopback address (allow with --allow-hosts)") for e in errors)
    assert accounting.column("status").to_pylist() == ["failed"] * 40


def test_missing_columns_and_repeated_uids_are_refused(tmp_path):
    with pytest.raises(WitError, match="lack column"):
        download_shards(pa.table({"uid": ["a"], "url": ["http://x"]}), str(tmp_path / "s"))
    with pytest.raises(WitError, match="unique uid"):
        download_shards(pa.table({"uid": ["a", "a"], "url": ["u", "v"], "text": ["t", "t"]}), str(tmp_path / "s"))


def test_ray_distributor_runs_our_hooks_in_ray_workers(image_web, ray_session, tmp_path):
    """img2dataset's Ray distributor cloudpickles our SafeDownloader into Ray tasks: policy and guard apply there."""
    table, expected = curated(image_web)
    chosen = [0, 1, 25, 37, 38, 45, 47]  # jpg, jpg, small png, bomb, bigarea, file://, 10.0.0.1
    subset = table.take(chosen)
    config = DownloadConfig(
        **{**TEST_CONFIG, "distributor": "ray", "number_sample_per_shard": 4}, allow_hosts=(image_web.allow,)
    )
    accounting = download_shards(subset, str(tmp_path / "shards"), config)
    got = {r["uid"]: (r["status"], r["error"]) for r in accounting.to_pylist()}
    for uid in subset.column("uid").to_pylist():
        status, error = expected[uid]
        assert got[uid][0] == status
        assert (got[uid][1] or "").startswith(error or "")
    assert shards.verify(str(tmp_path / "shards")) == {"samples": 3, "shards": 2}


def test_bad_allow_hosts_is_a_clear_error(tmp_path):
    table = pa.table({"uid": ["a"], "url": ["http://x/a.png"], "text": ["t"]})
    with pytest.raises(WitError, match="bad --allow-hosts entry '127.0.0.1:port'"):
        download_shards(table, str(tmp_path / "s"), DownloadConfig(allow_hosts=("127.0.0.1:port",)))
