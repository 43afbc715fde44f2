"""The build folder contract: a small corpus built for real (curate + download from the loopback image web) holds
exactly the files wit_builder/layout.py names, each table in its wit_builder/schema.py schema, and the readers the
trainer, evaluation and overlap report will use agree with the files. A folder whose build stopped mid-download
stays readable: views read finished shards only and say how many they skipped."""

from __future__ import annotations

import glob
import json
import os
import shutil
import tarfile

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines import cli
from wit_builder import schema
from wit_builder.build import build
from wit_builder.config import BuildConfig, CurateConfig
from wit_builder.download.img2dataset_job import DownloadConfig
from wit_builder.layout import BuildFolder

WORDS = ["dog", "cat", "apple", "tree", "boat", "house", "star", "moon", "fish", "bird"]


@pytest.fixture(scope="module")
def folder(image_web, tmp_path_factory):
    root = tmp_path_factory.mktemp("contract")
    n = 24
    urls = [image_web.url(f"/img/{200 + i}x{180 + i}-{i}.jpg") for i in range(n)]
    urls[5] = image_web.url("/missing/5.png")  # a 404: one failed row
    texts = [f"a photo of a {WORDS[i % len(WORDS)]} in the garden" for i in range(n)]
    texts[7] = "nothing to see here"  # no query: one filtered row
    texts[9] = "x" * 1500 + " dog"  # the query sits past --max-chars: matched whole, stored cut
    pq.write_table(
        pa.table({"uid": [f"u{i:02d}" for i in range(n)], "url": urls, "text": texts}), root / "pool.parquet"
    )
    (root / "queries.txt").write_text("\n".join(WORDS) + "\n")
    cfg = BuildConfig(
        pool=(str(root / "pool.parquet"),),
        queries=str(root / "queries.txt"),
        out=str(root / "out"),
        curate=CurateConfig(cap=50, lang_threshold=0.0),
        local=True,
        download=DownloadConfig(
            allow_hosts=(image_web.allow,),
            number_sample_per_shard=10,
            processes_count=1,
            thread_count=4,
            timeout=5,
            retries=0,
        ),
    )
    manifest = build(cfg)
    return BuildFolder(str(root / "out")), manifest


def _schema_of(uri: str) -> pa.Schema:
    return pq.read_schema(uri)


def test_every_table_has_its_contract_schema(folder):
    out, manifest = folder
    for directory, contract in ((out.accounting, schema.ACCOUNTING_SCHEMA), (out.curated, schema.CURATED_SCHEMA)):
        files = sorted(glob.glob(f"{directory}/*.parquet"))
        assert files, directory
        for file in files:
            assert _schema_of(file).remove_metadata() == pa.schema([f.with_nullable(True) for f in contract]), file
    assert _schema_of(out.query_counts).remove_metadata() == pa.schema(
        [f.with_nullable(True) for f in schema.QUERY_COUNTS_SCHEMA]
    )
    for file in out.sample_tables():
        assert set(schema.SAMPLE_COLUMNS) <= set(_schema_of(file).names), file
    assert manifest["finished_stage"] == "download" == out.finished_stage()


def test_the_folder_holds_exactly_the_layouts_files(folder):
    out, _ = folder
    top = sorted(os.listdir(out.root))
    assert top == sorted(["manifest.json", "accounting", "curated", "query_counts.parquet", "shards"])
    names = set(os.listdir(out.shards))
    finished = out.finished_shards()
    assert finished == ["00000", "00001", "00002"]  # 23 selected pairs, 10 per shard
    expected = {f"{s}{ext}" for s in finished for ext in (".tar", ".parquet", "_stats.json")} | {"sizes.json", "_wit"}
    assert names == expected
    assert out.unfinished_shards() == []


def test_readers_agree_with_the_files(folder):
    out, manifest = folder
    accounting = out.read_accounting()
    assert accounting.num_rows == 24 and accounting.schema.names == schema.ACCOUNTING_SCHEMA.names
    statuses = dict(zip(accounting["uid"].to_pylist(), accounting["status"].to_pylist()))
    assert statuses["u05"] == "failed" and statuses["u07"] == "filtered" and statuses["u09"] == "kept"
    assert sorted(set(statuses.values())) == ["failed", "filtered", "kept"]

    curated = out.read_curated()
    assert curated.num_rows == 23 and curated["uid"].to_pylist() == sorted(curated["uid"].to_pylist())
    long_text = curated.filter(pa.compute.equal(curated["uid"], "u09"))["text"][0].as_py()
    assert len(long_text) == 1000 and manifest["counts"]["texts_cut"] == 1
    assert curated.filter(pa.compute.equal(curated["uid"], "u09"))["queries"][0].as_py() == ["dog"]

    sizes = out.read_sizes()
    assert sizes == json.loads(open(f"{out.shards}/sizes.json").read())
    assert sum(sizes.values()) == statuses_count(statuses, "kept") == 22
    samples = out.read_samples()
    assert samples.num_rows == 23 and pa.compute.sum(pa.compute.equal(samples["status"], "success")).as_py() == 22

    kept = {(r["uid"], r["key"]) for r in accounting.to_pylist() if r["status"] == "kept"}
    in_tars = set()
    for url in out.shard_urls():
        with tarfile.open(url) as tar:
            members = tar.getnames()
            for member in members:
                if member.endswith(".json"):
                    meta = json.load(tar.extractfile(member))
                    in_tars.add((meta["uid"], meta["key"]))
                    stem = member[: -len(".json")]
                    assert f"{stem}.jpg" in members and f"{stem}.txt" in members
    assert in_tars == kept


def statuses_count(statuses: dict, status: str) -> int:
    return sum(s == status for s in statuses.values())


def test_a_stopped_download_leaves_a_readable_truthful_folder(folder, tmp_path, capsys):
    """Shard 00002 unfinished (no stats file, its Parquet cut mid-write) and the accounting as curation left it:
    `wit sql` answers from the finished shards, says on stderr that it skipped one, and nothing claims `kept`."""
    out, _ = folder
    stopped = tmp_path / "stopped"
    shutil.copytree(out.root, stopped)
    (stopped / "shards" / "00002_stats.json").unlink()
    data = (stopped / "shards" / "00002.parquet").read_bytes()
    (stopped / "shards" / "00002.parquet").write_bytes(data[: len(data) // 2])
    copy = BuildFolder(str(stopped))
    from wit_builder.materialise import curation_view

    copy.replace_accounting(curation_view(copy.read_accounting()))
    manifest = copy.read_manifest()
    manifest["finished_stage"] = "curate"
    copy.write_manifest(manifest)

    query = "SELECT status, count(*) AS n FROM accounting GROUP BY 1 ORDER BY 1"
    assert cli.main(["sql", str(stopped), query, "--format", "json"]) == 0
    captured = capsys.readouterr()
    assert {r["status"]: r["n"] for r in json.loads(captured.out)} == {"filtered": 1, "selected": 23}
    assert "skipped 1 unfinished shard(s)" in captured.err and "00002" in captured.err
    assert cli.main(["sql", str(stopped), "SELECT count(*) AS n FROM samples", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"n": 20}]
    assert copy.finished_shards() == ["00000", "00001"] and copy.unfinished_shards() == ["00002"]
    assert len(copy.shard_urls()) == 2 and copy.finished_stage() == "curate"


def test_a_corrupt_table_is_a_clear_error(folder, tmp_path):
    out, _ = folder
    broken = tmp_path / "broken"
    shutil.copytree(out.root, broken)
    part = next((broken / "curated").glob("*.parquet"))
    part.write_bytes(b"not parquet")
    from wit_builder.errors import WitError

    with pytest.raises(WitError, match="not a readable Parquet file"):
        BuildFolder(str(broken)).read_curated()


def test_tokenizer_training_reads_the_downloaded_captions(folder):
    """`wit tokenizer train --data OUT` learns from the captions of the samples that are in the shards."""
    from pipelines.tokenizer import captions

    out, _ = folder
    texts = captions(out.root)
    assert len(texts) == 22 and all(t.startswith("a photo of a ") or set(t) == {"x"} for t in texts)  # u09 stored cut
