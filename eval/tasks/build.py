"""`wit eval data`: build every offline task and write it in CLIP_benchmark's layout, with an index `tasks.json`."""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

from eval.datasets import EvalSet, write_eval_set
from eval.tasks import digits, drawings, emoji, shift, text
from eval.tasks.retrieval import retrieval_from_shards
from wit_builder.errors import WitError

TASKS = {
    "digits": digits.build,
    "clipart": drawings.build_clipart,
    "stamps": drawings.build_stamps,
    "emoji-group": emoji.build_group,
    "emoji-subgroup": emoji.build_subgroup,
    "rendered-text": text.build,
    "shift-clipart": shift.build_clipart,
    "shift-stamps": shift.build_stamps,
    "shift-emoji": shift.build_emoji,
}
KINDS = {name: "classification" for name in TASKS} | {"demo-retrieval": "retrieval"}
SHIFT_TASKS = ("shift-clipart", "shift-stamps", "shift-emoji")  # one class list: the robustness study's sources
INDEX_FILE = "tasks.json"


def available_tasks(data_dir: str | None = None) -> list[str]:
    """The tasks `wit eval data` wrote under `data_dir` (default $WIT_CACHE/eval), in TASKS order; a WitError that
    says how to write them when there are none."""
    from eval.datasets import default_data_dir

    root = Path(data_dir) if data_dir else default_data_dir()
    index = root / INDEX_FILE
    if not index.exists():
        raise WitError(f"no evaluation tasks under {root}: write them with `wit eval data --out {root}`")
    written = json.loads(index.read_text())
    return [n for n in KINDS if n in written] + sorted(n for n in written if n not in KINDS)


def subsample(data: EvalSet, limit: int | None, seed: int = 0) -> EvalSet:
    """At most `limit` rows of one split, seeded, in their original order. Classes take turns (every class keeps
    about limit / classes rows, all of a smaller one), so a small sample still has every class to classify."""
    if limit is not None and limit < 1:
        raise WitError(f"an evaluation limit must be at least 1 image per split, got {limit}")
    if limit is None or len(data) <= limit:
        return data
    rng = np.random.default_rng(seed)
    if data.labels is None:
        keep = rng.permutation(len(data))[:limit]
    else:
        turn = np.zeros(len(data), dtype=np.int64)  # a row's place within its class, in a seeded order
        for c in np.unique(data.labels):
            members = rng.permutation(np.flatnonzero(data.labels == c))
            turn[members] = np.arange(len(members))
        keep = np.lexsort((rng.random(len(data)), turn))[:limit]
    keep = np.sort(keep)
    return dataclasses.replace(
        data,
        keys=[data.keys[i] for i in keep],
        images=[data.images[i] for i in keep],
        labels=None if data.labels is None else data.labels[keep],
        captions=None if data.captions is None else [data.captions[i] for i in keep],
    )


def summarize(sets: list[EvalSet], seconds: float, limit: int | None = None) -> dict:
    """What tasks.json says about one task (`limit`: the per-split cap it was written with, None for all)."""
    first = sets[0]
    return {
        "name": first.name,
        "kind": first.kind,
        "n": {s.split: len(s) for s in sets},
        "classes": first.classnames,
        "note": first.note,
        "skipped": {s.split: s.skipped for s in sets if s.skipped},
        "seconds": round(seconds, 2),
        "limit": limit,
    }


def build_tasks(
    out_dir: str,
    names: list[str] | None = None,
    progress: bool = True,
    shards: list[str] | None = None,
    limit: int | None = None,
) -> dict[str, dict]:
    """Write each named task (default: all of TASKS) to out_dir/NAME/ and index them in out_dir/tasks.json (merged
    with what is already there). `shards`, when given, adds the `demo-retrieval` set built from those shards.
    `limit` keeps at most that many images per split (`subsample`), for a quicker evaluation."""
    chosen = list(TASKS) if names is None else list(names)
    unknown = [n for n in chosen if n not in TASKS]
    if unknown:
        raise WitError(f"unknown evaluation task(s) {unknown}: choose from {', '.join(TASKS)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    index_path = out / INDEX_FILE
    index = json.loads(index_path.read_text()) if index_path.exists() else {}
    summaries: dict[str, dict] = {}
    jobs = [(n, TASKS[n]) for n in chosen]
    if shards:
        jobs.append(("demo-retrieval", lambda: (retrieval_from_shards(shards),)))
    for name, builder in jobs:
        started = time.time()
        sets = [subsample(s, limit) for s in builder()]
        write_eval_set(str(out / name), sets)
        summaries[name] = summarize(sets, time.time() - started, limit)
        if progress:
            counts = ", ".join(f"{k} {v}" for k, v in summaries[name]["n"].items())
            print(f"eval data: {name}: {counts} ({summaries[name]['seconds']} s)", file=sys.stderr)
    index.update(summaries)
    index_path.write_text(json.dumps(index, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return summaries
