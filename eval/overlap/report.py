"""The overlap report a person reads and `wit sql` queries: `overlap.parquet` (one row per evaluation example),
`text_overlap.parquet` (evaluation texts found among the training captions), `summary.json` (the statistics per
dataset, the detector's calibration, text overlap and skips) and a self-contained `index.html` (a Figure 17-style plot,
the tables, the detector's precision/recall curve, thumbnails of the closest evaluation/training pairs to judge the
detector by eye)."""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
from dataclasses import asdict, dataclass

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from eval.neardup.images import to_rgb
from eval.overlap.stats import OverlapStats
from wit_builder.errors import WitError

# One row per evaluation example. tier: the test that flagged it (exact | phash | embedding), "clean" when none did,
# "unreadable" for an image that did not decode (similarity null, never overlap).
OVERLAP_SCHEMA = pa.schema(
    [
        ("dataset", pa.string()),
        ("id", pa.string()),
        ("path", pa.string()),
        ("label", pa.string()),
        ("nearest_key", pa.string()),  # the closest training sample's key
        ("similarity", pa.float32()),  # cosine similarity to it
        ("is_overlap", pa.bool_()),
        ("tier", pa.string()),
    ]
)
TEXT_OVERLAP_SCHEMA = pa.schema(
    [
        ("dataset", pa.string()),
        ("eval_text", pa.string()),
        ("train_key", pa.string()),
        ("train_caption", pa.string()),
        ("jaccard", pa.float32()),
    ]
)
THUMB_PX = 128


@dataclass(frozen=True)
class ThumbnailPair:
    """An evaluation image and its nearest training image (a path, encoded bytes or a PIL image each)."""

    eval_image: object
    train_image: object
    similarity: float
    dataset: str = ""
    eval_label: str = ""
    train_key: str = ""


def write_report(
    out_dir: str,
    rows: pa.Table,
    stats: dict[str, OverlapStats],
    pairs_for_thumbnails: list[ThumbnailPair] = (),
    plots: bool = True,
    info: dict | None = None,
    text_rows: pa.Table | None = None,
    curve=None,
) -> dict[str, str]:
    """Write overlap.parquet, text_overlap.parquet, summary.json and index.html into out_dir; returns their paths by
    name. `info` (JSON-able: train, detector, text, skipped) joins the per-dataset statistics in summary.json and the
    page; `curve` (eval.neardup.calibrate.Curve) is drawn as the detector's precision/recall curve."""
    table = conform(rows)
    os.makedirs(out_dir, exist_ok=True)
    names = ("overlap.parquet", "text_overlap.parquet", "summary.json", "index.html")
    paths = {name: os.path.join(out_dir, name) for name in names}
    pq.write_table(table, paths["overlap.parquet"])
    texts = text_rows if text_rows is not None else TEXT_OVERLAP_SCHEMA.empty_table()
    pq.write_table(texts.select(TEXT_OVERLAP_SCHEMA.names).cast(TEXT_OVERLAP_SCHEMA), paths["text_overlap.parquet"])
    info = dict(info or {})
    with open(paths["summary.json"], "w") as f:
        json.dump({"datasets": summary(stats), **info}, f, indent=2, allow_nan=False)
    page = render_html(
        stats,
        pairs_for_thumbnails,
        plot_png(stats) if plots and stats else None,
        info,
        curve_png(curve) if plots and curve is not None else None,
    )
    with open(paths["index.html"], "w", encoding="utf-8") as f:
        f.write(page)
    return paths


def conform(rows: pa.Table) -> pa.Table:
    """The rows in OVERLAP_SCHEMA's column order and types; a missing column is the caller's error."""
    missing = [name for name in OVERLAP_SCHEMA.names if name not in rows.column_names]
    if missing:
        raise WitError(f"overlap rows lack the column(s) {', '.join(missing)}: give every column of OVERLAP_SCHEMA")
    return rows.select(OVERLAP_SCHEMA.names).cast(OVERLAP_SCHEMA)


def summary(stats: dict[str, OverlapStats]) -> dict[str, dict]:
    """summary.json's content: per dataset its counts and statistics; undefined values are null."""
    out = {}
    for name, s in stats.items():
        d = {k: _json(v) for k, v in asdict(s).items() if k != "dataset"}
        d["overlap_percent"] = _json(100 * s.overlap_fraction)
        d["ci_overlap"] = [d.pop("ci_low"), d.pop("ci_high")]
        d["effect_all_ci"] = [d.pop("effect_low"), d.pop("effect_high")]
        out[name] = d
    return out


def plot_png(stats: dict[str, OverlapStats]) -> bytes:
    """The paper's Figure 17 as a PNG: per dataset x = detected overlap %, y = Overlap - Clean accuracy (left) and the
    estimated effect on All (right), both in points with 99.5% Clopper-Pearson error bars."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4), dpi=100)
    FigureCanvasAgg(fig)
    panels = (
        ("difference", "ci_low", "ci_high", "Difference in zero-shot accuracy (%)\nOverlap - Clean"),
        ("effect_all", "effect_low", "effect_high", "Overall accuracy change due to overlap (%)"),
    )
    for ax, (mid, low, high, ylabel) in zip(fig.subplots(1, 2), panels):
        for name, s in stats.items():
            y = getattr(s, mid)
            if math.isnan(y):
                continue
            # difference bars come from the Overlap accuracy's bounds minus the Clean accuracy
            lo = getattr(s, low) - (s.acc_clean if mid == "difference" else 0)
            hi = getattr(s, high) - (s.acc_clean if mid == "difference" else 0)
            x = 100 * s.overlap_fraction
            ax.errorbar([x], [100 * y], yerr=[[100 * (y - lo)], [100 * (hi - y)]], fmt="o", capsize=3)
            ax.annotate(name, (x, 100 * y), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xlabel("Detected data overlap (%)")
        ax.set_ylabel(ylabel)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def curve_png(curve) -> bytes:
    """The detector's precision against recall on the calibration pairs, as a PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.5, 3.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.plot(curve.recall, curve.precision, lw=1.5)
    ax.set_xlabel("Recall (transformed copies found)")
    ax.set_ylabel("Precision")
    ax.set_xlim(0, 1.01)
    ax.set_ylim(0, 1.01)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def render_html(
    stats: dict[str, OverlapStats],
    pairs: list[ThumbnailPair],
    plot: bytes | None,
    info: dict | None = None,
    curve: bytes | None = None,
) -> str:
    """One self-contained page: inline CSS, the plots and thumbnails as base64 images, every string escaped."""
    e = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>Overlap report</title><style>",
        "body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child{text-align:left}"
        ".pair{display:inline-block;margin:6px;padding:4px;border:1px solid #ddd;font-size:12px;max-width:280px}"
        ".pair img{margin:2px}",
        "</style></head><body><h1>Data overlap report</h1>",
    ]
    if plot is not None:
        parts.append(f"<img class='plot' alt='overlap plot' src='data:image/png;base64,{_b64(plot)}'>")
    heads = [
        "dataset",
        "n",
        "overlap %",
        "All",
        "Clean",
        "Overlap",
        "Overlap - Clean",
        "p-value",
        "99.5% CI",
        "effect on All",
    ]
    parts.append("<h2>Statistics</h2><table><tr>" + "".join(f"<th>{e(h)}</th>" for h in heads) + "</tr>")
    for name, s in stats.items():
        cells = [
            name,
            str(s.n),
            _pct(s.overlap_fraction),
            _pct(s.acc_all),
            _pct(s.acc_clean),
            _pct(s.acc_overlap),
            _pct(s.difference),
            "-" if math.isnan(s.p_value) else f"{s.p_value:.3g}",
            f"{_pct(s.ci_low)} .. {_pct(s.ci_high)}",
            f"{_pct(s.effect_all)} ({_pct(s.effect_low)} .. {_pct(s.effect_high)})",
        ]
        parts.append("<tr>" + "".join(f"<td>{e(c)}</td>" for c in cells) + "</tr>")
    parts.append("</table>")
    parts += _info_html(info or {}, curve)
    if pairs:
        parts.append("<h2>Closest evaluation / training pairs</h2><div>")
        for p in pairs:
            caption = f"{p.dataset} {p.eval_label} - {p.train_key}: similarity {p.similarity:.3f}"
            parts.append(
                f"<div class='pair'><img alt='evaluation' src='data:image/jpeg;base64,{_b64(thumbnail(p.eval_image))}'>"
                f"<img alt='training' src='data:image/jpeg;base64,{_b64(thumbnail(p.train_image))}'>"
                f"<br>{e(caption)}</div>"
            )
        parts.append("</div>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _info_html(info: dict, curve: bytes | None) -> list[str]:
    """The training corpus, detector, text overlap and skip sections of the page."""
    e, parts = html.escape, []
    train = info.get("train")
    if train:
        parts.append(
            f"<h2>Training corpus</h2><p>{e(str(train.get('source', '')))}: {train.get('images', 0):,} images in "
            f"{train.get('shards', 0)} shard(s); skipped {e(_counts(train.get('skipped')))}</p>"
        )
    det = info.get("detector")
    if det:
        parts.append(
            "<h2>Near-duplicate detector</h2><p>"
            + e(
                f"threshold {det.get('threshold')}: precision {det.get('precision')}, recall {det.get('recall')}, "
                f"ROC AUC {det.get('auc')} (target precision {det.get('min_precision')}) on "
                f"{det.get('positives', 0)} transformed copies of evaluation images against their source and "
                f"{det.get('negatives', 0)} other evaluation images against the most similar of a pool of "
                f"{det.get('pool', 0)}"
                + (f" (references in {1 + len(det['views'])} views each)" if det.get("views") else "")
                + f"; pHash tier: at most {det.get('phash_distance')} bits apart"
                + _phash_note(det.get("phash_on_pairs"))
                + f". {det.get('note', '')}"
            )
            + "</p>"
        )
        if curve is not None:
            parts.append(f"<img class='curve' alt='precision/recall curve' src='data:image/png;base64,{_b64(curve)}'>")
        per = det.get("datasets")
        if per:
            parts.append(
                "<h3>Threshold of each dataset</h3><p>Near-duplicate difficulty differs between datasets, so each "
                f"one with at least {det.get('min_own_negatives')} negative pairs is calibrated on its own pairs "
                "('own'); the others use the pooled threshold above ('pooled'), or --threshold ('given'). '-': no "
                "threshold reaches the target precision, the embedding tier flags nothing there.</p>"
                "<table><tr><th>dataset</th><th>threshold</th><th>from</th><th>its precision</th><th>its recall</th>"
                "<th>its ROC AUC</th><th>copies</th><th>negatives</th></tr>"
            )
            for name, c in per.items():
                cells = [name, "-" if c["threshold"] is None else f"{c['threshold']:.4f}", c["from"]]
                cells += ["-" if c[k] is None else f"{c[k]:.3f}" for k in ("precision", "recall", "auc")]
                cells += [str(c["positives"]), str(c["negatives"])]
                parts.append("<tr>" + "".join(f"<td>{e(x)}</td>" for x in cells) + "</tr>")
            parts.append("</table>")
        by_transform = det.get("recall_by_transform")
        if by_transform:
            parts.append(
                "<h3>Copies found at the threshold, by transform</h3><p>Each calibration copy used 1-3 of these "
                "edits; the lowest rows are the kinds of copy this detector misses most.</p>"
                "<table><tr><th>transform</th><th>copies</th><th>found</th><th>recall</th></tr>"
            )
            for name, c in by_transform.items():
                rate = c["found"] / c["copies"] if c["copies"] else 0.0
                parts.append(
                    f"<tr><td>{e(name)}</td><td>{c['copies']}</td><td>{c['found']}</td><td>{rate:.2f}</td></tr>"
                )
            parts.append("</table>")
    text = info.get("text")
    if text:
        parts.append("<h2>Text overlap (MinHash LSH)</h2><table><tr><th>dataset</th><th>texts</th><th>found</th></tr>")
        for name, t in text.items():
            parts.append(f"<tr><td>{e(name)}</td><td>{t['texts']}</td><td>{t['matched']}</td></tr>")
        parts.append("</table>")
    skipped = {k: v for k, v in (info.get("skipped") or {}).items() if v}
    if skipped:
        parts.append("<h2>Skipped evaluation examples</h2><ul>")
        parts += [f"<li>{e(name)}: {e(_counts(c))}</li>" for name, c in skipped.items()]
        parts.append("</ul>")
    return parts


def _phash_note(check: dict | None) -> str:
    if not check:
        return ""
    return f" (it alone finds {check['copies_found']} of the {check['copies']} copies)"


def _counts(counts) -> str:
    return ", ".join(f"{k} {v}" for k, v in (counts or {}).items()) or "none"


def thumbnail(image: object, px: int = THUMB_PX) -> bytes:
    """A small RGB JPEG of an image given as a path, encoded bytes or a PIL image."""
    try:
        img = (
            image
            if isinstance(image, Image.Image)
            else Image.open(io.BytesIO(image) if isinstance(image, bytes) else image)
        )
        img = to_rgb(img)  # transparency flattened onto white (clip art), no palette-transparency warning
        img.thumbnail((px, px))
    except (OSError, ValueError) as err:
        raise WitError(f"cannot make a thumbnail of {str(image)[:80]!r}: {err}") from err
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=80)
    return buf.getvalue()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _pct(x: float) -> str:
    return "-" if math.isnan(x) else f"{100 * x:.1f}"


def _json(x):
    return None if isinstance(x, float) and math.isnan(x) else x
