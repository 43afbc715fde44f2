"""The whole curation stage: pool rows/s in one process (where the time goes) and on Ray with 1 and 2 workers.

    .venv/bin/python benchmarks/bench_curate.py [--pool DIR/pool.parquet --queries q.parquet] [--rows 20000]

Without --pool, a pool of --rows rows is generated (seeded): English captions over wordfreq's vocabulary (as in
bench_match.py), German/French/Spanish captions, empty and whitespace texts, HTML entities, mojibake, and repeated
urls. Without --queries, bench_match.py's 500k-entry list is used (the paper's size: building the automaton is part of
each worker's cost). Ray runs use a local cluster of 2 CPUs; timings of the Ray runs include actor start-up but not
Ray's own start.
"""

from __future__ import annotations

import argparse
import functools
import os
import random
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def synthetic_pool(path: str, rows: int, seed: int = 3) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq
    import wordfreq
    from bench_match import synthetic_captions

    rng = random.Random(seed)
    english = synthetic_captions(rows, seed=seed)
    foreign = {lang: wordfreq.top_n_list(lang, 5000) for lang in ("de", "fr", "es")}
    texts, urls = [], []
    for i in range(rows):
        r = rng.random()
        if r < 0.10:
            words = foreign[rng.choice(list(foreign))]
            text = " ".join(rng.choices(words[:3000], k=rng.randint(4, 14))).capitalize()
        elif r < 0.13:
            text = rng.choice(["", "   ", "\n"])
        elif r < 0.16:
            text = english[i].replace(" ", " &amp; ", 1)
        elif r < 0.18:
            text = english[i] + " caf\u00c3\u00a9"
        else:
            text = english[i]
        texts.append(text)
        urls.append(f"http://127.0.0.1:8000/img/{rng.randrange(rows) if rng.random() < 0.05 else i}.png")
    pq.write_table(
        pa.table({"uid": [f"b{i}" for i in range(rows)], "url": urls, "text": texts, "source": ["bench"] * rows}), path
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool")
    parser.add_argument("--queries")
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--n-queries", type=int, default=500_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch-size", type=int, default=4096)
    args = parser.parse_args(argv)

    import pyarrow as pa
    import pyarrow.compute as pc
    from bench_match import synthetic_queries

    from wit_builder.config import BuildConfig, CurateConfig
    from wit_builder.curate import curation_stages, load_queries
    from wit_builder.match.automaton import TokenAutomaton
    from wit_builder.pool.langid import LanguageId
    from wit_builder.pool.read import list_pool_files, read_pool_file

    work = tempfile.mkdtemp(prefix="bench_curate_")
    pool = args.pool
    if not pool:
        pool = os.path.join(work, "pool.parquet")
        synthetic_pool(pool, args.rows)
    queries_path = args.queries
    if not queries_path:
        queries_path = os.path.join(work, "queries.txt")
        with open(queries_path, "w") as f:
            f.write("\n".join(synthetic_queries(args.n_queries)) + "\n")
    queries, _ = load_queries(queries_path)
    cfg = CurateConfig()

    # 1. one process, stage by stage (CPU seconds of this process = one core), the stage list the build runs
    stages: dict[str, float] = {}

    def timed(name, fn, *a):
        c0 = time.process_time()
        out = fn(*a)
        stages[name] = stages.get(name, 0.0) + time.process_time() - c0
        return out

    table = timed("read", lambda: pa.concat_tables([read_pool_file(f, cfg) for f in list_pool_files(pool)]))
    rows = table.num_rows
    lid = timed("langid model load", LanguageId)
    auto = timed("automaton build", TokenAutomaton, queries)
    values: dict = {}
    dead = None
    for stage in curation_stages(queries, cfg, lid=lid, automaton=auto):
        if stage.alive_only and dead is None:
            dead = table.filter(pc.is_valid(table["reason"]))
            table = table.filter(pc.is_null(table["reason"]))
        needs = {k: values[k] for k in stage.needs}
        if stage.kind == "actor":
            table = timed(stage.name, stage.fn(), table)
        elif stage.kind == "sum":
            values[stage.output] = timed(stage.name, functools.partial(stage.fn, **needs), table)
        else:
            table = timed(stage.name, functools.partial(stage.fn, **needs), table)
    total = sum(stages.values())
    print(f"pool: {rows:,} rows ({pool}); queries: {len(queries):,}\n")
    print("| stage (one process) | CPU s | share | rows / CPU-s |")
    print("|---|---:|---:|---:|")
    for name, sec in stages.items():
        rate = f"{rows / sec:,.0f}" if sec > 0 and "load" not in name and "build" not in name else "-"
        print(f"| {name} | {sec:.2f} | {100 * sec / total:.0f}% | {rate} |")
    print(f"| **total** | {total:.2f} | 100% | {rows / total:,.0f} |")

    # 2. the Ray pipeline, 1 and 2 workers, on a local 2-CPU cluster
    from pipelines import build_wit, ray_env

    ray_env.init_local(num_cpus=2, join_head=False, log_to_driver=False)
    print(
        "\n| Ray workers | wall s | pool rows/s | read+normalise+langid+match s | dedup s | count s | "
        "attribute+balance s | write s | selected |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    kept_sets = []
    for w in args.workers:
        bcfg = BuildConfig(
            pool=(pool,), queries=queries_path, out=os.path.join(work, f"ray{w}"), workers=w, batch_size=args.batch_size
        )
        t0 = time.perf_counter()
        manifest = build_wit.main(bcfg)
        wall = time.perf_counter() - t0
        t = manifest["timings_s"]
        kept = manifest["counts"]["reasons"].get("selected", 0)
        import pyarrow.parquet as pq

        kept_sets.append(
            set(pq.ParquetDataset(os.path.join(work, f"ray{w}", "curated")).read(columns=["uid"])["uid"].to_pylist())
        )
        print(
            f"| {w} | {wall:.1f} | {rows / wall:,.0f} | {t['read+normalise+langid+match']:.1f} | {t['dedup']:.1f} | "
            f"{t['count']:.1f} | {t['attribute'] + t['balance']:.1f} | {t['write']:.1f} | {kept:,} |"
        )
    same = all(k == kept_sets[0] for k in kept_sets)
    print(f"\nselected set identical across worker counts: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
