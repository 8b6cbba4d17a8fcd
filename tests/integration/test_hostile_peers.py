"""Hostile peers against a running node: one real `swarmnode join` process on 127.0.0.1 (hivemind DHT,
tiny model, training rounds) and, in this test process, a DHT peer that offers it every attack of the
threat list. Each attack must be rejected or limited with its reason counted in the node's metrics, the
node must keep running, and nothing from the attackers may reach its learner (`external_by_peer`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

import protocol
from swarmnode.groups import Group
from swarmnode.swarm.transports.base import announcement_bucket
from swarmnode.swarm.transports.hivemind_dht import HivemindTransport, TransportError
from swarmnode.swarm.transports.hivemind_records import announcement_key, batch_key
from tests import hostile
from tests.helpers import metrics_rows, wait_for
from tests.victim import Victim, honest_exchange, running_victim

SWARM = "hostile"
pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def victim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Victim]:
    sets = ("generation.questions_per_round=4", "generation.max_new_tokens=24")
    # the attackers' own DHT node accepts oversize values (a victim's must refuse them)
    big = {"limits": protocol.Limits(max_envelope_bytes=8 * 1024 * 1024)}
    with running_victim(tmp_path_factory.mktemp("hostile"), SWARM, minutes=15, sets=sets, peer_options=big) as victim:
        victim.wait_round(2, "the node's first rounds")
        yield victim


def attackers_dht(victim: Victim) -> HivemindTransport:
    """The attackers' node, a hivemind DHT node (for what only a DHT node does: hold and put any record)."""
    assert isinstance(victim.transport, HivemindTransport)
    return victim.transport


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
    victim: Victim, attack: Callable[[hostile.Attacker], bytes], reason: str
) -> None:
    before = victim.count(reason)
    attacker = victim.attacker()
    try:
        attacker.offer([attack(attacker)])
    except TransportError:
        assert reason.startswith("dht_")  # no DHT node stored it; the victim's counted it
    victim.wait_count(reason, before)


def test_stale_and_future_batches(victim: Victim) -> None:
    stale, future = victim.count("stale"), victim.count("future")
    attacker = victim.attacker()
    attacker.offer([hostile.stale(attacker, age_s=3600), hostile.future(attacker, ahead_s=3600)])
    victim.wait_count("stale", stale)
    victim.wait_count("future", future)


def test_oversize_claimed_and_real(victim: Victim) -> None:
    claimed, real = victim.count("oversize"), victim.count("dht_oversize")
    attacker = victim.attacker()
    small = attacker.batch([hostile.good_group(q) for q in attacker.questions(1)])
    attacker.offer([small], claimed_sizes=[protocol.Limits().max_envelope_bytes + 1])
    victim.wait_count("oversize", claimed)
    # a real value over the limit: the victim's DHT node refuses to store it, and refuses it again when the
    # attacker's own node serves it in answer to a get; the node never sees the bytes
    wide = ["y" * 16384] * 64  # every field within its limit, the whole envelope just over 3 MiB (p2pd allows 4)
    huge = attacker.batch([hostile.good_group(q, wide) for q in attacker.questions(3)], check_limits=False)
    assert protocol.Limits().max_envelope_bytes < len(huge) < 4 * 1024 * 1024
    huge_id = protocol.message_id(huge)
    attacker.announce([protocol.BatchSummary(huge_id, 1000, 1, 1, 1, 1.0)])
    with pytest.raises(TransportError):  # the victim's node refuses to store it...
        victim.transport.store_batch(huge_id, huge)
    assert attackers_dht(victim).holds(batch_key(SWARM, huge_id))  # ...the attacker's own node holds it
    victim.wait_count("dht_oversize", real)


def test_wrong_answers_claiming_reward_one(victim: Victim) -> None:
    before = victim.last()["misreported_rewards"]
    attacker = victim.attacker()
    attacker.offer([hostile.wrong_answers_claiming_reward(attacker)])
    wait_for(lambda: victim.last()["misreported_rewards"] >= before + 6, "six misreported rewards re-scored to 0", 120)


def test_replays_immediately_and_in_a_later_round(victim: Victim) -> None:
    honest = honest_exchange(victim.transport, SWARM, victim.tasks)
    honest_id = honest.identity
    questions = victim.tasks.draw(seed=777, start=5_000_000, count=2)
    own = [Group(q, g.completions, g.rewards) for q in questions for g in [hostile.good_group(q)]]
    honest.start_round()
    batch_id = honest.publish(1, 0, own)
    assert batch_id is not None
    envelope = victim.transport.fetch_batch(batch_id)
    assert envelope is not None
    wait_for(
        lambda: any(honest_id.peer_id in r.get("external_by_peer", {}) for r in metrics_rows(victim.run_dir)),
        "the honest batch to be used",
        120,
    )
    before = victim.count("duplicate_message")
    attacker = victim.attacker()
    attacker.offer([envelope])  # the same bytes at once
    now = victim.wait_count("duplicate_message", before)
    victim.wait_rounds(3)
    attacker.offer([envelope])  # and again, rounds later
    victim.wait_count("duplicate_message", now)
    # the same completions re-signed as the attacker's own are duplicates of content
    content = victim.count("duplicate_completion")
    attacker.offer([hostile.rewrapped(attacker, envelope)])
    victim.wait_count("duplicate_completion", content)


def test_flooding_100x_the_quota_is_limited(victim: Victim) -> None:
    quota = 2  # swarm.batches_per_peer_per_round, default
    flooder = hostile.Attacker(victim.transport, SWARM, victim.tasks)  # valid data: some may be used, within quota
    envelopes = [flooder.batch([hostile.good_group(q)]) for q in flooder.questions(100 * quota)]
    per_announcement = protocol.Limits().max_batches_per_announcement
    start_round = victim.last()["round"]
    before = victim.count("quota")
    # one announcement listing all 200: over the protocol's limits, so no honest DHT node stores it
    ids = [protocol.message_id(e) for e in envelopes]
    for batch_id, envelope in zip(ids, envelopes, strict=True):
        victim.transport.store_batch(batch_id, envelope)
    flood = protocol.Announcement(
        SWARM, 1, int(time.time() * 1000), "evil", tuple(protocol.BatchSummary(i, 500, 1, 1, 1, 1.0) for i in ids)
    )
    sealed = protocol.seal(protocol.KIND_ANNOUNCE, protocol.encode_payload(flood), flooder.identity.key)
    refused = victim.count("dht_bad_announcement")
    window = int(time.time() // 60)
    attackers_dht(victim).put_record(
        announcement_key(SWARM, window, announcement_bucket(flooder.peer_id, victim.transport.buckets)),
        sealed,
        subkey=flooder.peer_id,
        timeout=30,
    )
    victim.wait_count("dht_bad_announcement", refused)
    # then the most an announcement may list, over and over (true sizes: a size lie is a strike of its own)
    sizes = {protocol.message_id(e): len(e) for e in envelopes}
    for k in range(0, 6 * per_announcement, per_announcement):
        flooder.announce([protocol.BatchSummary(i, sizes[i], 1, 1, 1, 1.0) for i in ids[k : k + per_announcement]])
        victim.wait_rounds(1)
    victim.wait_count("quota", before)
    rows = [r for r in metrics_rows(victim.run_dir) if r.get("round", 0) > start_round and "external_by_peer" in r]
    assert rows
    assert max(r["external_by_peer"].get(flooder.peer_id, 0) for r in rows) <= quota


def test_a_peer_that_keeps_sending_invalid_data_is_ignored(victim: Victim) -> None:
    banned = victim.last()["banned_peers"]
    attacker = victim.attacker()
    # validly signed, so the DHT stores them; each question fails its rebuild (ban_after = 5 by default)
    attacker.offer([hostile.mismatched_question(attacker) for _ in range(6)])
    wait_for(lambda: victim.last()["banned_peers"] > banned, "the attacker to be banned", 120)


def test_the_node_kept_running_and_learned_nothing_from_attackers(victim: Victim) -> None:
    assert victim.proc.poll() is None
    victim.wait_rounds(2)
    rows = metrics_rows(victim.run_dir)
    used = {peer for r in rows for peer in r.get("external_by_peer", {})}
    assert victim.attackers and not used & set(victim.attackers), used & set(victim.attackers)
