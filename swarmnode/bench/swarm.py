"""`swarmnode bench swarm`: what sharing costs a node as the swarm grows.

N nodes (in-memory transport, real hivemind DHT nodes, py-libp2p GossipSub hosts; all on 127.0.0.1) each
publish one signed batch per round — 8 `add` questions x 8 completions, about the size the tiny default
produces — and then collect peers' groups the way a node does (want 8 external groups, at most 4 from one
peer). Printed per N:

- bytes a node downloads per round: what it reads (announcements + batches; for GossipSub, everything its
  host received, since push delivers every peer's messages whether the node wants them or not);
- publish-to-visible latency: from the start of a publish until another node listing the author's
  announcement bucket sees the batch (p50 / p99);
- validated messages per second: batches through the full validation chain (signature, schema, freshness,
  duplicates, question rebuild, re-scoring) per second of validation time.

No model runs: this measures the sharing layer alone.
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import protocol
from swarmnode.bench.report import format_table, write_json
from swarmnode.config import NodeConfig
from swarmnode.groups import Group
from swarmnode.identity import Identity
from swarmnode.swarm import open_transport
from swarmnode.swarm.exchange import RolloutExchange
from swarmnode.swarm.front import open_exchange
from swarmnode.swarm.memory import MemoryHub, MemoryTransport
from swarmnode.swarm.transport import Transport, announcement_bucket
from swarmnode.tasks import TaskSet, make_task

SWARM = "bench"
QUESTIONS, COMPLETIONS, WANT, PER_PEER = 8, 8, 8, 4


def _config(transport: str = "memory", peers: Sequence[str] = (), run_dir: Path | None = None) -> NodeConfig:
    """A bench node's config: J = WANT external groups, at most PER_PEER from one peer; the run directory
    holds only a libp2p host's log."""
    return NodeConfig.model_validate(
        {
            "silo": False,
            "run_dir": str(run_dir or "unused"),
            "model": {"name": "bench"},
            "swarm": {
                "name": SWARM,
                "transport": transport,
                "peers": list(peers),
                "external_groups": WANT,
                "max_share_per_peer": PER_PEER / WANT,
                "round_timeout_s": 60.0,
            },
        }
    )


def _groups(tasks: TaskSet, node: int, round_: int) -> list[Group]:
    rng = random.Random(f"{node}:{round_}")
    out = []
    for q in tasks.draw(seed=node, start=round_ * QUESTIONS, count=QUESTIONS):
        texts = []
        for _ in range(COMPLETIONS):
            answer = q.answer if rng.random() < 0.3 else str(rng.randint(0, 999))
            texts.append(f"{rng.choice(['ok', 'so', 'hm'])} {'x' * rng.randint(20, 50)} <answer>{answer}</answer>")
        out.append(Group(q, tuple(texts), tuple(tasks.score(q, t) for t in texts)))
    return out


class _Node:
    """One benchmark node: its exchange, and the bytes it took in."""

    def __init__(self, config: NodeConfig, tasks: TaskSet, transport: Transport, push: bool) -> None:
        self.exchange = open_exchange(config, tasks, transport, Identity(Ed25519PrivateKey.generate()))
        self.transport = transport
        self.push = push
        self.polled = 0
        """Bytes the benchmark's own visibility polls read through this node (not the node's reading)."""

    def taken_in(self) -> int:
        """Bytes the node took in so far: what it read, or for GossipSub everything its host received (with
        push, every peer's messages arrive whether the node wants them or not; polls read its host's store)."""
        return self.transport.wire_bytes() - (0 if self.push else self.polled)


def _visible_after(reader: _Node, author: RolloutExchange, batch_id: bytes, limit: float = 30.0) -> float:
    """Seconds until `reader` lists `batch_id` in `author`'s announcement bucket (the bytes read not counted)."""
    start = time.perf_counter()
    bucket = announcement_bucket(author.identity.peer_id, reader.transport.buckets)
    while time.perf_counter() - start < limit:
        envelopes = reader.transport.announcements(author.window(), bucket)
        reader.polled += sum(len(e) for e in envelopes)
        for envelope in envelopes:
            verdict = protocol.verify_and_decode(envelope, author.limits)
            if isinstance(verdict, protocol.Accepted) and isinstance(verdict.payload, protocol.Announcement):
                if any(s.batch_id == batch_id for s in verdict.payload.batches):
                    return time.perf_counter() - start
        time.sleep(0.005)
    return float("inf")


def measure(nodes: Sequence[_Node], tasks: TaskSet, rounds: int, backend: str) -> dict[str, Any]:
    latencies: list[float] = []
    per_round: list[float] = []
    fetched: list[int] = []
    n = len(nodes)
    for round_ in range(1, rounds + 1):
        start_bytes = [node.taken_in() for node in nodes]
        for i, node in enumerate(nodes):
            node.exchange.start_round()
            start = time.perf_counter()
            batch_id = node.exchange.publish(round_, round_, _groups(tasks, i, round_))
            assert batch_id is not None
            published = time.perf_counter() - start
            latencies.append(published + _visible_after(nodes[(i + 1) % n], node.exchange, batch_id))
        for node in nodes:
            validated_before = node.exchange.validated
            node.exchange.start_round()
            node.exchange.collect(round_, want_groups=WANT, per_peer_groups=PER_PEER)
            if round_ > 1:  # the first round fills an empty swarm
                fetched.append(node.exchange.validated - validated_before)
        if round_ > 1:
            time.sleep(0.2 if backend == "libp2p" else 0.0)  # pushes still in flight belong to this round
            per_round += [node.taken_in() - b for node, b in zip(nodes, start_bytes, strict=True)]
    seconds = sum(node.exchange.validate_s for node in nodes)
    validated = sum(node.exchange.validated for node in nodes)
    rejected: Counter[str] = Counter()
    for node in nodes:
        rejected += node.exchange.rejections()
    ordered = sorted(latencies)
    return {
        "backend": backend,
        "nodes": n,
        "bytes_per_node_round": statistics.mean(per_round),
        "batches_per_node_round": statistics.mean(fetched),
        "latency_p50_ms": 1000 * ordered[len(ordered) // 2],
        "latency_p99_ms": 1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
        "validated_msgs_per_s": validated / seconds if seconds else 0.0,
        "rejections": dict(rejected),
    }


def run_memory(n: int, rounds: int) -> dict[str, Any]:
    tasks = TaskSet([make_task("add")])
    hub = MemoryHub()
    config = _config()
    nodes = [_Node(config, tasks, MemoryTransport(hub), push=False) for _ in range(n)]
    return measure(nodes, tasks, rounds, "memory")


def _run_network(backend: str, n: int, rounds: int) -> dict[str, Any]:
    """N real network nodes on 127.0.0.1, all joined through the first one."""
    tasks = TaskSet([make_task("add")])
    transports: list[Transport] = []
    with tempfile.TemporaryDirectory(prefix="swarmnode-bench-") as tmp:
        try:
            transports.append(open_transport(_config(backend, run_dir=Path(tmp) / "n0")))
            peers = transports[0].visible_maddrs()[:1]
            for i in range(1, n):
                transports.append(open_transport(_config(backend, peers, Path(tmp) / f"n{i}")))
                transports[-1].connect(peers[0])  # joined now, not in the background (TransportError if not)
            if backend == "libp2p":
                time.sleep(3.0)  # a few GossipSub heartbeats to build the mesh
            config = _config(backend)
            nodes = [_Node(config, tasks, t, push=backend == "libp2p") for t in transports]
            return measure(nodes, tasks, rounds, backend)
        finally:
            for t in transports:
                t.close()


def run_hivemind(n: int, rounds: int) -> dict[str, Any]:
    return _run_network("hivemind", n, rounds)


def run_libp2p(n: int, rounds: int) -> dict[str, Any]:
    return _run_network("libp2p", n, rounds)


def run(
    sizes: Sequence[int],
    dht_sizes: Sequence[int],
    rounds: int,
    json_path: Path,
    transports: Sequence[str] = ("hivemind",),
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    jobs: list[tuple[Callable[[int, int], dict[str, Any]], int]] = [(run_memory, n) for n in sizes]
    if "hivemind" in transports:
        jobs += [(run_hivemind, n) for n in dht_sizes]
    if "libp2p" in transports:
        jobs += [(run_libp2p, n) for n in dht_sizes]
    for job, n in jobs:
        rows.append(job(n, rounds))
        r = rows[-1]
        print(f"  {r['backend']:8s} N={n:3d}: {r['bytes_per_node_round'] / 1000:8.1f} KB/node/round", flush=True)
    print(
        f"swarm bench: each node publishes {QUESTIONS} questions x {COMPLETIONS} completions per round and collects "
        f"wanting {WANT} external groups (at most {PER_PEER} per peer); {rounds} rounds, the first not counted"
    )
    print(
        format_table(
            ("backend", "N", "KB/node/round", "batches/round", "visible p50 ms", "p99 ms", "validated msg/s"),
            [
                (
                    r["backend"],
                    r["nodes"],
                    r["bytes_per_node_round"] / 1000,
                    r["batches_per_node_round"],
                    r["latency_p50_ms"],
                    r["latency_p99_ms"],
                    r["validated_msgs_per_s"],
                )
                for r in rows
            ],
        )
    )
    memory = {r["nodes"]: r["bytes_per_node_round"] for r in rows if r["backend"] == "memory"}
    if 4 in memory and max(memory) >= 16:
        top = max(memory)
        ratio = memory[top] / memory[4]
        print(f"bytes per node per round, N={top} / N=4: {ratio:.2f}x (target: at most 1.5x)")
    write_json(
        json_path,
        "swarm",
        {"questions": QUESTIONS, "completions": COMPLETIONS, "want": WANT, "per_peer": PER_PEER, "rounds": rounds},
        rows,
    )
    print(f"wrote {json_path}")
    return rows
