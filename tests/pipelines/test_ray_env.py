"""Joining a running Ray head: only one that answers. A head killed without `ray stop` leaves its address file, and
`ray.init(address="auto")` then retries the dead address for many minutes (a CI run hung on it)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from pipelines import ray_env

ROOT = Path(__file__).resolve().parents[2]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_address_file_is_followed_only_when_its_port_answers(tmp_path):
    path = tmp_path / "ray_current_cluster"
    assert ray_env.running_head_address(path) is None  # no file
    path.write_text("not an address\n")
    assert ray_env.running_head_address(path) is None
    path.write_text(f"127.0.0.1:{_closed_port()}\n")
    assert ray_env.running_head_address(path) is None  # stale: nothing listens
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        address = f"127.0.0.1:{server.getsockname()[1]}"
        path.write_text(address + "\n")
        assert ray_env.running_head_address(path) == address


def test_a_stale_address_file_starts_a_local_ray_at_once(tmp_path, no_driver_ray):
    stale = tmp_path / "ray_current_cluster"
    stale.write_text(f"127.0.0.1:{_closed_port()}\n")
    code = (
        "import sys; from pathlib import Path; from pipelines import ray_env\n"
        "ray_env.address_file = lambda: Path(sys.argv[1])\n"
        "ray = ray_env.init_local(num_cpus=1)\n"
        "print('CPUS', int(ray.cluster_resources()['CPU']))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(stale)], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"ignoring {stale}: no Ray head answers" in done.stdout
    assert "CPUS 1" in done.stdout


def test_the_address_file_lives_in_rays_temp_folder(monkeypatch):
    """`ray start --head` writes the address under $RAY_TMPDIR, else $TMPDIR, else /tmp: we look where it writes."""
    monkeypatch.delenv("RAY_TMPDIR", raising=False)
    monkeypatch.delenv("TMPDIR", raising=False)
    assert ray_env.address_file() == Path("/tmp/ray/ray_current_cluster")
    monkeypatch.setenv("TMPDIR", "/var/tmp/x")
    assert ray_env.address_file() == Path("/var/tmp/x/ray/ray_current_cluster")
    monkeypatch.setenv("RAY_TMPDIR", "/tmp/wit-ray-gw1")
    assert ray_env.address_file() == Path("/tmp/wit-ray-gw1/ray/ray_current_cluster")
