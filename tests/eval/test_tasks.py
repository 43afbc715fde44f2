"""The offline tasks: deterministic, disjoint train/test, the documented filters and counts, one class list for the
shift family; build_tasks writes sets the loader reads back; retrieval sets group captions by identical image."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from eval.datasets import load_eval_set
from eval.tasks import KINDS, TASKS, build_tasks, retrieval_from_shards
from eval.tasks import emoji as emoji_task
from eval.tasks import text as text_task
from eval.tasks.build import subsample
from wit_builder.errors import WitError
from wit_builder.paths import debian_path, debian_root
from wit_builder.web import sources

DEBIAN = (
    ("usr/share/openclipart/png", "openclipart-png"),
    ("usr/share/tuxpaint/stamps", "tuxpaint-stamps-default"),
    ("usr/share/unicode/emoji/emoji-test.txt", "unicode-data"),
    ("usr/share/fonts/truetype/noto/NotoColorEmoji.ttf", "fonts-noto-color-emoji"),
)
NEEDS_DEBIAN = {"clipart", "stamps", "emoji-group", "emoji-subgroup", "shift-clipart", "shift-stamps", "shift-emoji"}


def _missing_data() -> str | None:
    for rel, package in DEBIAN:
        try:
            debian_path(rel, package)
        except WitError:
            return f"Debian data {package} is not installed under {debian_root()} (run `make data`)"
    return None


MISSING = _missing_data()


def _task_params():
    return [
        pytest.param(n, marks=pytest.mark.skipif(bool(MISSING and n in NEEDS_DEBIAN), reason=MISSING or ""))
        for n in TASKS
    ]


@pytest.fixture(scope="module")
def built():
    """Every task built once per module (a task whose data is missing is absent)."""
    return {n: TASKS[n]() for n in TASKS if not (MISSING and n in NEEDS_DEBIAN)}


def digest(images: list[bytes]) -> str:
    return hashlib.sha256(b"".join(hashlib.sha256(i).digest() for i in images)).hexdigest()


@pytest.mark.parametrize("name", _task_params())
def test_task_is_deterministic_disjoint_and_labelled(built, name):
    train, test = built[name]
    again_train, again_test = TASKS[name]()
    assert (again_train.keys, again_test.keys) == (train.keys, test.keys)
    assert digest(again_train.images) == digest(train.images) and digest(again_test.images) == digest(test.images)
    assert (train.split, test.split) == ("train", "test") and train.name == test.name == name
    assert not set(train.keys) & set(test.keys)
    assert len(set(train.keys)) == len(train.keys) and len(set(test.keys)) == len(test.keys)
    total = len(train) + len(test)
    assert 0.6 < len(train) / total < 0.8  # the 70/30 hash split
    assert train.classnames == test.classnames and len(set(train.classnames)) == len(train.classnames)
    assert all("{c}" in t for t in train.templates) and len(train.templates) >= 4
    for s in (train, test):
        assert len(s.images) == len(s.labels) == len(s.keys)
        assert s.labels.min() >= 0 and s.labels.max() < len(s.classnames)
        assert set(s.labels.tolist()) == set(range(len(s.classnames))), "every class has images in both splits"
        assert all(i[:8] == b"\x89PNG\r\n\x1a\n" for i in s.images)
    assert KINDS[name] == "classification"
    assert bool(train.note) == (name in NEEDS_DEBIAN)


def test_digits_has_every_sklearn_digit(built):
    train, test = built["digits"]
    assert len(train) + len(test) == 1797 and train.classnames == [str(d) for d in range(10)]
    assert Image.open(io.BytesIO(train.images[0])).size == (32, 32)


@pytest.mark.skipif(bool(MISSING), reason=MISSING or "")
def test_emoji_counts_match_emoji_test_after_the_filter(built):
    text = debian_path("usr/share/unicode/emoji/emoji-test.txt", "unicode-data").read_text(encoding="utf-8")
    groups = [g.split(": ", 1) for _, _, _, g in sources.parse_emoji_test(text)]
    kept = [(g, s) for g, s in groups if g != "Component"]
    group_train, group_test = built["emoji-group"]
    assert len(group_train) + len(group_test) == len(kept)
    assert Counter(group_train.labels.tolist() + group_test.labels.tolist()) == Counter(
        group_train.classnames.index(g.lower().replace("&", "and")) for g, _ in kept
    )
    sub = Counter(s for _, s in kept)
    big = {s for s, n in sub.items() if n >= emoji_task.MIN_SUBGROUP}
    sub_train, sub_test = built["emoji-subgroup"]
    assert len(sub_train) + len(sub_test) == sum(sub[s] for s in big)
    assert len(sub_train.classnames) == len(big) and "animal mammal" in sub_train.classnames
    assert len(big) < len(sub)  # the filter drops something


@pytest.mark.skipif(bool(MISSING), reason=MISSING or "")
def test_shift_tasks_share_one_class_list(built):
    names = [built[n][0].classnames for n in ("shift-clipart", "shift-stamps", "shift-emoji")]
    assert names[0] == names[1] == names[2] == ["animal", "building", "food", "plant", "vehicle"]
    for n in ("shift-clipart", "shift-stamps", "shift-emoji"):
        counts = Counter(built[n][0].labels.tolist() + built[n][1].labels.tolist())
        assert min(counts.values()) >= 25, (n, counts)


@pytest.mark.skipif(bool(MISSING), reason=MISSING or "")
def test_clipart_drops_the_documented_categories(built):
    names = built["clipart"][0].classnames
    assert "signs and symbols" in names and "animals" in names
    assert not {"unsorted", "special", "logos", "buttons"} & set(names)
    counts = Counter(built["clipart"][0].labels.tolist() + built["clipart"][1].labels.tolist())
    assert max(counts.values()) == 200  # the per-category cap


def test_rendered_text_without_fonts_says_what_to_install(tmp_path):
    with pytest.raises(WitError, match="fonts-dejavu-core"):
        text_task.find_fonts([tmp_path])
    assert len({k for k, _, _ in text_task.sentences()}) == 300


def test_build_tasks_writes_sets_the_loader_reads_back(tmp_path, built):
    shards = write_shards(tmp_path / "shards")
    summary = build_tasks(str(tmp_path / "eval"), ["digits", "rendered-text"], progress=False, shards=shards)
    index = json.loads((tmp_path / "eval/tasks.json").read_text())
    assert set(index) == set(summary) == {"digits", "rendered-text", "demo-retrieval"}
    assert index["digits"]["kind"] == "classification" and index["demo-retrieval"]["kind"] == "retrieval"
    assert index["digits"]["n"] == {"train": len(built["digits"][0]), "test": len(built["digits"][1])}
    for want in built["digits"]:
        got = load_eval_set("digits", want.split, data_dir=str(tmp_path / "eval"))
        assert got.keys == want.keys and got.images == want.images and got.labels.tolist() == want.labels.tolist()
        assert got.templates == want.templates and got.classnames == want.classnames
    ret = load_eval_set("demo-retrieval", data_dir=str(tmp_path / "eval"))
    assert ret.captions == [["a red square", "a crimson block"], ["a blue square"]]
    with pytest.raises(WitError, match="unknown evaluation task"):
        build_tasks(str(tmp_path / "eval"), ["imagenet"], progress=False)


def test_subsample_keeps_every_class_in_turn_and_the_original_order(built):
    train = built["digits"][0]  # 10 classes, ~125 images each
    for limit in (10, 37, 200):
        got = subsample(train, limit)
        assert len(got) == limit and got.classnames == train.classnames
        counts = Counter(got.labels.tolist())
        assert len(counts) == 10 and max(counts.values()) - min(counts.values()) <= 1  # classes took turns
        position = {k: i for i, k in enumerate(train.keys)}
        rows = [position[k] for k in got.keys]
        assert rows == sorted(rows)  # a subset, in the original order, each image with its own label
        assert [train.images[i] for i in rows] == got.images and train.labels[rows].tolist() == got.labels.tolist()
        assert subsample(train, limit).keys == got.keys  # seeded
    assert subsample(train, len(train) + 1) is train and subsample(train, None) is train
    uneven = subsample(built["rendered-text"][0], 4)
    assert len(uneven) == 4 and len(set(uneven.labels.tolist())) == 2
    with pytest.raises(WitError, match="at least 1 image per split"):
        subsample(train, 0)


def test_build_tasks_with_a_limit_writes_and_records_it(tmp_path, built):
    shards = write_shards(tmp_path / "shards")
    summary = build_tasks(str(tmp_path / "eval"), ["digits"], progress=False, shards=shards, limit=25)
    index = json.loads((tmp_path / "eval/tasks.json").read_text())
    assert index["digits"]["n"] == {"train": 25, "test": 25} and index["digits"]["limit"] == 25
    assert summary["demo-retrieval"]["n"] == {"test": 2}  # smaller than the limit: whole
    test = load_eval_set("digits", "test", data_dir=str(tmp_path / "eval"))
    assert len(set(test.labels.tolist())) == 10
    ret = load_eval_set("demo-retrieval", data_dir=str(tmp_path / "eval"))
    assert ret.captions == [["a red square", "a crimson block"], ["a blue square"]]


def jpg(colour) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(buf, format="JPEG")
    return buf.getvalue()


def write_shards(folder) -> list[str]:
    folder.mkdir()
    members = [
        [("000.jpg", jpg("red")), ("000.txt", b"a red square"), ("001.jpg", jpg("blue")), ("001.txt", b"a blue square")],
        [("002.jpg", jpg("red")), ("002.txt", b"a crimson block"), ("003.jpg", b"\xff\xd8 not really a jpeg"),
         ("003.txt", b"broken"), ("004.jpg", jpg("green")), ("005.jpg", jpg("white")), ("005.txt", b"  ")],
    ]  # fmt: skip
    urls = []
    for n, files in enumerate(members):
        path = folder / f"{n:05d}.tar"
        with tarfile.open(path, "w") as tar:
            for name, data in files:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        urls.append(str(path))
    return urls


def test_retrieval_from_shards_groups_identical_images(tmp_path):
    got = retrieval_from_shards(write_shards(tmp_path / "shards"))
    assert got.name == "demo-retrieval" and got.kind == "retrieval"
    assert got.keys == ["000", "001"] and got.images == [jpg("red"), jpg("blue")]
    assert got.captions == [["a red square", "a crimson block"], ["a blue square"]]
    assert got.skipped == {"unreadable_image": 1, "no_caption": 1, "empty_caption": 1}


def test_missing_debian_data_says_run_make_data(tmp_path, monkeypatch):
    monkeypatch.setenv("WIT_CACHE", str(tmp_path))
    if Path("/usr/share/openclipart/png").exists():
        pytest.skip("Open Clip Art is installed system-wide, so it is never missing")
    with pytest.raises(WitError, match="make data"):
        TASKS["clipart"]()
