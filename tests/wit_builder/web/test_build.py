"""The built web: every text of the sources becomes a pair, noise is counted exactly, and rebuilding is a no-op."""

import hashlib
import json
from collections import Counter

import pyarrow.parquet as pq
import pytest

from tests.wit_builder.web.conftest import SMALL
from wit_builder.errors import WitError
from wit_builder.web import noise, sources
from wit_builder.web.build import WebConfig, build_web

ADDED_ROWS = {"duplicate_pair", "mirror_url", "query_url", *noise.BROKEN}


def test_every_source_text_is_one_pair_plus_the_rows_noise_adds(small_web):
    out, summary = small_web
    pool = pq.read_table(out / "pool.parquet").to_pylist()
    raw = sum(len(r.texts) for name, read in sources.COLLECTIONS.items() for r in read(limit=SMALL))
    assert sum(r["noise"] not in ADDED_ROWS for r in pool) == raw
    assert len(pool) == summary.pairs == json.loads((out / "web.json").read_text())["counts"]["pairs"]
    assert len({r["uid"] for r in pool}) == len(pool)
    assert Counter(r["noise"] for r in pool if r["noise"]) == summary.noise
    assert Counter(r["source"] for r in pool) == summary.pairs_by_source
    assert {kind: summary.noise[kind] for kind in noise.BROKEN} == noise.BROKEN


def test_files_behind_the_urls(small_web):
    out, _ = small_web
    pool = pq.read_table(out / "pool.parquet").to_pylist()
    dead = [r for r in pool if r["noise"] == "dead_link"]
    live = [r for r in pool if r["noise"] != "dead_link"]
    assert dead and all(not (out / r["image"]).exists() for r in dead)
    assert all((out / r["image"]).is_file() for r in live)
    for row in (r for r in pool if r["noise"] == "mirror_url"):
        mirror = out / row["url"].split("/", 3)[3]
        assert mirror.read_bytes() == (out / row["image"]).read_bytes()
    assert all(r["url"].endswith("?w=512") for r in pool if r["noise"] == "query_url")
    texts = Counter((r["url"], r["text"]) for r in pool)
    assert all(texts[(r["url"], r["text"])] >= 2 for r in pool if r["noise"] == "duplicate_pair")
    assert any(r["text"] == "" for r in pool) and any(r["text"] and not r["text"].strip() for r in pool)
    assert max(len(r["text"]) for r in pool) >= noise.LONG_TEXT_CHARS


def test_same_seed_same_web_other_seed_other_noise(small_web, tmp_path):
    out, summary = small_web
    again = build_web(tmp_path / "again", WebConfig(limit=SMALL), progress=False)
    assert pq.read_table(tmp_path / "again" / "pool.parquet").equals(pq.read_table(out / "pool.parquet"))
    other = build_web(tmp_path / "other", WebConfig(limit=SMALL, seed=1), progress=False)
    assert again.noise == summary.noise and other.noise != summary.noise


def test_rebuild_is_a_no_op_and_force_rebuilds(tmp_path):
    cfg = WebConfig(limit=3, collections=("emoji",))
    first = build_web(tmp_path, cfg, progress=False)
    stamp = (tmp_path / "pool.parquet").stat().st_mtime_ns
    second = build_web(tmp_path, cfg, progress=False)
    assert first.rebuilt and not second.rebuilt and second.pairs == first.pairs
    assert (tmp_path / "pool.parquet").stat().st_mtime_ns == stamp
    third = build_web(tmp_path, cfg, force=True, progress=False)
    assert third.rebuilt and (tmp_path / "pool.parquet").stat().st_mtime_ns != stamp
    changed = build_web(tmp_path, WebConfig(limit=4, collections=("emoji",)), progress=False)
    assert changed.rebuilt and changed.images == 4


def test_urls_start_with_the_base_url(tmp_path):
    build_web(tmp_path, WebConfig(limit=2, collections=("emoji",), base_url="http://127.0.0.1:9999"), progress=False)
    urls = pq.read_table(tmp_path / "pool.parquet", columns=["url"]).column("url").to_pylist()
    assert all(u.startswith("http://127.0.0.1:9999/") for u in urls)


@pytest.mark.parametrize("bad", ["127.0.0.1:8777", "ftp://127.0.0.1", "http://127.0.0.1:8777/sub"])
def test_bad_base_url_and_collection_are_clear_errors(tmp_path, bad):
    with pytest.raises(WitError, match="--base-url"):
        build_web(tmp_path, WebConfig(base_url=bad), progress=False)
    with pytest.raises(WitError, match="unknown collection"):
        build_web(tmp_path, WebConfig(collections=("flickr",)), progress=False)


@pytest.mark.slow
def test_full_web_counts(tmp_path):
    """The whole embedded web: ~100k pairs, every collection, identical drawings under different names."""
    summary = build_web(tmp_path, WebConfig(), progress=False)
    raw = {name: sum(len(r.texts) for r in read()) for name, read in sources.COLLECTIONS.items()}
    pool = pq.read_table(tmp_path / "pool.parquet", columns=["collection", "source", "noise", "image"]).to_pylist()
    base = Counter(r["collection"] for r in pool if r["noise"] not in ADDED_ROWS)
    unrenderable = [r for r in sources.tuxpaint() if r.path.suffix == ".svg" and not _renders(r.path)]
    assert len(unrenderable) == summary.skipped["tuxpaint/svg_unrenderable"]
    raw["tuxpaint"] -= sum(len(r.texts) for r in unrenderable)
    assert dict(base) == raw
    assert 90_000 < summary.pairs < 130_000
    assert summary.images == 8121 + 950 - summary.skipped.get("tuxpaint/svg_unrenderable", 0) + raw["emoji"] // 2
    digests = Counter(
        hashlib.sha256((tmp_path / r["image"]).read_bytes()).hexdigest()
        for r in {
            r["image"]: r for r in pool if r["collection"] == "openclipart" and r["noise"] != "dead_link"
        }.values()
    )
    assert sum(c for c in digests.values() if c > 1) > 2000
    png_root = sources.openclipart_root()  # identical drawings under different names, from the raw files
    raw_digests = Counter(hashlib.sha256(p.read_bytes()).hexdigest() for p in png_root.rglob("*.png"))
    raw_duplicates = sum(c for c in raw_digests.values() if c > 1)
    assert raw_duplicates > 2000 and summary.duplicate_image_files >= raw_duplicates
    titles = sum(r["source"] == "openclipart/title" and r["noise"] not in ADDED_ROWS for r in pool)
    assert titles == len(list(png_root.rglob("*.png"))) == 8121


def _renders(svg) -> bool:
    import cairosvg

    try:
        cairosvg.svg2png(url=str(svg))
        return True
    except Exception:  # noqa: BLE001
        return False
