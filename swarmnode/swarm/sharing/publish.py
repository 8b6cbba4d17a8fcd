"""Publishing: one signed batch of wire groups, the summary that offers it, and the signed announcement that
lists a signer's latest batches. The node's exchange publishes through it, and so do the attackers of the
tests and benches (composing its parts with their lies), so every publisher in the project seals, summarises
and announces the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import protocol
from swarmnode.groups import has_signal
from swarmnode.identity import Identity
from swarmnode.swarm.transports.base import Transport

ANNOUNCED_BATCHES = 4
"""How many of its latest batches a signer's announcement lists (by default)."""


def summary_of(envelope: bytes, batch: protocol.RolloutBatch) -> protocol.BatchSummary:
    """The true summary of a sealed batch, as an honest author offers it: its id and exact size, its round, its
    groups and informative groups, and the mean of its claimed rewards."""
    rewards = [r for g in batch.groups for r in g.rewards]
    return protocol.BatchSummary(
        protocol.message_id(envelope),
        len(envelope),
        batch.round,
        len(batch.groups),
        sum(1 for g in batch.groups if has_signal(g.rewards)),
        sum(rewards) / len(rewards) if rewards else 0.0,
    )


@dataclass
class Publisher:
    """One signer's publishing: `seal` a batch (signed at least a millisecond after the previous one, or stores
    refuse the announcement as not newer than the one they keep), then `store` and `announce` it, listing it
    before the signer's latest stored batches."""

    transport: Transport
    identity: Identity
    swarm: str
    model: str
    limits: protocol.Limits
    window_s: float = 60.0
    announce_batches: int = ANNOUNCED_BATCHES
    clock: Callable[[], float] = time.time
    timeout: Callable[[], float | None] = lambda: None
    """Seconds a transport operation may take (the exchange: what is left of the round's I/O budget)."""
    listed: list[protocol.BatchSummary] = field(default_factory=list)
    """The signer's stored batches its announcements list, newest first."""
    signed_ms: int = 0
    """The time of the latest batch sealed."""

    def seal(
        self, round_: int, policy_version: int, groups: Sequence[protocol.RolloutGroup]
    ) -> tuple[bytes, protocol.BatchSummary]:
        """A signed batch of `groups` and its true summary."""
        now_ms = self.signed_ms = max(int(self.clock() * 1000), self.signed_ms + 1)
        batch = protocol.RolloutBatch(self.swarm, round_, policy_version, now_ms, self.model, tuple(groups))
        envelope = protocol.seal_payload(batch, self.identity.key, self.limits)
        return envelope, summary_of(envelope, batch)

    def store(self, envelope: bytes, summary: protocol.BatchSummary) -> None:
        """Store the batch under its content id; from now on announcements list it (raises `TransportError`)."""
        self.transport.store_batch(summary.batch_id, envelope, timeout=self.timeout())
        most = min(self.announce_batches, self.limits.max_batches_per_announcement)
        self.listed = [summary, *self.listed][:most]

    def announce(self, round_: int) -> None:
        """Announce the listed batches in the window of the latest seal (raises `TransportError`)."""
        announcement = protocol.Announcement(self.swarm, round_, self.signed_ms, self.model, tuple(self.listed))
        window = int(self.signed_ms / 1000 // self.window_s)
        envelope = protocol.seal_payload(announcement, self.identity.key, self.limits)
        self.transport.announce(window, envelope, timeout=self.timeout())
