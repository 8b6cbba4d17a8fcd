"""The victim of the attack tests: one real `swarmnode join` process on 127.0.0.1 (tiny model, training rounds),
measured from its metrics.jsonl and its status API, with nodes of its swarm opened in the test process for
the test's own peers; and `honest_exchange`, the one place these tests build a well-behaved peer's exchange."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import protocol
from swarmnode.identity import Identity
from swarmnode.swarm.sharing.exchange import RolloutExchange
from swarmnode.swarm.sharing.validate import BatchValidator
from swarmnode.swarm.transports.base import Transport
from swarmnode.swarm.transports.hivemind_dht import HivemindTransport
from swarmnode.swarm.transports.libp2p import Libp2pTransport
from swarmnode.swarm.trust.book import PeerBook
from swarmnode.tasks import TaskSet, make_task
from tests import hostile
from tests.helpers import join_command, logged_address, logged_peer_id, metrics_rows, wait_for


def honest_exchange(
    transport: Transport, swarm: str, tasks: TaskSet, identity: Identity | None = None
) -> RolloutExchange:
    """The exchange of a well-behaved peer of the test (a new identity unless given): built as a node builds
    its own, with the default limits, a peer book of its own and the model name "honest"."""
    limits = protocol.Limits()
    return RolloutExchange(
        transport,
        identity or Identity(Ed25519PrivateKey.generate()),
        swarm,
        BatchValidator(swarm, tasks, limits),
        PeerBook(),
        limits,
        model="honest",
    )


@dataclass
class Victim:
    """A running node under attack, and the test's own nodes in its swarm (closed with it)."""

    swarm: str
    kind: str
    """The swarm's transport: hivemind or libp2p."""
    run_dir: Path
    proc: subprocess.Popen[str]
    maddr: str
    """The address the node logs for others to join it with."""
    peer_id: str
    tasks: TaskSet
    """The node's tasks, as its peers draw, rebuild and score them."""
    peers: list[Transport] = field(default_factory=list)
    """The nodes this test process opened in the swarm, the first one the attackers'."""
    attackers: list[str] = field(default_factory=list)
    """Peer ids whose data must never reach the victim's learner."""

    @property
    def transport(self) -> Transport:
        """The attackers' node (the test process's first)."""
        return self.peers[0]

    def open_peer(self, via: str | None = None, **options: Any) -> Transport:
        """A node of the swarm's transport in this process, joined through `via` (the victim unless given),
        127.0.0.1 only (no NAT traversal); `options` go to the transport."""
        maddr = via or self.maddr
        if self.kind == "libp2p":
            self.peers.append(Libp2pTransport(self.swarm, initial_peers=[maddr], **options))
            return self.peers[-1]
        transport = HivemindTransport(self.swarm, initial_peers=[maddr], **options)
        self.peers.append(transport)
        assert transport.wait_joined(60), transport.last_join_error
        return transport

    def attacker(self) -> hostile.OfferingAttacker:
        """A new attacker identity on the attackers' node; nothing it offers may reach the learner."""
        a = hostile.OfferingAttacker(self.transport, self.swarm, self.tasks)
        self.attackers.append(a.peer_id)
        return a

    def rows(self, since: float = 0.0, until: float = float("inf")) -> list[dict[str, Any]]:
        """The node's round rows (with their swarm counters) written from `since` to `until`."""
        return [r for r in metrics_rows(self.run_dir) if "rejected" in r and since <= r["time"] <= until]

    def last(self) -> dict[str, Any]:
        rows = self.rows()
        return rows[-1] if rows else {"round": 0, "rejected": {}, "misreported_rewards": 0}

    def round(self) -> int:
        return int(self.last()["round"])

    def count(self, reason: str) -> int:
        """Refusals for `reason` so far."""
        return int(self.last()["rejected"].get(reason, 0))

    def wait_count(self, reason: str, above: int, limit: float = 120.0) -> int:
        assert self.proc.poll() is None, "the node stopped"
        return wait_for(
            lambda: self.count(reason) if self.count(reason) > above else None,
            f"{reason} rejections above {above}; last row {self.last()}",
            limit,
        )

    def wait_round(self, target: int, what: str, limit: float = 180.0) -> None:
        wait_for(lambda: self.round() >= target, what, limit)

    def wait_rounds(self, rounds: int) -> None:
        target = self.round() + rounds
        wait_for(lambda: self.round() >= target, f"round {target}")

    def external_per_round(self, peer: str, since: float, until: float) -> float:
        """Groups of `peer` the node trained on per round, from `since` to `until` (at least 5 rounds)."""
        rows = self.rows(since, until)
        assert len(rows) >= 5, f"only {len(rows)} rounds between {since:.0f} and {until:.0f}"
        return float(sum(r["external_by_peer"].get(peer, 0) for r in rows)) / len(rows)

    def status(self) -> dict[str, Any]:
        """The node's status API snapshot (its dashboard's data source)."""
        url = (self.run_dir / "status.url").read_text().strip()
        with urllib.request.urlopen(url + "/status", timeout=10) as reply:
            snapshot: dict[str, Any] = json.loads(reply.read())
        return snapshot

    def peer_rows(self) -> dict[str, dict[str, Any]]:
        """The status API's row of each peer, by peer id."""
        return {p["peer_id"]: p for p in self.status()["peers"]}

    def run_for(self, seconds: float, attack: Callable[[], None] | None = None, every: float = 20.0) -> float:
        """Let the swarm run `seconds`, repeating `attack` every `every` seconds; returns when it started."""
        started = time.time()
        next_attack = 0.0
        while time.time() - started < seconds:
            assert self.proc.poll() is None, "the node stopped"
            if attack is not None and time.time() >= next_attack:
                next_attack = time.time() + every
                attack()
            time.sleep(0.5)
        return started


@contextmanager
def running_victim(
    tmp: Path,
    swarm: str,
    *join_args: str,
    minutes: int,
    kind: str = "hivemind",
    sets: tuple[str, ...] = (),
    via: str | None = None,
    peer_options: dict[str, Any] | None = None,
) -> Iterator[Victim]:
    """Start `swarmnode join` (its run directory, key and log `node.log` in `tmp`; `join_args` and `sets` added
    to the tests' usual command) and the attackers' node in its swarm, joined through `via` (the victim unless
    given) with `peer_options`; at the end close every node of the test process and kill the victim."""
    log = (tmp / "node.log").open("w")
    command = join_command(
        swarm,
        tmp / "run",
        tmp / "key.pem",
        *join_args,
        "--minutes",
        str(minutes),
        sets=(f"swarm.transport={kind}", *sets),
    )
    env = {k: v for k, v in os.environ.items() if k != "GOMEMLIMIT"}  # the node sets its daemon's itself
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, text=True, env=env)
    victim = None
    try:
        maddr = logged_address(tmp / "node.log")
        peer_id = logged_peer_id(tmp / "node.log")
        victim = Victim(swarm, kind, tmp / "run", proc, maddr, peer_id, TaskSet([make_task("add")]))
        victim.open_peer(via, **(peer_options or {}))
        yield victim
    finally:
        for transport in reversed(victim.peers if victim is not None else []):
            transport.close()
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        log.close()
