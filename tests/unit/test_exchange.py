"""Two and three identities exchanging rollouts through the in-memory transport."""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import protocol
from swarmnode.groups import Group
from swarmnode.identity import Identity
from swarmnode.swarm.sharing.exchange import Budget, RolloutExchange
from swarmnode.swarm.sharing.validate import BatchValidator
from swarmnode.swarm.transports.base import TransportError, announcement_bucket
from swarmnode.swarm.transports.memory import MemoryHub, MemoryTransport
from swarmnode.swarm.trust.book import ON_PROBATION, PROVEN, UNKNOWN, PeerBook
from swarmnode.tasks import Question, TaskSet, make_task
from tests.hostile import (
    Attacker,
    OfferingAttacker,
    announced_summaries,
    good_group,
    long_completions,
    offered_back,
    over_claimed,
    phantom_offers,
    rewrapped,
    summary_of,
    under_claimed,
)

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
    quota = victim.budget.batches_per_peer
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


def test_two_publishes_in_one_millisecond_are_both_announced() -> None:
    """A store keeps an author's newer announcement only: the second of two publishes in the same millisecond
    is signed a millisecond later, not refused as not newer."""
    tasks = TaskSet([make_task("add")])
    hub = MemoryHub()
    author, reader = node(hub, tasks), node(hub, tasks)
    now = time.time()
    author.clock = lambda: now
    author.publish(1, 1, own_groups(tasks, 0))
    author.publish(2, 1, own_groups(tasks, 3))
    assert len(reader.collect(2, want_groups=12, per_peer_groups=12)) == 6  # both batches listed


def test_a_readers_own_announcement_does_not_stop_it_reading_the_window_before() -> None:
    """Just past a window boundary a peer may still file in the window before (it published a moment ago, or
    its clock is behind). A reader whose bucket holds only its own announcement in the new window reads on;
    it stopped there and missed its peer (`test_clock_skew` failed about 1 run in 20)."""
    tasks = TaskSet([make_task("add")])
    boundary = time.time() // 60 * 60  # the last (batches are checked for freshness against the real clock)
    missed = []
    for _ in range(8):
        hub = MemoryHub(clock=lambda: boundary)
        reader, peer = node(hub, tasks), node(hub, tasks)
        while announcement_bucket(peer.identity.peer_id, 8) != announcement_bucket(reader.identity.peer_id, 8):
            peer = node(hub, tasks)  # the same bucket as the reader's own announcement
        peer.clock, reader.clock = (lambda: boundary - 1.0), (lambda: boundary + 1.0)
        peer.publish(1, 1, own_groups(tasks, 0))  # in the window before the boundary
        reader.publish(1, 1, own_groups(tasks, 3))  # in the window after it
        missed += [len(reader.collect(1, want_groups=8, per_peer_groups=4)) != 3]
    assert not any(missed), missed


# ---------------------------------------------------------------- valid data that lies or costs


def test_phantom_offers_from_thirty_identities_do_not_crowd_out_a_proven_peer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    victim, attacker, hub = _victim_and_attacker()
    honest = node(hub, attacker.tasks)
    honest.publish(1, 1, own_groups(attacker.tasks, 0))
    assert len(victim.collect(1, want_groups=8, per_peer_groups=4)) == 3  # the honest peer has a record now
    liars = [OfferingAttacker(attacker.transport, "s", attacker.tasks) for _ in range(30)]
    for round_ in range(2, 42):
        for liar in liars:
            if not victim.book.is_banned(liar.peer_id):
                phantom_offers(liar)  # 16 batches that do not exist, each claiming 64 informative groups
        honest.publish(round_, 1, own_groups(attacker.tasks, 3 * round_))
        misses = victim.misses
        got = victim.collect(round_, want_groups=8, per_peer_groups=4)
        assert {g.source for g in got} == {honest.identity.peer_id} and len(got) == 3  # every honest group
        assert victim.misses - misses <= victim.budget.untrusted  # misses per round are bounded
    assert all(victim.book.is_banned(liar.peer_id) for liar in liars)  # then they are ignored
    assert victim.counts["offer_missing"] == 30 * victim.book.offer_strikes
    assert {p["peer_id"]: p["rejected"] for p in victim.book.snapshot()}[honest.identity.peer_id] == {}
    for liar in liars:
        phantom_offers(liar)  # still announcing
    honest.publish(42, 1, own_groups(attacker.tasks, 3 * 42))
    verified: list[str] = []
    real = protocol.verify_and_decode

    def counting(raw: bytes, limits: protocol.Limits) -> protocol.Verdict:
        verdict = real(raw, limits)
        verified.append(verdict.peer_id if isinstance(verdict, protocol.Accepted) else "")
        return verdict

    monkeypatch.setattr(protocol, "verify_and_decode", counting)
    assert len(victim.collect(42, want_groups=8, per_peer_groups=4)) == 3
    assert honest.identity.peer_id in verified
    assert not {liar.peer_id for liar in liars} & set(verified)  # ignored peers' announcements: not even verified


def test_an_announcer_whose_batches_are_missing_loses_its_allowance_then_is_ignored() -> None:
    victim, attacker, _ = _victim_and_attacker()
    liar = OfferingAttacker(attacker.transport, "s", attacker.tasks)
    phantom_offers(liar)  # 16 offers
    for round_ in range(1, victim.book.offer_strikes + 1):
        assert not victim.book.is_banned(liar.peer_id)
        victim.collect(round_)
        assert victim.misses == round_  # after a miss, one download a round at most
    assert victim.counts["probation"] == (victim.book.offer_strikes - 1) * 15  # then ignored mid-round
    assert victim.book.is_banned(liar.peer_id)
    victim.collect(9)
    assert victim.counts["offer_missing"] == victim.misses == victim.book.offer_strikes  # ignored: not even read


def test_a_clean_delivery_heals_a_strike() -> None:
    book = PeerBook(offer_strikes=3)
    book.rejected("p", Counter({"offer_missing": 2}))
    assert book.tier("p") == ON_PROBATION and book.allowance("p", 2) == 1
    book.delivered("p")
    book.delivered("p")
    assert book.tier("p") == UNKNOWN and book.allowance("p", 2) == 2  # no groups accepted yet
    book.accepted("p", "m", 1, [1.0])
    assert book.tier("p") == PROVEN
    book.rejected("p", Counter({"offer_missing": 1}))
    assert book.tier("p") == PROVEN and book.allowance("p", 2) == 1  # one miss: a proven peer keeps its place
    book.rejected("p", Counter({"size_mismatch": 1}))
    assert book.tier("p") == ON_PROBATION
    book.rejected("p", Counter({"size_mismatch": 1}))
    assert book.is_banned("p")


def test_a_size_claim_below_the_bytes_received_is_a_lie() -> None:
    victim, attacker, _ = _victim_and_attacker()
    liar = OfferingAttacker(attacker.transport, "s", attacker.tasks)
    under_claimed(liar, liar.batch([good_group(q) for q in liar.questions(2)]))
    assert victim.collect(1) == []
    assert victim.rejections() == {"size_mismatch": 1} and victim.validated == 0  # not even validated
    assert victim.book.tier(liar.peer_id) == ON_PROBATION


def test_claiming_more_informative_groups_than_the_batch_has_is_a_lie() -> None:
    victim, attacker, _ = _victim_and_attacker()
    liar = OfferingAttacker(attacker.transport, "s", attacker.tasks)
    flat = [protocol.RolloutGroup(q.ref, q.text, ("a", "b"), (0.0, 0.0)) for q in liar.questions(2)]
    over_claimed(liar, liar.batch(flat))
    victim.collect(1)
    assert victim.rejections() == {"summary_mismatch": 1} and victim.book.allowance(liar.peer_id, 2) == 1
    honest = OfferingAttacker(attacker.transport, "s", attacker.tasks)
    honest.offer_true(
        [honest.batch([protocol.RolloutGroup(q.ref, q.text, ("a", "b"), (0.0, 0.0)) for q in honest.questions(2)])]
    )
    victim.collect(2)
    assert victim.book.allowance(honest.peer_id, 2) == 2 and victim.validated == 2  # a true summary is no lie


def test_a_nodes_own_batches_and_copies_of_them_are_never_taken_as_external() -> None:
    victim, attacker, hub = _victim_and_attacker()
    mine = own_groups(attacker.tasks, 0)
    victim.publish(1, 1, mine)
    envelope = hub.announcements(victim.window(), range(8))[0]
    liar = OfferingAttacker(attacker.transport, "s", attacker.tasks)
    offered_back(liar, announced_summaries(envelope))
    assert victim.collect(1) == [] and victim.counts["own_batch"] == 1
    # after a restart the node no longer remembers its batch ids: its signature still gives them away
    restarted = RolloutExchange(
        victim.transport,
        victim.identity,
        "s",
        BatchValidator("s", attacker.tasks, LIMITS),
        PeerBook(),
        LIMITS,
        model="m",
    )
    assert restarted.collect(1) == [] and restarted.rejections() == {"own_batch": 1}
    assert restarted.book.tier(liar.peer_id) == ON_PROBATION  # charged to the announcer
    copy = liar.batch([protocol.RolloutGroup(g.question.ref, g.question.text, g.completions, g.rewards) for g in mine])
    liar.offer_true([copy])
    assert victim.collect(2) == []  # the same completions re-signed by a copier


def test_an_honest_author_is_not_charged_when_a_copy_of_its_batch_arrived_first() -> None:
    tasks = TaskSet([make_task("add")])
    elsewhere, here = MemoryHub(), MemoryHub()
    author = node(elsewhere, tasks)  # its announcement reaches the victim late
    victim = node(here, tasks)
    author.publish(1, 1, own_groups(tasks, 0))
    original = elsewhere.announcements(author.window(), range(8))[0]
    batch = MemoryTransport(elsewhere).fetch_batch(announced_summaries(original)[0].batch_id)
    assert batch is not None
    copier = OfferingAttacker(MemoryTransport(here), "s", tasks)
    copier.offer_true([rewrapped(copier, batch)])
    assert {g.source for g in victim.collect(1)} == {copier.peer_id}  # the copy got here first
    late = MemoryTransport(here)
    late.store_batch(protocol.message_id(batch), batch)
    late.announce(author.window(), original)
    assert victim.collect(2) == []
    assert victim.rejections() == {"duplicate_completion": 3}  # counted...
    rows = {p["peer_id"]: p["rejected"] for p in victim.book.snapshot()}
    assert rows.get(author.identity.peer_id, {}) == {}  # ...but not charged to the honest author


def test_announcements_dated_outside_their_window_are_refused() -> None:
    victim, attacker, _ = _victim_and_attacker()
    for offset, reason in ((86_400.0, "future_announcement"), (-86_400.0, "stale_announcement")):
        liar = OfferingAttacker(attacker.transport, "s", attacker.tasks)
        envelope = liar.batch([good_group(q) for q in liar.questions(1)])
        liar.transport.store_batch(protocol.message_id(envelope), envelope)
        liar.announce_dated([summary_of(envelope)], time.time() + offset)
        assert victim.collect(1) == [] and victim.counts[reason] == 1
    assert victim.validated == 0


def test_long_completions_are_dropped_and_a_rounds_tokens_are_bounded() -> None:
    tasks = TaskSet([make_task("add")])
    hub = MemoryHub()
    validator = BatchValidator("s", tasks, LIMITS, count_tokens=len, max_completion_tokens=40)
    victim = RolloutExchange(
        MemoryTransport(hub),
        Identity(Ed25519PrivateKey.generate()),
        "s",
        validator,
        PeerBook(),
        LIMITS,
        model="m",
        budget=Budget(max_external_tokens=300, max_peer_tokens=150),
    )
    attacker = OfferingAttacker(MemoryTransport(hub), "s", tasks)
    attacker.offer_true([long_completions(attacker, attacker.questions(4), 1000)])
    assert victim.collect(1) == [] and victim.rejections() == {"long_completion": 8}
    # within the bound, but more than one signer's share of the round's tokens: the rest waits
    fits = long_completions(attacker, attacker.questions(8), 8)  # about 2 x 30 tokens a group
    attacker.offer_true([fits])
    got = victim.collect(2)
    assert 0 < sum(len(c) for g in got for c in g.completions) <= 150
    assert victim.rejections()["token_budget"] == 8 - len(got)


def test_refused_announcements_are_said_once_with_the_likely_cause() -> None:
    victim, attacker, hub = _victim_and_attacker()

    class Refusing(MemoryTransport):
        def announce(self, window: int, envelope: bytes, timeout: float | None = None) -> None:
            raise TransportError("no DHT node accepted the announcement")

    victim.transport = Refusing(hub)
    said = []
    for round_ in range(1, 5):
        victim.publish(round_, 1, own_groups(attacker.tasks, 3 * round_))
        said += [line for line in victim.trouble() if "refused" in line]
    assert len(said) == 1 and "no DHT node accepted" in said[0] and "pinning" in said[0]


def test_behaviour_log_probs_travel_in_v2_and_only_when_shared() -> None:
    """Groups with behaviour log-probs go out as protocol v2 and arrive with them, per completion; with
    share_logprobs off (or none recorded) the batch is v1."""
    tasks = TaskSet([make_task("add")])
    hub = MemoryHub()
    a, b, reader = node(hub, tasks), node(hub, tasks), node(hub, tasks)
    b.share_logprobs = False
    rows = ((-0.5, -0.25), (-1.0,), (-2.0, -0.125, -0.5))
    id_a = a.publish(1, 1, [dataclasses.replace(g, logprobs=rows) for g in own_groups(tasks, 0)])
    id_b = b.publish(1, 1, [dataclasses.replace(g, logprobs=rows) for g in own_groups(tasks, 3)])
    got = reader.collect(1)
    from_a = [g for g in got if g.source == a.identity.peer_id]
    from_b = [g for g in got if g.source == b.identity.peer_id]
    assert len(from_a) == len(from_b) == 3
    assert all(g.logprobs == rows and g.model == "tiny" for g in from_a)
    assert all(g.logprobs is None for g in from_b)
    envelopes = [hub.batch(i) for i in (id_a, id_b) if i is not None]
    assert [e[1] for e in envelopes if e is not None] == [2, 1]  # the version, after the 5-array header


def test_under_the_receivers_baseline_every_group_counts_against_the_signers_share() -> None:
    """All-correct groups carry nothing for their author (no reward variance) but are signal for a receiver
    that measures them against its own baseline: then each counts against the signer's share of the round,
    as informative groups do, so a peer cannot fill a round with them beyond its share."""
    tasks = TaskSet([make_task("add")])
    solved = [Group(q, (f"<answer>{q.answer}</answer>",) * 3, (1.0,) * 3) for q in tasks.draw(seed=9, start=0, count=3)]
    taken = {}
    for every_group in (False, True):
        hub = MemoryHub()
        author, reader = node(hub, tasks), node(hub, tasks)
        reader.budget = dataclasses.replace(reader.budget, every_group=every_group)
        author.publish(1, 1, solved)
        taken[every_group] = len(reader.collect(1, want_groups=4, per_peer_groups=2))
    assert taken == {False: 3, True: 2}
