"""Session-wide fixtures shared by every test folder: Ray settings applied before anything imports Ray, a network
safety net (no connect beyond loopback from the test process), one real local Ray cluster per session, and a real
SeaweedFS S3 server on loopback (`s3_server`, `s3_env`) and the loopback image web (`image_web`)."""

from __future__ import annotations

import os

import pytest
from image_web import image_web  # noqa: F401 - session fixture
from net_guard import GUARD  # installs the audit hook at collection time
from s3_server import s3_env, s3_server  # noqa: F401 - session fixtures

from pipelines import ray_env

ray_env.apply()  # loopback binding, auth mode, no metadata probe: before any test touches Ray
# Each pytest-xdist process gets its own Ray temp folder (sessions, logs, the head address file), so a pipeline one
# test runs never joins the Ray of a test in the other process, nor a head that a stale address file names.
if os.environ.get("PYTEST_XDIST_WORKER"):
    _ray_tmp = f"/tmp/wit-ray-{os.environ['PYTEST_XDIST_WORKER']}"  # short: Ray's socket paths must fit 107 bytes
    os.makedirs(_ray_tmp, exist_ok=True)
    os.environ["RAY_TMPDIR"] = _ray_tmp
# Ray refuses to spill objects once the disk is 95 % used, and CI shares its disk with other jobs: tests spill only
# when a disk is really full (each Ray process the tests start inherits this; set it to 0 to find spilling tests).
os.environ.setdefault("RAY_local_fs_capacity_threshold", "1.0")


@pytest.fixture
def connects():
    """The list of addresses this process connects to during the test (the guard refuses non-loopback ones)."""
    GUARD.addresses = []
    GUARD.active = True
    yield GUARD.addresses
    GUARD.active = False


@pytest.fixture(scope="session")
def ray_session():
    """A real local Ray cluster (2 CPUs, no dashboard) shared by the session; shut down at the end. Its object store
    holds the demo pool's curation without spilling to disk."""
    import ray

    if not ray.is_initialized():
        ray.init(
            address="local", num_cpus=2, include_dashboard=False, object_store_memory=2_000_000_000, log_to_driver=False
        )
    yield ray
    ray.shutdown()


@pytest.fixture
def no_driver_ray():
    """For tests that start and stop a Ray head: `ray stop` ends every Ray process of the machine, and a driver whose
    cluster dies exits, so this test process must hold no Ray connection meanwhile (later tests re-init on demand)."""
    import ray

    ray.shutdown()
    yield
    ray.shutdown()
