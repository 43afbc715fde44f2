"""trainer.data over real WebDataset shards written here: sources, decoding, corrupt samples counted exactly, crops,
the Batcher's data position, and each sample exactly once per epoch across 2 Ray Data splits."""

from __future__ import annotations

import io
import json
import tarfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from trainer import data
from wit_builder.errors import WitError

BAD = {1: "bad_image", 2: "no_caption", 3: "empty_caption", 4: "no_image"}  # rows of shard 0


def make_shards(
    folder: Path,
    n_shards: int = 3,
    per_shard: int = 12,
    corrupt: bool = True,
    sizes: bool = True,
    build: bool = False,
    image_ext: str = "jpg",
) -> tuple[list[str], dict[str, str]]:
    """Shards NNNNN.tar of KEY.jpg/KEY.txt/KEY.json with caption 'caption KEY'; landscape and portrait images of
    several sizes. In shard 0 (with `corrupt`): a corrupt jpg, a missing txt, an empty caption, a missing jpg.
    `build` adds the NNNNN_stats.json a `wit build` writes. Returns (good keys in order, {bad key: reason})."""
    folder.mkdir(parents=True, exist_ok=True)
    good, bad, counts = [], {}, {}
    for s in range(n_shards):
        path = folder / f"{s:05d}.tar"
        n_good = 0
        with tarfile.open(path, "w") as tar:

            def add(name, payload, tar=tar):
                info = tarfile.TarInfo(name)
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))

            for i in range(per_shard):
                key = f"{s:05d}{i:04d}"
                w, h = (70 + 9 * i, 64) if i % 2 else (64, 80 + 5 * i)
                buf = io.BytesIO()
                Image.new("RGB", (w, h), (i * 20 % 255, s * 50 % 255, 100)).save(
                    buf, "JPEG" if image_ext == "jpg" else "PNG"
                )
                img, txt = buf.getvalue(), f"caption {key}".encode()
                reason = BAD.get(i) if corrupt and s == 0 else None
                if reason == "bad_image":
                    img = b"this is not an image"
                elif reason == "no_caption":
                    txt = None
                elif reason == "empty_caption":
                    txt = b"  \n"
                elif reason == "no_image":
                    img = None
                if img is not None:
                    add(f"{key}.{image_ext}", img)
                if txt is not None:
                    add(f"{key}.txt", txt)
                add(f"{key}.json", json.dumps({"key": key}).encode())
                if reason:
                    bad[key] = reason
                else:
                    good.append(key)
                    n_good += 1
        counts[path.name] = n_good
        if build:
            (folder / f"{s:05d}_stats.json").write_text("{}")
    if sizes:
        (folder / "sizes.json").write_text(json.dumps(counts))
    return good, bad


def rows_of(batches) -> list[dict]:
    out = []
    for b in batches:
        for i in range(len(b["key"])):
            out.append({k: b[k][i] for k in b})
    return out


def test_sources_folder_brace_single_tar_and_build_folder(tmp_path):
    good, _ = make_shards(tmp_path / "plain", sizes=False)
    shards = data.resolve_shards(str(tmp_path / "plain"))
    assert [Path(u).name for u in shards.urls] == ["00000.tar", "00001.tar", "00002.tar"] and shards.sizes is None
    brace = data.resolve_shards(str(tmp_path / "plain") + "/{00001..00002}.tar")
    assert [Path(u).name for u in brace.urls] == ["00001.tar", "00002.tar"]
    assert data.resolve_shards(str(tmp_path / "plain" / "00002.tar")).urls == (str(tmp_path / "plain" / "00002.tar"),)
    make_shards(tmp_path / "build" / "shards", build=True)
    (tmp_path / "build" / "shards" / "00003.tar").write_bytes(b"")  # a started, unfinished shard: not read
    built = data.resolve_shards(str(tmp_path / "build"))
    assert [Path(u).name for u in built.urls] == ["00000.tar", "00001.tar", "00002.tar"]
    assert built.num_samples == len(good)


def test_bad_sources_say_what_to_give(tmp_path):
    with pytest.raises(WitError, match="does not exist"):
        data.resolve_shards(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(WitError, match="holds no .tar shards"):
        data.resolve_shards(str(tmp_path / "empty"))
    make_shards(tmp_path / "s", n_shards=2)
    with pytest.raises(WitError, match="1 of 3 shards do not exist"):
        data.resolve_shards(str(tmp_path / "s") + "/{00000..00002}.tar")
    (tmp_path / "b" / "shards").mkdir(parents=True)
    (tmp_path / "b" / "manifest.json").write_text("{}")
    with pytest.raises(WitError, match="build folder with no shards"):
        data.resolve_shards(str(tmp_path / "b"))


def test_plain_reader_decodes_every_sample_and_flags_corrupt_ones(tmp_path):
    good, bad = make_shards(tmp_path)
    rows = rows_of(data.iter_plain(data.resolve_shards(str(tmp_path)), image_size=32, batch_rows=5))
    assert [r["key"] for r in rows if not r["reason"]] == good
    assert {r["key"]: r["reason"] for r in rows if r["reason"]} == bad
    r = next(r for r in rows if r["key"] == good[0])
    assert r["image"].shape == (32, data.padded_width(32), 3) and r["image"].dtype == np.uint8
    from trainer.tokenizer import ClipTokenizer

    assert np.array_equal(r["tokens"], ClipTokenizer.openai().tokenize(f"caption {good[0]}")[0])


def test_png_members_are_images_too(tmp_path):
    good, _ = make_shards(tmp_path, n_shards=1, corrupt=False, image_ext="png")
    rows = rows_of(data.iter_plain(data.resolve_shards(str(tmp_path)), image_size=16))
    assert [r["key"] for r in rows if not r["reason"]] == good


def test_crop_is_a_square_of_the_resized_image_random_in_train_center_in_eval(tmp_path):
    im = Image.new("RGB", (200, 100))
    im.paste((255, 0, 0), (0, 0, 100, 100))  # left half red, right half blue
    im.paste((0, 0, 255), (100, 0, 200, 100))
    buf = io.BytesIO()
    im.save(buf, "PNG")
    arr, width, transposed = data.decode_image(buf.getvalue(), 30)
    assert arr.shape == (30, 40, 3) and width == 40 and not transposed  # 60 wide, central 40 kept
    rows = {
        "image": arr[None],
        "width": np.array([width]),
        "transposed": np.array([transposed]),
        "key": np.array(["k"], dtype=object),
        "tokens": np.zeros((1, 77), np.int64),
    }
    center = data.collate(rows, 30, seed=0, epoch=0, train=False)["images"]
    assert center.shape == (1, 3, 30, 30)
    offsets = {data.crop_offset(0, e, "k", 10) for e in range(40)}
    assert offsets <= set(range(11)) and len(offsets) > 5  # varies with the epoch, stays inside the image
    assert data.crop_offset(0, 3, "k", 10) == data.crop_offset(0, 3, "k", 10)
    a = data.collate(rows, 30, seed=0, epoch=3)["images"]
    b = data.collate(rows, 30, seed=0, epoch=3)["images"]
    assert torch.equal(a, b)
    # normalised with CLIP's mean/std: pure red maps to (1 - mean) / std in channel 0
    assert center[0, 0, 0, 0].item() == pytest.approx((1 - data.MEAN[0]) / data.STD[0], abs=0.02)
    tall = Image.new("RGB", (50, 150))
    buf = io.BytesIO()
    tall.save(buf, "PNG")
    arr, width, transposed = data.decode_image(buf.getvalue(), 30)
    assert transposed and width == 40 and arr.shape == (30, 40, 3)
    rows.update(image=arr[None], width=np.array([width]), transposed=np.array([True]))
    assert data.collate(rows, 30, seed=1, epoch=0)["images"].shape == (1, 3, 30, 30)


def _stream(tmp_path, batch_rows=7):
    make_shards(tmp_path)
    return list(data.iter_plain(data.resolve_shards(str(tmp_path)), image_size=16, batch_rows=batch_rows))


def test_batcher_gives_exact_batches_counts_corrupt_rows_and_the_tail(tmp_path):
    batches = _stream(tmp_path)
    b = data.Batcher(iter(batches), batch_size=5)
    keys = []
    while b.has_full_batch():
        keys += list(b.take()["key"])
    b.drain()
    assert len(keys) == 30 and b.counts.trained == 30  # 36 rows, 4 corrupt, 32 good: 6 batches, tail 2
    assert b.counts.skipped == Counter(BAD.values()) and b.counts.tail == 2 and b.counts.rows == 36


def test_batcher_resumes_at_its_data_position(tmp_path):
    batches = _stream(tmp_path)
    full = data.Batcher(iter(batches), batch_size=3)
    order = []
    while full.has_full_batch():
        order.append(list(full.take()["key"]))
    first = data.Batcher(iter(batches), batch_size=3)
    for _ in range(2):  # the corrupt rows sit in these first batches
        assert first.has_full_batch()
        first.take()
    position, skipped = first.counts.rows, Counter(first.counts.skipped)
    resumed = data.Batcher(iter(batches), batch_size=3, skip_rows=position)
    rest = []
    while resumed.has_full_batch():
        rest.append(list(resumed.take()["key"]))
    assert rest == order[2:]
    assert skipped + resumed.counts.skipped == Counter(BAD.values())  # each corrupt row counted once in all


@pytest.fixture(scope="module")
def two_splits(tmp_path_factory, ray_session):
    """The rows 2 workers receive in an epoch from Ray Data (streaming_split as Ray Train does, order preserved)."""
    import ray

    folder = tmp_path_factory.mktemp("shards")
    good, bad = make_shards(folder, n_shards=4, per_shard=10)
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = False
    ds = data.ray_dataset(data.resolve_shards(str(folder)), image_size=16, batch_rows=4)

    def epoch(seed):
        """Both splits consumed at once, each in its own thread, as 2 training workers do."""
        import threading

        splits = ds.streaming_split(2, equal=True)
        out = [None, None]

        def consume(i):
            out[i] = rows_of(data.iter_stream(splits[i], shuffle_buffer=8, seed=seed, epoch=0, batch_rows=3))

        threads = [threading.Thread(target=consume, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        return out

    return good, bad, epoch


def test_each_sample_exactly_once_per_epoch_across_two_workers(two_splits):
    good, bad, epoch = two_splits
    a, b = epoch(seed=0)
    keys = [r["key"] for r in a + b]
    assert len(a) == len(b) == 20  # 40 rows, equal split
    assert sorted(keys) == sorted(good + list(bad)) and len(set(keys)) == 40
    assert Counter(r["reason"] for r in a + b if r["reason"]) == Counter(BAD.values())


def test_the_split_and_the_shuffle_are_deterministic(two_splits):
    """What makes a resumed run repeat an uninterrupted one: the same rows reach the same worker in the same order."""
    _, _, epoch = two_splits
    first = [[r["key"] for r in split] for split in epoch(seed=5)]
    again = [[r["key"] for r in split] for split in epoch(seed=5)]
    assert first == again
    other = [[r["key"] for r in split] for split in epoch(seed=6)]
    assert other != first
