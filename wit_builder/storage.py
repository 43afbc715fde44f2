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
        return sorted("s3://" + p for p in fs.glob(pattern[len("s3://"):]))
    except Exception as err:  # noqa: BLE001 - botocore raises many types for a dead endpoint
        raise WitError(f"cannot list {pattern} (endpoint {s3_endpoint() or 'AWS default'}): {err}") from err
