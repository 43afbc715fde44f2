"""Build the demo web: place every image under DIR, apply seeded noise, write DIR/pool.parquet and DIR/web.json.

Layout: DIR/img/<collection>/<id>.png (the published files), DIR/mirror/... (the same files again), DIR/pool.parquet,
DIR/web.json (config, fingerprint, counts). URLs are `<base_url>/img/...`; the base URL is recorded so `wit web serve
DIR` listens where the pool points. A second build with the same config and data is a no-op.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit

import pyarrow as pa
import pyarrow.parquet as pq

from wit_builder import schema
from wit_builder.errors import WitError
from wit_builder.paths import cache_dir, debian_path
from wit_builder.web import noise, sources

BUILDER_VERSION = 2  # bump when the builder's output changes, so old webs are rebuilt
POOL_FILE = "pool.parquet"
META_FILE = "web.json"

POOL_SCHEMA = pa.schema(
    [  # the pool contract (wit_builder/schema.py), then what the demo web knows about each pair
        *schema.POOL_SCHEMA,
        pa.field("collection", pa.string()),
        pa.field("image", pa.string()),  # the published file behind the URL (relative to DIR), even for dead links
        pa.field("category", pa.string()),
        pa.field("noise", pa.string()),  # null, or the kind of noise applied to this pair (noise.py)
    ]
)


@dataclass(frozen=True)
class WebConfig:
    base_url: str = "http://127.0.0.1:8777"
    seed: int = 0
    limit: int | None = None  # images per collection (for quick tests); None = everything
    collections: tuple[str, ...] = ("openclipart", "tuxpaint", "emoji")


@dataclass
class WebSummary:
    out_dir: str
    pairs: int
    images: int
    urls: int
    pairs_by_source: dict[str, int]
    pairs_by_collection: dict[str, int]
    noise: dict[str, int]
    skipped: dict[str, int]
    duplicate_image_files: int
    seconds: float
    rebuilt: bool = True
    extra: dict = field(default_factory=dict)


def fingerprint(cfg: WebConfig) -> str:
    """Changes when the config, the builder or the installed data packages change."""
    stamps = sorted(p.name for p in (cache_dir() / "debian" / "stamps").glob("*")) if cache_dir().exists() else []
    blob = json.dumps([BUILDER_VERSION, asdict(cfg), stamps], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _check_base_url(base_url: str) -> str:
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
        raise WitError(f"--base-url must look like http://127.0.0.1:8777 (got {base_url!r})")
    return base_url.rstrip("/")


def _place(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        dst.unlink()
    try:
        os.link(src.resolve(), dst)  # the packages hold relative symlinks for identical files
    except OSError:
        shutil.copyfile(src.resolve(), dst)


def _render_emoji(char: str, dst: Path, font) -> None:
    from PIL import Image, ImageDraw

    canvas = Image.new("RGBA", (480, 160), (0, 0, 0, 0))
    ImageDraw.Draw(canvas).text((8, 8), char, font=font, embedded_color=True)
    box = canvas.getbbox()
    dst.parent.mkdir(parents=True, exist_ok=True)
    (canvas.crop(box) if box else canvas).save(dst)


def _render_svg(src: Path, dst: Path) -> None:
    import cairosvg

    dst.parent.mkdir(parents=True, exist_ok=True)
    cairosvg.svg2png(url=str(src), write_to=str(dst), output_width=256)


def load_summary(out_dir: str | Path) -> dict:
    """The web.json of a built web (WitError when DIR holds none)."""
    meta = Path(out_dir) / META_FILE
    if not meta.exists():
        raise WitError(f"{out_dir} holds no demo web ({META_FILE} missing): run `wit web build --out {out_dir}`")
    try:
        return json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise WitError(f"{meta} is unreadable ({err}): rebuild with `wit web build --out {out_dir} --force`") from err


def build_web(
    out_dir: str | Path, cfg: WebConfig = WebConfig(), force: bool = False, progress: bool = True
) -> WebSummary:
    """Build (or reuse) the demo web under out_dir; returns its summary."""
    from tqdm import tqdm

    started = time.time()
    out = Path(out_dir)
    base_url = _check_base_url(cfg.base_url)
    unknown = set(cfg.collections) - set(sources.COLLECTIONS)
    if unknown:
        raise WitError(f"unknown collection(s) {sorted(unknown)}: choose from {sorted(sources.COLLECTIONS)}")
    fp = fingerprint(cfg)
    if not force and (out / POOL_FILE).exists() and (out / META_FILE).exists():
        try:
            meta = json.loads((out / META_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):  # a broken web.json: rebuild
            meta = {}
        if meta.get("fingerprint") == fp:
            return WebSummary(str(out), rebuilt=False, seconds=time.time() - started, **meta["counts"])
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise WitError(f"cannot create {out}: {err.strerror}") from err
    for sub in ("img", "mirror"):
        shutil.rmtree(out / sub, ignore_errors=True)

    skipped: Counter = Counter()
    records: list[sources.ImageRecord] = []
    for name in cfg.collections:
        records.extend(sources.COLLECTIONS[name](limit=cfg.limit, skipped=skipped))

    font = None
    rows: list[dict] = []
    noise_counts: Counter = Counter()
    file_hashes: Counter = Counter()
    for rec in tqdm(records, desc="web: images", unit="img", disable=not progress, mininterval=1):
        rel = f"img/{rec.collection}/{rec.image_id}.png"
        key = f"{rec.collection}/{rec.image_id}"
        dead = noise.hits(cfg.seed, "dead_link", key)
        if not dead:
            dst = out / rel
            if rec.collection == "emoji":
                if font is None:
                    from PIL import ImageFont

                    font_path = debian_path(
                        "usr/share/fonts/truetype/noto/NotoColorEmoji.ttf", "fonts-noto-color-emoji"
                    )
                    font = ImageFont.truetype(str(font_path), 109)
                _render_emoji(rec.emoji or "", dst, font)
            elif rec.path is not None and rec.path.suffix == ".svg":
                try:
                    _render_svg(rec.path, dst)
                except Exception:  # noqa: BLE001 - some stamp SVGs use XML entities that cairosvg refuses
                    skipped[f"{rec.collection}/svg_unrenderable"] += 1
                    continue
            else:
                _place(rec.path, dst)
            file_hashes[hashlib.sha256(dst.read_bytes()).hexdigest()] += 1
        elif rec.path is not None and rec.path.suffix == ".png":  # unpublished, but still a drawing of the collection
            file_hashes[hashlib.sha256(rec.path.read_bytes()).hexdigest()] += 1
        url = f"{base_url}/{quote(rel)}"
        page = [t for _, t in rec.texts]
        base = dict(collection=rec.collection, image=rel, category=rec.category)
        for i, (source, text) in enumerate(rec.texts):
            noisy, kind = noise.text_noise(cfg.seed, f"{key}#{i}", text, page)
            rows.append(dict(base, url=url, text=noisy, source=source, noise="dead_link" if dead else kind))
            if not dead and noise.hits(cfg.seed, "duplicate_pair", f"{key}#{i}"):
                rows.append(dict(rows[-1], noise="duplicate_pair"))
        if rec.texts and not dead and noise.hits(cfg.seed, "mirror_url", key):
            mirror = f"mirror/{rec.collection}/{rec.image_id}.png"
            _place(out / rel, out / mirror)
            rows.append(
                dict(
                    base,
                    url=f"{base_url}/{quote(mirror)}",
                    text=rec.texts[0][1],
                    source=rec.texts[0][0],
                    noise="mirror_url",
                )
            )
        if rec.texts and not dead and noise.hits(cfg.seed, "query_url", key):
            rows.append(
                dict(base, url=f"{url}?w=512", text=rec.texts[-1][1], source=rec.texts[-1][0], noise="query_url")
            )
    rows.extend(_broken_images(out, base_url, records))

    for n, row in enumerate(rows):
        row["uid"] = f"w{n:07d}"
        if row["noise"]:
            noise_counts[row["noise"]] += 1
    table = pa.Table.from_pylist(rows, schema=POOL_SCHEMA)
    pq.write_table(table, out / (POOL_FILE + ".part"))
    os.replace(out / (POOL_FILE + ".part"), out / POOL_FILE)

    by_source = Counter(r["source"] for r in rows)
    by_collection = Counter(r["collection"] for r in rows)
    counts = dict(
        pairs=len(rows),
        images=len(records) - skipped["tuxpaint/svg_unrenderable"] - skipped["openclipart/svg_unrenderable"],
        urls=len({r["url"] for r in rows}),
        pairs_by_source=dict(sorted(by_source.items())),
        pairs_by_collection=dict(sorted(by_collection.items())),
        noise=dict(sorted(noise_counts.items())),
        skipped=dict(skipped),
        duplicate_image_files=sum(c for c in file_hashes.values() if c > 1),
    )
    meta = dict(
        version=BUILDER_VERSION,
        fingerprint=fp,
        config=asdict(cfg),
        base_url=base_url,
        built_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        counts=counts,
        noise_rates=noise.RATES,
        broken=noise.BROKEN,
    )
    (out / META_FILE).write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    return WebSummary(str(out), seconds=time.time() - started, **counts)


def _broken_images(out: Path, base_url: str, records: list[sources.ImageRecord]) -> list[dict]:
    """A handful of files that break downloaders: truncated PNGs, HTML behind .png URLs, one decompression bomb."""
    donors = [r for r in records if r.collection == "openclipart" and r.texts and r.path is not None]
    donors = donors or [r for r in records if r.texts and r.path is not None and r.path.suffix == ".png"]
    rows = []
    for kind, count in noise.BROKEN.items():
        for i in range(count):
            if not donors:
                break
            donor = donors[(i * 7919 + len(kind)) % len(donors)]
            rel = f"img/broken/{kind}-{i}.png"
            dst = out / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            if kind == "truncated_image":
                dst.write_bytes(noise.truncated_png(donor.path.read_bytes()))
            elif kind == "not_an_image":
                dst.write_bytes(noise.NOT_AN_IMAGE)
            elif kind == "huge_header":
                dst.write_bytes(noise.header_bomb_png())
            else:
                dst.write_bytes(noise.bomb_png())
            rows.append(
                dict(
                    url=f"{base_url}/{quote(rel)}",
                    text=donor.texts[0][1],
                    source=donor.texts[0][0],
                    collection=donor.collection,
                    image=rel,
                    category="broken",
                    noise=kind,
                )
            )
    return rows
