"""`wit build` (curate stage): the Ray Data pipeline gives exactly the pure path's output, on a real local Ray cluster;
the outputs are queryable with `wit sql`; bad input fails with a clear message."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines import build_wit, cli
from wit_builder import catalog
from wit_builder.config import BuildConfig, CurateConfig

QUERIES = ["apple", "red apple", "dog", "cat", "car", "birthday card", "Paris", "table", "New York"]
TEXTS = [
    "A red apple on a wooden table",
    "The dog, running in the park.",
    "Ein roter Apfel auf dem Tisch",
    "blue car",
    "",
    "Cartoon cat with a hat",
    "the dog and the cat",
    "Caf\u00c3\u00a9 in Paris &amp; the river",
    "   ",
    "un chien qui court dans le parc",
    "A big red apple",
    "apple pie recipe with cinnamon",
    "happy birthday card with balloons",
    "A yellow taxi in New York City",
    "a table and four chairs",
]


def write_pool(folder, n=600):
    """Two Parquet files and a CSV with repeated urls, empty texts, non-English and unmatched captions."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = [(f"p{i}", f"http://127.0.0.1/img/{i % 250}.png", TEXTS[i % len(TEXTS)]) for i in range(n)]
    cols = list(zip(*rows))
    table = pa.table({"uid": cols[0], "url": cols[1], "text": cols[2], "source": ["test"] * n})
    pq.write_table(table.slice(0, n // 3), folder / "a.parquet")
    pq.write_table(table.slice(n // 3, n // 3), folder / "b.parquet")
    with open(folder / "c.csv", "w") as f:
        f.write("uid,url,text\n" + "".join(f'{u},{link},"{t}"\n' for u, link, t in rows[2 * (n // 3) :]))
    (folder / "queries.txt").write_text("\n".join(QUERIES + ["", "dog"]) + "\n")
    return folder


def _config(tmp, out, **kw):
    curate = CurateConfig(cap=kw.pop("cap", 15), balance=kw.pop("balance", "paper"))
    return BuildConfig(
        pool=(str(tmp / "pool"),),
        queries=str(tmp / "pool" / "queries.txt"),
        out=str(out),
        curate=curate,
        stop_after=kw.pop("stop_after", "curate"),
        **kw,
    )


def _read(folder, name, sort="uid"):
    table = pq.ParquetDataset(str(folder / name)).read() if (folder / name).is_dir() else pq.read_table(folder / name)
    return table.sort_by(sort).to_pylist()


def test_ray_pipeline_equals_pure_path(tmp_path, ray_session):
    write_pool(tmp_path / "pool")
    local = build_wit.main(_config(tmp_path, tmp_path / "local", local=True))
    ray_run = build_wit.main(_config(tmp_path, tmp_path / "ray", workers=2, batch_size=64))
    assert ray_run["engine"] == "ray" and local["engine"] == "local"
    for name, key in (("accounting", "uid"), ("curated", "uid"), ("query_counts.parquet", "query_id")):
        assert _read(tmp_path / "ray", name, key) == _read(tmp_path / "local", name, key), name
    assert ray_run["counts"] == local["counts"]
    counts = local["counts"]
    assert counts["rows_in"] == 600 and sum(counts["reasons"].values()) == 600
    assert {"empty_text", "language", "duplicate_url", "cap"} <= set(counts["reasons"])
    manifest = json.loads((tmp_path / "ray" / "manifest.json").read_text())
    assert manifest["inputs"]["queries_skipped"] == {"read": 11, "empty": 1, "duplicate": 1}
    assert manifest["counts"]["funnel"]["pool"] == 600

    con, tables = catalog.connect(str(tmp_path / "ray"))
    assert {"accounting", "curated", "query_counts"} <= set(tables)
    assert con.execute("SELECT count(*) FROM accounting").fetchone()[0] == 600
    assert con.execute("SELECT max(kept_attributed) FROM query_counts").fetchone()[0] <= 15
    kept = con.execute("SELECT count(*) FROM accounting WHERE status = 'selected'").fetchone()[0]
    assert kept == con.execute("SELECT count(*) FROM curated").fetchone()[0] == counts["reasons"]["selected"]


@pytest.mark.parametrize("balance", ["paper", "metaclip"])
def test_local_build_cli_and_rerun_reuses_outputs(tmp_path, capsys, balance):
    write_pool(tmp_path / "pool", n=90)
    argv = [
        "build",
        "--pool",
        str(tmp_path / "pool"),
        "--queries",
        str(tmp_path / "pool" / "queries.txt"),
        "--out",
        str(tmp_path / "out"),
        "--cap",
        "3",
        "--balance",
        balance,
        "--local",
        "--stop-after",
        "curate",
    ]
    assert cli.main(argv) == 0
    first = _read(tmp_path / "out", "accounting")
    out = capsys.readouterr().out
    assert "funnel: pool 90 -> normalised" in out and "English" in out and "per-query distribution" in out
    assert "stopped after curate" in out and "reused" not in out
    assert cli.main(argv) == 0
    assert _read(tmp_path / "out", "accounting") == first  # rerun: same result, no duplicated files
    assert "(reused from an earlier run)" in capsys.readouterr().out
    (tmp_path / "out" / "manifest.json").unlink()  # an interrupted curate stage (no manifest yet) is redone
    assert cli.main(argv) == 0
    assert _read(tmp_path / "out", "accounting") == first
    assert "reused" not in capsys.readouterr().out


def test_other_curation_config_into_same_out_is_refused(tmp_path, capsys):
    write_pool(tmp_path / "pool", n=30)
    argv = [
        "build",
        "--pool",
        str(tmp_path / "pool"),
        "--queries",
        str(tmp_path / "pool" / "queries.txt"),
        "--out",
        str(tmp_path / "out"),
        "--local",
        "--stop-after",
        "curate",
    ]
    assert cli.main(argv) == 0
    before = (tmp_path / "out" / "manifest.json").read_text()
    assert cli.main(argv + ["--balance", "metaclip", "--seed", "1"]) == 2
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith(
            f"wit: error: {tmp_path / 'out'} already holds a build with a different --balance, --seed (see its "
            "manifest.json): use a new --out, or rerun with the same settings to resume"
        )
    )
    assert (tmp_path / "out" / "manifest.json").read_text() == before


def test_changed_pool_is_refused_then_rebuilt_with_force(tmp_path, capsys):
    """A rerun must never reuse a curate stage built from other contents of the same files (rows would be lost)."""
    write_pool(tmp_path / "pool", n=30)
    argv = [
        "build",
        "--pool",
        str(tmp_path / "pool"),
        "--queries",
        str(tmp_path / "pool" / "queries.txt"),
        "--out",
        str(tmp_path / "out"),
        "--local",
        "--stop-after",
        "curate",
    ]
    assert cli.main(argv) == 0
    write_pool(tmp_path / "pool", n=45)  # same paths, more rows
    capsys.readouterr()
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "was built from other contents of" in err and "rerun with --force" in err
    assert cli.main(argv + ["--force"]) == 0
    assert len(_read(tmp_path / "out", "accounting")) == 45


def test_inputs_are_compared_by_content_not_size_or_time(tmp_path, capsys):
    """Touched or copied-over inputs with the same bytes reuse the curate stage; an edit that keeps the size and the
    modification time is still refused."""
    import os

    write_pool(tmp_path / "pool", n=30)
    queries = tmp_path / "pool" / "queries.txt"
    argv = [
        "build",
        "--pool",
        str(tmp_path / "pool"),
        "--queries",
        str(queries),
        "--out",
        str(tmp_path / "out"),
        "--local",
        "--stop-after",
        "curate",
    ]
    assert cli.main(argv) == 0
    stat = queries.stat()
    os.utime(queries, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # touched: same bytes, a second later
    capsys.readouterr()
    assert cli.main(argv) == 0
    assert "(reused from an earlier run)" in capsys.readouterr().out

    text = queries.read_text()
    edited = text.replace(text[0], "z" if text[0] != "z" else "y", 1)  # one byte changed, same size
    assert len(edited) == len(text) and edited != text
    stat = queries.stat()
    queries.write_text(edited)
    os.utime(queries, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # and the old modification time
    assert cli.main(argv) == 2
    assert f"was built from other contents of {queries}" in capsys.readouterr().err


def test_stop_after_is_checked():
    with pytest.raises(Exception, match="--stop-after 'train' is not one of curate, download"):
        BuildConfig(pool=("p",), queries="q", out="o", stop_after="train")


def test_bad_input_gives_clear_errors(tmp_path, capsys):
    write_pool(tmp_path / "pool", n=30)
    pq.write_table(pa.table({"link": ["u"], "text": ["t"]}), tmp_path / "bad.parquet")
    code = cli.main(
        [
            "build",
            "--pool",
            str(tmp_path / "bad.parquet"),
            "--queries",
            str(tmp_path / "pool" / "queries.txt"),
            "--out",
            str(tmp_path / "o"),
            "--local",
        ]
    )
    assert code == 2 and "lacks column(s) url" in capsys.readouterr().err
    code = cli.main(
        [
            "build",
            "--pool",
            str(tmp_path / "pool"),
            "--queries",
            str(tmp_path / "none.txt"),
            "--out",
            str(tmp_path / "o"),
            "--local",
        ]
    )
    assert code == 2 and "query list" in capsys.readouterr().err
    code = cli.main(
        [
            "build",
            "--pool",
            str(tmp_path / "pool"),
            "--queries",
            str(tmp_path / "pool" / "queries.txt"),
            "--out",
            str(tmp_path / "o"),
            "--local",
            "--cap",
            "0",
        ]
    )
    assert code == 2 and "--cap" in capsys.readouterr().err


def test_a_bad_pool_on_ray_is_the_same_one_line_error_as_local(tmp_path, ray_session, capsys):
    """A WitError raised inside a Ray Data task (the pool reader) reaches the user as the local path's line, exit 2."""
    pq.write_table(pa.table({"link": ["u"], "text": ["t"]}), tmp_path / "bad.parquet")
    (tmp_path / "q.txt").write_text("dog\n")
    base = [
        "build",
        "--pool",
        str(tmp_path / "bad.parquet"),
        "--queries",
        str(tmp_path / "q.txt"),
        "--stop-after",
        "curate",
    ]
    assert cli.main([*base, "--out", str(tmp_path / "local"), "--local"]) == 2
    local = capsys.readouterr().err.strip().splitlines()[-1]
    assert cli.main([*base, "--out", str(tmp_path / "ray")]) == 2
    on_ray = capsys.readouterr().err.strip().splitlines()
    assert "lacks column(s) url" in local and on_ray[-1] == local
    assert not any("Traceback" in line or "RayTaskError" in line for line in on_ray)


@pytest.mark.slow
def test_demo_pool_on_ray_is_independent_of_workers(tmp_path, ray_session):
    """The real demo web and query list (`wit web build`, `wit queries`), curated on Ray with 1 and 2 workers."""
    assert cli.main(["web", "build", "--out", str(tmp_path / "web")]) == 0
    assert cli.main(["queries", "--out", str(tmp_path / "q.parquet")]) == 0
    runs = {}
    for workers in (1, 2):
        cfg = BuildConfig(
            pool=(str(tmp_path / "web" / "pool.parquet"),),
            queries=str(tmp_path / "q.parquet"),
            out=str(tmp_path / f"out{workers}"),
            workers=workers,
            batch_size=512,
            stop_after="curate",
        )
        runs[workers] = build_wit.main(cfg)
    assert _read(tmp_path / "out1", "accounting") == _read(tmp_path / "out2", "accounting")
    counts = runs[2]["counts"]
    assert counts["rows_in"] == pq.read_metadata(tmp_path / "web" / "pool.parquet").num_rows
    assert sum(counts["reasons"].values()) == counts["rows_in"] and counts["reasons"].get("selected", 0) > 0


def test_empty_pool_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "empty.csv").write_bytes(b"")
    (tmp_path / "q.txt").write_text("dog\n")
    code = cli.main(
        [
            "build",
            "--pool",
            str(tmp_path / "empty.csv"),
            "--queries",
            str(tmp_path / "q.txt"),
            "--out",
            str(tmp_path / "o"),
            "--local",
        ]
    )
    assert code == 2 and "no rows" in capsys.readouterr().err


def test_pool_and_out_on_s3(tmp_path, s3_env):
    """Pool, query list and outputs on a real S3 server (SeaweedFS on loopback), through storage's filesystems."""
    from wit_builder import storage

    write_pool(tmp_path / "pool", n=60)
    root = f"s3://{s3_env.bucket}/build"
    for name in ("a.parquet", "b.parquet", "c.csv", "queries.txt"):
        storage.write_bytes(f"{root}/pool/{name}", (tmp_path / "pool" / name).read_bytes())
    cfg = BuildConfig(
        pool=(f"{root}/pool",),
        queries=f"{root}/pool/queries.txt",
        out=f"{root}/out",
        curate=CurateConfig(cap=5),
        local=True,
        stop_after="curate",
    )
    manifest = build_wit.main(cfg)
    local = build_wit.main(
        BuildConfig(
            pool=(str(tmp_path / "pool"),),
            queries=str(tmp_path / "pool" / "queries.txt"),
            out=str(tmp_path / "out"),
            curate=CurateConfig(cap=5),
            local=True,
            stop_after="curate",
        )
    )
    assert manifest["counts"]["rows_in"] == 60
    assert manifest["counts"]["reasons"] == local["counts"]["reasons"]
    con, tables = catalog.connect(f"{root}/out")
    assert {"accounting", "curated", "query_counts"} <= set(tables)
    assert con.execute("SELECT count(*) FROM accounting").fetchone()[0] == 60
