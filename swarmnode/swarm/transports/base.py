"""The `Transport` interface every backend implements: in-memory, the hivemind DHT, GossipSub over py-libp2p.

The scheme (see docs/ARCHITECTURE.md): an author stores each batch under its content id and one small
signed announcement per time window under its own peer id; a reader lists the window's announcements,
chooses, and fetches only the batches it wants. Bytes a reader downloads per round therefore depend on
how much it chooses to read, not on the size of the swarm. Announcements are spread over 2^level buckets
per window by author; each node estimates the swarm's size from the buckets it reads and picks its level
(`BucketLevel`), so a bucket holds a few announcements at any size.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class SwarmSettings:
    """What every node of one swarm must share, in one place (protocol/SPEC.md 6d): the time windows, the
    announcement buckets' levels, and where a writer files its announcement. (The message limits are
    `protocol.Limits`; the window's length is `swarm.window_s`, whose default is `window_s` here.)"""

    window_s: float = 60.0
    windows_behind: int = 2
    windows_ahead: int = 1
    """Live windows: readers list the current and the previous window, and the next one near its start; one
    more behind and one ahead leave room for clock skew between peers."""
    clock_skew_s: float = 30.0
    """Clock difference between peers tolerated in expiries (the default of `swarm.max_clock_skew_s`)."""
    base_level: int = 3
    """A level k has 2^k announcement buckets per window; a new node starts reading at this one (8 buckets)."""
    max_level: int = 10
    """The highest level (1,024 buckets): loads stay within `high_load` to about 3,000 nodes. A writer files
    its announcement at every level (8 small records a window), so a reader at any level finds every writer:
    nodes whose estimates of the swarm differ never miss each other."""
    low_load: float = 0.75
    high_load: float = 3.0
    """Hysteresis: a node changes level when its estimate puts more than `high_load` announcements in a bucket
    of its level or fewer than `low_load` (so estimates a factor 4 apart keep a level)."""
    smoothing: float = 0.2
    """Weight of one round's estimate of the swarm's size in the running one, once a node has 1 / smoothing of
    them (before, each of its first estimates weighs as much as the base level's middle load and the others:
    a running mean, so a new node's level follows its first reads at once but one odd bucket does not)."""

    @property
    def levels(self) -> range:
        return range(self.base_level, self.max_level + 1)


SETTINGS = SwarmSettings()
ANNOUNCE_BUCKETS = 1 << SETTINGS.base_level
"""Announcement buckets per window at the base level, where every node starts (`SwarmSettings`)."""


def announcement_bucket(peer_id: str, buckets: int) -> int:
    """An author's bucket among `buckets` (a power of two: buckets nest, the bucket at level k + 1 holds half
    of the one at level k)."""
    return int.from_bytes(hashlib.sha256(b"swarmnode/bucket\0" + peer_id.encode("ascii")).digest()[:4], "big") % buckets


def filing_levels(settings: SwarmSettings = SETTINGS) -> range:
    """The levels a writer files its announcement at: all of them (the reader's level is its own choice)."""
    return settings.levels


def best_level(size: float, settings: SwarmSettings = SETTINGS) -> int:
    """The level whose load for a swarm of `size` nodes is nearest the middle of the hysteresis band."""
    middle = math.sqrt(settings.low_load * settings.high_load)
    wanted = round(math.log2(max(size, 1.0) / middle))
    return min(settings.max_level, max(settings.base_level, wanted))


class BucketLevel:
    """One node's estimate of the swarm's size and the level it reads at. Each round it reads some buckets;
    from them it estimates the size (`observe`) and smooths it (`SwarmSettings.smoothing`); when the load of
    a bucket at its level leaves the hysteresis band, it moves to `best_level`."""

    def __init__(self, settings: SwarmSettings = SETTINGS) -> None:
        self.settings = settings
        self.level = settings.base_level
        self.estimate = math.sqrt(settings.low_load * settings.high_load) * (1 << settings.base_level)
        """The smoothed estimate of how many nodes announce (before any read: the base level's middle load)."""
        self.samples = 0

    def observe(self, size: float) -> int:
        """One round's estimate of the swarm's size; returns the level to use from now on."""
        s = self.settings
        self.samples += 1
        self.estimate += max(s.smoothing, 1 / (self.samples + 1)) * (size - self.estimate)
        load = self.estimate / (1 << self.level)
        if not s.low_load <= load <= s.high_load:
            self.level = best_level(self.estimate, s)
        return self.level


def size_sample(level: int, counts: list[tuple[int, int]], known: int) -> float:
    """One round's estimate of the swarm's size from the buckets read at `level`: per bucket, (announcements
    in it other than the reader's own, how many of them are peers the reader ranks by: `known` such peers
    in all). Buckets are read because they hold known peers, so only the others are a fair sample of the
    rest of the swarm: size ~ the reader + known + 2^level * the others' mean per bucket (each bucket read in
    every window the reader lists, `OfferReader.read_windows`: a node announces at least once a round, not every
    window)."""
    others = sum(c - m for c, m in counts) / len(counts)
    return 1 + known + others * (1 << level)


class TransportError(Exception):
    """A network operation failed or timed out; the node carries on (silo for that round) and retries later."""


class Transport(Protocol):
    """What the node needs from a network: the three backends are `MemoryTransport` (an in-process hub),
    `HivemindTransport` (the hivemind DHT: pull) and `Libp2pTransport` (GossipSub: push). All apply the record
    rules of `records.py` to what they store and serve.

    Every operation on records takes `timeout` (seconds, None for the transport's own default, which also
    caps it); a network transport raises `TransportError` when it cannot finish in time or the network
    fails. What a caller offers that the record rules refuse raises `ValueError` at once where this node
    can tell (a network transport may instead see every node refuse it: `TransportError`)."""

    level: int
    """The level this node reads and writes at (2^level buckets per window; `BucketLevel`, set by its
    exchange): `announcements` reads this level (`announce` files at every level: `filing_levels`)."""

    @property
    def buckets(self) -> int:
        """Announcement buckets per window at this node's level."""
        ...

    bytes_downloaded: int
    """Bytes of announcements and batches this node has read through `announcements` and `fetch_batch`."""

    def store_batch(self, batch_id: bytes, envelope: bytes, timeout: float | None = None) -> None:
        """Make a batch envelope fetchable by its content id (`batch_id`: the SHA-256 of the envelope; a
        `ValueError` when it is not)."""
        ...

    def announce(self, window: int, envelope: bytes, timeout: float | None = None) -> None:
        """Publish this node's signed announcement for a time window (replacing its author's previous one), in
        its author's bucket at each of the `filing_levels` (a `ValueError` when it is not a validly signed
        announcement)."""
        ...

    def announcements(self, window: int, bucket: int | None = None, timeout: float | None = None) -> list[bytes]:
        """The announcement envelopes currently visible for a window, in one bucket of this node's level or
        (None) in all of them (unverified bytes: the reader verifies them)."""
        ...

    def fetch_batch(self, batch_id: bytes, timeout: float | None = None) -> bytes | None:
        """The envelope stored under `batch_id`, or None when nobody has it (unverified bytes)."""
        ...

    def rejections(self) -> dict[str, int]:
        """Records this transport itself refused from peers (its record or topic validator), by counter name
        (`dht_...`, `libp2p_...`; none for the in-process hub, where a refusal raises at once)."""
        ...

    def wire_bytes(self) -> int:
        """Bytes this node took in from peers, as far as the transport can tell: for a pull transport what it
        read (`bytes_downloaded`); for a push transport everything its host received, wanted or not."""
        ...

    def take_notices(self) -> list[str]:
        """One-line notices for the user since the last call (for example: a child process was restarted)."""
        ...

    def visible_maddrs(self) -> list[str]:
        """Addresses other nodes can join through (none for a transport without a network); `TransportError`
        when the network part does not answer."""
        ...

    def connect(self, maddr: str) -> None:
        """Dial one more peer now and keep it among the peers this node reaches (for example across a healed
        partition); `TransportError` when it does not answer. A transport without a network ignores it."""
        ...

    def close(self) -> None:
        """Stop: leave the network and end any child process or thread. Idempotent."""
        ...
