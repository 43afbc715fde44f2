"""`wit build` as a user runs it on a cluster: a real Ray head (`wit ray start`), pipelines/build_wit.py submitted
unchanged with `ray job submit --working-dir .`, downloading from a demo web served on 127.0.0.1; then every pool row
is accounted exactly once and the shards hold exactly the kept rows. Also a 2-node in-process cluster running main()."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from ports import free_port

from pipelines import ray_cluster, ray_env
from wit_builder.web.build import WebConfig, build_web
from wit_builder.web.serve import serving

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]
WORDS = (
    "frog animal bird dog cat fish horse tree flower house car sun star heart face smile hand apple ball boat "
    "book bus cake clock cow duck egg hat key lion moon owl pig rabbit sheep snake train turtle man woman"
).split()


def check_build(out: Path, pool: Path) -> dict:
    """Every pool row accounted exactly once; kept rows == samples in the shards (uid for uid); returns the counts."""
    accounting = pq.ParquetDataset(str(out / "accounting")).read()
    uids = accounting["uid"].to_pylist()
    assert sorted(uids) == sorted(pq.read_table(pool, columns=["uid"])["uid"].to_pylist())
    assert len(set(uids)) == len(uids)
    rows = accounting.to_pylist()
    kept = {(r["uid"], r["key"]) for r in rows if r["status"] == "kept"}
    shard_rows = [r for f in sorted((out / "shards").glob("[0-9]*.parquet")) for r in pq.read_table(f).to_pylist()]
    assert {(r["uid"], r["key"]) for r in shard_rows if r["status"] == "success"} == kept
    sizes = json.loads((out / "shards" / "sizes.json").read_text())
    assert sum(sizes.values()) == len(kept) > 0
    statuses = {s: sum(r["status"] == s for r in rows) for s in ("kept", "filtered", "failed")}
    assert sum(statuses.values()) == len(rows)
    return statuses


@pytest.fixture
def demo_web(tmp_path):
    port = free_port()
    web = tmp_path / "web"
    build_web(web, WebConfig(limit=15, base_url=f"http://127.0.0.1:{port}"), progress=False)
    (tmp_path / "queries.txt").write_text("\n".join(WORDS) + "\n")
    with serving(web, port=port):
        yield web, port


@pytest.mark.slow
@pytest.mark.ray_head
def test_ray_job_submit_builds_shards_on_a_real_head(no_driver_ray, tmp_path, demo_web):
    web, port = demo_web
    env = ray_cluster.cli_env()
    start = subprocess.run(
        [BIN / "wit", "ray", "start", "--num-cpus", "2", "--object-store-memory", "500000000"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert start.returncode == 0, start.stderr
    try:
        out = tmp_path / "out"
        job = subprocess.run(
            [
                BIN / "ray",
                "job",
                "submit",
                "--working-dir",
                ".",
                "--",
                "python",
                "pipelines/build_wit.py",
                "--pool",
                str(web / "pool.parquet"),
                "--queries",
                str(tmp_path / "queries.txt"),
                "--out",
                str(out),
                "--cap",
                "20",
                "--workers",
                "1",
                "--batch-size",
                "512",
                "--allow-hosts",
                f"127.0.0.1:{port}",
                "--shard-size",
                "40",
                "--threads",
                "8",
                "--timeout",
                "5",
                "--retries",
                "0",
            ],
            capture_output=True,
            text=True,
            env=env,
            cwd=REPO,
            timeout=540,
        )
        assert job.returncode == 0, job.stdout[-4000:] + job.stderr[-4000:]
        assert "downloaded" in job.stdout and "images/s" in job.stdout
    finally:
        stop = subprocess.run([BIN / "wit", "ray", "stop"], capture_output=True, text=True, env=env)
    assert stop.returncode == 0, stop.stderr
    statuses = check_build(out, web / "pool.parquet")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["engine"] == "ray" and manifest["config"]["download"]["distributor"] == "ray"
    assert manifest["counts"]["download"]["kept"] == statuses["kept"]
    assert manifest["counts"]["download"]["failed"] == statuses["failed"] > 0


TWO_NODES = """
import json, sys
from pipelines import ray_env
ray_env.apply()
import ray
from ray.cluster_utils import Cluster
from pipelines import build_wit
from wit_builder.config import BuildConfig, CurateConfig
from wit_builder.download.img2dataset_job import DownloadConfig
pool, queries, out, port = sys.argv[1:5]
cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "object_store_memory": 200_000_000,
                                                        "include_dashboard": False})
cluster.add_node(num_cpus=1, object_store_memory=200_000_000)
cluster.wait_for_nodes()
ray.init(address=cluster.address)
try:
    nodes = len([n for n in ray.nodes() if n["Alive"]])
    cfg = BuildConfig(pool=(pool,), queries=queries, out=out, curate=CurateConfig(cap=20), workers=1, batch_size=512,
                      download=DownloadConfig(allow_hosts=(f"127.0.0.1:{port}",), number_sample_per_shard=30,
                                              thread_count=8, timeout=5, retries=0, distributor="ray"))
    manifest = build_wit.main(cfg)
    print("RESULT", json.dumps({"nodes": nodes, "download": manifest["counts"]["download"]}))
finally:
    ray.shutdown()
    cluster.shutdown()
"""


@pytest.mark.slow
@pytest.mark.ray_head
def test_two_node_cluster_runs_main(tmp_path, demo_web):
    """main(cfg) on an in-process 2-node cluster (2 x 1 CPU): shard tasks spread over nodes, accounting exact."""
    web, port = demo_web
    env = {**os.environ, **ray_env.RAY_ENV, "RAY_ADDRESS": ""}
    out = tmp_path / "out"
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            TWO_NODES,
            str(web / "pool.parquet"),
            str(tmp_path / "queries.txt"),
            str(out),
            str(port),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=540,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    result = json.loads(run.stdout.split("RESULT ", 1)[1].splitlines()[0])
    assert result["nodes"] == 2
    statuses = check_build(out, web / "pool.parquet")
    assert result["download"]["kept"] == statuses["kept"] and result["download"]["shards"] >= 2
