"""`wit ray start`, a real `ray job submit`, `wit ray stop`: the settings these machines need, end to end.

Lives in tests/e2e so it runs before any session fixture starts other servers: `ray stop` ends Ray's processes
machine-wide and was seen to take the session's SeaweedFS filer down with them."""

import ipaddress
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines import ray_cluster, ray_env

BIN = Path(sys.executable).parent


def test_bootstrap_config_is_created_once_and_never_overwritten(tmp_path):
    path = tmp_path / "ray_bootstrap_config.yaml"
    ray_env.ensure_bootstrap_config(path)
    assert "provider: {type: local}" in path.read_text()
    path.write_text("provider: {type: aws}\n")
    ray_env.ensure_bootstrap_config(path)
    assert path.read_text() == "provider: {type: aws}\n"


def _ray_listeners() -> list[str]:
    """Local addresses of listening TCP sockets owned by Ray's processes."""
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout
    names = ("gcs_server", "raylet", "ray::", "dashboard", "python", "agent")
    return [line.split()[3] for line in out.splitlines() if any(f'"{n}' in line for n in names)]


def _is_loopback(address: str) -> bool:
    host = address.rsplit(":", 1)[0].strip("[]")
    ip = ipaddress.ip_address(host)
    return ip.is_loopback or (ip.version == 6 and ip.ipv4_mapped is not None and ip.ipv4_mapped.is_loopback)


@pytest.mark.slow
@pytest.mark.ray_head
def test_head_binds_loopback_and_runs_a_submitted_job(no_driver_ray, tmp_path):
    env = ray_cluster.cli_env()
    start = subprocess.run(
        [BIN / "wit", "ray", "start", "--num-cpus", "1", "--object-store-memory", "300000000"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert start.returncode == 0, start.stderr
    try:
        listeners = _ray_listeners()
        assert listeners, "no Ray listener found"
        assert [a for a in listeners if not _is_loopback(a)] == []
        (tmp_path / "job.py").write_text("import ray\nray.init()\nprint('CPUS', int(ray.cluster_resources()['CPU']))\n")
        job = subprocess.run(
            [BIN / "ray", "job", "submit", "--working-dir", ".", "--", "python", "job.py"],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=300,
        )
        assert job.returncode == 0, job.stdout + job.stderr
        assert "CPUS 1" in job.stdout
    finally:
        stop = subprocess.run([BIN / "wit", "ray", "stop"], capture_output=True, text=True, env=env)
    assert stop.returncode == 0, stop.stderr
    assert not ray_env.address_file().exists() or _ray_listeners() == []
