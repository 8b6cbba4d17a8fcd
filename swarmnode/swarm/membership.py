"""One node's membership of a swarm, as the round sees it: the `Swarm` interface, with two implementations:
in line (`front.InlineSwarm`: the round does its own swarm I/O under one deadline) and with an I/O thread
(`sharing.background.BackgroundSwarm`: the round never waits on the network). `front.open_swarm` picks one
from the config. What they share (identity, counters, the view the round reads) is here.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from swarmnode.groups import Group
from swarmnode.run_dir import PeerRow, SwarmCounters
from swarmnode.swarm.sharing.exchange import RolloutExchange


@dataclass(frozen=True)
class View:
    """What the round reads of the swarm: copies of the exchange's state (made by the I/O thread after each
    pass, or in line when asked)."""

    peers: list[PeerRow] = field(default_factory=list)
    rejected: dict[str, int] = field(default_factory=dict)
    misreported_rewards: int = 0
    fetch_misses: int = 0
    io_errors: int = 0
    clock_offset: tuple[float, int] | None = None

    def counters(self) -> SwarmCounters:
        """Every swarm counter since start: rejections by reason (of offers, of downloaded batches, of the
        transport's records), peers known and banned, misreported rewards, failed fetches, I/O errors."""
        return {
            "rejected": self.rejected,
            "peers": len(self.peers),
            "banned_peers": sum(1 for p in self.peers if p["banned"]),
            "misreported_rewards": self.misreported_rewards,
            "fetch_misses": self.fetch_misses,
            "io_errors": self.io_errors,
        }

    def offset_s(self) -> float | None:
        """Seconds this node's clock seems ahead of its peers' (negative: behind; `clock.ClockWatch`), None
        before it has seen a peer."""
        return None if self.clock_offset is None else round(self.clock_offset[0], 1)


def view_of(ex: RolloutExchange) -> View:
    """What the round reads of the swarm, copied from the exchange."""
    return View(
        peers=ex.book.snapshot(),
        rejected=dict(sorted(ex.rejections().items())),
        misreported_rewards=ex.validator.misreported,
        fetch_misses=ex.tally.misses,
        io_errors=ex.tally.io_errors,
        clock_offset=ex.reader.clock_watch.offset(),
    )


class Swarm(ABC):
    """What a node shares and takes each round, and what it counts. `want_groups` informative groups a round
    (`swarm.external_groups`), at most `per_peer_groups` of them from one peer."""

    def __init__(
        self, exchange: RolloutExchange, *, want_groups: int, per_peer_groups: int, owns_transport: bool = False
    ) -> None:
        self._exchange = exchange
        self._want = want_groups
        self._per_peer = per_peer_groups
        self._owns_transport = owns_transport
        self._closed = False

    @abstractmethod
    def share(self, round_: int, policy_version: int, groups: Sequence[Group]) -> list[Group]:
        """Publish this node's groups of round `round_`; return up to `swarm.external_groups` informative groups
        of peers' (at most `max_share_per_peer` of them from one peer), validated and re-scored here, each
        carrying its author's seniority. Never raises on a transport failure (see `trouble`)."""

    @abstractmethod
    def note_gated(self, by_source: Mapping[str, int]) -> None:
        """Peers' completions the learner's likelihood gate dropped, by author: charged as `improbable`."""

    @abstractmethod
    def trouble(self) -> list[str]:
        """Lines for the user about swarm I/O since the last call (transport notices, I/O errors, rate-limited)."""

    @abstractmethod
    def view(self) -> View:
        """The peers and counters as the round reads them (in line: copied from the exchange on each call, so a
        round reads one view)."""

    def waiting(self) -> int:
        """Peers' groups fetched and validated for the next round, not yet taken (0 in line)."""
        return 0

    def io_seconds(self) -> float:
        """Seconds spent on swarm I/O and validation off the round's critical path (0 in line: then it is the
        rounds' `share_s`)."""
        return 0.0

    @property
    def peer_id(self) -> str:
        return self._exchange.identity.peer_id

    def addresses(self) -> list[str]:
        """Addresses other nodes can join through (none on the in-memory transport)."""
        return self._exchange.transport.visible_maddrs()

    def peers(self) -> list[PeerRow]:
        """The peer book, most recently heard from first."""
        return self.view().peers

    def counters(self) -> SwarmCounters:
        """`View.counters` now."""
        return self.view().counters()

    def clock_offset(self) -> float | None:
        """`View.offset_s` now."""
        return self.view().offset_s()

    def close(self) -> None:
        """Leave the swarm: closes the transport if `open_swarm` opened it. Idempotent."""
        if not self._closed and self._owns_transport:
            self._exchange.transport.close()
        self._closed = True
