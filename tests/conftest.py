"""Shared test settings: a hypothesis profile without deadlines (CI machines are busy)."""

import subprocess
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[str]]]:
    """Processes a test starts; every one still running at the end is killed."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
        p.wait(timeout=30)


settings.register_profile(
    "swarmnode",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
settings.load_profile("swarmnode")
