"""`wit demo` as `make demo` runs it, on a small web: every step, a real Ray head and `ray job submit`, and a second
run that reuses everything."""

import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from ports import free_port

from pipelines import ray_cluster

BIN = Path(sys.executable).parent


@pytest.mark.slow
@pytest.mark.ray_head  # the demo starts and stops a Ray head
def test_demo_runs_every_step_then_reuses_them(no_driver_ray, tmp_path):
    env = ray_cluster.cli_env()
    out = tmp_path / "demo"
    argv = [
        BIN / "wit",
        "demo",
        "--out",
        out,
        "--limit",
        "6",
        "--port",
        str(free_port()),
        "--check",
        "40",
        "--cap",
        "5",
        "--eval-limit",
        "100",
    ]
    first = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=900)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    steps = ("1/7 web", "2/7 serve", "3/7 queries", "4/7 build", "5/7 train", "6/7 eval", "7/7 overlap", "summary ==")
    for step in steps:
        assert f"== {step}" in first.stdout
    build = out / "build-cap5"
    manifest = json.loads((build / "manifest.json").read_text())
    con = duckdb.connect()
    pool_rows = con.execute(f"SELECT count(*) FROM '{out}/web/pool.parquet'").fetchone()[0]
    statuses = dict(con.execute(f"SELECT status, count(*) FROM '{build}/accounting/*.parquet' GROUP BY 1").fetchall())
    assert sum(statuses.values()) == pool_rows and statuses["kept"] == manifest["counts"]["download"]["kept"] > 0
    assert f"download {manifest['counts']['download']['kept']:>9,} images" in first.stdout
    run = json.loads((out / "run-tiny-vit" / "summary.json").read_text())  # trained on the demo's shards
    assert run["steps"] >= 1 and f"{run['steps']:,} steps of tiny-vit" in first.stdout
    assert "loss curve: step " in first.stdout
    results = json.loads((out / "eval" / "results.json").read_text())  # every offline classification task, 2 ways
    tasks = json.loads((out / "eval-data" / "tasks.json").read_text())
    assert all(t["limit"] == 100 and 0 < max(t["n"].values()) <= 100 for t in tasks.values())  # --eval-limit
    classification = [n for n, t in tasks.items() if t["kind"] == "classification" and not n.startswith("shift-")]
    assert sorted((r["dataset"], r["task"]) for r in results) == sorted(
        (n, t) for n in classification for t in ("zeroshot_classification", "linear_probe")
    )
    for name in classification:
        assert f"  {name} " in first.stdout  # a row of the printed table
    per_example = con.execute(f"SELECT count(DISTINCT dataset) FROM '{out}/eval/predictions.parquet'").fetchone()[0]
    assert per_example == len(classification)  # what the overlap report joins on
    overlap = json.loads((out / "overlap" / "summary.json").read_text())  # every classification task, its accuracy
    assert sorted(overlap["overlap"]) == sorted(overlap["datasets"]) == sorted(classification)
    zeroshot_rows = con.execute(
        f"SELECT count(*) FROM '{out}/eval/predictions.parquet' WHERE task = 'zeroshot'"
    ).fetchone()[0]
    assert con.execute(f"SELECT count(*) FROM '{out}/overlap/overlap.parquet'").fetchone()[0] == zeroshot_rows
    assert all(s["n"] == overlap["overlap"][name]["n"] for name, s in overlap["datasets"].items())
    assert (out / "overlap" / "index.html").stat().st_size > 10_000 and "  overlap  " in first.stdout
    output = first.stdout + first.stderr  # a quiet log: no warning floods, no traceback from stopping the head
    assert "Terminated with signal" not in output and "Traceback" not in output
    assert "DecompressionBombWarning" not in output

    second = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "is up to date" in second.stdout and "finished shards reused" in second.stdout
    assert f"{out}/run-tiny-vit is up to date" in second.stdout
    assert f"eval data: {out}/eval-data is up to date" in second.stdout
    assert f"eval: {out}/eval is up to date" in second.stdout and "  digits " in second.stdout
    assert f"overlap: {out}/overlap is up to date" in second.stdout
