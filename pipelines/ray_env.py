"""The one place that holds the Ray settings a single machine or laptop needs (Ray 2.60).

Used by the CLI (`wit ray start`, every pipeline), the Makefile (`eval "$(wit ray env)"`) and the tests:
- every Ray port binds loopback and clients dial 127.0.0.1 (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0);
- token auth is off consistently, so `ray job submit` and `ray.init()` agree (RAY_AUTH_MODE=disabled);
- the jobs CLI finds the dashboard through RAY_API_SERVER_ADDRESS (never an http URL in RAY_ADDRESS);
- ~/ray_bootstrap_config.yaml exists, so Ray's usage module never probes the cloud metadata address 169.254.169.254.
"""

from __future__ import annotations

import os
import shlex
import socket
import sys
from pathlib import Path

DASHBOARD_PORT = 8265

RAY_ENV: dict[str, str] = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "RAY_AUTH_MODE": "disabled",
    "RAY_API_SERVER_ADDRESS": f"http://127.0.0.1:{DASHBOARD_PORT}",
    "RAY_USAGE_STATS_ENABLED": "0",
    "NO_ALBUMENTATIONS_UPDATE": "1",  # albumentations (via img2dataset) phones PyPI at import otherwise
}

BOOTSTRAP_CONFIG = Path.home() / "ray_bootstrap_config.yaml"


def address_file() -> Path:
    """Where `ray start --head` leaves the GCS address: ray/ray_current_cluster in Ray's temp folder, which is
    $RAY_TMPDIR, else $TMPDIR (Linux), else /tmp (so processes with their own RAY_TMPDIR never see each other's heads)."""
    base = os.environ.get("RAY_TMPDIR") or (os.environ.get("TMPDIR") if sys.platform.startswith("linux") else None)
    return Path(base or "/tmp") / "ray" / "ray_current_cluster"


def ensure_bootstrap_config(path: Path = BOOTSTRAP_CONFIG) -> None:
    """Create Ray's bootstrap file (what the cluster launcher writes) when absent; never overwrite one that exists."""
    if not path.exists():
        path.write_text(
            "# written by wit: stops Ray probing the cloud metadata address at start-up\nprovider: {type: local}\n"
        )


def apply() -> dict[str, str]:
    """Export the settings into this process (children inherit them) and write the bootstrap file; returns os.environ."""
    for key, value in RAY_ENV.items():
        os.environ.setdefault(key, value)
    ensure_bootstrap_config()
    return dict(os.environ)


def shell_exports() -> str:
    """`export K=V` lines for `eval "$(wit ray env)"` in a user's shell or the Makefile."""
    return "\n".join(f"export {k}={shlex.quote(v)}" for k, v in RAY_ENV.items())


def init_local(num_cpus: int | None = None, join_head: bool = True, **kwargs):
    """Start or join Ray for a pipeline: join the running cluster when there is one (RAY_ADDRESS, or a local head that
    answers), else start an in-process local cluster bound to loopback. `join_head=False` always starts its own (a
    benchmark that must not share a machine-wide head)."""
    apply()
    import ray

    if ray.is_initialized():
        return ray
    address = os.environ.get("RAY_ADDRESS") if join_head else None
    if address:
        ray.init(address=address, log_to_driver=True, **kwargs)
        return ray
    head = running_head_address() if join_head else None
    if head:
        try:
            ray.init(address=head, log_to_driver=True, **kwargs)
            return ray
        except ConnectionError:  # the head died between the check and the connection: start our own
            pass
    elif join_head and (stale := address_file()).exists():
        print(f"ignoring {stale}: no Ray head answers at the address it names; starting a local Ray", flush=True)
    ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, **kwargs)
    return ray


def running_head_address(path: Path | None = None, timeout: float = 1.0) -> str | None:
    """The GCS address that a local `ray start --head` wrote to Ray's address file, if something accepts connections
    there; None when there is no file or it is stale (a head killed without `ray stop`), because `ray.init` would
    otherwise retry a dead address for many minutes."""
    path = path or address_file()
    try:
        address = path.read_text().strip()
        host, port = address.rsplit(":", 1)
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return address
    except (OSError, ValueError):
        return None
