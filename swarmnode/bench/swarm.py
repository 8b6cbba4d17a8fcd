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
  duplicates, quota, question rebuild, re-scoring) per second of validation time.

No model runs: this measures the sharing layer alone.
"""

from __future__ import annotations

import random
import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import protocol
from swarmnode.bench.report import format_table, write_json
from swarmnode.identity import Identity
from swarmnode.swarm.exchange import OwnGroup, RolloutExchange
from swarmnode.swarm.memory import MemoryHub, MemoryTransport
from swarmnode.swarm.peers import PeerBook
from swarmnode.swarm.transport import Transport, announcement_bucket
from swarmnode.swarm.validate import BatchValidator, Outcome
from swarmnode.tasks import TaskSet, make_task

SWARM = "bench"
QUESTIONS, COMPLETIONS, WANT, PER_PEER = 8, 8, 8, 4


def _groups(tasks: TaskSet, node: int, round_: int) -> list[OwnGroup]:
    rng = random.Random(f"{node}:{round_}")
    out = []
    for q in tasks.draw(seed=node, start=round_ * QUESTIONS, count=QUESTIONS):
        texts = []
        for _ in range(COMPLETIONS):
            answer = q.answer if rng.random() < 0.3 else str(rng.randint(0, 999))
            texts.append(f"{rng.choice(['ok', 'so', 'hm'])} {'x' * rng.randint(20, 50)} <answer>{answer}</answer>")
        out.append(OwnGroup(q, tuple(texts), tuple(tasks.score(q, t) for t in texts)))
    return out


class _TimedValidator(BatchValidator):
    seconds = 0.0
    checked = 0

    def check(self, raw: object, local_round: int) -> Outcome:
        start = time.perf_counter()
        try:
            return super().check(raw, local_round)
        finally:
            self.seconds += time.perf_counter() - start
            self.checked += 1


def _exchange(transport: Transport, tasks: TaskSet) -> RolloutExchange:
    limits = protocol.Limits()
    return RolloutExchange(
        transport,
        Identity(Ed25519PrivateKey.generate()),
        SWARM,
        _TimedValidator(SWARM, tasks, limits),
        PeerBook(),
        limits,
        model="bench",
        round_timeout_s=60.0,
    )


def _visible_after(reader: RolloutExchange, author: RolloutExchange, batch_id: bytes, limit: float = 30.0) -> float:
    """Seconds until `reader` lists `batch_id` in `author`'s announcement bucket (bytes not counted)."""
    transport: Any = reader.transport
    before = transport.bytes_downloaded
    start = time.perf_counter()
    bucket = announcement_bucket(author.identity.peer_id, transport.buckets)
    try:
        while time.perf_counter() - start < limit:
            for envelope in transport.announcements(author.window(), bucket):
                verdict = protocol.verify_and_decode(envelope, author.limits)
                if isinstance(verdict, protocol.Accepted) and isinstance(verdict.payload, protocol.Announcement):
                    if any(s.batch_id == batch_id for s in verdict.payload.batches):
                        return time.perf_counter() - start
            time.sleep(0.005)
        return float("inf")
    finally:
        transport.bytes_downloaded = before


def _downloaded(node: RolloutExchange) -> int:
    """Bytes the node took in so far: what it read, or for a push transport all its host received."""
    transport: Any = node.transport
    wire = getattr(transport, "wire_bytes", None)
    return int(wire() if wire is not None else transport.bytes_downloaded)


def measure(nodes: Sequence[RolloutExchange], rounds: int, backend: str) -> dict[str, Any]:
    tasks = nodes[0].validator.tasks
    latencies: list[float] = []
    per_round: list[float] = []
    fetched: list[int] = []
    n = len(nodes)
    for round_ in range(1, rounds + 1):
        start_bytes = [_downloaded(node) for node in nodes]
        for i, node in enumerate(nodes):
            node.start_round()
            start = time.perf_counter()
            batch_id = node.publish(round_, round_, _groups(tasks, i, round_))
            assert batch_id is not None
            published = time.perf_counter() - start
            reader = nodes[(i + 1) % n]
            latencies.append(published + _visible_after(reader, node, batch_id))
        for node in nodes:
            checked_before = node.validator.checked  # type: ignore[attr-defined]
            node.start_round()
            node.collect(round_, want_groups=WANT, per_peer_groups=PER_PEER)
            if round_ > 1:  # the first round fills an empty swarm
                fetched.append(node.validator.checked - checked_before)  # type: ignore[attr-defined]
        if round_ > 1:
            time.sleep(0.2 if backend == "libp2p" else 0.0)  # pushes still in flight belong to this round
            per_round += [_downloaded(node) - b for node, b in zip(nodes, start_bytes, strict=True)]
    seconds = sum(node.validator.seconds for node in nodes)  # type: ignore[attr-defined]
    checked = sum(node.validator.checked for node in nodes)  # type: ignore[attr-defined]
    rejected: Counter[str] = Counter()
    for node in nodes:
        rejected += node.rejections() + Counter(node.transport.rejections())
    ordered = sorted(latencies)
    return {
        "backend": backend,
        "nodes": n,
        "bytes_per_node_round": statistics.mean(per_round),
        "batches_per_node_round": statistics.mean(fetched),
        "latency_p50_ms": 1000 * ordered[len(ordered) // 2],
        "latency_p99_ms": 1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
        "validated_msgs_per_s": checked / seconds if seconds else 0.0,
        "rejections": dict(rejected),
    }


def run_memory(n: int, rounds: int) -> dict[str, Any]:
    tasks = TaskSet([make_task("add")])
    hub = MemoryHub()
    return measure([_exchange(MemoryTransport(hub), tasks) for _ in range(n)], rounds, "memory")


def _run_network(backend: str, n: int, rounds: int) -> dict[str, Any]:
    """N real network nodes on 127.0.0.1, all joined through the first one."""
    from swarmnode.swarm.hivemind_dht import HivemindTransport
    from swarmnode.swarm.libp2p import Libp2pTransport

    kind: Any = HivemindTransport if backend == "hivemind" else Libp2pTransport
    tasks = TaskSet([make_task("add")])
    transports: list[Any] = []
    try:
        transports.append(kind(SWARM))
        peers = transports[0].visible_maddrs()[:1]
        for _ in range(n - 1):
            transports.append(kind(SWARM, initial_peers=peers))
            if backend == "hivemind" and not transports[-1].wait_joined(60):
                raise RuntimeError("a benchmark node could not join on 127.0.0.1")
        if backend == "libp2p":
            time.sleep(3.0)  # a few GossipSub heartbeats to build the mesh
        return measure([_exchange(t, tasks) for t in transports], rounds, backend)
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
