"""Session-wide fixtures shared by every test folder: Ray settings applied before anything imports Ray, and one
real local Ray cluster per session (tests that need it ask for `ray_session`)."""

from __future__ import annotations

import pytest

from pipelines import ray_env

ray_env.apply()  # loopback binding, auth mode, no metadata probe: before any test touches Ray


@pytest.fixture(scope="session")
def ray_session():
    """A real local Ray cluster (2 CPUs, no dashboard) shared by the session; shut down at the end."""
    import ray

    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, include_dashboard=False, object_store_memory=500_000_000,
                 log_to_driver=False)
    yield ray
    ray.shutdown()
