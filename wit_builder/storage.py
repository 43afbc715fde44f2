"""Local paths and s3:// URIs behind one interface: the only module that knows about URI schemes and endpoints.

S3 endpoint: WIT_S3_ENDPOINT or AWS_ENDPOINT_URL (e.g. a SeaweedFS server on http://127.0.0.1:8333); credentials
from the usual AWS variables.
"""

from __future__ import annotations

import os

from wit_builder.errors import WitError


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


def s3_endpoint() -> str | None:
    return os.environ.get("WIT_S3_ENDPOINT") or os.environ.get("AWS_ENDPOINT_URL")


def fsspec_s3():
    """An s3fs filesystem for the configured endpoint (DuckDB and fsspec users)."""
    import s3fs

    endpoint = s3_endpoint()
    return s3fs.S3FileSystem(client_kwargs={"endpoint_url": endpoint} if endpoint else {}, use_listings_cache=False)


def s3_glob(pattern: str) -> list[str]:
    """Expand an s3://bucket/prefix/*.parquet pattern to s3:// URIs; unreachable endpoints become a WitError."""
    fs = fsspec_s3()
    try:
        return sorted("s3://" + p for p in fs.glob(pattern[len("s3://") :]))
    except Exception as err:  # noqa: BLE001 - botocore raises many types for a dead endpoint
        raise WitError(f"cannot list {pattern} (endpoint {s3_endpoint() or 'AWS default'}): {err}") from err


def s3_region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def split_s3(uri: str) -> tuple[str, str]:
    """'s3://bucket/a/b' -> ('bucket', 'a/b')."""
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket:
        raise WitError(f"{uri} names no bucket: use s3://BUCKET/PREFIX")
    return bucket, key


def filesystem(uri: str):
    """(pyarrow filesystem, path inside it) for a local path or an s3:// URI (Parquet readers and writers)."""
    import pyarrow.fs as pafs

    if not is_s3(uri):
        return pafs.LocalFileSystem(), os.path.abspath(uri)
    endpoint = s3_endpoint()
    options = {
        "region": s3_region(),
        "connect_timeout": 5.0,
        "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=3),
    }
    if endpoint:
        scheme, _, rest = endpoint.partition("://")
        options.update(endpoint_override=rest or scheme, scheme=scheme if rest else "https")
    return pafs.S3FileSystem(**options), uri[len("s3://") :]


def _endpoint_error(uri: str, err: Exception) -> WitError:
    return WitError(
        f"cannot reach {uri} (S3 endpoint {s3_endpoint() or 'AWS default'}): {err}. "
        "Check WIT_S3_ENDPOINT / AWS_ENDPOINT_URL, that the server runs, the bucket exists and the credentials"
    )


def _call(uri: str, fn, *args):
    """Run a filesystem call; on S3 any transport failure becomes a WitError naming the endpoint."""
    if not is_s3(uri):
        return fn(*args)
    try:
        return fn(*args)
    except (FileNotFoundError, WitError):
        raise
    except Exception as err:  # noqa: BLE001 - pyarrow/botocore raise OSError subclasses and others for dead endpoints
        raise _endpoint_error(uri, err) from err


def exists(uri: str) -> bool:
    import pyarrow.fs as pafs

    fs, path = filesystem(uri)
    return _call(uri, lambda: fs.get_file_info(path).type != pafs.FileType.NotFound)


def read_bytes(uri: str) -> bytes:
    fs, path = filesystem(uri)

    def read():
        with fs.open_input_stream(path) as f:
            return f.read()

    return _call(uri, read)


def write_bytes(uri: str, data: bytes) -> None:
    """Write a whole object; local parent folders are created (S3 has no folders)."""
    fs, path = filesystem(uri)

    def write():
        if not is_s3(uri):
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with fs.open_output_stream(path) as f:
            f.write(data)

    _call(uri, write)


def read_json(uri: str):
    import json

    return json.loads(read_bytes(uri))


def write_json(uri: str, value) -> None:
    import json

    write_bytes(uri, (json.dumps(value, indent=2, sort_keys=True) + "\n").encode())


def remove(uri: str) -> bool:
    """Delete one file/object if present; returns whether it existed."""
    fs, path = filesystem(uri)
    if not exists(uri):
        return False
    _call(uri, fs.delete_file, path)
    return True


def remove_tree(uri: str) -> None:
    """Delete a folder/prefix and everything under it, if present."""
    import pyarrow.fs as pafs

    fs, path = filesystem(uri.rstrip("/"))
    if _call(uri, fs.get_file_info, path).type != pafs.FileType.Directory:
        return
    _call(uri, lambda: fs.delete_dir_contents(path, missing_dir_ok=True))
    try:
        _call(uri, fs.delete_dir, path)
    except FileNotFoundError:  # an S3 prefix without a directory marker is gone with its last object
        pass


def listdir(uri: str, suffix: str = "") -> list[str]:
    """Files directly under a folder/prefix (not recursive) whose names end with `suffix`, as full paths/URIs, sorted.
    A missing folder gives []."""
    import pyarrow.fs as pafs

    fs, path = filesystem(uri.rstrip("/"))
    selector = pafs.FileSelector(path, recursive=False, allow_not_found=True)
    infos = _call(uri, fs.get_file_info, selector)
    prefix = "s3://" if is_s3(uri) else ""
    return sorted(prefix + i.path for i in infos if i.type == pafs.FileType.File and i.path.endswith(suffix))


def check_reachable(uri: str) -> None:
    """Fail early with a clear WitError when an s3:// destination's endpoint or bucket cannot be reached."""
    if not is_s3(uri):
        return
    import pyarrow.fs as pafs

    bucket, _ = split_s3(uri)
    fs, _ = filesystem(uri)
    info = _call(uri, fs.get_file_info, bucket)
    if info.type == pafs.FileType.NotFound:
        raise WitError(f"bucket {bucket} does not exist at {s3_endpoint() or 'AWS'}: create it first ({uri})")


def export_endpoint_env() -> None:
    """Make the endpoint visible to fsspec/s3fs users in this process and its children (img2dataset's writers read
    AWS_ENDPOINT_URL through botocore). fsspec caches one s3fs instance per set of arguments, and the endpoint taken
    from the environment is not one of them: drop the cached instances, or a process that talked to another endpoint
    before would keep writing there."""
    endpoint = s3_endpoint()
    if endpoint:
        os.environ["AWS_ENDPOINT_URL"] = endpoint
    os.environ.setdefault("AWS_DEFAULT_REGION", s3_region())
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()


S3_ENV = (
    "WIT_S3_ENDPOINT",
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_PROFILE",
    "AWS_EC2_METADATA_DISABLED",
)


def s3_env_vars() -> dict[str, str]:
    """The S3 settings of this process that Ray workers need to reach the same storage (only those that are set)."""
    return {key: os.environ[key] for key in S3_ENV if key in os.environ}


def file_stamps(paths) -> list[list]:
    """[path, size, content digest] per file: "sha256:..." of the bytes of a local file (about 1 GB/s here), the
    ETag S3 keeps for an object ("etag:...", derived from its content). What a rerun compares to decide whether its
    inputs are the ones an earlier run used: touched or copied files still match, edited ones never do."""
    import hashlib

    stamps = []
    for uri in paths:
        try:
            if is_s3(uri):
                info = _call(uri, fsspec_s3().info, uri[len("s3://") :])
                stamps.append([uri, info["size"], "etag:" + str(info.get("ETag", "")).strip('"')])
            else:
                with open(uri, "rb") as handle:
                    digest = hashlib.file_digest(handle, "sha256").hexdigest()
                stamps.append([uri, os.path.getsize(uri), "sha256:" + digest])
        except (FileNotFoundError, IsADirectoryError):  # the readers say what is wrong with a missing input
            stamps.append([uri, None, None])
    return stamps
