"""Session-wide fixtures shared by every test folder: Ray settings applied before anything imports Ray, a network
safety net (no connect beyond loopback from the test process), one real local Ray cluster per session, and a real
SeaweedFS S3 server on loopback (`s3_server`, `s3_env`) and the loopback image web (`image_web`)."""

from __future__ import annotations

import pytest
from image_web import image_web  # noqa: F401 - session fixture
from net_guard import GUARD  # installs the audit hook at collection time
from s3_server import s3_env, s3_server  # noqa: F401 - session fixtures

from pipelines import ray_env

ray_env.apply()  # loopback binding, auth mode, no metadata probe: before any test touches Ray


@pytest.fixture
def connects():
    """The list of addresses this process connects to during the test (the guard refuses non-loopback ones)."""
    GUARD.addresses = []
    GUARD.active = True
    yield GUARD.addresses
    GUARD.active = False


@pytest.fixture(scope="session")
def ray_session():
    """A real local Ray cluster (2 CPUs, no dashboard) shared by the session; shut down at the end."""
    import ray

    if not ray.is_initialized():
        ray.init(
            address="local", num_cpus=2, include_dashboard=False, object_store_memory=500_000_000, log_to_driver=False
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
