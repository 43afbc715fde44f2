"""Check that a served web answers as its pool says: live URLs return their file's exact bytes, dead links 404."""

from __future__ import annotations

import random
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit
from urllib.request import urlopen


def sample_rows(rows: list[dict], n: int, seed: int = 0) -> list[dict]:
    """A seeded sample of pool rows, one per distinct URL."""
    unique = list({r["url"]: r for r in rows}.values())
    return random.Random(seed).sample(unique, min(n, len(unique)))


def _fetch(url: str) -> tuple[int | None, bytes]:
    try:
        with urlopen(url, timeout=10) as resp:
            return resp.status, resp.read()
    except HTTPError as err:
        return err.code, b""
    except (URLError, OSError):
        return None, b""


def check_round_trip(rows: list[dict], root: str | Path, base_url: str, threads: int = 16) -> Counter:
    """Fetch each row's URL (rebased on base_url) and classify: ok, dead_link_404, and the mismatches."""
    root = Path(root)

    def one(row: dict) -> str:
        parts = urlsplit(row["url"])
        status, body = _fetch(base_url + parts.path + (f"?{parts.query}" if parts.query else ""))
        if row["noise"] == "dead_link":
            return "dead_link_404" if status == 404 else f"dead_link_answered_{status}"
        if status != 200:
            return f"unexpected_status_{status}"
        return "ok" if body == (root / row["image"]).read_bytes() else "wrong_bytes"

    with ThreadPoolExecutor(threads) as pool:
        return Counter(pool.map(one, rows))
