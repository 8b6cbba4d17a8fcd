"""The peer book: what this node knows about each peer, how far its offers are trusted, and who is ignored.

A peer that keeps sending invalid data (bad signatures, malformed payloads, wrong answers to rebuilt
questions) is ignored for `ban_s` seconds once its recent invalid count reaches `ban_after`. A peer whose
offers fail or lie (`LIES`: a batch that is not there, a size or summary that does not match the bytes, its
rewards misreported, this node's own batches offered back) gets a strike for each: with any strike it may
be downloaded from once per round, at `offer_strikes` it is ignored for `ban_s`, and each batch it delivers
that validates cleanly takes one strike off (an honest peer's occasional miss heals).
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import protocol
from swarmnode.run_dir import PeerRow

PROTOCOL_INVALID = frozenset(
    {
        "bad_signature",
        "malformed_envelope",
        "malformed_payload",
        "trailing_bytes",
        "non_canonical_envelope",
        "bad_utf8",
        "ext_type",
        "too_deep",
        "non_finite_float",
        "schema",
        "limit_exceeded",
        "question_mismatch",
        "oversize",
    }
)
"""Reasons that only a broken or hostile peer produces; they count toward a ban. Stale, duplicate and quota
rejections are ordinary in a busy swarm and do not."""

LIES = frozenset(
    {"offer_missing", "size_mismatch", "summary_mismatch", "misreported_reward", "own_batch", "batch_id_mismatch"}
)
"""Offers that failed or lied: each is a strike against the peer (see the module docstring)."""

PROVEN, UNKNOWN, ON_PROBATION = 0, 1, 2
"""Download tiers: peers that delivered valid groups (and have at most one strike: an honest peer's batch can
go missing), peers not heard from yet, peers with strikes. A round downloads from a better tier first, so
new identities (free to make) and liars cannot crowd out peers with a record."""


@dataclass
class PeerRecord:
    peer_id: str
    first_seen: float
    last_seen: float
    model: str = ""
    accepted_groups: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    recent_invalid: int = 0
    strikes: int = 0
    """Failed or lying offers not yet healed by clean deliveries."""
    banned_until: float = 0.0
    reward_sum: float = 0.0
    """Sum of this node's own scores of the peer's accepted completions (for the mean shown in the TUI)."""
    scored_completions: int = 0

    @property
    def mean_reward(self) -> float:
        return self.reward_sum / self.scored_completions if self.scored_completions else 0.0

    @property
    def score(self) -> float:
        """Accepted groups minus five times the invalid messages and lying offers: a ranking, not a protocol
        value."""
        invalid = sum(n for reason, n in self.rejected.items() if reason in PROTOCOL_INVALID | LIES)
        return self.accepted_groups - 5.0 * invalid


class PeerBook:
    def __init__(
        self,
        ban_after: int = 5,
        ban_s: float = 600.0,
        max_peers: int = 10_000,
        clock: Callable[[], float] = time.time,
        offer_strikes: int = 4,
    ) -> None:
        self.ban_after = ban_after
        self.offer_strikes = offer_strikes
        self.ban_s = ban_s
        self.max_peers = max_peers
        self.clock = clock
        self.peers: dict[str, PeerRecord] = {}

    def _record(self, peer_id: str) -> PeerRecord:
        now = self.clock()
        record = self.peers.get(peer_id)
        if record is None:
            if len(self.peers) >= self.max_peers:  # forget the peer heard from least recently
                oldest = min(self.peers.values(), key=lambda r: r.last_seen)
                del self.peers[oldest.peer_id]
            record = self.peers[peer_id] = PeerRecord(peer_id, now, now)
        record.last_seen = now
        return record

    def is_banned(self, peer_id: str) -> bool:
        record = self.peers.get(peer_id)
        return record is not None and record.banned_until > self.clock()

    def accepted(self, peer_id: str, model: str, groups: int, rewards: list[float]) -> None:
        record = self._record(peer_id)
        record.model = model[:128]
        record.accepted_groups += groups
        record.reward_sum += sum(rewards)
        record.scored_completions += len(rewards)

    def rejected(self, peer_id: str, reasons: Counter[str]) -> None:
        record = self._record(peer_id)
        record.rejected.update(reasons)
        invalid = sum(n for reason, n in reasons.items() if reason in PROTOCOL_INVALID)
        if invalid:
            record.recent_invalid += invalid
            if record.recent_invalid >= self.ban_after:
                record.banned_until = self.clock() + self.ban_s
                record.recent_invalid = 0
        lies = sum(n for reason, n in reasons.items() if reason in LIES)
        if lies:
            record.strikes += lies
            if record.strikes >= self.offer_strikes:
                record.banned_until = self.clock() + self.ban_s
                record.strikes = 0

    def delivered(self, peer_id: str) -> None:
        """A batch offered by this peer validated cleanly: one strike off."""
        record = self.peers.get(peer_id)
        if record is not None:
            record.strikes = max(0, record.strikes - 1)

    def tier(self, peer_id: str) -> int:
        """`PROVEN`, `UNKNOWN` or `ON_PROBATION` (see there)."""
        record = self.peers.get(peer_id)
        if record is None:
            return UNKNOWN
        if record.strikes >= (2 if record.accepted_groups else 1):  # one miss does not demote a proven peer
            return ON_PROBATION
        return PROVEN if record.accepted_groups else UNKNOWN

    def allowance(self, peer_id: str, quota: int) -> int:
        """Batches this peer's offers may be downloaded this round: `quota`, or one while it has strikes."""
        record = self.peers.get(peer_id)
        return 1 if record is not None and record.strikes else quota

    def download_order(
        self, offers: list[tuple[str, protocol.BatchSummary]], cap: int, rng: random.Random
    ) -> list[tuple[str, protocol.BatchSummary]]:
        """The order to consider (announcer, offer) pairs in: by tier, and within a tier every announcer's
        best offer before anyone's second (claims capped at `cap`, the per-peer share; ties in random order),
        so no set of announcers, lying or not, takes a round. Repeats of one announcer's offer are dropped."""
        ranked = []
        rank: Counter[str] = Counter()
        seen: set[tuple[str, bytes]] = set()
        for author, summary in sorted(offers, key=lambda o: -o[1].informative_groups):
            if (author, summary.batch_id) in seen:
                continue  # the same peer's announcement read in both windows
            seen.add((author, summary.batch_id))
            claim = min(summary.informative_groups, cap)
            ranked.append((self.tier(author), rank[author], -claim, rng.random(), author, summary))
            rank[author] += 1
        ranked.sort(key=lambda r: r[:4])
        return [(author, summary) for *_, author, summary in ranked]

    def snapshot(self) -> list[PeerRow]:
        now = self.clock()
        return [
            PeerRow(
                peer_id=r.peer_id,
                model=r.model,
                last_seen_s=now - r.last_seen,
                accepted_groups=r.accepted_groups,
                rejected=dict(r.rejected),
                mean_reward=r.mean_reward,
                score=r.score,
                banned=r.banned_until > now,
            )
            for r in sorted(self.peers.values(), key=lambda r: -r.last_seen)
        ]
