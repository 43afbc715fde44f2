"""The overlap report: Parquet with the schema, summary.json equal to the statistics, a parseable self-contained HTML
page with the table, the plot, one image per thumbnail and escaped labels; rendered by Chromium when installed."""

import io
import json
import shutil
import subprocess
from html.parser import HTMLParser

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from eval.overlap.report import OVERLAP_SCHEMA, ThumbnailPair, write_report
from eval.overlap.stats import overlap_stats, stats_from_counts
from wit_builder.errors import WitError


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.imgs, self.rows, self.text, self.scripts = [], 0, [], 0

    def handle_starttag(self, tag, attrs):
        self.imgs += [dict(attrs)] if tag == "img" else []
        self.rows += tag == "tr"
        self.scripts += tag == "script"

    def handle_data(self, data):
        self.text.append(data)


def _rows():
    return pa.table(
        {
            "tier": ["duplicate", "clean", "clean"],
            "dataset": ["pets", "pets", "<script>alert(1)</script>"],
            "id": ["a", "b", "c"],
            "path": ["x/a.png", "x/b.png", "x/c.png"],
            "label": ["cat", "<script>alert(1)</script>", "dog"],
            "nearest_key": ["000001", "000002", "000003"],
            "similarity": [0.97, 0.41, 0.3],
            "is_overlap": [True, False, False],
        }
    )


def _report(tmp_path, plots=True):
    stats = {
        "pets": overlap_stats([True, False, True, True], [True, False, False, True], dataset="pets"),
        "<script>alert(1)</script>": stats_from_counts("<script>alert(1)</script>", 10, 0, 5, 0),
    }
    red = Image.new("RGB", (300, 200), (200, 30, 30))
    red.save(tmp_path / "red.png")
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (20, 20, 220)).save(buf, format="PNG")
    pairs = [
        ThumbnailPair(str(tmp_path / "red.png"), buf.getvalue(), 0.97, "pets", "<script>alert(1)</script>", "000001"),
        ThumbnailPair(red, Image.new("L", (500, 40), 128), 0.9, "pets", "cat", "000002"),
    ]
    paths = write_report(str(tmp_path / "out"), _rows(), stats, pairs, plots=plots)
    return paths, stats, pairs


def test_parquet_and_summary(tmp_path):
    paths, stats, _ = _report(tmp_path)
    table = pq.read_table(paths["overlap.parquet"])
    assert table.schema.equals(OVERLAP_SCHEMA) and table.num_rows == 3
    assert table.column("similarity").type == pa.float32() and table.column("label")[1].as_py().startswith("<script")
    summary = json.loads(open(paths["summary.json"]).read())["datasets"]
    s, got = stats["pets"], summary["pets"]
    assert got["n"] == 4 and got["n_overlap"] == 2 and got["overlap_percent"] == 50.0
    assert (got["acc_all"], got["acc_clean"], got["acc_overlap"]) == (s.acc_all, s.acc_clean, s.acc_overlap)
    assert got["difference"] == s.difference and got["p_value"] == s.p_value
    assert got["ci_overlap"] == [s.ci_low, s.ci_high] and got["effect_all"] == s.effect_all
    assert got["effect_all_ci"] == [s.effect_low, s.effect_high]
    clean_only = summary["<script>alert(1)</script>"]
    assert clean_only["acc_overlap"] is None and clean_only["p_value"] is None and clean_only["acc_clean"] == 0.5


def test_html_is_self_contained_escaped_and_complete(tmp_path):
    paths, stats, pairs = _report(tmp_path)
    page = open(paths["index.html"], encoding="utf-8").read()
    parser = _Page()
    parser.feed(page)
    assert parser.scripts == 0 and "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert parser.rows == 1 + len(stats)  # header + one row per dataset
    assert len(parser.imgs) == 2 * len(pairs) + 1  # two thumbnails per pair, the plot
    assert all(img["src"].startswith("data:image/") for img in parser.imgs)  # nothing outside the page
    assert sum(img["src"].startswith("data:image/png;base64,") for img in parser.imgs) == 1
    assert "50.0" in "".join(parser.text) and "http" not in page.replace("http-equiv", "")
    (tmp_path / "np").mkdir()
    no_plot = _Page()
    no_plot.feed(open(_report(tmp_path / "np", plots=False)[0]["index.html"]).read())
    assert len(no_plot.imgs) == 2 * len(pairs)


def test_missing_columns_are_a_wit_error(tmp_path):
    with pytest.raises(WitError, match="nearest_key"):
        write_report(str(tmp_path), _rows().drop(["nearest_key"]), {})


BROWSERS = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome", "chrome")
CHROMIUM = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)


@pytest.mark.skipif(CHROMIUM is None, reason="no headless Chromium installed (`make browser` installs one)")
def test_chromium_renders_the_plot_and_the_thumbnails(tmp_path):
    """A real browser draws the page: the red thumbnail and the plot's blue markers are on screen, so the inline
    images decode and render (a page whose images failed would show neither)."""
    paths, _, _ = _report(tmp_path)
    shot = tmp_path / "shot.png"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}", "--window-size=1200,2000"]
    subprocess.run([*cmd, "file://" + paths["index.html"]], check=True, timeout=120, capture_output=True)
    rgb = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    red = (r > 170) & (g < 70) & (b < 70)  # the red evaluation thumbnail (200, 30, 30)
    blue = (abs(r - 31) < 40) & (abs(g - 119) < 40) & (abs(b - 180) < 40)  # matplotlib's first colour: the markers
    assert red.sum() > 500 and blue.sum() > 20
    (tmp_path / "np").mkdir()
    bare = _report(tmp_path / "np", plots=False)[0]["index.html"]
    subprocess.run([*cmd, "file://" + bare], check=True, timeout=120, capture_output=True)
    rgb = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    assert ((abs(r - 31) < 40) & (abs(g - 119) < 40) & (abs(b - 180) < 40)).sum() < blue.sum() / 4  # no plot
