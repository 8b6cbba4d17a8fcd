"""Valid but poisoned (issue 16) against a running node: one real `swarmnode join` process on 127.0.0.1
(hivemind DHT, the embedded model, training rounds, its default defenses; seniority after 5 rounds to keep
the test short) and, in this test process, an honest peer that publishes from the node's first rounds and
twenty sybil identities that arrive later, each publishing valid batches whose right answers carry a payload
(after the answer or before it).

The node must keep running; count the payloads after the answer (`off_format`) and those the likelihood
gate dropped (`improbable`) in its metrics; keep taking the honest peer's full share of its external groups
(`max_share_per_peer` of J: the sybils get what is left);
show its drift signal, with none of the refused text in its own samples; and say all of it on its dashboard's
data source, the status API."""

from __future__ import annotations

import json
import random
import re
import subprocess
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import protocol
from swarmnode.bench.attacks import Crowd, clean_group
from swarmnode.groups import Group
from swarmnode.identity import Identity
from swarmnode.swarm.sharing.exchange import RolloutExchange
from swarmnode.swarm.transports.hivemind_dht import HivemindTransport
from swarmnode.swarm.trust.book import PeerBook
from swarmnode.swarm.sharing.validate import BatchValidator
from swarmnode.tasks import TaskSet, make_task
from tests.helpers import join_command, metrics_rows, wait_for

SWARM = "poisoned"
TRUST_ROUNDS = 5
pytestmark = pytest.mark.timeout(600)


@dataclass
class Scene:
    run_dir: Path
    proc: subprocess.Popen[str]
    transport: HivemindTransport
    tasks: TaskSet

    def rows(self) -> list[dict[str, Any]]:
        return [r for r in metrics_rows(self.run_dir) if "rejected" in r]

    def round(self) -> int:
        rows = self.rows()
        return rows[-1]["round"] if rows else 0


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    tmp = tmp_path_factory.mktemp("poison")
    log = (tmp / "node.log").open("w")
    proc = subprocess.Popen(
        join_command(
            SWARM,
            tmp / "run",
            tmp / "key.pem",
            "--minutes",
            "12",
            sets=("generation.questions_per_round=4", f"swarm.trust_rounds={TRUST_ROUNDS}", "status.enabled=true"),
        ),
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    transport = None
    try:
        text = wait_for(
            lambda: re.search(r"--peers ADDR\): (\S+)", (tmp / "node.log").read_text()), "the node's address", 180
        )
        transport = HivemindTransport(SWARM, initial_peers=[text.group(1)])
        assert transport.wait_joined(60)
        scene = Scene(tmp / "run", proc, transport, TaskSet([make_task("add")]))
        wait_for(lambda: scene.round() >= 1, "the node's first round", 180)
        yield scene
    finally:
        if transport is not None:
            transport.close()
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        log.close()


def test_poisoning_sybils_arriving_later_are_refused_counted_and_kept_to_a_small_share(scene: Scene) -> None:
    limits = protocol.Limits()
    honest = RolloutExchange(
        scene.transport,
        Identity(Ed25519PrivateKey.generate()),
        SWARM,
        BatchValidator(SWARM, scene.tasks, limits),
        PeerBook(),
        limits,
        model="honest",
    )
    rng = random.Random(0)
    index = 7_000_000

    def publish_honest(round_: int) -> None:
        # two batches a turn, twice what the node may take of one peer a round: the honest peer always has a
        # batch on offer, even when the node reads before this turn's batches are stored (it is not in step)
        nonlocal index
        honest.start_round()
        for _ in range(2):
            questions = scene.tasks.draw(seed=31, start=index, count=8)
            index += 8
            groups = [clean_group(q, scene.tasks, rng) for q in questions]
            batch = [Group(q, g.completions, g.rewards) for q, g in zip(questions, groups, strict=True)]
            honest.publish(round_, 0, batch)

    sybils = Crowd(scene.transport, SWARM, scene.tasks, 20, poison=True, where="both")
    start = scene.round()
    for turn in range(1, 60):  # the honest peer alone until it has a record, then the sybils too
        seen = scene.round()
        publish_honest(turn)
        if seen >= start + TRUST_ROUNDS + 3:
            sybils.publish(turn)
        if seen >= start + TRUST_ROUNDS + 15:
            break
        wait_for(lambda seen=seen: scene.round() > seen or None, f"the node's round after {seen}", 60)
    assert scene.proc.poll() is None, "the node stopped"
    rows = scene.rows()
    last = rows[-1]
    attacked = [r for r in rows if r["round"] > start + TRUST_ROUNDS + 4]
    assert attacked
    from_sybils = sum(n for r in attacked for p, n in r["external_by_peer"].items() if p in sybils.peer_ids)
    from_honest = sum(n for r in attacked for p, n in r["external_by_peer"].items() if p == honest.identity.peer_id)
    # one honest peer may fill at most max_share_per_peer of J (4 of 8); the sybils get only what is left
    mine = honest.identity.peer_id
    per_round = [(r["round"], r["external_by_peer"].get(mine, 0), r["external_available"]) for r in attacked]
    assert from_honest >= 3 * len(attacked), (from_honest, from_sybils, per_round)
    assert last["rejected"].get("off_format", 0) > 0, last["rejected"]  # payloads after the answer: score 0
    improbable = last["rejected"].get("improbable", 0)
    assert improbable > 0 or from_sybils == 0, last["rejected"]  # payloads before it, when taken: gated
    drift = last["drift"]
    assert drift["refused_fragments"] > 0 and drift["peer_text_rate"] == 0.0, drift
    url = (scene.run_dir / "status.url").read_text().strip()
    with urllib.request.urlopen(f"{url}/status", timeout=10) as answer:
        status = json.loads(answer.read())
    assert "drift" in status["recent_rounds"][-1] and status["rejected"].get("off_format", 0) > 0
