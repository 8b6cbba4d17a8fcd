"""An in-memory transport: many nodes in one process share a `MemoryHub` (tests and simulations).

Like a DHT with record validation, the hub keeps only what the record rules (`records.py`) allow: a batch
under the hash of its bytes, an announcement only under its own author's peer id (checked by signature), so
no peer can overwrite another's entry; entries expire after `ttl_s`. The hub files any window and any swarm
(simulations run their own clocks and names). Readers still verify everything they get.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import protocol
from swarmnode.swarm import records
from swarmnode.swarm.transport import ANNOUNCE_BUCKETS


class MemoryHub:
    """What the nodes of one process share: batches by id, announcements by (window, bucket) and author."""

    def __init__(
        self, ttl_s: float = 900.0, limits: protocol.Limits | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self.ttl_s = ttl_s
        self.limits = limits or protocol.Limits()
        self.clock = clock
        self._batches: dict[bytes, tuple[float, bytes]] = {}
        self._announcements: dict[tuple[int, int], dict[str, tuple[float, bytes]]] = {}

    def put_batch(self, batch_id: bytes, envelope: bytes) -> None:
        self._batches[batch_id] = (self.clock() + self.ttl_s, envelope)

    def put_announcement(self, window: int, bucket: int, author: str, envelope: bytes) -> None:
        """File `envelope` as `author`'s announcement, replacing its previous one in that window and bucket."""
        self._announcements.setdefault((window, bucket), {})[author] = (self.clock() + self.ttl_s, envelope)

    def batch(self, batch_id: bytes) -> bytes | None:
        self._expire()
        entry = self._batches.get(batch_id)
        return None if entry is None else entry[1]

    def announcements(self, window: int, buckets: Iterable[int]) -> list[bytes]:
        self._expire()
        return [e for b in buckets for _, e in self._announcements.get((window, b), {}).values()]

    def _expire(self) -> None:
        now = self.clock()
        self._batches = {k: v for k, v in self._batches.items() if v[0] > now}
        for window in list(self._announcements):
            live = {k: v for k, v in self._announcements[window].items() if v[0] > now}
            if live:
                self._announcements[window] = live
            else:
                del self._announcements[window]


class MemoryTransport:
    """One node's view of a `MemoryHub`."""

    def __init__(self, hub: MemoryHub, buckets: int = ANNOUNCE_BUCKETS) -> None:
        self.hub = hub
        self.buckets = buckets
        self.rules = records.SwarmRules(None, hub.limits, buckets=buckets, clock=hub.clock)
        self.bytes_downloaded = 0

    def store_batch(self, batch_id: bytes, envelope: bytes, timeout: float | None = None) -> None:
        if records.check_batch(self.rules, records.BatchRecord(batch_id, envelope)) is not None:
            raise ValueError("a batch is stored under the SHA-256 of its envelope, within the size limit")
        self.hub.put_batch(batch_id, envelope)

    def announce(self, window: int, envelope: bytes, timeout: float | None = None) -> None:
        signed = records.check_announcement(self.rules, records.AnnouncementRecord(envelope), records.ANY_WINDOW, ())
        if not isinstance(signed, records.Signed):
            raise ValueError("only valid signed announcements can be stored")
        self.hub.put_announcement(window, self.rules.bucket_of(signed.author), signed.author, envelope)

    def announcements(self, window: int, bucket: int | None = None, timeout: float | None = None) -> list[bytes]:
        found = self.hub.announcements(window, range(self.buckets) if bucket is None else [bucket])
        self.bytes_downloaded += sum(len(e) for e in found)
        return found

    def fetch_batch(self, batch_id: bytes, timeout: float | None = None) -> bytes | None:
        found = self.hub.batch(batch_id)
        self.bytes_downloaded += len(found or b"")
        return found

    def wire_bytes(self) -> int:
        return self.bytes_downloaded  # a pull transport: what it read

    def rejections(self) -> dict[str, int]:
        return {}  # refused records raise at once, to the caller that offered them

    def take_notices(self) -> list[str]:
        return []

    def visible_maddrs(self) -> list[str]:
        return []  # nothing listens: the hub is in this process

    def connect(self, maddr: str) -> None:
        return None  # every transport on the same hub already sees the others

    def close(self) -> None:
        return None
