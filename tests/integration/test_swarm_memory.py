"""Three real nodes (tiny model, real learner) in one process sharing rollouts over the in-memory
transport: each trains on groups from each of the others, re-scored by itself."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from swarmnode.config import NodeConfig, load_config, parse_override
from swarmnode.identity import Identity
from swarmnode.node import Node
from swarmnode.run_dir import read_metrics
from swarmnode.swarm.transports.base import TransportError
from swarmnode.swarm.transports.memory import MemoryHub, MemoryTransport
from swarmnode.swarm.trust.reasons import DEFENSES


def test_three_nodes_train_on_each_others_groups(tmp_path: Path) -> None:
    hub = MemoryHub()
    nodes = []
    for i in range(3):
        overrides = [
            parse_override(s)
            for s in (
                f"run_dir={tmp_path / f'n{i}'}",
                f"seed={i}",
                "silo=false",
                "eval.every=0",
                "generation.questions_per_round=8",
                "swarm.external_groups=8",
                "generation.backend=hf",
            )
        ]
        identity = Identity(Ed25519PrivateKey.generate())
        nodes.append(
            Node(load_config(None, overrides), say=lambda _: None, transport=MemoryTransport(hub), identity=identity)
        )
    ids = [n.swarm.peer_id for n in nodes if n.swarm is not None]
    assert len(ids) == 3
    for _ in range(4):
        for node in nodes:
            assert node.step() is not None
    for i, node in enumerate(nodes):
        node.close()
        rows = read_metrics(node.config.run_dir)
        assert [r["round"] for r in rows] == [1, 2, 3, 4]
        used: set[str] = set()
        for row in rows:
            used |= set(row.get("external_by_peer", {}))
        assert used == set(ids) - {ids[i]}
        # only the defenses' per-completion counts: the embedded model at temperature 1 sometimes writes a
        # completion its peers find improbable, or text after its answer, itself
        assert set(rows[-1]["rejected"]) <= DEFENSES


class FailingTransport(MemoryTransport):
    """A transport whose network is down (every operation times out), with one notice to pass on."""

    def __init__(self, hub: MemoryHub) -> None:
        super().__init__(hub)
        self.notices = ["the host process ended; restarted"]

    def store_batch(self, batch_id: bytes, envelope: bytes, timeout: float | None = None) -> None:
        raise TransportError("store timed out")

    def announce(self, window: int, envelope: bytes, timeout: float | None = None) -> None:
        raise TransportError("announce timed out")

    def announcements(self, window: int, bucket: int | None = None, timeout: float | None = None) -> list[bytes]:
        raise TransportError("read timed out")

    def take_notices(self) -> list[str]:
        notices, self.notices = self.notices, []
        return notices


def test_a_node_whose_network_fails_keeps_training_and_says_so_without_flooding(tmp_path: Path) -> None:
    overrides = [
        parse_override(s)
        for s in (
            f"run_dir={tmp_path}",
            "silo=false",
            "eval.every=0",
            "generation.backend=hf",
            "status.enabled=false",
            "swarm.background_sharing=false",  # each round's I/O in line: its errors are counted in that round
        )
    ]
    said: list[str] = []
    node = Node(load_config(None, overrides), say=said.append, transport=FailingTransport(MemoryHub()))
    for _ in range(3):
        assert node.step() is not None  # a silo round
    node.close()
    trouble = [line for line in said if "swarm I/O failed" in line or "restarted" in line]
    # the first failure of a kind is said at once; the same failure again within a minute is not repeated
    assert trouble == [
        "round     1 | warning: the host process ended; restarted",
        "round     1 | warning: swarm I/O failed (2 so far): read timed out",
    ], trouble
    rows = read_metrics(tmp_path)
    assert [r["io_errors"] for r in rows] == [2, 4, 6]


def test_a_resumed_swarm_node_samples_afresh_so_peers_take_its_replayed_rounds(tmp_path: Path) -> None:
    """Killed after sharing round 3 and resumed from its round-2 checkpoint, a node runs round 3 again: with
    the same completions its peers would refuse them all as duplicates, and the restarted node would go
    unheard for rounds. A resumed swarm node samples afresh, so the peer takes its replayed round."""
    hub = MemoryHub()

    def config(name: str, seed: int) -> NodeConfig:
        settings = (
            f"run_dir={tmp_path / name}",
            f"seed={seed}",
            "silo=false",
            "eval.every=0",
            "status.enabled=false",
            "generation.backend=hf",
            "generation.questions_per_round=8",
            "swarm.external_groups=8",
            "swarm.background_sharing=false",  # in line: what a round takes is what the other published before it
        )
        return load_config(None, [parse_override(s) for s in settings])

    def texts(node: Node) -> list[str]:
        return [c for g in node.own_groups for c in g.completions]

    def accepted_from(peer: str) -> int:
        assert a.swarm is not None
        return sum(row["accepted_groups"] for row in a.swarm.peers() if row["peer_id"] == peer)

    key = Identity(Ed25519PrivateKey.generate())
    a = Node(
        config("a", 0),
        say=lambda _: None,
        transport=MemoryTransport(hub),
        identity=Identity(Ed25519PrivateKey.generate()),
    )
    b = Node(config("b", 1), say=lambda _: None, transport=MemoryTransport(hub), identity=key)
    for _ in range(3):
        assert b.step() is not None and a.step() is not None
        if b.round == 2:
            b.save_checkpoint()
    shared, before = texts(b), accepted_from(key.peer_id)
    assert before > 0
    b.close()  # gone after sharing round 3, before a checkpoint of it
    b = Node(config("b", 1), say=lambda _: None, transport=MemoryTransport(hub), identity=key)
    assert b.round == 2 and b.replay_salt
    assert b.step() is not None and a.step() is not None
    assert texts(b) != shared
    assert accepted_from(key.peer_id) > before  # its replayed round validated (not only the informative groups
    a.close()  # of it are trained on, so `external_by_peer` may not show it)
    b.close()
    # the same completions again would be refused group by group (all 8); a short answer sampled afresh can
    # still match one seen before by chance
    duplicates = read_metrics(tmp_path / "a")[-1]["rejected"].get("duplicate_completion", 0)
    assert duplicates < len(b.own_groups) // 2, duplicates
