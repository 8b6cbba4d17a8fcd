"""What the in-process swarm benches (`bench sapo`, `bench poison`) share: the worlds they run in (a model and
its task families), the settings that turn the poisoning defenses off, and a node that prints nothing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the node and its model stack load in the bench's worker processes only
    from swarmnode.node import Node
    from swarmnode.swarm.transports.base import Transport

DEFENSES_OFF = ("task.answer_format=anywhere", "train.peer_min_logprob=0", "swarm.trust_rounds=0")
"""The poisoning defenses off: any text may surround the answer, no likelihood gate on peers' completions, no
seniority needed for a peer's groups to count."""


@dataclass(frozen=True)
class World:
    model: str
    """The model every node runs (a name `model.name` accepts)."""
    families: tuple[tuple[str, int], ...]
    """(built-in family, level)."""
    max_new_tokens: int
    """Tokens a node may generate per completion."""
    about: str
    """One line for the bench's report."""


WORLDS = {
    "add": World("swarmnode/tiny-add", (("add", 2),), 8, "tiny-add, task add"),
    "mix": World(
        "swarmnode/tiny-mix",
        (("add", 2), ("sub", 2), ("max", 2), ("count", 2), ("sort", 2), ("mul", 2)),
        8,
        "tiny-mix, 6 families: add sub max count (dense), sort mul (sparse)",
    ),
}


def world_overrides(world: World) -> list[str]:
    """The KEY=VALUE settings that put a node in `world`."""
    from swarmnode.tasks.builtin import FAMILIES

    names = ",".join(f'"{name}"' for name, _ in world.families)
    params = ",".join(f"{name}={{{FAMILIES[name].param}={level}}}" for name, level in world.families)
    return [
        f"model.name={world.model}",
        f"task.names=[{names}]",
        f"task.params={{{params}}}",
        f"generation.max_new_tokens={world.max_new_tokens}",
    ]


def quiet_node(settings: list[str], transport: Transport | None) -> Node:
    """A node under the KEY=VALUE `settings`, with a fresh identity, that prints nothing."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from swarmnode.config import load_config, parse_override
    from swarmnode.identity import Identity
    from swarmnode.node import Node

    config = load_config(None, [parse_override(s) for s in settings])
    identity = Identity(Ed25519PrivateKey.generate())
    return Node(config, say=lambda _: None, transport=transport, identity=identity)
