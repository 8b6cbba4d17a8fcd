"""The peer book: what this node knows about each peer, how far its offers are trusted, and who is ignored.

A peer that keeps sending invalid data (bad signatures, malformed payloads, wrong answers to rebuilt
questions) is ignored for `ban_s` seconds once its recent invalid count reaches `ban_after`. A peer whose
offers fail or lie (`LIES`: a batch that is not there, a size or summary that does not match the bytes, its
rewards misreported, this node's own batches offered back) gets a strike for each: with any strike it may
be downloaded from once per round, at `offer_strikes` it is ignored for `ban_s`, and each batch it delivers
that validates cleanly takes one strike off (an honest peer's occasional miss heals).

Seniority (issue 16: sybils). Identities are free, so what a node takes from peers must not be decided by
how many identities announce. A peer's tenure starts at the node's round of its first accepted group and
lasts while it keeps delivering or announcing (a gap of `trust_rounds` rounds, or a ban, starts it again).
While the node knows no older peer (a new swarm), nobody is treated as young. Peers whose
tenure is younger than `trust_rounds` are *young*: together they may take only a bounded share of a round
(downloads: `max_untrusted`, and once older peers cover the round only `swarm.newcomer_share` of J more;
the J slots: `newcomer_share`, then what older peers leave; peers of later cohorts share that reserve with
them, so an honest latecomer keeps being taken after it is no longer young). Older peers
are ranked by *cohort* (the `trust_rounds`-long stretch of rounds their tenure began in): earlier cohorts
first, peers of one cohort as equals. So identities that arrive after the node's peers have a record can
never crowd them out, however many they are, and an honest newcomer is still taken from its first round
on (within the young share). Identities that were there from the start are as senior as the honest ones:
against those only a cost to make an identity would help (not built; protocol/SPEC.md 6c).
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

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

DEFENSES = frozenset({"off_format", "improbable"})
"""Per-completion counts of the defenses against valid data (issue 16: text outside the answer format, and
completions the likelihood gate dropped): an honest peer's sampling can trigger them too, so they are
never a strike or a ban."""


def counts_against(reason: str) -> Literal["ban", "strike", "neither"]:
    """What a rejection does to the peer charged with it: "ban" (`PROTOCOL_INVALID`: toward `ban_after`),
    "strike" (`LIES`), or "neither" (the `DEFENSES` and every ordinary refusal: stale, duplicate, quota...).
    The one reading of the sets above outside this module (the status API, the dashboard)."""
    if reason in PROTOCOL_INVALID:
        return "ban"
    if reason in LIES:
        return "strike"
    return "neither"


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
        trust_rounds: int = 0,
    ) -> None:
        self.ban_after = ban_after
        self.offer_strikes = offer_strikes
        self.ban_s = ban_s
        self.max_peers = max_peers
        self.trust_rounds = trust_rounds
        """Rounds a tenure stays young, and a cohort's length (0: no seniority, every peer is one cohort)."""
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
        record = self._record(peer_id)
        record.rejected.update(reasons)
        invalid = sum(n for reason, n in reasons.items() if reason in PROTOCOL_INVALID)
        if invalid:
            record.recent_invalid += invalid
            if record.recent_invalid >= self.ban_after:
                self._ban(record)
        lies = sum(n for reason, n in reasons.items() if reason in LIES)
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

    def standing(self, peer_id: str, round_: int) -> tuple[int, bool]:
        """(cohort, young) of a peer in the node's round `round_` (see the module docstring); a peer without
        tenure is young, in no cohort yet. Without seniority (`trust_rounds` = 0) every peer is (0, False)."""
        if not self.trust_rounds:
            return 0, False
        record = self.peers.get(peer_id)
        if record is None or record.first_round is None or round_ - record.last_round > self.trust_rounds:
            return 1 << 30, True
        return record.first_round // self.trust_rounds, round_ - record.first_round < self.trust_rounds

    def present(self, peer_id: str, round_: int) -> None:
        """A valid announcement of this peer was read in round `round_`: a tenure goes on (the node downloads
        only what it needs, so an older peer may go undownloaded for rounds while it is there)."""
        record = self.peers.get(peer_id)
        if record is not None and record.first_round is not None and round_ - record.last_round <= self.trust_rounds:
            record.last_round = max(record.last_round, round_)

    def first_cohort(self, round_: int) -> int | None:
        """The earliest cohort of the peers with a record that are no longer young (None: there are none, or
        no seniority)."""
        if not self.trust_rounds:
            return None
        cohorts = [
            c for c, young in (self.standing(p, round_) for p in self.peers if self.tier(p) == PROVEN) if not young
        ]
        return min(cohorts, default=None)

    def has_elders(self, round_: int) -> bool:
        """Whether the node knows a peer with a record that is no longer young (False without seniority)."""
        return self.first_cohort(round_) is not None

    def for_sampling(self, peers: Iterable[str], round_: int) -> dict[str, tuple[int, bool]]:
        """(cohort, junior) of each of `peers` in round `round_`: the sampler's `standing`."""
        first = self.first_cohort(round_)
        return {p: (self.standing(p, round_)[0], self.junior(p, round_, first)) for p in set(peers)}

    def junior(self, peer_id: str, round_: int, first: int | None) -> bool:
        """Young, or of a later cohort than `first` (`first_cohort`): the peers that share the newcomers'
        reserve of a round. False while there are no elders (`first` None)."""
        if first is None:
            return False
        cohort, young = self.standing(peer_id, round_)
        return young or cohort > first

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
        self, offers: list[tuple[str, protocol.BatchSummary]], cap: int, rng: random.Random, round_: int = 0
    ) -> list[tuple[str, protocol.BatchSummary]]:
        """The order to consider (announcer, offer) pairs in: by tier, then older peers before young ones and
        earlier cohorts first (`standing` in round `round_`), and within that every announcer's best offer
        before anyone's second (claims capped at `cap`, the per-peer share; ties in random order), so no set
        of announcers, lying or not, takes a round. Repeats of one announcer's offer are dropped."""
        ranked = []
        rank: Counter[str] = Counter()
        seen: set[tuple[str, bytes]] = set()
        for author, summary in sorted(offers, key=lambda o: -o[1].informative_groups):
            if (author, summary.batch_id) in seen:
                continue  # the same peer's announcement read in both windows
            seen.add((author, summary.batch_id))
            claim = min(summary.informative_groups, cap)
            cohort, young = self.standing(author, round_)
            ranked.append((self.tier(author), young, cohort, rank[author], -claim, rng.random(), author, summary))
            rank[author] += 1
        ranked.sort(key=lambda r: r[:6])
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
                banned_for_s=max(0.0, r.banned_until - now),
                strikes=r.strikes,
                invalid=r.recent_invalid,
            )
            for r in sorted(self.peers.values(), key=lambda r: -r.last_seen)
        ]
