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
    ]
    first = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=900)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    for step in ("== 1/5 web", "== 2/5 serve", "== 3/5 queries", "== 4/5 build", "== 5/5 train", "== summary =="):
        assert step in first.stdout
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
    output = first.stdout + first.stderr  # a quiet log: no warning floods, no traceback from stopping the head
    assert "Terminated with signal" not in output and "Traceback" not in output
    assert "DecompressionBombWarning" not in output

    second = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "is up to date" in second.stdout and "finished shards reused" in second.stdout
    assert f"{out}/run-tiny-vit is up to date" in second.stdout
