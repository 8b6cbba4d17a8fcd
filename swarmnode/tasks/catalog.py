"""Task names to tasks: a built-in family by its name, else a reasoning-gym dataset by its name."""

from __future__ import annotations

from collections.abc import Mapping

from protocol.messages import Scalar
from swarmnode.errors import UserError
from swarmnode.tasks.base import Task, TaskError
from swarmnode.tasks.builtin import TASKS


def make_task(name: str, params: Mapping[str, Scalar] | None = None) -> Task:
    """A task by name: a built-in family, else a reasoning-gym dataset. Unknown names are a UserError."""
    params = dict(params or {})
    try:
        if name in TASKS:
            return TASKS[name](params)
        from swarmnode.tasks import gym  # only for a name that is not a built-in family (see gym.py)

        if gym.is_dataset(name):
            return gym.ReasoningGymTask(name, params)
    except (TypeError, ValueError, TaskError) as exc:
        raise UserError(f"task {name!r}: bad parameters {params}: {exc}") from exc
    raise UserError(
        f"unknown task {name!r}: use a built-in task ({', '.join(sorted(TASKS))}) or a reasoning-gym "
        "dataset name such as basic_arithmetic"
    )
