"""The eval-set loaders: every format reads back the exact image bytes, labels, class names and captions; skips are
counted with a reason; user mistakes raise WitError."""

from __future__ import annotations

import functools
import http.server
import io
import json
import tarfile
import threading

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from PIL import Image

from eval.datasets import EvalSet, available_splits, load_eval_set, write_eval_set
from wit_builder.errors import WitError


def png(i: int, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (4 + i % 3, 5), (i * 37 % 256, i * 11 % 256, 90)).save(buf, format=fmt)
    return buf.getvalue()


def cls_set(split: str, n: int, offset: int = 0) -> EvalSet:
    return EvalSet(
        name="toy",
        split=split,
        keys=[f"{split}/k{i:03d}" for i in range(n)],
        images=[png(i + offset, "PNG" if i % 2 else "JPEG") for i in range(n)],
        labels=np.arange(n, dtype=np.int64) % 3,
        captions=None,
        classnames=["cat", "dog", "tree frog"],
        templates=["a photo of a {c}.", "a drawing of the {c}."],
        skipped={},
        source="test",
        note="a note",
    )


def test_written_classification_set_reads_back_identical(tmp_path):
    sets = [cls_set("train", 7), cls_set("test", 5, offset=50)]
    write_eval_set(str(tmp_path / "toy"), sets, shard_size=2)
    assert (tmp_path / "toy/train/nshards.txt").read_text().strip() == "4"
    assert (tmp_path / "toy/dataset_type.txt").read_text().strip() == "classification"
    assert (tmp_path / "toy/classnames.txt").read_text() == "cat\ndog\ntree frog\n"
    assert available_splits(str(tmp_path / "toy")) == ["train", "test"]
    for want in sets:
        got = load_eval_set(str(tmp_path / "toy"), want.split)
        assert got.keys == want.keys and got.images == want.images
        assert got.labels.dtype == np.int64 and got.labels.tolist() == want.labels.tolist()
        assert got.classnames == want.classnames and got.templates == want.templates
        assert got.captions is None and got.note == "a note" and got.skipped == {}


def test_layout_is_clip_benchmarks(tmp_path):
    write_eval_set(str(tmp_path / "toy"), [cls_set("test", 3)], shard_size=10)
    with tarfile.open(tmp_path / "toy/test/0.tar") as tar:
        names = tar.getnames()
        assert names == ["test/k000.jpg", "test/k000.cls", "test/k001.png", "test/k001.cls", "test/k002.jpg",
                         "test/k002.cls"]  # fmt: skip
        assert tar.extractfile("test/k002.cls").read() == b"2"
    import webdataset as wds

    samples = list(wds.WebDataset(str(tmp_path / "toy/test/0.tar"), shardshuffle=False, empty_check=False))
    assert [s["__key__"] for s in samples] == ["test/k000", "test/k001", "test/k002"]


def test_written_retrieval_set_reads_back_identical(tmp_path):
    want = EvalSet("ret", "test", ["a", "b"], [png(1), png(2)], None, [["one", "uno"], ["two"]], None, None, {}, "x")
    write_eval_set(str(tmp_path / "ret"), [want])
    assert (tmp_path / "ret/dataset_type.txt").read_text().strip() == "retrieval"
    got = load_eval_set(str(tmp_path / "ret"))
    assert got.kind == "retrieval" and got.keys == ["a", "b"] and got.images == want.images
    assert got.captions == [["one", "uno"], ["two"]] and got.labels is None


def test_task_name_resolves_under_data_dir_and_missing_task_says_what_to_run(tmp_path):
    write_eval_set(str(tmp_path / "toy"), [cls_set("test", 3)])
    assert len(load_eval_set("toy", data_dir=str(tmp_path))) == 3
    with pytest.raises(WitError, match="wit eval data --out"):
        load_eval_set("nosuchtask", data_dir=str(tmp_path))
    with pytest.raises(WitError, match="no split 'train'"):
        load_eval_set("toy", "train", data_dir=str(tmp_path))


def test_unknown_format_names_the_accepted_ones(tmp_path):
    (tmp_path / "set.xlsx").write_bytes(b"x")
    with pytest.raises(WitError, match="parquet/.csv"):
        load_eval_set(str(tmp_path / "set.xlsx"))
    with pytest.raises(WitError, match="does not exist"):
        load_eval_set(str(tmp_path / "missing.csv"))


def make_folder(root, layout: dict[str, list[int]]) -> dict[str, bytes]:
    written = {}
    for rel, ids in layout.items():
        (root / rel).mkdir(parents=True, exist_ok=True)
        for i in ids:
            (root / rel / f"img{i}.png").write_bytes(png(i))
            written[f"{rel}/img{i}"] = png(i)
    return written


def test_image_folder_with_split_folders(tmp_path):
    written = make_folder(tmp_path, {"train/b": [1, 2], "train/a": [3], "test/a": [4], "test/c": [5]})
    (tmp_path / "test/a/notes.txt").write_text("not an image")
    (tmp_path / "test/a/broken.png").write_bytes(b"not a png")
    assert available_splits(str(tmp_path)) == ["train", "test"]
    got = load_eval_set(str(tmp_path), "test")
    assert got.classnames == ["a", "b", "c"]  # sorted, union over splits
    assert got.keys == ["a/img4", "c/img5"] and got.labels.tolist() == [0, 2]
    assert got.images == [written["test/a/img4"], written["test/c/img5"]]
    assert got.skipped == {"unreadable_image": 1, "empty_class:b": 1}
    assert load_eval_set(str(tmp_path), "train").labels.tolist() == [0, 1, 1]


def test_image_folder_without_split_folders_is_all_test(tmp_path):
    make_folder(tmp_path, {"dog": [1], "cat": [2, 3], "empty": []})
    got = load_eval_set(str(tmp_path))
    assert available_splits(str(tmp_path)) == ["test"]
    assert got.classnames == ["cat", "dog", "empty"] and got.labels.tolist() == [0, 0, 1]
    assert got.skipped == {"empty_class:empty": 1}
    with pytest.raises(WitError, match="only the 'test' split"):
        load_eval_set(str(tmp_path), "train")


def write_table(path, columns: dict):
    table = pa.table(columns)
    if path.suffix == ".csv":
        pacsv.write_csv(table, path)
    else:
        pq.write_table(table, path)


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_table_with_class_name_labels(tmp_path, suffix):
    for i in range(4):
        (tmp_path / f"p{i}.png").write_bytes(png(i))
    write_table(
        tmp_path / f"set{suffix}",
        {
            "path": ["p0.png", "p1.png", "p2.png", "p3.png", "gone.png"],
            "label": ["dog", "cat", "dog", "cat", "dog"],
            "split": ["test", "test", "train", "test", "test"],
        },
    )
    assert available_splits(str(tmp_path / f"set{suffix}")) == ["train", "test"]
    got = load_eval_set(str(tmp_path / f"set{suffix}"), "test")
    assert got.classnames == ["cat", "dog"] and got.keys == ["p0", "p1", "p3"]
    assert got.labels.tolist() == [1, 0, 0] and got.images == [png(0), png(1), png(3)]
    assert got.skipped == {"unreadable_file": 1}


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_table_with_index_labels_and_user_classnames(tmp_path, suffix):
    for i in range(3):
        (tmp_path / f"p{i}.png").write_bytes(png(i))
    write_table(tmp_path / f"set{suffix}", {"path": ["p0.png", "p1.png", "p2.png"], "label": [2, 0, 7]})
    (tmp_path / "names.json").write_text(json.dumps({"0": "zero", "1": "one", "2": "two"}))
    (tmp_path / "templates.txt").write_text("a photo of {}.\nan image of {c}.\n")
    got = load_eval_set(
        str(tmp_path / f"set{suffix}"),
        classnames=str(tmp_path / "names.json"),
        templates=str(tmp_path / "templates.txt"),
    )
    assert got.classnames == ["zero", "one", "two"] and got.labels.tolist() == [2, 0]
    assert got.templates == ["a photo of {c}.", "an image of {c}."]
    assert got.skipped == {"unknown_label": 1, "empty_class:one": 1}


def test_unknown_class_name_label_is_counted(tmp_path):
    for i in range(2):
        (tmp_path / f"p{i}.png").write_bytes(png(i))
    write_table(tmp_path / "set.csv", {"path": ["p0.png", "p1.png"], "label": ["cat", "unicorn"]})
    (tmp_path / "names.txt").write_text("cat\ndog\n")
    got = load_eval_set(str(tmp_path / "set.csv"), classnames=str(tmp_path / "names.txt"))
    assert got.keys == ["p0"] and got.skipped == {"unknown_label": 1, "empty_class:dog": 1}


def test_user_files_in_unknown_formats_are_refused(tmp_path):
    write_eval_set(str(tmp_path / "toy"), [cls_set("test", 3)])
    (tmp_path / "names.yaml").write_text("- a\n")
    (tmp_path / "t.txt").write_text("no placeholder here\n")
    with pytest.raises(WitError, match=r"\.txt .*\.json"):
        load_eval_set(str(tmp_path / "toy"), classnames=str(tmp_path / "names.yaml"))
    with pytest.raises(WitError, match="placeholder"):
        load_eval_set(str(tmp_path / "toy"), templates=str(tmp_path / "t.txt"))
    (tmp_path / "two.json").write_text('["x", "y"]')
    with pytest.raises(WitError, match="names 2 classes"):
        load_eval_set(str(tmp_path / "toy"), classnames=str(tmp_path / "two.json"))


@pytest.fixture
def http_dir(tmp_path):
    """A loopback HTTP server over tmp_path/www; yields (folder, base url)."""
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield www, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_url_rows_fetch_from_an_allowed_host_and_refuse_otherwise(tmp_path, http_dir):
    www, base = http_dir
    (www / "a.png").write_bytes(png(1))
    (www / "b.jpg").write_bytes(png(2, "JPEG"))
    urls = [f"{base}/a.png", f"{base}/b.jpg", f"{base}/missing.png", "file:///etc/hostname"]
    write_table(tmp_path / "urls.parquet", {"url": urls, "label": ["x", "y", "x", "y"]})
    got = load_eval_set(str(tmp_path / "urls.parquet"), allow_hosts=("127.0.0.1",))
    assert got.images == [png(1), png(2, "JPEG")] and got.labels.tolist() == [0, 1]
    assert got.skipped == {"url_failed": 1, "url_refused": 1}
    refused = load_eval_set(str(tmp_path / "urls.parquet"))
    assert refused.keys == [] and refused.skipped["url_refused"] == 4
