"""Two and three identities exchanging rollouts through the in-memory transport."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import protocol
from swarmnode.groups import Group
from swarmnode.identity import Identity
from swarmnode.swarm.exchange import RolloutExchange
from swarmnode.swarm.memory import MemoryHub, MemoryTransport
from swarmnode.swarm.peers import PeerBook
from swarmnode.swarm.transport import TransportError
from swarmnode.swarm.validate import BatchValidator
from swarmnode.tasks import Question, TaskSet, make_task
from tests.hostile import Attacker, good_group, rewrapped

LIMITS = protocol.Limits()


def node(hub: MemoryHub, tasks: TaskSet, held_out: Callable[[Question], bool] = lambda q: False) -> RolloutExchange:
    return RolloutExchange(
        MemoryTransport(hub),
        Identity(Ed25519PrivateKey.generate()),
        "s",
        BatchValidator("s", tasks, LIMITS, held_out=held_out),
        PeerBook(),
        LIMITS,
        model="tiny",
    )


def own_groups(tasks: TaskSet, start: int, claims: tuple[float, ...] = (1.0, 0.0, 0.0)) -> list[Group]:
    out = []
    for q in tasks.draw(seed=9, start=start, count=3):
        completions = (f"<answer>{q.answer}</answer>", "<answer>0</answer>", "<answer>1</answer>")
        out.append(Group(q, completions, claims))
    return out


def test_nodes_receive_each_others_groups_once_and_rescored() -> None:
    tasks = TaskSet([make_task("add")])
    hub = MemoryHub()
    a, b, c = node(hub, tasks), node(hub, tasks), node(hub, tasks)
    a.publish(1, 1, own_groups(tasks, 0, claims=(1.0, 1.0, 1.0)))  # claims are never used by readers...
    b.publish(1, 1, own_groups(tasks, 3, claims=(1.0, 1.0, 1.0)))
    got = c.collect(1)
    assert {g.source for g in got} == {a.identity.peer_id, b.identity.peer_id}
    assert all(g.rewards == (1.0, 0.0, 0.0) and g.claimed_rewards == (1.0, 1.0, 1.0) for g in got)
    assert {g.source for g in a.collect(1)} == {b.identity.peer_id}  # never its own
    assert c.collect(1) == []  # already fetched: not downloaded or counted again
    assert not c.rejections()
    book = {row["peer_id"]: row for row in c.book.snapshot()}
    assert book[a.identity.peer_id]["accepted_groups"] == 3
    assert book[a.identity.peer_id]["rejected"] == {"misreported_reward": 1}  # ...but misreporting is a strike


def test_a_lying_peer_is_rejected_and_recorded() -> None:
    tasks = TaskSet([make_task("add")])
    hub = MemoryHub()
    liar, reader = node(hub, tasks), node(hub, tasks)
    groups = own_groups(tasks, 0)
    other = tasks.draw(seed=9, start=7, count=1)[0]
    liar.publish(
        1,
        1,
        [
            Group(dataclasses.replace(g.question, text=other.text, answer=other.answer), g.completions, g.rewards)
            for g in groups
        ],
    )
    assert reader.collect(1) == []
    assert reader.rejections() == {"question_mismatch": 3}
    assert reader.book.snapshot()[0]["rejected"] == {"question_mismatch": 3}


# ---------------------------------------------------------------- offers checked before download


def _victim_and_attacker() -> tuple[RolloutExchange, Attacker, MemoryHub]:
    tasks = TaskSet([make_task("add")])
    hub = MemoryHub()
    return node(hub, tasks), Attacker(MemoryTransport(hub), "s", tasks), hub


def test_a_batch_claimed_oversize_is_never_downloaded() -> None:
    victim, attacker, _ = _victim_and_attacker()
    envelope = attacker.batch([good_group(q) for q in attacker.questions(1)])
    attacker.offer([envelope], claimed_sizes=[LIMITS.max_envelope_bytes + 1])
    fetched = victim.transport.bytes_downloaded  # type: ignore[attr-defined]
    assert victim.collect(1) == []
    assert victim.counts["oversize"] == 1
    assert victim.transport.bytes_downloaded - fetched < len(envelope)  # type: ignore[attr-defined]
    assert victim.book.snapshot()[0]["rejected"] == {"oversize": 1}


def test_replays_by_another_peer_are_counted_and_not_fetched_again() -> None:
    victim, attacker, hub = _victim_and_attacker()
    honest = node(hub, attacker.tasks)
    batch_id = honest.publish(1, 1, own_groups(attacker.tasks, 0))
    assert batch_id is not None and len(victim.collect(1)) == 3
    envelope = attacker.transport.fetch_batch(batch_id)
    assert envelope is not None
    attacker.offer([envelope])  # the very same bytes, announced by somebody else
    assert victim.collect(2) == []
    assert victim.counts["duplicate_message"] == 1
    assert victim.collect(3) == [] and victim.counts["duplicate_message"] == 2  # again in a later round
    # the honest author's own announcement lists its batch every round: that is not a replay
    assert {p["peer_id"]: p["rejected"] for p in victim.book.snapshot()}[honest.identity.peer_id] == {}
    # and the same completions re-signed by the attacker are duplicates of content
    attacker.offer([rewrapped(attacker, envelope)])
    assert victim.collect(4) == []
    assert victim.rejections()["duplicate_completion"] == 3


def test_offers_beyond_the_announcers_round_quota_are_not_downloaded() -> None:
    victim, attacker, _ = _victim_and_attacker()
    quota = victim.batches_per_peer_per_round
    envelopes = [attacker.batch([good_group(q)]) for q in attacker.questions(LIMITS.max_batches_per_announcement)]
    attacker.offer(envelopes)
    got = victim.collect(1)
    assert len(got) == quota
    assert victim.rejections() == {"quota": LIMITS.max_batches_per_announcement - quota}  # each offer over it counted
    assert len(victim.collect(1)) == 0 and victim.rejections()["quota"] == 2 * (len(envelopes) - quota)  # per round
    assert len(victim.collect(2)) == quota  # the next round takes the next ones


def test_an_announcement_over_the_limits_is_refused_by_the_store() -> None:
    _, attacker, _ = _victim_and_attacker()
    envelope = attacker.batch([good_group(q) for q in attacker.questions(1)])
    ids = attacker.offer([envelope])
    flood = [protocol.BatchSummary(ids[0], len(envelope), 1, 1, 1, 1.0)] * (100 * 2)
    with pytest.raises(ValueError):  # honest hubs and DHT nodes refuse to store it
        attacker.announce(flood, check_limits=False)


def test_a_round_deadline_stops_swarm_io() -> None:
    victim, attacker, _ = _victim_and_attacker()
    attacker.offer([attacker.batch([good_group(q)]) for q in attacker.questions(2)])
    victim.round_timeout_s = 0.0
    victim.start_round()
    calls: list[str] = []

    class Refusing(MemoryTransport):
        def announcements(self, window: int, bucket: int | None = None, timeout: float | None = None) -> list[bytes]:
            calls.append("announcements")
            if timeout is not None and timeout <= 0:
                raise TransportError("no time left")
            return super().announcements(window, bucket, timeout)

    victim.transport = Refusing(attacker.transport.hub)  # type: ignore[attr-defined]
    assert victim.collect(1) == [] and victim.io_errors == 1 and calls == ["announcements"]
    victim.round_timeout_s = 10.0
    victim.start_round()
    assert len(victim.collect(2)) == 2


def test_peers_cannot_train_a_node_on_its_held_out_questions() -> None:
    tasks = TaskSet([make_task("add")])
    hub = MemoryHub()
    held = {q.text for q in tasks.draw(0, 0, 20, split="eval")}
    victim = node(hub, tasks, held_out=lambda q: q.text in held)
    attacker = Attacker(MemoryTransport(hub), "s", tasks)
    evaluation = tasks.draw(0, 0, 2, split="eval")
    attacker.offer([attacker.batch([good_group(q) for q in evaluation])])
    assert victim.collect(1) == []
    assert victim.rejections() == {"held_out_question": 2}


def test_a_peer_whose_share_is_covered_is_not_downloaded_from_again_this_round() -> None:
    """An honest peer lists its last few batches; once one of them gave the reader its per-peer share of
    the round, the others wait for later rounds (no download, and not counted against the peer)."""
    tasks = TaskSet([make_task("add")])
    hub = MemoryHub()
    author, reader = node(hub, tasks), node(hub, tasks)
    for round_ in range(1, 4):  # three batches of 3 informative groups each, all in the latest announcement
        author.publish(round_, 1, own_groups(tasks, 3 * round_))
    got = reader.collect(3, want_groups=8, per_peer_groups=3)
    assert len(got) == 3 and not reader.rejections()  # one batch: the peer's share (3 groups) is covered
    assert len(reader.collect(4, want_groups=8, per_peer_groups=3)) == 3  # the next round, the next batch
    assert len(reader.collect(4, want_groups=8, per_peer_groups=8)) == 3  # a bigger share: the last one
