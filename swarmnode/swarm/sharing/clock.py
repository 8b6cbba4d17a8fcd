"""How far this node's clock is off its peers' (`ClockWatch`), from the times peers sign into their
announcements: the swarm's freshness checks (batch age, announcement windows, record expiries) tolerate
`swarm.max_clock_skew_s` of difference, and a node beyond it is refused by its peers or refuses them. The
node tells its user about how far off it is, before that happens.

A peer's announcement is signed when it publishes; this node first sees it a little later (its polling,
the network). So `created - first seen` is the peer's clock minus this node's, less that delay: of a peer's
recent announcements the largest value is the closest. The node's offset is minus the median of those
over its peers (robust to a few peers whose own clocks are off).
"""

from __future__ import annotations

import statistics
from collections import OrderedDict, deque

WATCHED_PEERS = 256
"""Peers whose recent announcements are remembered (the least recently heard from are forgotten first)."""
SAMPLES_PER_PEER = 8
SAY_ABOVE_S = 10.0
"""An offset at least this large is said (smaller ones are within the network's own delays)."""


class ClockWatch:
    def __init__(self, peers: int = WATCHED_PEERS, samples: int = SAMPLES_PER_PEER) -> None:
        self._peers = peers
        self._samples = samples
        self._newest: OrderedDict[str, float] = OrderedDict()
        """Per peer: the signing time of its newest announcement seen."""
        self._gaps: dict[str, deque[float]] = {}
        """Per peer: `created - first seen` of its latest new announcements."""
        self._said: float | None = None

    def note(self, author: str, created_s: float, now_s: float) -> None:
        """An announcement of `author` signed at `created_s` read at `now_s` (this node's clock): counted once,
        when it is new."""
        newest = self._newest.get(author)
        if newest is not None and created_s <= newest:
            return
        self._newest[author] = created_s
        self._newest.move_to_end(author)
        self._gaps.setdefault(author, deque(maxlen=self._samples)).append(created_s - now_s)
        while len(self._newest) > self._peers:
            gone, _ = self._newest.popitem(last=False)
            self._gaps.pop(gone, None)

    def watched(self) -> int:
        """Peers remembered now (at most `peers`)."""
        return len(self._gaps)

    def offset(self) -> tuple[float, int] | None:
        """(seconds this node's clock is ahead of its peers' (negative: behind), peers it is measured on), or
        None before any peer was seen."""
        if not self._gaps:
            return None
        return -statistics.median(max(gaps) for gaps in self._gaps.values()), len(self._gaps)

    def line(self, tolerated_s: float) -> str | None:
        """A line for the user when the offset is first at least `SAY_ABOVE_S`, when it moves by that much
        since it was said, and when it is back within it; None otherwise."""
        found = self.offset()
        if found is None:
            return None
        offset, peers = found
        if abs(offset) < SAY_ABOVE_S:
            if self._said is None:
                return None
            self._said = None
            return f"this node's clock is back within {SAY_ABOVE_S:.0f} s of its peers' ({peers} peers)"
        if self._said is not None and abs(offset - self._said) < SAY_ABOVE_S:
            return None
        self._said = offset
        side = "ahead of" if offset > 0 else "behind"
        beyond = abs(offset) > tolerated_s
        return f"this node's clock is about {abs(offset):.0f} s {side} its peers' (median of {peers} peers); " + (
            f"that is beyond the {tolerated_s:.0f} s the swarm tolerates (swarm.max_clock_skew_s): peers "
            "refuse what it shares and it refuses theirs. Set the system clock (NTP)"
            if beyond
            else f"the swarm tolerates {tolerated_s:.0f} s (swarm.max_clock_skew_s): set the system clock (NTP)"
        )
