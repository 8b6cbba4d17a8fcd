"""Shared test settings: a hypothesis profile without deadlines (CI machines are busy)."""

from hypothesis import HealthCheck, settings

settings.register_profile(
    "swarmnode",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
settings.load_profile("swarmnode")
