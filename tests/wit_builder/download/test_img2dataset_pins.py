"""Our hooks replace private names of img2dataset 1.47.0: the check names the version when they change; and a
download, finished or failed, leaves no global state changed (os.environ, the SIGINT handler, img2dataset's
attributes)."""

from __future__ import annotations

import importlib
import os
import signal

import pyarrow as pa
import pytest

from wit_builder.download import img2dataset_job
from wit_builder.download.img2dataset_job import DownloadConfig, check_img2dataset, download_shards
from wit_builder.errors import WitError

REPLACED = (
    "img2dataset.main.Downloader",
    "img2dataset.main.multiprocessing_distributor",
    "img2dataset.main.ray_distributor",
    "img2dataset.downloader.download_image_with_retry",
)


def test_installed_img2dataset_is_the_pinned_one():
    check_img2dataset(exact=True)
    assert set(REPLACED) <= set(img2dataset_job.IMG2DATASET_NAMES)


def test_changed_signature_fails_naming_the_version(monkeypatch):
    downloader = importlib.import_module("img2dataset.downloader")

    def grown(row, timeout, retries, user_agent_token, disallowed_header_directives, proxy=None):
        raise AssertionError("never called")

    monkeypatch.setattr(downloader, "download_image_with_retry", grown)
    check_img2dataset()  # a parameter added at the end: our fetch takes it, downloads go on
    with pytest.raises(WitError) as caught:
        check_img2dataset(exact=True)  # the test suite flags it for review
    message = str(caught.value)
    assert message.startswith("img2dataset 1.47.0 does not match img2dataset 1.47.0, which wit-clip")
    assert (
        "img2dataset.downloader.download_image_with_retry(row, timeout, retries, user_agent_token, "
        "disallowed_header_directives, proxy) is not (row, timeout, retries, " in message
    )
    assert "Install img2dataset==1.47.0" in message

    monkeypatch.setattr(downloader, "download_image_with_retry", lambda row, timeout: None)
    with pytest.raises(WitError, match=r"download_image_with_retry\(row, timeout\) is not"):
        check_img2dataset()


def test_missing_name_or_other_version_fails(monkeypatch):
    import importlib.metadata

    main = importlib.import_module("img2dataset.main")
    monkeypatch.delattr(main, "ray_distributor")
    with pytest.raises(WitError, match="img2dataset.main.ray_distributor is gone"):
        check_img2dataset()
    monkeypatch.undo()
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "1.48.0")
    with pytest.raises(
        WitError,
        match=r"^img2dataset 1\.48\.0 does not match img2dataset 1\.47\.0.*"
        r"version 1\.48\.0 is not the "
        r"pinned 1\.47\.0",
    ):
        check_img2dataset(exact=True)


def global_state() -> dict:
    return {
        "environ": dict(os.environ),
        "sigint": signal.getsignal(signal.SIGINT),
        **{name: img2dataset_job._lookup(name) for name in REPLACED},  # noqa: SLF001
    }


@pytest.mark.parametrize("outcome", ["finished", "failed"])
def test_download_leaves_no_global_state_changed(image_web, tmp_path, outcome):
    image_web.clear()
    urls = [image_web.url(f"/img/{300 + i}x260-{i}.jpg") for i in range(3)]
    if outcome == "failed":
        image_web.kills["state"] = 1
        urls.append(image_web.url("/kill-worker/state.png"))
    table = pa.table({"uid": [f"s{i}" for i in range(len(urls))], "url": urls, "text": ["t"] * len(urls)})
    config = DownloadConfig(
        allow_hosts=(image_web.allow,), processes_count=1, thread_count=4, timeout=5.0, retries=0, shard_retries=0
    )
    before = global_state()
    if outcome == "failed":
        with pytest.raises(WitError, match="a download worker process died"):
            download_shards(table, str(tmp_path / "shards"), config)
    else:
        assert download_shards(table, str(tmp_path / "shards"), config).num_rows == 3
    assert global_state() == before
