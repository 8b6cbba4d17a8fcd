"""What the in-process swarm benches (`bench sapo`, `bench poison`) share: the worlds they run in (a model, or
checkpoints built once, and their task families), the settings that turn the poisoning defenses off, and a node
that prints nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
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
    recipes: tuple[str, ...] = ()
    """Checkpoints the nodes run in turn (node k runs recipes[k % len]): `build_tiny` recipes the bench builds
    once into its folder (`built_models`). Empty: every node runs `model`."""
    weak: tuple[tuple[str, ...], ...] = ()
    """Per recipe, the families its checkpoint starts weak on (it is strong on the others)."""
    strong_weight: int = 1
    """How much more often a node draws its strong families' questions than its weak ones' (`task.weights`):
    volunteers practise what they care about."""

    def weak_families(self, node: int) -> tuple[str, ...]:
        """The families node `node`'s checkpoint starts weak on (none in a world of one model)."""
        return self.weak[node % len(self.weak)] if self.weak else ()


WORLDS = {
    "add": World("swarmnode/tiny-add", (("add", 2),), 8, "tiny-add, task add"),
    "mix": World(
        "swarmnode/tiny-mix",
        (("add", 2), ("sub", 2), ("max", 2), ("count", 2), ("sort", 2), ("mul", 2)),
        8,
        "tiny-mix, 6 families: add sub max count (dense), sort mul (sparse)",
    ),
    "specialists": World(
        "",
        (("add", 2), ("sub", 2), ("max", 2), ("count", 2)),
        8,
        "volunteers bring different checkpoints: even nodes tiny-spec-a (strong on add sub, weak on max count), "
        "odd nodes tiny-spec-b (the mirror); every node draws all 4 families, its strong ones 4 times as often",
        recipes=("tiny-spec-a", "tiny-spec-b"),
        weak=(("max", "count"), ("add", "sub")),
        strong_weight=4,
    ),
}


def built_models(world: World, folder: Path) -> tuple[str, ...]:
    """The paths of `world`'s checkpoints, each built once into `folder` (`built`). () for a world of one model."""
    return tuple(str(built(name, folder)) for name in world.recipes)


def built(recipe: str, folder: Path) -> Path:
    """`build_tiny`'s `recipe`, built once into `folder` / its name in a child process (its pinned kernel path:
    the same weights on any AVX2 machine); says its starting held-out accuracy per family."""
    out = folder / recipe
    if not (out / "model.safetensors").exists():
        print(f"building {recipe} into {out} (once)", flush=True)
        argv = [sys.executable, "-m", "swarmnode.models.build_tiny", "--model", recipe, "--out", str(out), "--quiet"]
        subprocess.run(argv, check=True)  # noqa: S603
    meta = json.loads((out / "recipe.json").read_text())
    each = " ".join(f"{k} {v:.0%}" for k, v in meta.get("held_out_greedy_by_task", {}).items())
    print(f"{recipe}: held-out greedy at the start {each} (built in {meta['train_seconds']:.0f} s)", flush=True)
    return out


def world_overrides(world: World, node: int = 0, models: Sequence[str] = ()) -> list[str]:
    """The KEY=VALUE settings that put node number `node` in `world`; `models`: the paths of the world's
    built checkpoints (`built_models`), which a world of several checkpoints needs."""
    from swarmnode.tasks.builtin import FAMILIES

    if world.recipes and len(models) != len(world.recipes):
        raise ValueError(f"this world runs the checkpoints {', '.join(world.recipes)}: build them (built_models)")

    names = ",".join(f'"{name}"' for name, _ in world.families)
    params = ",".join(f"{name}={{{FAMILIES[name].param}={level}}}" for name, level in world.families)
    weak = world.weak_families(node)
    strong = [name for name, _ in world.families if name not in weak]
    weights = ",".join(f"{name}={world.strong_weight}" for name in strong)
    return [
        f"model.name={models[node % len(models)] if world.recipes else world.model}",
        f"task.names=[{names}]",
        f"task.params={{{params}}}",
        f"generation.max_new_tokens={world.max_new_tokens}",
        *([f"task.weights={{{weights}}}"] if weak and world.strong_weight > 1 else []),
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
