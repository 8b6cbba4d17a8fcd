"""Record the three scenes the dashboard's snapshots show (status_scenes.json): the /status snapshot of real
nodes (the embedded tiny model, the real learner, validation and peer book) on the in-memory transport, in
this process:

- `silo`: one node training alone, 30 rounds;
- `honest`: node 0 of three nodes sharing, 30 rounds;
- `attack`: node 0 of three honest nodes, 30 rounds, while from round 11 on a faker offers batches whose
  questions are not what their task references rebuild (`question_mismatch`: banned), a liar offers batches
  that are not there, and from round 13 on real ones every other round (`offer_missing`: strikes, healed by
  the real ones), and a poisoner offers valid groups whose right answers carry a payload (`off_format`:
  dropped, never held against it).

    .venv/bin/python -m tests.data.record_scenes [SCENE ...]   (default: all three; others kept as they are)
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from swarmnode.bench.attacks import Crowd
from swarmnode.config import load_config, parse_override
from swarmnode.identity import Identity
from swarmnode.node import Node
from swarmnode.swarm.transports.memory import MemoryHub, MemoryTransport
from tests import hostile

OUT = Path(__file__).with_name("status_scenes.json")
ROUNDS = 30
SWARM = "demo"


def node(tmp: Path, i: int, hub: MemoryHub | None) -> Node:
    sets = [f"run_dir={tmp / f'n{i}'}", f"seed={i}", "eval.every=10", "eval.questions=40", "generation.backend=hf"]
    sets += [f"silo={'true' if hub is None else 'false'}", f"swarm.name={SWARM}", "status.enabled=false"]
    config = load_config(None, [parse_override(s) for s in sets])
    transport = None if hub is None else MemoryTransport(hub)
    return Node(config, say=lambda _: None, transport=transport, identity=Identity(Ed25519PrivateKey.generate()))


def run(nodes: list[Node], attack: bool, hub: MemoryHub | None) -> dict[str, Any]:
    faker = liar = poisoner = None
    if attack and hub is not None:
        tasks = nodes[0].runtime.tasks
        faker = hostile.Attacker(MemoryTransport(hub), SWARM, tasks)
        liar = hostile.OfferingAttacker(MemoryTransport(hub), SWARM, tasks)
        poisoner = Crowd(MemoryTransport(hub), SWARM, tasks, 1, poison=True, where="after", groups=4)
    for node_ in nodes:
        node_.evaluate()
    for round_ in range(1, ROUNDS + 1):
        if faker is not None and liar is not None and poisoner is not None and round_ > 10:
            faker.offer([hostile.mismatched_question(faker)])
            if round_ < 13 or round_ % 2 == 0:
                hostile.phantom_offers(liar, count=1, informative=8)
            else:
                liar.offer_true([liar.batch([hostile.good_group(q) for q in liar.questions(2)])])
            poisoner.publish(round_)
        for node_ in nodes:
            node_.step()
            if round_ % 10 == 0:
                node_.evaluate()
    snap = dict(nodes[0].status.snapshot())
    snap["run_dir"] = "runs/n0"
    return snap


def main(chosen: list[str]) -> None:
    scenes = json.loads(OUT.read_text()) if OUT.exists() else {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for scene in chosen or ["silo", "honest", "attack"]:
            hub = None if scene == "silo" else MemoryHub()
            nodes = [node(tmp / scene, i, hub) for i in range(1 if hub is None else 3)]
            try:
                scenes[scene] = run(nodes, scene == "attack", hub)
            finally:
                for node_ in nodes:
                    node_.close()
            print(f"{scene}: peers {[(p['peer_id'][:8], p['rejected']) for p in scenes[scene]['peers']]}")
    OUT.write_text(json.dumps(scenes, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main(sys.argv[1:])
