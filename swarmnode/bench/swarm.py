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
  duplicates, question rebuild, re-scoring) per second of validation time;
- J met: the share of (reader, round) pairs whose collect got the WANT external groups it wanted;
- the announcement level the readers ended at (2^level buckets a window) and the memory this
  process and its children (hivemind's p2p daemons, libp2p hosts) held at the end (RSS).

With `readers`, only that many nodes (drawn once) collect each round and are measured; every node
publishes. No model runs: this measures the sharing layer alone.
"""

from __future__ import annotations

import os
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
from swarmnode.swarm.front import open_exchange
from swarmnode.swarm.sharing.exchange import RolloutExchange
from swarmnode.swarm.transports.base import Transport, announcement_bucket
from swarmnode.swarm.transports.memory import MemoryHub, MemoryTransport
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


def _visible_after(
    reader: _Node, author: RolloutExchange, batch_id: bytes, windows: set[int], limit: float = 30.0
) -> float:
    """Seconds until `reader` lists `batch_id` in `author`'s announcement bucket at the reader's level, in one
    of `windows` (those of the publish's start and end: it may cross into the next) (the bytes read not
    counted)."""
    start = time.perf_counter()
    bucket = announcement_bucket(author.identity.peer_id, reader.transport.buckets)
    while time.perf_counter() - start < limit:
        envelopes = [e for w in sorted(windows) for e in reader.transport.announcements(w, bucket)]
        reader.polled += sum(len(e) for e in envelopes)
        for envelope in envelopes:
            verdict = protocol.verify_and_decode(envelope, author.limits)
            if isinstance(verdict, protocol.Accepted) and isinstance(verdict.payload, protocol.Announcement):
                if any(s.batch_id == batch_id for s in verdict.payload.batches):
                    return time.perf_counter() - start
        time.sleep(0.005)
    return float("inf")


def rss_mib() -> float:
    """Resident memory of this process and its descendants (hivemind's p2p daemons, libp2p hosts), in MiB, read
    from /proc (elsewhere: this process's peak)."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            status = dict(line.split(":", 1) for line in (entry / "status").read_text().splitlines() if ":" in line)
            parents[int(entry.name)] = int(status["PPid"])
            rss[int(entry.name)] = int(status.get("VmRSS", "0 kB").split()[0])
        except (OSError, ValueError, KeyError):  # ended meanwhile, or a kernel thread
            continue
    if os.getpid() not in rss:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    family, grew = {os.getpid()}, True
    while grew:
        more = {p for p, parent in parents.items() if parent in family} - family
        family |= more
        grew = bool(more)
    return sum(rss.get(p, 0) for p in family) / 1024


def measure(nodes: Sequence[_Node], tasks: TaskSet, rounds: int, backend: str, readers: int = 0) -> dict[str, Any]:
    latencies: list[float] = []
    per_round: list[float] = []
    fetched: list[int] = []
    met: list[bool] = []
    n = len(nodes)
    sample = nodes if not readers or readers >= n else random.Random(n).sample(list(nodes), readers)
    started = time.perf_counter()
    for round_ in range(1, rounds + 1):
        start_bytes = [node.taken_in() for node in sample]
        for i, node in enumerate(nodes):
            node.exchange.start_round()
            start = time.perf_counter()
            window = node.exchange.window()
            batch_id = node.exchange.publish(round_, round_, _groups(tasks, i, round_))
            assert batch_id is not None
            published = time.perf_counter() - start
            windows = {window, node.exchange.window()}
            latencies.append(published + _visible_after(nodes[(i + 1) % n], node.exchange, batch_id, windows))
        for node in sample:
            validated_before = node.exchange.validated
            node.exchange.start_round()
            got = node.exchange.collect(round_, want_groups=WANT, per_peer_groups=PER_PEER)
            if round_ > 1:  # the first round fills an empty swarm
                fetched.append(node.exchange.validated - validated_before)
                met.append(sum(1 for g in got if g.informative) >= WANT)
        if round_ > 1:
            time.sleep(0.2 if backend == "libp2p" else 0.0)  # pushes still in flight belong to this round
            per_round += [node.taken_in() - b for node, b in zip(sample, start_bytes, strict=True)]
    seconds = sum(node.exchange.tally.validate_s for node in sample)
    validated = sum(node.exchange.validated for node in sample)
    rejected: Counter[str] = Counter()
    for node in sample:
        rejected += node.exchange.rejections()
    ordered = sorted(latencies)
    levels = sorted(node.transport.level for node in sample)
    return {
        "backend": backend,
        "nodes": n,
        "readers": len(sample),
        "rounds": rounds,
        "bytes_per_node_round": statistics.mean(per_round),
        "batches_per_node_round": statistics.mean(fetched),
        "j_met": sum(met) / len(met),
        "level_min": levels[0],
        "level_median": levels[len(levels) // 2],
        "level_max": levels[-1],
        "rss_mib": rss_mib(),
        "seconds": time.perf_counter() - started,
        "latency_p50_ms": 1000 * ordered[len(ordered) // 2],
        "latency_p99_ms": 1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
        "validated_msgs_per_s": validated / seconds if seconds else 0.0,
        "rejections": dict(rejected),
    }


def run_memory(n: int, rounds: int, readers: int = 0) -> dict[str, Any]:
    tasks = TaskSet([make_task("add")])
    hub = MemoryHub()
    config = _config()
    nodes = [_Node(config, tasks, MemoryTransport(hub), push=False) for _ in range(n)]
    return measure(nodes, tasks, rounds, "memory", readers)


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
    readers: int = 0,
) -> list[dict[str, Any]]:
    """The table for each size; with `readers`, memory swarms larger than that measure only that many readers."""
    rows: list[dict[str, Any]] = []
    jobs: list[tuple[Callable[[int, int], dict[str, Any]], int]] = [
        (lambda n, r: run_memory(n, r, readers), n) for n in sizes
    ]
    if "hivemind" in transports:
        jobs += [(run_hivemind, n) for n in dht_sizes]
    if "libp2p" in transports:
        jobs += [(run_libp2p, n) for n in dht_sizes]
    for job, n in jobs:
        rows.append(job(n, rounds))
        r = rows[-1]
        print(
            f"  {r['backend']:8s} N={n:4d}: {r['bytes_per_node_round'] / 1000:8.1f} KB/node/round, J met "
            f"{100 * r['j_met']:.0f}%, level {r['level_median']}, RSS {r['rss_mib']:.0f} MiB, {r['seconds']:.0f} s",
            flush=True,
        )
        write_json(json_path, "swarm", _params(rounds, readers), rows)  # a long run keeps what it measured
    print(
        f"swarm bench: each node publishes {QUESTIONS} questions x {COMPLETIONS} completions per round and collects "
        f"wanting {WANT} external groups (at most {PER_PEER} per peer); {rounds} rounds, the first not counted"
        + (
            f"; in swarms over {readers} nodes only {readers} readers (drawn once) collect and are measured"
            if readers
            else ""
        )
    )
    print(
        format_table(
            (
                "backend",
                "N",
                "readers",
                "KB/node/round",
                "batches/round",
                "J met %",
                "level",
                "visible p50 ms",
                "p99 ms",
                "validated msg/s",
                "RSS MiB",
            ),
            [
                (
                    r["backend"],
                    r["nodes"],
                    r["readers"],
                    r["bytes_per_node_round"] / 1000,
                    r["batches_per_node_round"],
                    100 * r["j_met"],
                    f"{r['level_min']}-{r['level_max']}" if r["level_min"] != r["level_max"] else r["level_min"],
                    r["latency_p50_ms"],
                    r["latency_p99_ms"],
                    r["validated_msgs_per_s"],
                    r["rss_mib"],
                )
                for r in rows
            ],
        )
    )
    memory = {r["nodes"]: r["bytes_per_node_round"] for r in rows if r["backend"] == "memory"}
    base = 8 if 8 in memory else min(memory, default=0)
    if base and max(memory) >= 2 * base:
        top = max(memory)
        ratio = memory[top] / memory[base]
        print(f"bytes per node per round, N={top} / N={base}: {ratio:.2f}x (target: at most 1.5x)")
    write_json(json_path, "swarm", _params(rounds, readers), rows)
    print(f"wrote {json_path}")
    return rows


def _params(rounds: int, readers: int) -> dict[str, Any]:
    return {
        "questions": QUESTIONS,
        "completions": COMPLETIONS,
        "want": WANT,
        "per_peer": PER_PEER,
        "rounds": rounds,
        "readers": readers,
    }
