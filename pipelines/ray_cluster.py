"""Start and stop a local Ray head with the settings that work on these machines (pipelines/ray_env.py).

wit ray start              # head on 127.0.0.1, 2 CPUs, 4 GB object store, jobs API on http://127.0.0.1:8265
ray job submit --working-dir . -- python pipelines/build_wit.py ...   (after: eval "$(wit ray env)")
wit ray stop
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

HELP = "start/stop a local Ray head bound to loopback; print the environment Ray clients need"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True
    start = sub.add_parser("start", help="start a head node on 127.0.0.1")
    start.add_argument("--num-cpus", type=int, default=os.cpu_count(), help="CPUs the head offers (default: all)")
    start.add_argument(
        "--object-store-memory",
        type=int,
        default=4_000_000_000,
        help="bytes of shared memory for Ray's object store (default 4 GB: room for the download "
        "workers and two trainer processes in 24 GB)",
    )
    start.add_argument("--port", type=int, default=6379, help="GCS port (default 6379)")
    sub.add_parser("stop", help="stop every Ray process of this user on this machine")
    sub.add_parser("status", help="show the cluster's resources")
    sub.add_parser("env", help='print `export` lines: eval "$(wit ray env)" before `ray job submit`')


def _ray_cli() -> str:
    return os.path.join(os.path.dirname(sys.executable), "ray")


def cli_env() -> dict[str, str]:
    """The environment for `ray` CLI subprocesses (start, job submit): the shared settings, this venv first on PATH."""
    from pipelines import ray_env

    env = ray_env.apply()
    # Jobs resolve `python` from the raylet's PATH: put this interpreter's venv first, or a job's `python` is the
    # system one and cannot import ray.
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    return env


def _ray(*args: str, check: bool = True, timeout: float | None = None) -> str:
    """Run the `ray` CLI of this venv with the shared settings; WitError with its last line when it fails."""
    from wit_builder.errors import WitError

    if not os.path.exists(_ray_cli()):
        raise WitError(f"the ray command is missing next to {sys.executable}: run `make install`")
    done = subprocess.run([_ray_cli(), *args], env=cli_env(), capture_output=True, text=True, timeout=timeout)
    output = (done.stdout + done.stderr).strip()
    if check and done.returncode != 0:
        last = output.splitlines()[-1] if output else "no output"
        hint = " (is one already running? `wit ray stop` first)" if args[0] == "start" else ""
        raise WitError(f"`ray {' '.join(args[:2])}` failed: {last}{hint}")
    return output


def head_running() -> bool:
    """True when a Ray head of this machine answers `ray status` (asked only when its GCS port accepts connections:
    `ray status` waits minutes on the stale address file a killed head leaves)."""
    from pipelines import ray_env

    if ray_env.running_head_address() is None:
        return False
    try:
        _ray("status", timeout=120)
        return True
    except Exception:  # noqa: BLE001 - any failure means no usable head
        return False


def start_head(num_cpus: int | None = None, object_store_memory: int = 4_000_000_000, port: int = 6379) -> None:
    """`ray start --head` on loopback with the settings of pipelines/ray_env.py."""
    from pipelines import ray_env

    _ray(
        "start",
        "--head",
        f"--port={port}",
        f"--num-cpus={num_cpus or os.cpu_count()}",
        f"--object-store-memory={object_store_memory}",
        "--dashboard-host=127.0.0.1",
        f"--dashboard-port={ray_env.DASHBOARD_PORT}",
        "--disable-usage-stats",
    )


def stop_head() -> str:
    """`ray stop`, after this process lets go of the cluster: Ray's autoscaler monitor answers SIGTERM by publishing
    its stack trace to every connected driver, so a driver still connected here would print that traceback."""
    if "ray" in sys.modules:
        import ray

        if ray.is_initialized():
            ray.shutdown()
    return _ray("stop")


def run(args: argparse.Namespace) -> int:
    from pipelines import ray_env

    if args.action == "env":
        print(ray_env.shell_exports())
    elif args.action == "start":
        start_head(args.num_cpus, args.object_store_memory, args.port)
        print(f"Ray head running on 127.0.0.1:{args.port}; jobs API {ray_env.RAY_ENV['RAY_API_SERVER_ADDRESS']}")
        print(
            'Submit jobs with:  eval "$(wit ray env)"; ray job submit --working-dir . -- python pipelines/build_wit.py ...'
        )
    elif args.action == "stop":
        print(stop_head())
    else:
        print(_ray("status"))
    return 0
