"""storage.py against the local disk and a real SeaweedFS S3 server on loopback: bytes/json round trips, listing,
Parquet through the pyarrow filesystem, `wit sql`'s catalog over s3://, and a dead endpoint -> a clear WitError."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from ports import free_port

from wit_builder import catalog, storage
from wit_builder.errors import WitError


@pytest.fixture(params=["local", "s3"])
def root(request, tmp_path):
    if request.param == "local":
        return str(tmp_path / "out")
    server = request.getfixturevalue("s3_env")
    return f"s3://{server.bucket}/{request.node.name.replace('[', '-').replace(']', '')}"


def test_bytes_json_exists_remove_listing(root):
    assert not storage.exists(f"{root}/a.json")
    assert storage.listdir(root) == []
    storage.write_json(f"{root}/a.json", {"x": 1})
    storage.write_bytes(f"{root}/b.bin", b"\x00\x01")
    storage.write_bytes(f"{root}/sub/c.bin", b"c")
    assert storage.exists(f"{root}/a.json")
    assert storage.read_json(f"{root}/a.json") == {"x": 1}
    assert storage.read_bytes(f"{root}/b.bin") == b"\x00\x01"
    assert storage.listdir(root) == [f"{root}/a.json", f"{root}/b.bin"]  # files only, not recursive
    assert storage.listdir(root, ".json") == [f"{root}/a.json"]
    assert storage.remove(f"{root}/a.json") is True
    assert storage.remove(f"{root}/a.json") is False
    assert storage.listdir(root, ".json") == []
    storage.write_bytes(f"{root}/sub/deeper/d.bin", b"d")
    storage.remove_tree(f"{root}/sub")
    assert not storage.exists(f"{root}/sub/c.bin") and not storage.exists(f"{root}/sub/deeper/d.bin")
    assert storage.listdir(root) == [f"{root}/b.bin"]
    storage.remove_tree(f"{root}/sub")  # already gone: nothing to do


def test_file_stamps_follow_content(root):
    """Rewriting the same bytes keeps a file's stamp (local sha256, S3 ETag); one changed byte changes it."""
    storage.write_bytes(f"{root}/p.bin", b"abc" * 1000)
    first = storage.file_stamps([f"{root}/p.bin"])
    storage.write_bytes(f"{root}/p.bin", b"abc" * 1000)
    assert storage.file_stamps([f"{root}/p.bin"]) == first
    assert first[0][:2] == [f"{root}/p.bin", 3000] and first[0][2].startswith(("sha256:", "etag:"))
    storage.write_bytes(f"{root}/p.bin", b"abd" + b"abc" * 999)
    assert storage.file_stamps([f"{root}/p.bin"])[0][2] != first[0][2]
    assert storage.file_stamps([f"{root}/missing.bin"]) == [[f"{root}/missing.bin", None, None]]


def test_parquet_round_trip_and_catalog(root):
    table = pa.table({"uid": ["a", "b", "c"], "url": ["u1", "u2", "u3"], "text": ["x", "y", "z"]})
    fs, path = storage.filesystem(f"{root}/pool/part-0.parquet")
    if not storage.is_s3(root):
        import os

        os.makedirs(os.path.dirname(path))
    pq.write_table(table, path, filesystem=fs)
    assert storage.listdir(f"{root}/pool", ".parquet") == [f"{root}/pool/part-0.parquet"]
    assert pq.read_table(path, filesystem=fs).equals(table)
    con, tables = catalog.connect(root)
    assert tables == {"pool": [f"{root}/pool/part-0.parquet"]}
    assert con.execute("SELECT count(*), min(uid), max(text) FROM pool").fetchone() == (3, "a", "z")


def test_s3_bucket_missing_is_a_clear_error(s3_env):
    with pytest.raises(WitError, match="bucket nosuchbucket does not exist"):
        storage.check_reachable("s3://nosuchbucket/x")


def test_s3_unreachable_endpoint_names_it(monkeypatch):
    dead = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("WIT_S3_ENDPOINT", dead)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(WitError, match=f"cannot reach s3://wit/x \\(S3 endpoint {dead}\\)"):
        storage.check_reachable("s3://wit/x")
    with pytest.raises(WitError, match=f"S3 endpoint {dead}"):
        storage.read_json("s3://wit/x/a.json")


def test_export_endpoint_env_drops_s3fs_instances_bound_to_another_endpoint(monkeypatch):
    """fsspec hands out one cached s3fs per argument set, and an endpoint taken from the environment is not an
    argument: without the reset a process that used another endpoint before would keep talking to it."""
    import fsspec

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    before, _ = fsspec.core.url_to_fs("s3://wit/x")
    assert fsspec.core.url_to_fs("s3://wit/x")[0] is before  # the cache this guards against
    monkeypatch.setenv("WIT_S3_ENDPOINT", "http://127.0.0.1:8333")
    storage.export_endpoint_env()
    assert fsspec.core.url_to_fs("s3://wit/x")[0] is not before


def test_split_s3():
    assert storage.split_s3("s3://b/p/q") == ("b", "p/q")
    with pytest.raises(WitError, match="names no bucket"):
        storage.split_s3("s3:///p")


def test_seaweedfs_listens_on_loopback_only(s3_server):
    import shutil

    from s3_server import listening_addresses

    if shutil.which("ss") is None:
        pytest.skip("needs ss (iproute2)")
    addresses = listening_addresses(s3_server.process.pid)
    assert len(addresses) >= 8  # s3, master, volume, filer (http + grpc each), metrics
    assert all(a.startswith("127.0.0.1:") for a in addresses), addresses
