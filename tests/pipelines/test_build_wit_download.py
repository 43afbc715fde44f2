"""`wit build` through the download stage, on a tiny demo web served on 127.0.0.1: every pool row ends filtered, kept
(with a sample in the shards) or failed (with its error), `wit sql` joins accounting with samples, a rerun after a lost
shard or after the whole build was killed mid-download redoes only the unfinished shards and ends where an
uninterrupted run ends, and a different config is refused."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from ports import free_port

from pipelines import build_wit, cli
from wit_builder import catalog
from wit_builder.config import BuildConfig, CurateConfig
from wit_builder.download.img2dataset_job import DownloadConfig
from wit_builder.layout import BuildFolder
from wit_builder.web.build import WebConfig, build_web
from wit_builder.web.serve import serving

WORDS = (
    "frog animal bird dog cat fish horse tree flower house car sun star heart face smile hand apple ball boat "
    "book bus cake clock cow duck egg hat key lion moon owl pig rabbit rosella sheep snake train turtle"
).split()


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    """A demo web (5 images per collection, dead links, non-images, truncated images) served on a free port."""
    root = tmp_path_factory.mktemp("web")
    port = free_port()
    build_web(root, WebConfig(limit=5, base_url=f"http://127.0.0.1:{port}"), progress=False)
    (root / "queries.txt").write_text("\n".join(WORDS) + "\n")
    with serving(root, port=port):
        yield root, port


def argv(web, out, *extra):
    root, port = web
    return [
        "build",
        "--pool",
        str(root / "pool.parquet"),
        "--queries",
        str(root / "queries.txt"),
        "--out",
        str(out),
        "--local",
        "--cap",
        "4",
        "--allow-hosts",
        f"127.0.0.1:{port}",
        "--processes",
        "1",
        "--threads",
        "4",
        "--shard-size",
        "8",
        "--timeout",
        "5",
        "--retries",
        "0",
        "--shard-retries",
        "0",
        *extra,
    ]


def final_rows(out):
    return pq.ParquetDataset(str(out / "accounting")).read().sort_by("uid").to_pylist()


@pytest.fixture(scope="module")
def built(web, tmp_path_factory):
    out = tmp_path_factory.mktemp("build") / "out"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert cli.main(argv(web, out)) == 0
    (out.parent / "report.txt").write_text(printed.getvalue())
    return out


def test_every_pool_row_ends_filtered_kept_or_failed(web, built, capsys):
    pool = pq.read_table(web[0] / "pool.parquet")
    rows = final_rows(built)
    assert len(rows) == pool.num_rows == len({r["uid"] for r in rows})
    assert {r["uid"] for r in rows} == set(pool["uid"].to_pylist())
    by = {s: [r for r in rows if r["status"] == s] for s in ("kept", "filtered", "failed")}
    assert sum(map(len, by.values())) == len(rows)
    assert by["kept"] and by["failed"] and by["filtered"]
    assert all(r["shard"] and r["key"] and r["reason"] is None and r["error"] is None for r in by["kept"])
    assert all(r["reason"] == "download_failed" and r["error"] for r in by["failed"])
    assert all(r["reason"] and r["shard"] is None for r in by["filtered"])
    # kept in the accounting == samples in the shards, pair for pair
    sizes = json.loads((built / "shards" / "sizes.json").read_text())
    assert sum(sizes.values()) == len(by["kept"])
    con, tables = catalog.connect(str(built))
    assert {"accounting", "curated", "samples", "query_counts"} <= set(tables)
    samples = set(con.execute("SELECT uid, key FROM samples WHERE status = 'success'").fetchall())
    assert samples == {(r["uid"], r["key"]) for r in by["kept"]}
    curated = con.execute("SELECT count(*) FROM curated").fetchone()[0]
    assert curated == len(by["kept"]) + len(by["failed"])
    # the demo web's dead links fail with a 404, its non-images and truncated images fail to decode
    noise = dict(zip(pool["uid"].to_pylist(), pool["noise"].to_pylist()))
    assert all(noise[r["uid"]] not in ("dead_link", "not_an_image", "truncated_image") for r in by["kept"])
    assert any("404" in r["error"] for r in by["failed"])

    manifest = json.loads((built / "manifest.json").read_text())
    d = manifest["counts"]["download"]
    assert manifest["finished_stage"] == "download"
    assert (d["pairs"], d["kept"], d["failed"]) == (curated, len(by["kept"]), len(by["failed"]))
    assert d["shards"] == len(sizes) == -(-curated // 8) and d["shards_reused"] == 0
    assert d["images_this_run"] == d["kept"]
    assert sum(e["count"] for e in d["errors"]) == len(by["failed"])
    assert manifest["counts"]["funnel"]["downloaded"] == len(by["kept"])
    assert manifest["config"]["download"]["number_sample_per_shard"] == 8
    assert manifest["config"]["download"]["shard_retries"] == 0
    assert manifest["timings_s"]["download"] > 0


def test_report_prints_funnel_rate_and_failures(built):
    out = (built.parent / "report.txt").read_text()
    manifest = json.loads((built / "manifest.json").read_text())
    d = manifest["counts"]["download"]
    assert f"-> downloaded {d['kept']:,} ({d['failed']:,} failed" in out
    assert f"download: {d['shards']} shard(s)" in out and "images/s" in out
    assert "failures by error" in out and d["errors"][0]["error"] in out


def test_sql_joins_accounting_with_samples(built, capsys):
    con, _ = catalog.connect(str(built))
    expected = dict(con.execute("SELECT coalesce(reason, 'kept'), count(*) FROM accounting GROUP BY 1").fetchall())
    capsys.readouterr()
    query = (
        "SELECT coalesce(a.reason, 'kept') AS reason, count(*) AS n, count(s.uid) AS attempted "
        "FROM accounting a LEFT JOIN samples s USING (uid) GROUP BY 1 ORDER BY 1"
    )
    assert cli.main(["sql", str(built), query, "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["reason"]: r["n"] for r in rows} == expected
    for r in rows:  # only the pairs that curation kept were attempted
        assert r["attempted"] == (r["n"] if r["reason"] in ("kept", "download_failed") else 0)

    failed = con.execute("SELECT count(*) FROM accounting WHERE status = 'failed'").fetchone()[0]
    query = (
        "SELECT a.attributed_query AS query, s.error_message AS error, count(*) AS n FROM samples s "
        "JOIN accounting a USING (uid) WHERE a.status = 'failed' GROUP BY ALL ORDER BY n DESC, query, error"
    )
    assert cli.main(["sql", str(built), query, "--format", "json"]) == 0
    per_query = json.loads(capsys.readouterr().out)
    assert per_query and sum(r["n"] for r in per_query) == failed
    assert all(r["query"] in WORDS for r in per_query)


def test_curate_first_then_download_then_resume_after_a_lost_shard(web, built, tmp_path, capsys):
    """--stop-after curate, then the full command (reuses curate), then a lost shard: the rerun redoes only that
    shard, and every run ends with exactly the uninterrupted run's outcome."""
    out = tmp_path / "out"

    def outcome(folder):
        return [(r["uid"], r["status"], r["reason"], r["error"], r["shard"], r["key"]) for r in final_rows(folder)]

    assert cli.main(argv(web, out, "--stop-after", "curate")) == 0
    assert "stopped after curate" in capsys.readouterr().out and not (out / "shards").exists()
    assert {r["status"] for r in final_rows(out)} == {"selected", "filtered"}
    assert cli.main(argv(web, out)) == 0
    assert "(reused from an earlier run)" in capsys.readouterr().out
    assert outcome(out) == outcome(built)

    for name in ("00001.tar", "00001.parquet", "00001_stats.json"):
        (out / "shards" / name).unlink()
    untouched = (out / "shards" / "00000.tar").stat().st_mtime_ns
    assert cli.main(argv(web, out)) == 0
    manifest = json.loads((out / "manifest.json").read_text())["counts"]["download"]
    assert manifest["shards_reused"] == manifest["shards"] - 1
    assert manifest["images_this_run"] == json.loads((out / "shards" / "sizes.json").read_text())["00001.tar"]
    assert "finished shard(s) reused" in capsys.readouterr().out
    assert (out / "shards" / "00000.tar").stat().st_mtime_ns == untouched
    assert (out / "shards" / "00001.tar").exists()
    assert outcome(out) == outcome(built)
    assert len(list((out / "accounting").glob("*.parquet"))) == 1


def test_other_config_into_same_out_is_refused(web, built, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(built, out)
    assert cli.main(argv(web, out, "--cap", "5")) == 2
    err = capsys.readouterr().err
    assert "different --cap" in err and "use a new --out" in err
    assert cli.main(argv(web, out, "--image-size", "128")) == 2
    assert "different settings image_size" in capsys.readouterr().err


@pytest.mark.slow
def test_ray_build_equals_local_build(web, built, tmp_path, ray_session):
    root, port = web
    cfg = BuildConfig(
        pool=(str(root / "pool.parquet"),),
        queries=str(root / "queries.txt"),
        out=str(tmp_path / "ray"),
        curate=CurateConfig(cap=4),
        workers=1,
        batch_size=128,
        download=DownloadConfig(
            allow_hosts=(f"127.0.0.1:{port}",),
            number_sample_per_shard=8,
            thread_count=4,
            timeout=5,
            retries=0,
            distributor="ray",
        ),
    )
    manifest = build_wit.main(cfg)
    assert manifest["engine"] == "ray"
    assert final_rows(tmp_path / "ray") == final_rows(built)


@pytest.mark.slow
def test_full_build_into_s3(web, built, s3_env):
    """--out s3://bucket/prefix (SeaweedFS on loopback): curate + download; same outcome as the local build, and
    `wit sql` joins accounting with samples over S3."""
    out = f"s3://{s3_env.bucket}/wit"
    assert cli.main(argv(web, out)) == 0
    con, tables = catalog.connect(out)
    assert {"accounting", "curated", "samples", "query_counts"} <= set(tables)
    rows = con.execute("SELECT uid, status, reason, shard, key FROM accounting ORDER BY uid").fetchall()
    assert rows == [(r["uid"], r["status"], r["reason"], r["shard"], r["key"]) for r in final_rows(built)]
    joined = con.execute(
        "SELECT count(*) FROM accounting a JOIN samples s USING (uid) WHERE a.status = 'kept' AND s.status = 'success'"
    ).fetchone()[0]
    assert joined == sum(r[1] == "kept" for r in rows) > 0
    assert cli.main(argv(web, out)) == 0  # a rerun reuses both stages and ends the same
    assert con.execute("SELECT uid, status, reason, shard, key FROM accounting ORDER BY uid").fetchall() == rows


@pytest.mark.slow
def test_build_killed_mid_download_resumes_to_the_uninterrupted_outcome(image_web, tmp_path, capsys):
    """A real crash: the image web kills the whole `wit build` process group (driver, download worker, logger) when
    the last shard fetches a marked URL. Rerunning the same command reuses curation and the finished shards, redoes
    the rest, and ends with exactly the accounting of an uninterrupted build."""
    image_web.clear()
    n = 30
    urls = [image_web.url(f"/img/{280 + i}x{300 + i}-{i}.jpg") for i in range(n)]
    urls[27] = image_web.url("/kill-group/build.png")  # shard 00003 of 4 (8 pairs each, uid order)
    pool = pa.table(
        {
            "uid": [f"c{i:03d}" for i in range(n)],
            "url": urls,
            "text": [f"a photo of a {WORDS[i]} sitting in the garden" for i in range(n)],
        }
    )
    pq.write_table(pool, tmp_path / "pool.parquet")
    (tmp_path / "queries.txt").write_text("\n".join(WORDS) + "\n")

    def command(out):
        return [
            Path(sys.executable).parent / "wit",
            "build",
            "--pool",
            tmp_path / "pool.parquet",
            "--queries",
            tmp_path / "queries.txt",
            "--out",
            out,
            "--local",
            "--allow-hosts",
            image_web.allow,
            "--processes",
            "1",
            "--threads",
            "4",
            "--shard-size",
            "8",
            "--timeout",
            "5",
            "--retries",
            "0",
        ]

    def outcome(out):
        return [
            (r["uid"], r["status"], r["reason"], r["error"], r["shard"], r["key"], r["sha256"]) for r in final_rows(out)
        ]

    reference = tmp_path / "reference"
    done = subprocess.run(command(reference), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert [r[1] for r in outcome(reference)] == ["kept"] * n  # the marked URL serves an image when not killing

    out = tmp_path / "out"
    image_web.kills["build"] = 1
    crashed = subprocess.run(command(out), capture_output=True, text=True, timeout=600, start_new_session=True)
    assert crashed.returncode == -9 and [name for name, _ in image_web.killed] == ["build"]
    assert json.loads((out / "manifest.json").read_text())["finished_stage"] == "curate"  # the download never finished
    assert sorted(p.name for p in (out / "shards").glob("*_stats.json")) == [f"0000{i}_stats.json" for i in range(3)]
    finished = {p.name: p.stat().st_mtime_ns for p in (out / "shards").glob("0000[012].*")}
    # the stopped folder answers `wit sql`, and no row claims an image that is in no finished shard
    assert (
        cli.main(["sql", str(out), "SELECT status, count(*) AS n FROM accounting GROUP BY 1", "--format", "json"]) == 0
    )
    captured = capsys.readouterr()
    assert {r["status"]: r["n"] for r in json.loads(captured.out)} == {"selected": n}
    unfinished = BuildFolder(str(out)).unfinished_shards()
    assert unfinished == ["00003"] or not unfinished  # killed while shard 00003 was being written, or before
    assert ("skipped 1 unfinished shard(s)" in captured.err) == bool(unfinished)
    assert cli.main(["sql", str(out), "SELECT count(*) AS n FROM samples", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"n": 24}]  # the three finished shards of 8

    resumed = subprocess.run(command(out), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "(reused from an earlier run)" in resumed.stdout and "3 finished shard(s) reused" in resumed.stdout
    assert {p: (out / "shards" / p).stat().st_mtime_ns for p in finished} == finished
    assert outcome(out) == outcome(reference)


def test_misbehaving_servers_cannot_hold_a_build(image_web, tmp_path, capsys):
    """Servers that drip a body or headers, never answer, stall mid-body or redirect through slow hops: with
    --request-deadline 2 the build ends within a bound stated from that deadline, each such pair `failed` with
    reason `deadline`, every good pair kept."""
    from image_web import DEADLINE_ROUTES

    deadline, n_good = 2.0, 6
    urls = [image_web.url(f"/img/{220 + i}x{200 + i}-{i}.jpg") for i in range(n_good)]
    urls += [image_web.url(route) for route in DEADLINE_ROUTES]
    pool = pa.table(
        {
            "uid": [f"d{i:02d}" for i in range(len(urls))],
            "url": urls,
            "text": [f"a photo of a {WORDS[i]} by the lake" for i in range(len(urls))],
        }
    )
    pq.write_table(pool, tmp_path / "pool.parquet")
    (tmp_path / "queries.txt").write_text("\n".join(WORDS) + "\n")
    argv = [
        "build",
        "--pool",
        str(tmp_path / "pool.parquet"),
        "--queries",
        str(tmp_path / "queries.txt"),
        "--out",
        str(tmp_path / "out"),
        "--local",
        "--allow-hosts",
        image_web.allow,
        "--processes",
        "1",
        "--threads",
        "16",
        "--timeout",
        "5",
        "--retries",
        "1",
        "--request-deadline",
        str(deadline),
    ]
    assert cli.main(argv) == 0
    assert "deadline: deadline exceeded" in capsys.readouterr().out  # the failure table names the reason
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    # one wave of fetches (16 threads >= 11 pairs): every pair is done within its deadline; 10x leaves room for
    # decoding, writing and process start on a loaded machine, and is still far below any drip's length (60 s)
    assert manifest["timings_s"]["download"] < 10 * deadline
    rows = {r["uid"]: r for r in final_rows(tmp_path / "out")}
    for i, route in enumerate(DEADLINE_ROUTES):
        row = rows[f"d{n_good + i:02d}"]
        assert (row["status"], row["reason"]) == ("failed", "deadline"), (route, row["error"])
    assert [rows[f"d{i:02d}"]["status"] for i in range(n_good)] == ["kept"] * n_good


def test_rerun_after_dedup_remove_keeps_the_removals(web, built, tmp_path, capsys):
    """`wit dedup --remove` filters rows after the download; the same `wit build` again reuses everything and ends with
    exactly that accounting (the removed rows stay filtered/near_duplicate, nothing is downloaded again)."""
    from eval.neardup.model import DetectorConfig
    from eval.neardup.train import build_model, save_detector

    out = tmp_path / "out"
    shutil.copytree(built, out)
    cfg = DetectorConfig(image_size=16, width=4, embed_dim=8)
    save_detector(build_model(cfg), cfg, tmp_path / "det.pt")
    # threshold -1: every image links to its top-k neighbours, so clusters and removals exist whatever the web holds
    assert cli.main(["dedup", str(out), "--detector", str(tmp_path / "det.pt"), "--threshold", "-1", "--remove"]) == 0
    after = [(r["uid"], r["status"], r["reason"], r["shard"], r["key"]) for r in final_rows(out)]
    removed = [r for r in after if r[2] == "near_duplicate"]
    assert removed and all(r[1] == "filtered" for r in removed)
    sizes = (out / "shards" / "sizes.json").read_text()
    capsys.readouterr()
    assert cli.main(argv(web, out)) == 0
    assert "finished shard(s) reused" in capsys.readouterr().out
    assert [(r["uid"], r["status"], r["reason"], r["shard"], r["key"]) for r in final_rows(out)] == after
    assert (out / "shards" / "sizes.json").read_text() == sizes
