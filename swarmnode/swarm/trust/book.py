"""The peer book: what this node knows about each peer, how far its offers are trusted, and who is ignored.

A peer that keeps sending invalid data (bad signatures, malformed payloads, wrong answers to rebuilt
questions) is ignored for `ban_s` seconds once its recent invalid count reaches `ban_after`. A peer whose
offers fail or lie (`reasons.STRIKE`: a batch that is not there, a size or summary that does not match the
bytes, its rewards misreported, this node's own batches offered back) gets a strike for each: with any strike it may
be downloaded from once per round, at `offer_strikes` it is ignored for `ban_s`, and each batch it delivers
that validates cleanly takes one strike off (an honest peer's occasional miss heals).

A peer's *tenure* starts at the node's round of its first accepted group and lasts while it keeps
delivering or announcing (a gap of `trust_rounds` rounds, or a ban, starts it again); its *cohort* is the
`trust_rounds`-long stretch of rounds its tenure began in. What a round makes of tenures (newcomers, juniors,
elders) is `standing.py`'s; the reasons and what each does to a peer are `reasons.py`'s.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from swarmnode.groups import UNPLACED
from swarmnode.run_dir import PeerRow
from swarmnode.swarm.trust.reasons import BAN, STRIKE, refusal

PROVEN, UNKNOWN, ON_PROBATION = 0, 1, 2
"""Download tiers: *proven* peers (they delivered valid groups, and have at most one strike: an honest peer's
batch can go missing), peers not heard from yet, and *struck* peers on probation. A round downloads from a
better tier first, so new identities (free to make) and liars cannot crowd out peers with a record."""

NO_COHORT = UNPLACED.cohort
"""The cohort of a peer without tenure: after every real one."""


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
    first_round: int | None = None
    """The node's round of the first accepted group of the peer's current tenure (None: no tenure)."""
    last_round: int = 0
    """The node's round of its latest accepted group."""

    @property
    def mean_reward(self) -> float:
        return self.reward_sum / self.scored_completions if self.scored_completions else 0.0

    @property
    def score(self) -> float:
        """Accepted groups minus five times the invalid messages and lying offers: a ranking, not a protocol
        value."""
        invalid = sum(n for reason, n in self.rejected.items() if refusal(reason).category in (BAN, STRIKE))
        return self.accepted_groups - 5.0 * invalid


class PeerBook:
    def __init__(
        self,
        ban_after: int = 5,
        ban_s: float = 600.0,
        max_peers: int = 10_000,
        clock: Callable[[], float] = time.time,
        offer_strikes: int = 4,
        trust_rounds: int = 0,
    ) -> None:
        self.ban_after = ban_after
        self.offer_strikes = offer_strikes
        self.ban_s = ban_s
        self.max_peers = max_peers
        self.trust_rounds = trust_rounds
        """Rounds a peer stays a newcomer after its tenure starts, and a cohort's length (0: no seniority, every
        peer is one cohort)."""
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

    def accepted(self, peer_id: str, model: str, groups: int, rewards: list[float], round_: int = 0) -> None:
        """Groups of this peer passed validation in the node's round `round_` (its tenure starts or goes on)."""
        record = self._record(peer_id)
        if record.first_round is None or round_ - record.last_round > self.trust_rounds:
            record.first_round = round_
        record.last_round = max(record.last_round, round_)
        record.model = model[:128]
        record.accepted_groups += groups
        record.reward_sum += sum(rewards)
        record.scored_completions += len(rewards)

    def rejected(self, peer_id: str, reasons: Counter[str]) -> None:
        """Charge the peer with `reasons` (codes of `Refusal` members: any other raises ValueError), applying
        each one's category: toward a ban, a strike, or neither."""
        charged = Counter({refusal(reason): n for reason, n in reasons.items()})
        record = self._record(peer_id)
        record.rejected.update(charged)
        invalid = sum(n for reason, n in charged.items() if reason.category == BAN)
        if invalid:
            record.recent_invalid += invalid
            if record.recent_invalid >= self.ban_after:
                self._ban(record)
        lies = sum(n for reason, n in charged.items() if reason.category == STRIKE)
        if lies:
            record.strikes += lies
            if record.strikes >= self.offer_strikes:
                self._ban(record)

    def _ban(self, record: PeerRecord) -> None:
        """Ignore the peer for `ban_s`; its counts of recent invalid data and strikes, and its tenure, start
        again."""
        record.banned_until = self.clock() + self.ban_s
        record.recent_invalid = record.strikes = 0
        record.first_round = None

    def tenure(self, peer_id: str, round_: int) -> tuple[int, bool]:
        """(cohort, newcomer by tenure) of a peer in the node's round `round_`: the `trust_rounds`-long stretch
        its tenure began in, and whether that tenure is younger than `trust_rounds`; a peer without tenure is
        (`NO_COHORT`, True). Without seniority (`trust_rounds` = 0) every peer is (0, False). Whether it counts
        as a newcomer this round is `standing.Standing`'s (only while the node knows an elder)."""
        if not self.trust_rounds:
            return 0, False
        record = self.peers.get(peer_id)
        if record is None or record.first_round is None or round_ - record.last_round > self.trust_rounds:
            return NO_COHORT, True
        return record.first_round // self.trust_rounds, round_ - record.first_round < self.trust_rounds

    def present(self, peer_id: str, round_: int) -> None:
        """A valid announcement of this peer was read in round `round_`: a tenure goes on (the node downloads
        only what it needs, so an older peer may go undownloaded for rounds while it is there)."""
        record = self.peers.get(peer_id)
        if record is not None and record.first_round is not None and round_ - record.last_round <= self.trust_rounds:
            record.last_round = max(record.last_round, round_)

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
                banned_for_s=max(0.0, r.banned_until - now),
                strikes=r.strikes,
                invalid=r.recent_invalid,
            )
            for r in sorted(self.peers.values(), key=lambda r: -r.last_seen)
        ]
