"""The end-of-run summary of `wit build`: the funnel, the per-query head, the download's rate and failure table,
formatted from the manifest and the folder's per-query counts."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from wit_builder import ledger


def funnel_text(reasons: dict[str, int]) -> str:
    return " -> ".join(f"{name} {n:,}" for name, n in ledger.funnel(reasons))


def distribution_head(qtable: pa.Table, k: int = 10) -> str:
    """The k most-matched queries with matched / kept_attributed / kept, as a small text table."""
    order = pc.sort_indices(qtable, sort_keys=[("matched", "descending"), ("query_id", "ascending")])
    top = qtable.take(order.slice(0, k)).to_pylist()
    width = max([len(r["query"]) for r in top] + [5])
    lines = [f"  {'query':<{width}}  {'matched':>9}  {'attributed kept':>15}  {'kept (any)':>10}"]
    lines += [
        f"  {r['query']:<{width}}  {r['matched']:>9,}  {r['kept_attributed']:>15,}  {r['kept']:>10,}" for r in top
    ]
    return "\n".join(lines)


def curate_report(cfg, manifest: dict, query_counts: pa.Table) -> list[str]:
    """The curate stage's lines, from its manifest and the folder's query_counts table."""
    reasons = manifest["counts"]["reasons"]
    lang_label = "English" if cfg.curate.languages == ("en",) else "language"
    elapsed = manifest["timings_s"]["total"]
    reused = " (reused from an earlier run)" if manifest.get("curate_reused") else ""
    cut = manifest["counts"].get("texts_cut", 0)
    return [
        f"funnel: {funnel_text(reasons).replace(' language ', f' {lang_label} ')}",
        "filtered: "
        + ", ".join(f"{r} {k:,}" for r, k in sorted(reasons.items(), key=lambda x: -x[1]) if r != ledger.SELECTED),
        f"per-query distribution, most matched first (before balancing: matched; after: kept, cap {cfg.curate.cap:,}):",
        distribution_head(query_counts),
        *(
            [
                f"texts: {cut:,} selected caption(s) longer than --max-chars {cfg.curate.max_chars:,} were matched whole "
                "and stored cut"
            ]
            if cut
            else []
        ),
        f"curate: wrote {cfg.out}/curated, accounting, query_counts.parquet, manifest.json in {elapsed:.1f} s "
        f"({manifest['engine']}, {manifest['workers']} worker(s)){reused}",
    ]


def download_report(cfg, manifest: dict) -> list[str]:
    d = manifest["counts"]["download"]
    t = manifest["timings_s"]["download"]
    rate = f"{d['images_per_s']:,.1f}" if d["images_per_s"] is not None else "-"
    lines = [
        f"funnel: ... selected {d['pairs']:,} -> downloaded {d['kept']:,} ({d['failed']:,} failed, "
        f"{100 * d['kept'] / max(d['pairs'], 1):.1f} %)",
        f"download: {d['shards']} shard(s) in {cfg.out}/shards, {d['images_this_run']:,} images in {t:.1f} s "
        f"({rate} images/s)" + (f"; {d['shards_reused']} finished shard(s) reused" if d["shards_reused"] else ""),
    ]
    if d["errors"]:
        width = max(len(f"{e['count']:,}") for e in d["errors"])
        lines.append("failures by error (most frequent first; reason: error):")
        lines += [f"  {e['count']:>{width},}  {e['reason']}: {e['error']}" for e in d["errors"][:10]]
    lines.append(f'try: wit sql {cfg.out} "SELECT status, reason, count(*) FROM accounting GROUP BY ALL"')
    return lines
