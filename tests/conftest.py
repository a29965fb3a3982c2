"""Shared test set-up: an isolated Prefect home, and one local Ray per test session."""

import logging
import os
import tempfile

import pytest

# Before anything imports prefect: a private home so parallel runs never share a Prefect database.
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="omnicurate-prefect-"))
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "300")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# Prefect's temporary server logs its shutdown at interpreter exit, after pytest closed the captured
# streams; without this, a traceback about the closed stream would follow pytest's summary line.
logging.raiseExceptions = False


@pytest.fixture(scope="session")
def ray_local():
    """A local Ray with two CPUs, started once and shared by every test that needs Ray."""
    import ray

    from pipelines.ray_runtime import ensure_ray

    ensure_ray(num_cpus=2)
    yield ray
    ray.shutdown()
