"""Where each peer stands in one of the node's rounds: the words of seniority, each defined here once.

Identities are free, so what a node takes from peers must not be decided by how many identities announce.
From the book's tenures and tiers (`book.py`):

- *proven*: a peer that delivered valid groups and has at most one strike (`book.PROVEN`).
- *struck*: a peer with strikes not yet healed (downloaded from once a round; `book.ON_PROBATION` from two
  strikes for a proven peer, from one for others).
- *elder*: a proven peer whose tenure is at least `trust_rounds` old.
- *newcomer*: a peer whose tenure is younger than `trust_rounds`, or who has none, while the node knows an
  elder. In a new swarm (no elder yet) nobody is a newcomer.
- *junior*: a newcomer, or a peer of a later cohort than the earliest elders'. Juniors share a reserve of each
  round: downloads (`swarm.max_batches_per_round` // 2 for peers that are not proven elders, and once elders
  cover the round only `swarm.newcomer_share` of J more groups) and the J training slots (`newcomer_slots`
  first, then what elders leave). So identities that arrive after the node's peers have a record can never
  crowd them out, however many they are, an honest newcomer is taken from its first round on, and a
  latecomer keeps its share after it stops being a newcomer. Identities there from the start are as senior
  as the honest ones: against those only a cost to make an identity would help (not built; protocol/SPEC.md 6c).

A round makes one `Standing` (in its reading of offers) and carries it: the plan of downloads reads it, and
each group it admits carries its author's `Seniority`, which the sampler reads.
"""

from __future__ import annotations

from swarmnode.groups import Seniority
from swarmnode.swarm.trust.book import PROVEN, PeerBook


class Standing:
    """Where peers stand in the node's round `round_`, as the book has it when each is first asked about."""

    def __init__(self, book: PeerBook, round_: int) -> None:
        self.book = book
        self.round = round_
        self.first = self._first_cohort()
        """The earliest elders' cohort (None: no elder, or no seniority)."""
        self._known: dict[str, tuple[int, bool, bool]] = {}

    def _first_cohort(self) -> int | None:
        book = self.book
        if not book.trust_rounds:
            return None
        cohorts = [
            c for c, new in (book.tenure(p, self.round) for p in book.peers if book.tier(p) == PROVEN) if not new
        ]
        return min(cohorts, default=None)

    def _place(self, peer_id: str) -> tuple[int, bool, bool]:
        """(cohort, newcomer, junior)."""
        found = self._known.get(peer_id)
        if found is None:
            cohort, new = self.book.tenure(peer_id, self.round)
            newcomer = self.first is not None and new
            junior = newcomer or (self.first is not None and cohort > self.first)
            found = self._known[peer_id] = (cohort, newcomer, junior)
        return found

    def newcomer(self, peer_id: str) -> bool:
        return self._place(peer_id)[1]

    def junior(self, peer_id: str) -> bool:
        return self._place(peer_id)[2]

    def proven(self, peer_id: str) -> bool:
        """Proven now (the tier changes within a round: a first clean delivery proves a peer)."""
        return self.book.tier(peer_id) == PROVEN

    def elder(self, peer_id: str) -> bool:
        """A proven peer that is not a newcomer (in a new swarm: every proven peer)."""
        return self.proven(peer_id) and not self.newcomer(peer_id)

    def seniority(self, peer_id: str) -> Seniority:
        """What a group of the peer carries to the sampler."""
        cohort, _, junior = self._place(peer_id)
        return Seniority(cohort, junior)

    def rank(self, peer_id: str) -> tuple[bool, int]:
        """How early a peer's offers are considered: elders and earlier cohorts first."""
        cohort, newcomer, _ = self._place(peer_id)
        return newcomer, cohort
