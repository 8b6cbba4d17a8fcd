"""Attacks on a node's offers and budgets with *valid* data (issue 14): announcements that lie about what
they offer, completions too long to train on, a victim's own batches offered back to it, honest payloads
re-signed by a copier, and announcements dated outside their window. Each builder returns wire bytes or
announces through an `Attacker`'s transport, so the same attack runs against the in-memory hub in unit
tests and against running nodes over hivemind in integration tests."""

from __future__ import annotations

import time
from collections.abc import Sequence

import protocol
from swarmnode.groups import has_signal
from swarmnode.tasks import Question
from tests.hostile import LIMITS, Attacker, good_group


def summary_of(envelope: bytes) -> protocol.BatchSummary:
    """The true summary of a batch, as an honest author announces it."""
    verdict = protocol.verify_and_decode(envelope, LIMITS)
    assert isinstance(verdict, protocol.Accepted) and isinstance(verdict.payload, protocol.RolloutBatch)
    batch = verdict.payload
    rewards = [r for g in batch.groups for r in g.rewards]
    informative = sum(1 for g in batch.groups if has_signal(g.rewards))
    return protocol.BatchSummary(
        protocol.message_id(envelope),
        len(envelope),
        batch.round,
        len(batch.groups),
        informative,
        sum(rewards) / len(rewards),
    )


class OfferingAttacker(Attacker):
    """An attacker whose announcements state the true summary of what it stores unless told to lie."""

    def offer_true(self, envelopes: Sequence[bytes]) -> list[bytes]:
        for envelope in envelopes:
            self.transport.store_batch(protocol.message_id(envelope), envelope)
        summaries = [summary_of(e) for e in envelopes]
        self.announce(summaries)
        return [s.batch_id for s in summaries]

    def announce_dated(self, summaries: Sequence[protocol.BatchSummary], created_s: float) -> None:
        """An announcement signed with `created_s` as its time, filed in the current window."""
        announcement = protocol.Announcement(self.swarm, 1, int(created_s * 1000), "evil", tuple(summaries))
        envelope = protocol.seal_payload(announcement, self.identity.key, LIMITS)
        self.transport.announce(int(time.time() // self.window_s), envelope)


def phantom_offers(attacker: Attacker, count: int = 16, informative: int = 64) -> list[bytes]:
    """`count` batches that exist nowhere, each claimed to hold `informative` informative groups (the most
    a batch may have): a reader that believes the claims spends its downloads on misses."""
    ids = [protocol.message_id(f"phantom {attacker.peer_id} {i} {time.time()}".encode()) for i in range(count)]
    attacker.announce([protocol.BatchSummary(i, 20_000, 1, informative, informative, 0.5) for i in ids])
    return ids


def long_completions(attacker: Attacker, questions: Sequence[Question], length: int) -> bytes:
    """A valid batch whose right answers are followed by `length` characters: each group has a correct
    (scored 1) and a wrong completion, both `length` long, so every group has reward variance."""
    tail = " " + "x" * length
    groups = [good_group(q, (f"<answer>{q.answer}</answer>{tail}", f"<answer>-1</answer>{tail}")) for q in questions]
    return attacker.batch(groups)


def offered_back(attacker: OfferingAttacker, summaries: Sequence[protocol.BatchSummary]) -> None:
    """Announce somebody else's batches (read from its announcements) as if they were the attacker's."""
    attacker.announce(list(summaries))


def announced_summaries(envelope: bytes) -> list[protocol.BatchSummary]:
    """The batch summaries an announcement envelope lists ([] when it is not a valid announcement)."""
    verdict = protocol.verify_and_decode(envelope, LIMITS)
    if not isinstance(verdict, protocol.Accepted) or not isinstance(verdict.payload, protocol.Announcement):
        return []
    return list(verdict.payload.batches)


def under_claimed(attacker: OfferingAttacker, envelope: bytes) -> bytes:
    """Store a real batch and offer it with a size claim far below its length."""
    batch_id = protocol.message_id(envelope)
    attacker.transport.store_batch(batch_id, envelope)
    true = summary_of(envelope)
    attacker.announce([protocol.BatchSummary(batch_id, 100, true.round, true.groups, true.informative_groups, 0.5)])
    return batch_id


def over_claimed(attacker: OfferingAttacker, envelope: bytes, informative: int = 64) -> bytes:
    """Store a real batch and offer it claiming more informative groups than it has."""
    batch_id = protocol.message_id(envelope)
    attacker.transport.store_batch(batch_id, envelope)
    true = summary_of(envelope)
    attacker.announce([protocol.BatchSummary(batch_id, true.size, true.round, 64, informative, 0.5)])
    return batch_id
