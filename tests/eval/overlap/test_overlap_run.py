"""`wit overlap` end to end on real clip art: planted exact and transformed copies of training images in an
ImageFolder evaluation set are found with the right training key, unrelated drawings mostly are not; the statistics
join per-example predictions exactly; text overlap, `wit sql REPORT`, Ray Data signing equal to in-process, and bad
input as one clear error."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from task_data import load_task

from eval.neardup.augment import TRANSFORMS, augment
from eval.neardup.detector import REFERENCE_VIEWS
from eval.neardup.images import decode, encode_png
from eval.neardup.model import DetectorConfig
from eval.neardup.train import build_model, load_detector
from eval.overlap import corpus as corpus_mod
from eval.overlap.run import OverlapOptions, overlap_report
from eval.overlap.stats import overlap_stats
from pipelines import cli
from pipelines.overlap import summary_table
from wit_builder.errors import WitError

CLIPART, MISSING = load_task("clipart")

pytestmark = pytest.mark.skipif(CLIPART is None, reason=MISSING)
CFG = DetectorConfig(image_size=32, width=16, batch=64, steps=150, seed=0)
N_TRAIN, N_EXACT, N_COPY, N_OTHER = 240, 12, 36, 60


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def write_shards(folder, images: list[bytes], captions: list[str], per_shard: int = 120) -> list[str]:
    """WebDataset tars of KEY.png + KEY.txt, keys s00000.."""
    folder.mkdir(parents=True, exist_ok=True)
    keys = [f"s{i:05d}" for i in range(len(images))]
    for n, start in enumerate(range(0, len(images), per_shard)):
        with tarfile.open(folder / f"part-{n}.tar", "w") as tar:
            for i in range(start, min(start + per_shard, len(images))):
                _add(tar, f"{keys[i]}.png", images[i])
                _add(tar, f"{keys[i]}.txt", captions[i].encode())
    return keys


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A corpus of clip-art training images (plus a caption-only sample and a corrupt image) and an ImageFolder eval
    set of exact copies, transformed copies and unrelated test drawings (plus one broken file)."""
    root = tmp_path_factory.mktemp("overlap")
    train, test = CLIPART
    names = train.classnames
    # the clip-art library holds byte-identical files: keep the first of each, so each copy has one right answer
    first = {}
    for i, data in enumerate(train.images):
        first.setdefault(hashlib.sha256(data).digest(), i)
    chosen = sorted(first.values())[:N_TRAIN]
    images = [train.images[i] for i in chosen]
    labels = [int(train.labels[i]) for i in chosen]
    captions = [f"drawing number {i}" for i in range(N_TRAIN)]
    captions[7] = names[labels[3]]  # one caption equal to a class name: the text overlap to find
    keys = write_shards(root / "corpus", images, captions)
    with tarfile.open(root / "corpus" / "part-9.tar", "w") as tar:
        _add(tar, "x00000.txt", b"caption without an image")
        _add(tar, "x00001.png", b"not an image at all")
        _add(tar, "x00001.txt", b"broken")
    rng = np.random.default_rng(5)
    planted: dict[str, str] = {}  # eval key -> training key
    folder = root / "evalset"
    for i in range(N_EXACT + N_COPY):
        j = int(rng.integers(N_TRAIN))
        label = names[labels[j]]
        (folder / label).mkdir(parents=True, exist_ok=True)
        if i < N_EXACT:
            data = images[j]
        else:
            image = decode(images[j])[0].convert("RGBA")
            image.thumbnail((256, 256))
            data = encode_png(augment(image, rng, (1, 2)))
        (folder / label / f"planted{i:03d}.png").write_bytes(data)
        planted[f"{label}/planted{i:03d}"] = keys[j]
    others = [i for i, data in enumerate(test.images) if hashlib.sha256(data).digest() not in first][:N_OTHER]
    for i in others:
        label = names[int(test.labels[i])]
        (folder / label).mkdir(parents=True, exist_ok=True)
        (folder / label / f"other{i:03d}.png").write_bytes(test.images[i])
    (folder / names[0] / "broken.png").write_bytes(b"\x89PNG broken")
    return root, planted


def predictions_for(rows: list[dict], dataset: str, folder) -> tuple[str, dict[str, bool]]:
    """A results.json + predictions.parquet as `wit eval --per-example` writes them, with a fixed pattern of hits."""
    correct = {r["id"]: (i % 3 != 0) for i, r in enumerate(rows)}
    folder.mkdir(parents=True, exist_ok=True)
    table = pa.table(
        {
            "dataset": [dataset] * len(correct),
            "task": ["zeroshot"] * len(correct),
            "key": list(correct),
            "label": ["x"] * len(correct),
            "prediction": ["y"] * len(correct),
            "correct": list(correct.values()),
        }
    )
    pq.write_table(table, folder / "predictions.parquet")
    (folder / "results.json").write_text(json.dumps([{"dataset": dataset, "task": "zeroshot", "metrics": {}}]))
    return str(folder / "results.json"), correct


@pytest.fixture(scope="module")
def report(world):
    root, planted = world
    out = root / "report"
    summary = overlap_report(
        str(root / "corpus"), str(root / "evalset"), str(out), None, OverlapOptions(detector_config=CFG)
    )
    return out, summary, pq.read_table(out / "overlap.parquet").to_pylist()


def test_planted_copies_are_found_with_their_training_key(world, report):
    _, planted = world
    out, summary, rows = report
    by_id = {r["id"]: r for r in rows}
    assert len(rows) == N_EXACT + N_COPY + N_OTHER  # the broken file is a counted skip, not a row
    assert summary["skipped"]["evalset"] == {"unreadable_image": 1}
    exact = [by_id[k] for k in planted if "planted0" in k and int(k[-3:]) < N_EXACT]
    assert all(r["tier"] == "exact" and r["nearest_key"] == planted[r["id"]] for r in exact)
    copies = [by_id[k] for k in planted if int(k[-3:]) >= N_EXACT]
    found = [r["is_overlap"] and r["nearest_key"] == planted[r["id"]] for r in copies]
    others = [r for r in rows if "/other" in r["id"]]
    flagged = [r["is_overlap"] for r in others]
    print(f"copies found {np.mean(found):.2f}, unrelated flagged {np.mean(flagged):.2f}, {summary['detector']}")
    assert np.mean(found) >= 0.5
    assert np.mean(flagged) <= 0.2
    counts = summary["overlap"]["evalset"]
    assert counts["n"] == len(rows) and counts["overlap"] == sum(r["is_overlap"] for r in rows)
    assert counts["exact"] >= N_EXACT and counts["clean"] + counts["overlap"] == len(rows)
    assert summary["train"]["images"] == N_TRAIN + 1 and summary["train"]["skipped"]["no_image"] == 1
    assert summary["train"]["indexed"] == N_TRAIN  # the corrupt image is signed as a skip, not indexed
    assert summary["datasets"] == {}  # no --results: overlap only
    det = summary["detector"]
    assert det["calibrated"] and det["pairs"] > 0 and 0 < det["auc"] <= 1
    by_transform = det["recall_by_transform"]  # every copy counted under each of its 1-3 transforms
    assert set(by_transform) <= set(TRANSFORMS) and len(by_transform) >= 10
    assert det["positives"] <= sum(c["copies"] for c in by_transform.values()) <= 3 * det["positives"]
    assert all(0 <= c["found"] <= c["copies"] for c in by_transform.values())
    assert sum(c["found"] for c in by_transform.values()) > 0
    page = (out / "index.html").read_text()
    assert "by transform</h3>" in page and f"<td>{next(iter(by_transform))}</td>" in page
    name, weakest = next(iter(by_transform.items()))
    assert f"recall by transform: {name} {weakest['found'] / weakest['copies']:.2f}, " in summary_table(summary)
    _, cfg, _ = load_detector(out / "detector.pt")
    assert cfg.image_size == CFG.image_size


def test_reference_views_index_every_view_and_find_the_planted_copies(world, report, tmp_path):
    root, planted = world
    out = report[0]
    summary = overlap_report(
        str(root / "corpus"),
        str(root / "evalset"),
        str(tmp_path / "views"),
        None,
        OverlapOptions(detector=str(out / "detector.pt"), views=REFERENCE_VIEWS),
    )
    det, train = summary["detector"], summary["train"]
    assert det["views"] == list(REFERENCE_VIEWS) and det["calibrated"]
    assert train["indexed"] == N_TRAIN and train["index_vectors"] == (1 + len(REFERENCE_VIEWS)) * N_TRAIN
    by_id = {r["id"]: r for r in pq.read_table(tmp_path / "views" / "overlap.parquet").to_pylist()}
    copies = [by_id[k] for k in planted if int(k[-3:]) >= N_EXACT]
    found = np.mean([r["is_overlap"] and r["nearest_key"] == planted[r["id"]] for r in copies])
    flagged = np.mean([r["is_overlap"] for r in by_id.values() if "/other" in r["id"]])
    single = {r["id"]: r for r in report[2]}
    found_single = np.mean(
        [single[r["id"]]["is_overlap"] and single[r["id"]]["nearest_key"] == planted[r["id"]] for r in copies]
    )
    print(f"views: copies found {found:.2f} (one view {found_single:.2f}), unrelated flagged {flagged:.2f}, {det}")
    assert found >= max(0.5, found_single) and flagged <= 0.2  # measured 0.78 (one view 0.64), flagged 0.02
    assert all(r["similarity"] >= 0.999 for r in by_id.values() if r["tier"] == "exact")
    assert "training images in 9 views)" in summary_table(summary)
    assert "(references in 9 views each)" in (tmp_path / "views" / "index.html").read_text()


def _embedding_tier_follows(rows: list[dict], threshold: float | None) -> bool:
    """Rows no exact/pHash test flagged are flagged exactly when their cosine reaches `threshold` (None: never)."""
    rest = [r for r in rows if r["tier"] not in ("exact", "phash") and r["similarity"] is not None]
    return bool(rest) and all(r["is_overlap"] == (threshold is not None and r["similarity"] >= threshold) for r in rest)


def test_each_dataset_with_enough_pairs_is_matched_at_its_own_threshold(world, report, tmp_path):
    """A dataset with at least MIN_OWN_NEGATIVES negative pairs is calibrated and matched at its own threshold, a
    smaller one at the pooled threshold of all pairs. A set of look-alikes (edited versions of four drawings, as two
    7s) raises the pooled threshold above the drawings' own."""
    from eval.overlap.run import MIN_OWN_NEGATIVES

    root, _ = world
    train, test = CLIPART
    seen = {hashlib.sha256(data).digest() for data in train.images}
    big = tmp_path / "bigset"
    fresh = [i for i, data in enumerate(test.images) if hashlib.sha256(data).digest() not in seen][N_OTHER:]
    for i in fresh[: 2 * MIN_OWN_NEGATIVES + 80]:  # about half are held-out queries: the negatives
        label = train.classnames[int(test.labels[i])]
        (big / label).mkdir(parents=True, exist_ok=True)
        (big / label / f"d{i:04d}.png").write_bytes(test.images[i])
    rng = np.random.default_rng(9)
    for k, i in enumerate(fresh[-4:]):
        (tmp_path / "lookalikes" / f"drawing{k}").mkdir(parents=True)
        image = decode(test.images[i])[0].convert("RGBA")
        image.thumbnail((256, 256))
        for j in range(64):
            (tmp_path / "lookalikes" / f"drawing{k}" / f"v{j:02d}.png").write_bytes(encode_png(augment(image, rng)))
    evals = f"{root / 'evalset'},{big},{tmp_path / 'lookalikes'}"
    options = OverlapOptions(detector=str(report[0] / "detector.pt"))
    summary = overlap_report(str(root / "corpus"), evals, str(tmp_path / "report"), None, options)
    table = pq.read_table(tmp_path / "report" / "overlap.parquet").to_pylist()

    det, overlap = summary["detector"], summary["overlap"]
    print({d: (o["threshold"], o["threshold_from"]) for d, o in overlap.items()}, det["threshold"], det["datasets"])
    assert det["per_dataset"] and det["datasets"]["evalset"]["negatives"] < MIN_OWN_NEGATIVES
    assert min(det["datasets"][d]["negatives"] for d in ("bigset", "lookalikes")) >= MIN_OWN_NEGATIVES
    assert det["negatives"] == sum(d["negatives"] for d in det["datasets"].values())  # pooled = all sets' pairs
    assert {d: o["threshold_from"] for d, o in overlap.items()} == {
        "evalset": "pooled",
        "bigset": "own",
        "lookalikes": "own",
    }
    assert overlap["bigset"]["threshold"] == det["datasets"]["bigset"]["threshold"] != det["threshold"]
    assert overlap["evalset"]["threshold"] == det["threshold"]
    for dataset, o in overlap.items():
        assert _embedding_tier_follows([r for r in table if r["dataset"] == dataset], o["threshold"])
    printed = summary_table(summary)
    pooled = "-" if det["threshold"] is None else f"{det['threshold']:.4f}"
    assert f"| bigset | {overlap['bigset']['n']} |" in printed and f" {pooled} pooled |" in printed
    page = (tmp_path / "report" / "index.html").read_text()
    assert "Threshold of each dataset</h3>" in page and "<td>bigset</td>" in page and "<td>own</td>" in page


def test_thresholds_come_from_the_flag_the_dataset_or_the_pool():
    from types import SimpleNamespace

    from eval.overlap.run import MIN_OWN_NEGATIVES, dataset_thresholds

    own = {
        "large": (SimpleNamespace(threshold=0.9), {"negatives": MIN_OWN_NEGATIVES}, {}),
        "small": (SimpleNamespace(threshold=0.7), {"negatives": MIN_OWN_NEGATIVES - 1}, {}),
        "hopeless": (SimpleNamespace(threshold=float("inf")), {"negatives": 300}, {}),
        "uncalibrated": (None, {"pairs": 0}, {}),
    }
    names = list(own)
    assert dataset_thresholds(names, 0.95, own, None, True) == {
        "large": (0.9, "own"),
        "small": (0.95, "pooled"),
        "hopeless": (float("inf"), "own"),  # nothing reaches the precision there: its embedding tier flags nothing
        "uncalibrated": (0.95, "pooled"),
    }
    assert dataset_thresholds(names, 0.95, own, None, False) == {n: (0.95, "pooled") for n in names}
    assert dataset_thresholds(names, 0.95, own, 0.5, True) == {n: (0.5, "given") for n in names}


def test_text_overlap_finds_the_class_name_caption(world, report):
    out, summary, _ = report
    texts = pq.read_table(out / "text_overlap.parquet").to_pylist()
    assert summary["text"]["evalset"]["matched"] == 1
    assert [(t["train_key"], t["jaccard"]) for t in texts] == [("s00007", 1.0)]


def test_statistics_join_predictions_exactly(world, report, tmp_path):
    root, _ = world
    out, first, rows = report
    results, correct = predictions_for(rows, "evalset", tmp_path / "res")
    summary = overlap_report(
        str(root / "corpus"),
        str(root / "evalset"),
        str(tmp_path / "r2"),
        results,
        OverlapOptions(detector=str(out / "detector.pt")),
    )
    again = pq.read_table(tmp_path / "r2" / "overlap.parquet").to_pylist()
    assert [r["is_overlap"] for r in again] == [r["is_overlap"] for r in rows]  # the saved detector, same verdicts
    expected = overlap_stats([correct[r["id"]] for r in again], [r["is_overlap"] for r in again], "evalset")
    got = summary["datasets"]["evalset"]
    assert (got["n"], got["n_overlap"], got["correct_overlap"]) == (
        expected.n,
        expected.n_overlap,
        expected.correct_overlap,
    )
    assert got["p_value"] == pytest.approx(expected.p_value) and got["ci_overlap"] == pytest.approx(
        [expected.ci_low, expected.ci_high]
    )


def test_cli_prints_the_table_and_sql_reads_the_report(world, report, tmp_path, capsys):
    root, _ = world
    out, _, rows = report
    results, _ = predictions_for(rows, "evalset", tmp_path / "res")
    code = cli.main(
        [
            "overlap",
            "--train",
            str(root / "corpus"),
            "--eval",
            str(root / "evalset"),
            "--results",
            results,
            "--detector",
            str(out / "detector.pt"),
            "--out",
            str(tmp_path / "cli"),
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0 and "| evalset | 108 |" in printed and "index.html" in printed
    assert cli.main(["sql", str(tmp_path / "cli"), "SELECT count(*) AS n FROM overlap WHERE is_overlap"]) == 0
    n_overlap = sum(r["is_overlap"] for r in pq.read_table(tmp_path / "cli" / "overlap.parquet").to_pylist())
    assert f"{n_overlap}" in capsys.readouterr().out


def test_detector_flags_reach_the_options_and_a_gray_detector_is_trained_and_saved_gray(world, tmp_path):
    import argparse

    from eval.overlap.run import get_detector
    from pipelines import overlap as overlap_cli

    parser = argparse.ArgumentParser()
    overlap_cli.add_arguments(parser)
    plain = overlap_cli.options_from(parser.parse_args(["--train", "T"]))
    chosen = overlap_cli.options_from(
        parser.parse_args(["--train", "T", "--detector-gray", "--reference-views", "--one-threshold"])
    )
    assert (plain.gray, plain.views, plain.per_dataset) == (False, (), True)
    assert (chosen.gray, chosen.views, chosen.per_dataset) == (True, REFERENCE_VIEWS, False)
    urls = corpus_mod.shard_urls(str(world[0] / "corpus"))
    model, info = get_detector(urls, OverlapOptions(gray=True, steps=2, train_images=20), str(tmp_path))
    _, cfg, _ = load_detector(tmp_path / "detector.pt")
    assert model.gray and cfg.gray and info["steps"] == 2 and model.features[0][0].in_channels == 1


def test_bad_input_is_one_clear_error(world, report, tmp_path, capsys):
    root, _ = world
    out, _, rows = report
    detector = OverlapOptions(detector=str(out / "detector.pt"))
    results, _ = predictions_for(rows, "another-set", tmp_path / "res")
    with pytest.raises(WitError, match="no zeroshot predictions for dataset 'evalset'"):
        overlap_report(str(root / "corpus"), str(root / "evalset"), str(tmp_path / "a"), results, detector)
    (tmp_path / "empty" / "cat").mkdir(parents=True)
    with pytest.raises(WitError, match="no readable test image"):
        overlap_report(str(root / "corpus"), str(tmp_path / "empty"), str(tmp_path / "b"), None, detector)
    text_only = tmp_path / "textonly"
    text_only.mkdir()
    with tarfile.open(text_only / "a.tar", "w") as tar:
        _add(tar, "k.txt", b"caption")
    with pytest.raises(WitError, match="no decodable image"):
        overlap_report(str(text_only), str(root / "evalset"), str(tmp_path / "c"), None, detector)
    (tmp_path / "trunc").mkdir()
    data = (root / "corpus" / "part-0.tar").read_bytes()
    (tmp_path / "trunc" / "a.tar").write_bytes(data[: len(data) // 2 + 100])
    with pytest.raises(WitError, match="cannot read shard .*a.tar"):
        overlap_report(str(tmp_path / "trunc"), str(root / "evalset"), str(tmp_path / "d"), None, detector)
    assert cli.main(["overlap", "--train", str(root / "corpus"), "--eval", "no-such-task", "--out", "x"]) == 2
    assert "no evaluation task 'no-such-task'" in capsys.readouterr().err


@pytest.mark.slow
def test_ray_data_signing_equals_in_process(world, ray_session):
    root, _ = world
    model = build_model(CFG)  # equality needs no training
    urls = corpus_mod.shard_urls(str(root / "corpus"))
    local = corpus_mod.sign_corpus(urls, model, ray=False, views=("mirror", "zoom80"))
    remote = corpus_mod.sign_corpus(urls, model, ray=True, views=("mirror", "zoom80"))
    assert local.signatures.views.shape == (len(local.keys), 2, model.embed_dim)
    np.testing.assert_allclose(remote.signatures.views, local.signatures.views, atol=1e-5)
    assert remote.keys == local.keys and remote.shards == local.shards and remote.captions == local.captions
    assert remote.signatures.digests == local.signatures.digests
    assert (remote.signatures.hashes == local.signatures.hashes).all()
    assert (remote.signatures.ok == local.signatures.ok).all()
    np.testing.assert_allclose(remote.signatures.vectors, local.signatures.vectors, atol=1e-5)
    assert remote.skipped == local.skipped and local.skipped.pop("no_image") == 1
    assert [(reason.split(" (")[0], n) for reason, n in local.skipped.items()] == [("not a recognised image", 1)]


def test_detector_steps_scale_with_the_corpus():
    from eval.overlap.run import detector_steps

    cfg = DetectorConfig()  # batch 96, steps 400: two views per slot, 192 views per step
    assert [detector_steps(n, cfg) for n in (10, 240, 1000, 2000, 10_000)] == [50, 50, 208, 400, 400]
    assert detector_steps(1000, DetectorConfig(steps=30)) == 30  # never more than the config allows
