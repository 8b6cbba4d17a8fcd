"""Publishing this node's rollouts and collecting peers' through any `Transport`.

Publish: one signed batch per round, stored under its content id, and one signed announcement for the
current time window that lists it. Collect: read the announcements of the current and previous window,
drop our own, banned peers' and invalid ones, fetch the most informative batches first (at most
`max_batches` and one per peer per pass), and run each through the `BatchValidator`. Every rejection is
counted there and recorded in the peer book.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import protocol
from swarmnode.identity import Identity
from swarmnode.swarm.peers import PeerBook
from swarmnode.swarm.transport import Transport
from swarmnode.swarm.validate import BatchValidator, BoundedSet, ExternalGroup
from swarmnode.tasks import Question


@dataclass(frozen=True)
class OwnGroup:
    """What this node shares of one of its question groups: text only."""

    question: Question
    completions: tuple[str, ...]
    rewards: tuple[float, ...]


class RolloutExchange:
    def __init__(
        self,
        transport: Transport,
        identity: Identity,
        swarm: str,
        validator: BatchValidator,
        book: PeerBook,
        limits: protocol.Limits,
        *,
        model: str,
        window_s: float = 60.0,
        max_batches: int = 8,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.transport = transport
        self.identity = identity
        self.swarm = swarm
        self.validator = validator
        self.book = book
        self.limits = limits
        self.model = model[: limits.max_name_chars]
        self.window_s = window_s
        self.max_batches = max_batches
        self.clock = clock
        self._published: list[protocol.BatchSummary] = []
        self.announcement_rejections = 0
        self._done = BoundedSet(100_000)  # batches already fetched: announcements repeat them

    def window(self) -> int:
        return int(self.clock() // self.window_s)

    def publish(self, round_: int, policy_version: int, groups: Sequence[OwnGroup]) -> bytes | None:
        """Share `groups`; returns the batch id (None when there is nothing worth sharing)."""
        shared = [g for g in groups if g.completions][: self.limits.max_groups_per_batch]
        if not shared:
            return None
        now_ms = int(self.clock() * 1000)
        batch = protocol.RolloutBatch(
            self.swarm,
            round_,
            policy_version,
            now_ms,
            self.model,
            tuple(
                protocol.RolloutGroup(
                    g.question.ref,
                    g.question.text,
                    tuple(c[: self.limits.max_completion_chars] for c in g.completions),
                    tuple(float(r) for r in g.rewards),
                )
                for g in shared
            ),
        )
        envelope = protocol.seal_payload(batch, self.identity.key, self.limits)
        batch_id = protocol.message_id(envelope)
        self.transport.store_batch(batch_id, envelope)
        rewards = [r for g in shared for r in g.rewards]
        summary = protocol.BatchSummary(
            batch_id,
            len(envelope),
            round_,
            len(shared),
            sum(1 for g in shared if len(set(g.rewards)) > 1),
            sum(rewards) / len(rewards),
        )
        self._published = [summary, *self._published][: self.limits.max_batches_per_announcement]
        announcement = protocol.Announcement(self.swarm, round_, now_ms, self.model, tuple(self._published))
        self.transport.announce(self.window(), protocol.seal_payload(announcement, self.identity.key, self.limits))
        return batch_id

    def collect(self, local_round: int) -> list[ExternalGroup]:
        """Peers' validated, re-scored groups available now."""
        own = self.identity.peer_id
        offers: list[tuple[int, str, protocol.BatchSummary]] = []
        window = self.window()
        for envelope in self.transport.announcements(window) + self.transport.announcements(window - 1):
            verdict = protocol.verify_and_decode(envelope, self.limits)
            if not isinstance(verdict, protocol.Accepted) or not isinstance(verdict.payload, protocol.Announcement):
                self.announcement_rejections += 1
                continue
            author = verdict.peer_id
            if author == own or verdict.payload.swarm != self.swarm or self.book.is_banned(author):
                continue
            offers += [(s.informative_groups, author, s) for s in verdict.payload.batches]
        offers.sort(key=lambda o: -o[0])
        accepted: list[ExternalGroup] = []
        downloads = 0
        for _, author, summary in offers:
            if downloads >= self.max_batches:
                break
            if summary.size > self.limits.max_envelope_bytes or not self._done.add(summary.batch_id):
                continue  # too big, or already fetched in an earlier pass (announcements repeat batches)
            downloads += 1
            raw = self.transport.fetch_batch(summary.batch_id)
            if raw is None or protocol.message_id(raw) != summary.batch_id:
                continue
            outcome = self.validator.check(raw, local_round)
            if outcome.author is not None and outcome.rejected:
                self.book.rejected(outcome.author, outcome.rejected)
            if outcome.accepted:
                self.book.accepted(
                    author,
                    outcome.accepted[0].model,
                    len(outcome.accepted),
                    [r for g in outcome.accepted for r in g.rewards],
                )
                accepted += outcome.accepted
        return accepted
