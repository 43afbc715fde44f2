"""The same download into s3:// on a real SeaweedFS server: shards, Parquet, sizes.json and the config marker land
in the bucket, every pair is accounted, and the shards read back from S3 with the webdataset library."""

from __future__ import annotations

import os

import pytest
from test_img2dataset_job import TEST_CONFIG, curated

from wit_builder import storage
from wit_builder.download import shards
from wit_builder.download.img2dataset_job import DownloadConfig, download_shards


@pytest.mark.slow
def test_download_to_s3(image_web, s3_env):
    table, expected = curated(image_web)
    out = f"s3://{s3_env.bucket}/run1/shards"
    environ = dict(os.environ)
    accounting = download_shards(table, out, DownloadConfig(allow_hosts=(image_web.allow,), **TEST_CONFIG))
    assert dict(os.environ) == environ  # the AWS_* exported for img2dataset's workers are put back
    assert {r["uid"]: r["status"] for r in accounting.to_pylist()} == {u: s for u, (s, _) in expected.items()}
    names = [p.rsplit("/", 1)[-1] for p in storage.listdir(out)]
    assert names == [
        "00000.parquet",
        "00000.tar",
        "00000_stats.json",
        "00001.parquet",
        "00001.tar",
        "00001_stats.json",
        "00002.parquet",
        "00002.tar",
        "00002_stats.json",
        "sizes.json",
    ]
    assert storage.exists(f"{out}/_wit/config.json")
    assert sum(storage.read_json(f"{out}/sizes.json").values()) == 33
    assert shards.verify(out) == {"samples": 33, "shards": 3}


@pytest.mark.slow
def test_download_to_s3_after_the_process_used_another_endpoint(image_web, s3_env, monkeypatch):
    """A process (a notebook, a test session) that talked to another S3 endpoint first still downloads to the one
    configured now: img2dataset stages its shard inputs through fsspec's cached s3fs instances."""
    import fsspec

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    stale, _ = fsspec.core.url_to_fs(f"s3://{s3_env.bucket}/elsewhere")
    stale.connect()  # its botocore client is bound to the dead endpoint from now on
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_env.endpoint)
    table, expected = curated(image_web)
    table = table.slice(0, 10)
    out = f"s3://{s3_env.bucket}/run2/shards"
    accounting = download_shards(table, out, DownloadConfig(allow_hosts=(image_web.allow,), **TEST_CONFIG))
    assert accounting.num_rows == 10 and set(accounting.column("status").to_pylist()) == {"kept"}
    assert shards.verify(out) == {"samples": 10, "shards": 1}
    assert not storage.listdir(f"{out}/_tmp")  # the staged inputs are cleaned up on S3 too
