"""Hostile peers against a running node: one real `swarmnode join` process on 127.0.0.1 (hivemind DHT,
tiny model, training rounds) and, in this test process, a DHT peer that offers it every attack of the
threat list. Each attack must be rejected or limited with its reason counted in the node's metrics, the
node must keep running, and nothing from the attackers may reach its learner (`external_by_peer`)."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import protocol
from swarmnode.groups import Group
from swarmnode.identity import Identity
from swarmnode.swarm.sharing.exchange import RolloutExchange
from swarmnode.swarm.transports.hivemind_dht import HivemindTransport, TransportError
from swarmnode.swarm.transports.hivemind_records import announcement_key, batch_key
from swarmnode.swarm.trust.book import PeerBook
from swarmnode.swarm.transports.base import announcement_bucket
from swarmnode.swarm.sharing.validate import BatchValidator
from swarmnode.tasks import TaskSet, make_task
from tests import hostile
from tests.helpers import join_command, metrics_rows, wait_for

SWARM = "hostile"
pytestmark = pytest.mark.timeout(600)


@dataclass
class Arena:
    run_dir: Path
    proc: subprocess.Popen[str]
    transport: HivemindTransport
    tasks: TaskSet
    attackers: list[str] = field(default_factory=list)
    """Peer ids whose data must never reach the victim's learner."""

    def attacker(self) -> hostile.Attacker:
        a = hostile.Attacker(self.transport, SWARM, self.tasks)
        self.attackers.append(a.peer_id)
        return a

    def last(self) -> dict[str, Any]:
        rows = [r for r in metrics_rows(self.run_dir) if "rejected" in r]
        return rows[-1] if rows else {"round": 0, "rejected": {}, "misreported_rewards": 0}

    def count(self, reason: str) -> int:
        return int(self.last()["rejected"].get(reason, 0))

    def wait_count(self, reason: str, above: int, limit: float = 120.0) -> int:
        assert self.proc.poll() is None, "the node stopped"
        return wait_for(
            lambda: self.count(reason) if self.count(reason) > above else None,
            f"{reason} rejections above {above}; last row {self.last()}",
            limit,
        )

    def wait_rounds(self, rounds: int) -> None:
        target = self.last()["round"] + rounds
        wait_for(lambda: self.last()["round"] >= target, f"round {target}")


@pytest.fixture(scope="module")
def arena(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Arena]:
    tmp = tmp_path_factory.mktemp("hostile")
    log = (tmp / "node.log").open("w")
    proc = subprocess.Popen(
        join_command(
            SWARM,
            tmp / "run",
            tmp / "key.pem",
            "--minutes",
            "15",
            sets=("generation.questions_per_round=4", "generation.max_new_tokens=24"),
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
        # the attacker's own DHT node accepts oversize values (a victim's must refuse them)
        big = protocol.Limits(max_envelope_bytes=8 * 1024 * 1024)
        transport = HivemindTransport(SWARM, initial_peers=[text.group(1)], limits=big)
        assert transport.wait_joined(60)
        arena = Arena(tmp / "run", proc, transport, TaskSet([make_task("add")]))
        wait_for(lambda: arena.last()["round"] >= 2, "the node's first rounds", 180)
        yield arena
    finally:
        if transport is not None:
            transport.close()
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        log.close()


def _forged(attacker: hostile.Attacker) -> bytes:
    return hostile.forged_signature(attacker, hostile.new_identity().key.public_key().public_bytes_raw())


def _held_out(attacker: hostile.Attacker) -> bytes:
    evaluation = attacker.tasks.draw(0, 0, 2, split="eval")  # the node's own evaluation questions
    return attacker.batch([hostile.good_group(q) for q in evaluation])


@pytest.mark.parametrize(
    ("attack", "reason"),
    [
        # bytes that are not a validly signed batch are refused by every DHT node, the victim's included
        (_forged, "dht_bad_batch"),
        (hostile.tampered_payload, "dht_bad_batch"),
        (hostile.malformed, "dht_bad_batch"),
        (hostile.mismatched_question, "question_mismatch"),
        (_held_out, "held_out_question"),
    ],
    ids=["forged-signature", "tampered-payload", "malformed-msgpack", "question-mismatch", "held-out-question"],
)
def test_a_bad_batch_is_rejected_with_its_reason(
    arena: Arena, attack: Callable[[hostile.Attacker], bytes], reason: str
) -> None:
    before = arena.count(reason)
    attacker = arena.attacker()
    try:
        attacker.offer([attack(attacker)])
    except TransportError:
        assert reason.startswith("dht_")  # no DHT node stored it; the victim's counted it
    arena.wait_count(reason, before)


def test_stale_and_future_batches(arena: Arena) -> None:
    stale, future = arena.count("stale"), arena.count("future")
    attacker = arena.attacker()
    attacker.offer([hostile.stale(attacker, age_s=3600), hostile.future(attacker, ahead_s=3600)])
    arena.wait_count("stale", stale)
    arena.wait_count("future", future)


def test_oversize_claimed_and_real(arena: Arena) -> None:
    claimed, real = arena.count("oversize"), arena.count("dht_oversize")
    attacker = arena.attacker()
    small = attacker.batch([hostile.good_group(q) for q in attacker.questions(1)])
    attacker.offer([small], claimed_sizes=[protocol.Limits().max_envelope_bytes + 1])
    arena.wait_count("oversize", claimed)
    # a real value over the limit: the victim's DHT node refuses to store it, and refuses it again when the
    # attacker's own node serves it in answer to a get; the node never sees the bytes
    wide = ["y" * 16384] * 64  # every field within its limit, the whole envelope just over 3 MiB (p2pd allows 4)
    huge = attacker.batch([hostile.good_group(q, wide) for q in attacker.questions(3)], check_limits=False)
    assert protocol.Limits().max_envelope_bytes < len(huge) < 4 * 1024 * 1024
    huge_id = protocol.message_id(huge)
    attacker.announce([protocol.BatchSummary(huge_id, 1000, 1, 1, 1, 1.0)])
    with pytest.raises(TransportError):  # the victim's node refuses to store it...
        arena.transport.store_batch(huge_id, huge)
    assert arena.transport.holds(batch_key(SWARM, huge_id))  # ...the attacker's own node holds it
    arena.wait_count("dht_oversize", real)


def test_wrong_answers_claiming_reward_one(arena: Arena) -> None:
    before = arena.last()["misreported_rewards"]
    attacker = arena.attacker()
    attacker.offer([hostile.wrong_answers_claiming_reward(attacker)])
    wait_for(lambda: arena.last()["misreported_rewards"] >= before + 6, "six misreported rewards re-scored to 0", 120)


def test_replays_immediately_and_in_a_later_round(arena: Arena) -> None:
    honest_id = Identity(hostile.new_identity().key)
    limits = protocol.Limits()
    honest = RolloutExchange(
        arena.transport,
        honest_id,
        SWARM,
        BatchValidator(SWARM, arena.tasks, limits),
        PeerBook(),
        limits,
        model="honest",
    )
    questions = arena.tasks.draw(seed=777, start=5_000_000, count=2)
    own = [Group(q, g.completions, g.rewards) for q in questions for g in [hostile.good_group(q)]]
    honest.start_round()
    batch_id = honest.publish(1, 0, own)
    assert batch_id is not None
    envelope = arena.transport.fetch_batch(batch_id)
    assert envelope is not None
    wait_for(
        lambda: any(honest_id.peer_id in r.get("external_by_peer", {}) for r in metrics_rows(arena.run_dir)),
        "the honest batch to be used",
        120,
    )
    before = arena.count("duplicate_message")
    attacker = arena.attacker()
    attacker.offer([envelope])  # the same bytes at once
    now = arena.wait_count("duplicate_message", before)
    arena.wait_rounds(3)
    attacker.offer([envelope])  # and again, rounds later
    arena.wait_count("duplicate_message", now)
    # the same completions re-signed as the attacker's own are duplicates of content
    content = arena.count("duplicate_completion")
    attacker.offer([hostile.rewrapped(attacker, envelope)])
    arena.wait_count("duplicate_completion", content)


def test_flooding_100x_the_quota_is_limited(arena: Arena) -> None:
    quota = 2  # swarm.batches_per_peer_per_round, default
    flooder = hostile.Attacker(arena.transport, SWARM, arena.tasks)  # valid data: some may be used, within quota
    envelopes = [flooder.batch([hostile.good_group(q)]) for q in flooder.questions(100 * quota)]
    per_announcement = protocol.Limits().max_batches_per_announcement
    start_round = arena.last()["round"]
    before = arena.count("quota")
    # one announcement listing all 200: over the protocol's limits, so no honest DHT node stores it
    ids = [protocol.message_id(e) for e in envelopes]
    for batch_id, envelope in zip(ids, envelopes, strict=True):
        arena.transport.store_batch(batch_id, envelope)
    flood = protocol.Announcement(
        SWARM, 1, int(time.time() * 1000), "evil", tuple(protocol.BatchSummary(i, 500, 1, 1, 1, 1.0) for i in ids)
    )
    sealed = protocol.seal(protocol.KIND_ANNOUNCE, protocol.encode_payload(flood), flooder.identity.key)
    refused = arena.count("dht_bad_announcement")
    window = int(time.time() // 60)
    arena.transport.put_record(
        announcement_key(SWARM, window, announcement_bucket(flooder.peer_id, arena.transport.buckets)),
        sealed,
        subkey=flooder.peer_id,
        timeout=30,
    )
    arena.wait_count("dht_bad_announcement", refused)
    # then the most an announcement may list, over and over (true sizes: a size lie is a strike of its own)
    sizes = {protocol.message_id(e): len(e) for e in envelopes}
    for k in range(0, 6 * per_announcement, per_announcement):
        flooder.announce([protocol.BatchSummary(i, sizes[i], 1, 1, 1, 1.0) for i in ids[k : k + per_announcement]])
        arena.wait_rounds(1)
    arena.wait_count("quota", before)
    rows = [r for r in metrics_rows(arena.run_dir) if r.get("round", 0) > start_round and "external_by_peer" in r]
    assert rows
    assert max(r["external_by_peer"].get(flooder.peer_id, 0) for r in rows) <= quota


def test_a_peer_that_keeps_sending_invalid_data_is_ignored(arena: Arena) -> None:
    banned = arena.last()["banned_peers"]
    attacker = arena.attacker()
    # validly signed, so the DHT stores them; each question fails its rebuild (ban_after = 5 by default)
    attacker.offer([hostile.mismatched_question(attacker) for _ in range(6)])
    wait_for(lambda: arena.last()["banned_peers"] > banned, "the attacker to be banned", 120)


def test_the_node_kept_running_and_learned_nothing_from_attackers(arena: Arena) -> None:
    assert arena.proc.poll() is None
    arena.wait_rounds(2)
    rows = metrics_rows(arena.run_dir)
    used = {peer for r in rows for peer in r.get("external_by_peer", {})}
    assert arena.attackers and not used & set(arena.attackers), used & set(arena.attackers)
