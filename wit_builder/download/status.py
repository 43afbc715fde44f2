"""img2dataset's per-shard Parquet (one row per attempted pair, failures included) turned into accounting rows:
uid, status (kept | failed), reason (why failed), error, shard, key; and the check that every input pair is
accounted exactly once."""

from __future__ import annotations

import collections

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from wit_builder import storage
from wit_builder.download.policy import DEADLINE_ERROR
from wit_builder.errors import WitError

DEADLINE = "deadline"  # reason of a pair whose request missed request_deadline (error starts with DEADLINE_ERROR)
DOWNLOAD_FAILED = "download_failed"  # reason of any other failed pair (404, refused, not an image, too large, ...)
REMOVED = "near_duplicate"  # a shard row's status (and its reason) once `wit dedup --remove` took its image out

OUTCOME_SCHEMA = pa.schema(
    [
        ("uid", pa.string()),
        ("status", pa.string()),  # kept | failed
        ("reason", pa.string()),  # null when kept; DEADLINE | DOWNLOAD_FAILED when failed
        ("error", pa.string()),  # img2dataset's error_message (null when kept)
        ("stage", pa.string()),  # img2dataset's status: success | failed_to_download | failed_to_resize
        ("shard", pa.string()),  # NNNNN.tar the pair belongs to (its sample is in it only when kept)
        ("key", pa.string()),  # the sample key inside the shard
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("sha256", pa.string()),  # of the stored image bytes (kept only)
    ]
)


# Parts of an error message that differ between pairs with the same cause; the failure table groups them away.
ERROR_DETAILS = (
    (r"\(\d+ x \d+\)", "(W x H)"),  # image area too large (7000 x 7000)
    (r"\(\d+ px\)", "(N px)"),  # image area too large (900000000 px)
    (r"^redirect to \S+ refused", "redirect to URL refused"),
    (r"refused: \S+ is a ", "refused: ADDRESS is a "),  # ... 10.0.0.1 is a private address
)


def error_group_sql(column: str = "error") -> str:
    """A DuckDB expression that maps an error message to its group (the message without per-pair details)."""
    expression = column
    for pattern, replacement in ERROR_DETAILS:
        expression = f"regexp_replace({expression}, '{pattern}', '{replacement}')"
    return expression


def shard_status_files(out: str) -> list[str]:
    """The NNNNN.parquet files img2dataset wrote under `out` (local folder or s3:// prefix)."""
    return [p for p in storage.listdir(out, ".parquet") if p.rsplit("/", 1)[-1][: -len(".parquet")].isdigit()]


def read_shard_status(path: str) -> pa.Table:
    """One shard's Parquet -> accounting rows."""
    fs, inner = storage.filesystem(path)
    table = pq.read_table(inner, filesystem=fs, columns=None)
    shard = path.rsplit("/", 1)[-1][: -len(".parquet")] + ".tar"
    n = table.num_rows
    kept = pc.equal(table.column("status"), "success")
    removed = pc.equal(table.column("status"), REMOVED)  # taken out by `wit dedup --remove` after the download
    error = table.column("error_message")
    deadline = pc.fill_null(pc.starts_with(error, DEADLINE_ERROR), False)
    reason = pc.if_else(kept, pa.scalar(None, pa.string()), pc.if_else(deadline, DEADLINE, DOWNLOAD_FAILED))
    reason = pc.if_else(removed, REMOVED, reason)
    status = pc.if_else(removed, "filtered", pc.if_else(kept, "kept", "failed"))
    return pa.table(
        {
            "uid": table.column("uid").cast(pa.string()),
            "status": status,
            "reason": reason,
            "error": pc.if_else(pc.or_(kept, removed), pa.scalar(None, pa.string()), table.column("error_message")),
            "stage": table.column("status"),
            "shard": pa.array([shard] * n, pa.string()),
            "key": table.column("key"),
            "width": table.column("width"),
            "height": table.column("height"),
            "sha256": table.column("sha256"),
        },
        schema=OUTCOME_SCHEMA,
    )


def read_status(out: str) -> pa.Table:
    """Accounting rows for every shard under `out`, in shard and key order."""
    parts = [read_shard_status(p) for p in shard_status_files(out)]
    if not parts:
        return OUTCOME_SCHEMA.empty_table()
    table = pa.concat_tables(parts)
    return table.sort_by([("shard", "ascending"), ("key", "ascending")])


def assert_accounted(input_uids: list, accounting: pa.Table) -> None:
    """Every input uid appears exactly once in `accounting` and nothing else does; raises WitError otherwise."""
    wanted = collections.Counter(map(str, input_uids))
    got = collections.Counter(accounting.column("uid").to_pylist())
    missing = sorted(set(wanted) - set(got))
    extra = sorted(set(got) - set(wanted))
    repeated = sorted(u for u, n in got.items() if n > 1)
    if missing or extra or repeated:

        def show(items):
            return f"{len(items)} ({', '.join(items[:5])}{', ...' if len(items) > 5 else ''})"

        raise WitError(
            f"download accounting does not match the input: missing {show(missing)}, unexpected {show(extra)}, "
            f"repeated {show(repeated)}; the shard Parquet files are incomplete: rerun the same command to redo "
            f"the unfinished shards"
        )
