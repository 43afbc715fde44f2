"""The overhead of running the build as a Ray job: head start-up, a trivial job's round trip, the same build through
`ray job submit` vs called in-process against the same head, and the cost of one more download shard.

  .venv/bin/python benchmarks/bench_job_submit.py [--limit 12] [--repeats 2]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipelines import ray_cluster, ray_env  # noqa: E402

WORDS = [
    "dog",
    "cat",
    "flag",
    "house",
    "car",
    "tree",
    "flower",
    "apple",
    "star",
    "heart",
    "face",
    "hand",
    "sun",
    "computer",
    "icon",
    "man",
    "woman",
    "bird",
    "fish",
    "horse",
    "book",
    "ball",
    "hat",
    "map",
    "clock",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def build_args(web: Path, queries: Path, out: Path, port: int, shard_size: int) -> list[str]:
    return [
        "--pool",
        str(web / "pool.parquet"),
        "--queries",
        str(queries),
        "--out",
        str(out),
        "--cap",
        "50",
        "--allow-hosts",
        f"127.0.0.1:{port}",
        "--shard-size",
        str(shard_size),
        "--threads",
        "16",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=12, help="images per collection of the demo web")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    from pipelines import build_wit
    from wit_builder.web.build import WebConfig, build_web
    from wit_builder.web.serve import serving

    env = ray_cluster.cli_env()
    tmp = Path(tempfile.mkdtemp(prefix="bench-job-"))
    port = free_port()
    web = tmp / "web"
    build_web(web, WebConfig(limit=args.limit, base_url=f"http://127.0.0.1:{port}"), progress=False)
    queries = tmp / "queries.txt"
    queries.write_text("\n".join(WORDS) + "\n")
    (tmp / "job.py").write_text("import ray\nray.init()\nprint(ray.cluster_resources()['CPU'])\n")
    rows: list[tuple[str, float]] = []
    if ray_cluster.head_running():
        sys.exit("a Ray head is already running: stop it (wit ray stop) so start-up can be measured")
    try:
        seconds, _ = timed(lambda: ray_cluster.start_head(num_cpus=os.cpu_count(), object_store_memory=1_000_000_000))
        rows.append(("ray start --head", seconds))
        trivial = [
            timed(
                lambda: subprocess.run(
                    [ray_cluster._ray_cli(), "job", "submit", "--working-dir", str(tmp), "--", "python", "job.py"],
                    env=env,
                    capture_output=True,
                    check=True,
                )
            )[0]
            for _ in range(args.repeats)
        ]
        rows.append(("trivial job round trip (submit -> succeeded)", min(trivial)))
        with serving(web, port=port):
            job, direct, shards = [], [], {}
            for i in range(args.repeats):
                out = tmp / f"job{i}"
                command = [
                    ray_cluster._ray_cli(),
                    "job",
                    "submit",
                    "--working-dir",
                    str(REPO),
                    "--",
                    "python",
                    "pipelines/build_wit.py",
                    *build_args(web, queries, out, port, 100),
                ]
                job.append(
                    timed(functools.partial(subprocess.run, command, env=env, capture_output=True, check=True))[0]
                )
                parser_ = argparse.ArgumentParser()
                build_wit.add_arguments(parser_)
                cfg = build_wit.config_from_args(
                    parser_.parse_args(build_args(web, queries, tmp / f"direct{i}", port, 100))
                )
                direct.append(timed(functools.partial(build_wit.main, cfg))[0])
            for size in (10, 100):
                parser_ = argparse.ArgumentParser()
                build_wit.add_arguments(parser_)
                cfg = build_wit.config_from_args(
                    parser_.parse_args(build_args(web, queries, tmp / f"s{size}", port, size))
                )
                manifest = build_wit.main(cfg)
                shards[size] = (manifest["counts"]["download"]["shards"], manifest["timings_s"]["download"])
        rows.append(("build through ray job submit", min(job)))
        rows.append(("same build in-process (main(cfg)) on the same head", min(direct)))
        rows.append(("job submit overhead (difference)", min(job) - min(direct)))
        (n10, t10), (n100, t100) = shards[10], shards[100]
        rows.append(
            (
                f"download: {n10} shards of 10 vs {n100} of 100, extra seconds per shard",
                (t10 - t100) / max(1, n10 - n100),
            )
        )
    finally:
        import ray

        if ray.is_initialized():
            ray.shutdown()
        ray_cluster.stop_head()
        shutil.rmtree(tmp, ignore_errors=True)
    kept = json.dumps({"limit": args.limit, "repeats": args.repeats, "cpus": os.cpu_count()})
    print(f"\nray job submit overhead ({kept})")
    print(f"{'measure':<62}{'seconds':>9}")
    for name, value in rows:
        print(f"{name:<62}{value:>9.2f}")


if __name__ == "__main__":
    ray_env.apply()
    main()
