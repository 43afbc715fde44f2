"""`wit dedup OUT` on a real tiny build folder of clip art (the shard contract of wit_builder/download/shards.py, an
accounting with kept, failed and filtered rows): planted exact and transformed copies are clustered with their
source; report-only changes nothing; --remove takes exactly the non-representatives out of the tars, the shard
Parquet, sizes.json and the accounting (filtered/near_duplicate, every pool row still accounted once); a rerun removes
nothing more; `wit sql OUT` has the `duplicates` view; bad folders are one clear error line."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from task_data import load_task

from eval.neardup.augment import augment
from eval.neardup.hashes import phash
from eval.neardup.images import decode, to_rgb
from eval.neardup.model import DetectorConfig
from eval.overlap.dedup import DedupOptions, dedup, rewrite_tar
from pipelines import cli
from trainer.data import resolve_shards
from wit_builder import ledger
from wit_builder.download import shards
from wit_builder.errors import WitError
from wit_builder.layout import BuildFolder
from wit_builder.schema import ACCOUNTING_SCHEMA

CLIPART, MISSING = load_task("clipart")

pytestmark = pytest.mark.skipif(CLIPART is None, reason=MISSING)
CFG = DetectorConfig(image_size=32, width=16, batch=64, steps=150, seed=0)
N_BASE, N_EXACT, N_COPY, PER_SHARD = 100, 6, 10, 40
N_FILTERED = 5
N_SHARDS = N_FAILED = -(-(N_BASE + N_EXACT + N_COPY) // PER_SHARD)  # one failed download per shard


def jpeg(image) -> bytes:
    buf = io.BytesIO()
    to_rgb(image).save(buf, "JPEG", quality=95)
    return buf.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def corpus_images() -> tuple[list[bytes], dict[int, int], set[int]]:
    """N_BASE distinct clip-art JPEGs, then N_EXACT byte copies and N_COPY transformed copies of some of them.
    Returns (images, copy row -> source row, exact copy rows)."""
    train, _ = CLIPART
    hashes, base = [], []  # the library repeats pictures: keep those at least 12 pHash bits from every other
    for data in train.images:
        image = decode(data)[0]
        h = phash(image)
        if all(bin(h ^ other).count("1") >= 12 for other in hashes):
            hashes.append(h)
            base.append(jpeg(image.convert("RGBA") if image.mode != "RGBA" else image))
        if len(base) == N_BASE:
            break
    rng = np.random.default_rng(3)
    sources = rng.choice(N_BASE, N_EXACT + N_COPY, replace=False)
    images, planted, exact = list(base), {}, set()
    for n, j in enumerate(sources):
        if n < N_EXACT:
            images.append(base[j])
            exact.add(len(images) - 1)
        else:
            image = decode(base[j])[0].convert("RGBA")
            images.append(jpeg(augment(image, rng, (1, 2))))
        planted[len(images) - 1] = int(j)
    return images, planted, exact


def phash_copies(images: list[bytes], planted: dict[int, int], exact: set[int]) -> set[int]:
    """The transformed copies within 4 pHash bits of their source: what the pHash tier must find, detector aside."""
    near = {
        i for i, j in planted.items() if bin(phash(decode(images[i])[0]) ^ phash(decode(images[j])[0])).count("1") <= 4
    }
    return near - exact


def make_build(root) -> dict:
    """A finished build folder: shards of PER_SHARD samples (plus one failed row each), an accounting with kept,
    failed and filtered rows, sizes.json and a manifest. Returns {row: (shard, key, uid)} of the kept samples."""
    images, planted, exact = corpus_images()
    folder = BuildFolder(str(root))
    (root / "shards").mkdir(parents=True)
    where, accounting, n_shards = {}, [], -(-len(images) // PER_SHARD)
    for s in range(n_shards):
        rows = range(s * PER_SHARD, min((s + 1) * PER_SHARD, len(images)))
        samples = []
        with tarfile.open(root / "shards" / f"{s:05d}.tar", "w") as tar:
            for pos, i in enumerate(rows):
                key, uid = f"{s:05d}{pos:04d}", f"u{i:04d}"
                sha = hashlib.sha256(images[i]).hexdigest()
                w, h = decode(images[i])[0].size
                meta = {"uid": uid, "key": key, "caption": f"picture {i}", "status": "success", "sha256": sha}
                meta |= {"width": w, "height": h, "error_message": None, "url": f"http://x/{i}"}
                _add(tar, f"{key}.jpg", images[i])
                _add(tar, f"{key}.txt", f"picture {i}".encode())
                _add(tar, f"{key}.json", json.dumps(meta).encode())
                samples.append(meta)
                where[i] = (f"{s:05d}.tar", key, uid)
                accounting.append({"uid": uid, "status": "kept", "shard": f"{s:05d}.tar", "key": key, "sha256": sha})
        fail = {"uid": f"f{s}", "key": f"{s:05d}9999", "status": "failed_to_download", "sha256": None}
        fail |= {"error_message": "HTTP Error 404", "caption": "gone", "url": "http://x/gone", "width": None}
        samples.append(fail | {"height": None})
        accounting.append(
            {"uid": f"f{s}", "status": "failed", "reason": "download_failed", "error": "HTTP Error 404", "shard": None}
        )
        columns = list(dict.fromkeys(k for row in samples for k in row))
        table = pa.Table.from_pylist([{k: row.get(k) for k in columns} for row in samples])
        pq.write_table(table, root / "shards" / f"{s:05d}.parquet")
        (root / "shards" / f"{s:05d}_stats.json").write_text("{}")
    for k in range(N_FILTERED):
        accounting.append({"uid": f"z{k}", "status": "filtered", "reason": "language"})
    shards.write_sizes(folder.shards)
    table = pa.Table.from_pylist([{f.name: r.get(f.name) for f in ACCOUNTING_SCHEMA} for r in accounting])
    folder.write_table(table, folder.part("accounting"), ACCOUNTING_SCHEMA)
    ledger.assert_accounted(len(accounting), folder.read_accounting())
    folder.write_manifest({"finished_stage": "download", "counts": {"rows_in": len(accounting)}})
    info = {"where": where, "planted": planted, "exact": exact, "rows_in": len(accounting), "n": len(images)}
    return info | {"phash": phash_copies(images, planted, exact)}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A build folder and the report-only run on it (trains and saves the detector)."""
    root = tmp_path_factory.mktemp("dedup") / "build"
    info = make_build(root)
    before = {p.name: p.read_bytes() for p in sorted((root / "shards").iterdir())}
    summary = dedup(str(root), DedupOptions(detector_config=CFG))
    return root, info, before, summary


def clusters_of(root) -> list[dict]:
    return pq.read_table(root / "dedup" / "clusters.parquet").to_pylist()


def test_report_only_clusters_the_planted_copies_and_changes_nothing(world):
    root, info, before, summary = world
    rows = clusters_of(root)
    by_key = {r["key"]: r for r in rows}
    where, planted = info["where"], info["planted"]
    found = {i for i, j in planted.items() if by_key.get(where[i][1], {}).get("representative") == where[j][1]}
    assert {i for i in info["exact"]} <= found  # every byte copy, linked to its source
    assert all(by_key[where[i][1]]["tier"] == "exact" for i in info["exact"])
    assert info["phash"] <= found and len(info["phash"]) >= 2  # transformed copies: the pHash tier at least
    assert summary["by_tier"]["phash"] == len(info["phash"])
    copies = {where[i][1] for i in planted}
    for c in {r["cluster"] for r in rows}:  # no false cluster: each one holds a planted copy
        assert copies & {r["key"] for r in rows if r["cluster"] == c}
    assert summary["samples"] == info["n"] and summary["removed"] is None
    assert summary["by_tier"]["exact"] == N_EXACT
    assert summary["duplicates"] == sum(not r["is_representative"] for r in rows) == sum(summary["by_tier"].values())
    assert summary["clusters"] == len({r["cluster"] for r in rows})
    assert not any(r["removed"] for r in rows)
    assert {p.name: p.read_bytes() for p in sorted((root / "shards").iterdir())} == before
    assert (root / "dedup" / "detector.pt").is_file()
    saved = json.loads((root / "dedup" / "summary.json").read_text())
    assert saved["threshold"] == summary["threshold"] and "calibrated" in saved["calibration"]["how"]
    for r in rows:  # the representative is the first member in shard/key order
        members = [(x["shard"], x["key"]) for x in rows if x["cluster"] == r["cluster"]]
        assert r["representative"] == min(members)[1]


def test_remove_takes_exactly_the_duplicates_out_and_a_rerun_removes_nothing(world, tmp_path, capsys):
    root, info, _, report = world
    out = tmp_path / "build"
    shutil.copytree(root, out)
    argv = ["dedup", str(out), "--remove", "--detector", str(root / "dedup" / "detector.pt")]
    argv += ["--threshold", "0.9"]  # the tiny detector: distinct pictures up to ~0.8, most copies above 0.9
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    rows = clusters_of(out)
    removed = {(r["shard"], r["key"]): r["uid"] for r in rows if r["removed"]}
    assert len(removed) == sum(not r["is_representative"] for r in rows)
    where, planted = info["where"], info["planted"]
    assert set(removed) <= {where[i][:2] for i in planted}  # only planted copies go, never a source
    assert {where[i][:2] for i in info["exact"] | info["phash"]} <= set(removed)
    assert f"removed {len(removed)} samples now ({len(removed)} in all)" in printed

    folder = BuildFolder(str(out))
    accounting = folder.read_accounting()
    ledger.assert_accounted(info["rows_in"], accounting)
    acc = {r["uid"]: r for r in accounting.to_pylist()}
    dropped = {u for u, r in acc.items() if r["reason"] == "near_duplicate"}
    assert dropped == set(removed.values())
    assert all(acc[u]["status"] == "filtered" for u in dropped)
    assert sum(r["status"] == "kept" for r in acc.values()) == info["n"] - len(removed)
    assert sum(r["status"] == "failed" for r in acc.values()) == N_FAILED

    assert shards.verify(folder.shards) == {"samples": info["n"] - len(removed), "shards": N_SHARDS}
    in_tars = {(u.rsplit("/", 1)[-1], k) for u in folder.shard_urls() for k in tar_keys(u)}
    assert not in_tars & set(removed) and len(in_tars) == info["n"] - len(removed)
    samples = folder.read_samples().to_pylist()
    assert sum(s["status"] == "near_duplicate" for s in samples) == len(removed)
    assert sum(folder.read_sizes().values()) == info["n"] - len(removed)
    assert sum(resolve_shards(str(out)).sizes.values()) == info["n"] - len(removed)  # the trainer's view
    assert not list((out / "shards").glob("_dedup_*"))
    manifest = folder.read_manifest()
    assert manifest["finished_stage"] == "download"
    assert manifest["dedup"]["removed"] == len(removed)
    assert manifest["counts"]["outcome"]["kept"] == info["n"] - len(removed)

    tars = {p.name: p.read_bytes() for p in (out / "shards").glob("*.tar")}
    assert cli.main(argv) == 0  # the rerun: nothing more goes, the record stays
    assert "removed 0 samples now" in capsys.readouterr().out
    assert {p.name: p.read_bytes() for p in (out / "shards").glob("*.tar")} == tars
    assert {(r["shard"], r["key"]) for r in clusters_of(out) if r["removed"]} == set(removed)
    assert BuildFolder(str(out)).read_accounting().sort_by("uid").equals(accounting.sort_by("uid"))

    assert cli.main(["sql", str(out), "SELECT count(*) AS n FROM duplicates WHERE removed"]) == 0
    assert str(len(removed)) in capsys.readouterr().out


def tar_keys(path: str) -> set[str]:
    with tarfile.open(path) as tar:
        return {m.name.split(".", 1)[0] for m in tar.getmembers()}


def test_bad_folders_are_one_clear_line(world, tmp_path, capsys):
    root, *_ = world
    assert cli.main(["dedup", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"wit: error: {tmp_path} is not a `wit build` folder (no manifest.json): give the --out of a finished build"
    )
    curated = tmp_path / "curated_only"
    curated.mkdir()
    (curated / "manifest.json").write_text(json.dumps({"finished_stage": "curate", "counts": {"rows_in": 1}}))
    assert cli.main(["dedup", str(curated)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "has no finished shards (finished stage: curate)" in err[0]


def test_a_remove_stopped_after_one_tar_finishes_on_the_rerun(world, tmp_path, capsys):
    root, info, _, _ = world
    out = tmp_path / "build"
    shutil.copytree(root, out)
    folder = BuildFolder(str(out))
    table = pq.read_table(out / "dedup" / "clusters.parquet")
    planned = pa.array([not r["is_representative"] for r in table.to_pylist()])
    table = table.set_column(table.column_names.index("removed"), "removed", planned)
    pq.write_table(table, out / "dedup" / "clusters.parquet")  # the plan of a --remove run ...
    first = next(r for r in table.to_pylist() if r["removed"])
    assert rewrite_tar(folder.path("shards", first["shard"]), {first["key"]}) == 1  # ... stopped after one tar
    with pytest.raises(WitError, match="holds .* samples but its Parquet records"):
        shards.verify(folder.shards)
    argv = ["dedup", str(out), "--remove", "--detector", str(root / "dedup" / "detector.pt"), "--threshold", "1.01"]
    assert cli.main(argv) == 0
    capsys.readouterr()
    n = sum(planned.to_pylist())
    assert shards.verify(folder.shards) == {"samples": info["n"] - n, "shards": N_SHARDS}
    reasons = folder.read_accounting()["reason"].to_pylist()
    assert reasons.count("near_duplicate") == n
    ledger.assert_accounted(info["rows_in"], folder.read_accounting())


def test_detector_flags_train_a_luminance_detector_for_the_given_steps(world, tmp_path, capsys):
    from eval.neardup.train import load_detector

    root, info, _, _ = world
    out = tmp_path / "build"
    shutil.copytree(root, out)
    (out / "dedup" / "detector.pt").unlink()
    argv = ["dedup", str(out), "--detector-gray", "--detector-steps", "3", "--threshold", "1.01"]
    assert cli.main(argv) == 0
    capsys.readouterr()
    saved = json.loads((out / "dedup" / "summary.json").read_text())
    assert saved["detector"]["gray"] is True and saved["detector"]["steps"] == 3
    assert saved["detector"]["trained_on"] == info["n"]
    model, cfg, _ = load_detector(out / "dedup" / "detector.pt")
    assert cfg.gray and cfg.steps == 3 and model.features[0][0].in_channels == 1  # one input channel: luminance
