"""The `Transport` interface every backend implements: in-memory, the hivemind DHT, GossipSub over py-libp2p.

The scheme (see docs/ARCHITECTURE.md): an author stores each batch under its content id and one small
signed announcement per time window under its own peer id; a reader lists the window's announcements,
chooses, and fetches only the batches it wants. Bytes a reader downloads per round therefore depend on
how much it chooses to read, not on the size of the swarm.
"""

from __future__ import annotations

import hashlib
from typing import Protocol

ANNOUNCE_BUCKETS = 8
"""Announcements of one window are spread over this many keys by author (`announcement_bucket`), so a
reader can list a few buckets instead of every peer's announcement: what it reads per round stays flat as
the swarm grows. Every node of a swarm must use the same number."""


def announcement_bucket(peer_id: str, buckets: int) -> int:
    return int.from_bytes(hashlib.sha256(b"swarmnode/bucket\0" + peer_id.encode("ascii")).digest()[:4], "big") % buckets


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

    buckets: int
    """Announcement buckets per window (`ANNOUNCE_BUCKETS` unless the swarm chose otherwise)."""

    bytes_downloaded: int
    """Bytes of announcements and batches this node has read through `announcements` and `fetch_batch`."""

    def store_batch(self, batch_id: bytes, envelope: bytes, timeout: float | None = None) -> None:
        """Make a batch envelope fetchable by its content id (`batch_id`: the SHA-256 of the envelope; a
        `ValueError` when it is not)."""
        ...

    def announce(self, window: int, envelope: bytes, timeout: float | None = None) -> None:
        """Publish this node's signed announcement for a time window (replacing its author's previous one), in
        its author's bucket (a `ValueError` when it is not a validly signed announcement)."""
        ...

    def announcements(self, window: int, bucket: int | None = None, timeout: float | None = None) -> list[bytes]:
        """The announcement envelopes currently visible for a window, in one bucket or (None) in all of them
        (unverified bytes: the reader verifies them)."""
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
