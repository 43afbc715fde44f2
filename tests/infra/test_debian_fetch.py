"""infra/debian/fetch.sh: a package that cannot be fetched is named, with the commands to get it by hand."""

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "infra" / "debian" / "fetch.sh"


def test_unfetchable_package_says_which_and_how(tmp_path):
    env = {
        **os.environ,
        "WIT_CACHE": str(tmp_path),
        "WIT_DEBIAN_PACKAGES": "wit-no-such-package-xyz",
        "WIT_APT_UPDATE": "0",
        "PYTHON": sys.executable,
    }
    done = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 1
    assert "could not fetch Debian package 'wit-no-such-package-xyz'" in done.stderr
    assert f"dpkg -x wit-no-such-package-xyz_*.deb {tmp_path}/debian/root" in done.stderr
    assert not (tmp_path / "debian" / "stamps" / "wit-no-such-package-xyz").exists()


def test_a_stamped_package_is_not_fetched_again(tmp_path):
    stamps = tmp_path / "debian" / "stamps"
    stamps.mkdir(parents=True)
    (stamps / "wit-no-such-package-xyz").touch()
    wiki = tmp_path / "wiki"
    wiki.mkdir()
    (wiki / "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2").write_bytes(b"")
    env = {
        **os.environ,
        "WIT_CACHE": str(tmp_path),
        "WIT_DEBIAN_PACKAGES": "wit-no-such-package-xyz",
        "WIT_APT_UPDATE": "0",
        "PYTHON": sys.executable,
    }
    done = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"data: ready in {tmp_path}"
