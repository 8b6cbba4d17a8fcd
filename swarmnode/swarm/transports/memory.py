"""An in-memory transport: many nodes in one process share a `MemoryHub` (tests and simulations).

Like a DHT with record validation, the hub keeps only what the record rules (`records.py`) allow: a signed
batch under the hash of its bytes, an announcement only under its own author's peer id (checked by
signature) and only newer signed than the one it replaces, so no peer can overwrite or roll back another's
entry; entries expire after `ttl_s`, and what the hub keeps is bounded per author and in total. An
announcement is filed in its author's bucket at every level (`filing_levels`). The hub
files any window and any swarm (simulations run their own clocks and names). Readers verify all they get.
Its nodes' I/O threads (`swarm.background_sharing`) may use it at once: one lock guards it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Iterable

import protocol
from swarmnode.swarm.transports import records
from swarmnode.swarm.transports.base import SETTINGS, filing_levels
from swarmnode.swarm.transports.storage_budget import StorageBudget


class MemoryHub:
    """What the nodes of one process share: batches by id, announcements by (window, level, bucket) and author,
    within a `StorageBudget` (oldest records evicted first)."""

    def __init__(
        self,
        ttl_s: float = 900.0,
        limits: protocol.Limits | None = None,
        clock: Callable[[], float] = time.time,
        budget: StorageBudget | None = None,
    ) -> None:
        self.ttl_s = ttl_s
        self.limits = limits or protocol.Limits()
        self.clock = clock
        self.budget = budget or StorageBudget()
        self._batches: dict[bytes, tuple[float, bytes]] = {}
        self._announcements: dict[tuple[int, int, int], dict[str, tuple[float, bytes, int]]] = {}
        self._lock = threading.RLock()
        self._next_expiry = float("inf")
        """The earliest expiry of anything kept: `_expire` scans only once the clock passes it (so a hub of
        1,000 nodes is not scanned whole on every read)."""

    def put_batch(self, batch_id: bytes, envelope: bytes, author: str = "") -> None:
        with self._lock:
            self._batches[batch_id] = (self.clock() + self.ttl_s, envelope)
            self._next_expiry = min(self._next_expiry, self.clock() + self.ttl_s)
            self._evict(self.budget.keep(("batch", batch_id), author, len(envelope)))

    def put_announcement(self, window: int, bucket: int, signed: records.Signed, envelope: bytes, level: int) -> bool:
        """File `envelope` as its author's announcement in that window, level and bucket, replacing an older
        signed one; False when the one kept is newer (or as new and other bytes)."""
        with self._lock:
            entries = self._announcements.setdefault((window, level, bucket), {})
            kept = entries.get(signed.author)
            if kept is not None and kept[1] == envelope:
                return True
            if kept is not None and signed.announcement.created_ms <= kept[2]:
                return False
            entries[signed.author] = (self.clock() + self.ttl_s, envelope, signed.announcement.created_ms)
            self._next_expiry = min(self._next_expiry, self.clock() + self.ttl_s)
            self._evict(self.budget.keep(("ann", window, level, bucket, signed.author), signed.author, len(envelope)))
            return True

    def batch(self, batch_id: bytes) -> bytes | None:
        with self._lock:
            self._expire()
            entry = self._batches.get(batch_id)
            return None if entry is None else entry[1]

    def announcements(self, window: int, buckets: Iterable[int], level: int = SETTINGS.base_level) -> list[bytes]:
        with self._lock:
            self._expire()
            return [e for b in buckets for _, e, _ in self._announcements.get((window, level, b), {}).values()]

    def stored_bytes(self) -> int:
        """What the hub keeps for peers, as its budget counts it."""
        return self.budget.used

    def _evict(self, places: list[Hashable]) -> None:
        for place in places:
            if isinstance(place, tuple) and place[0] == "batch":
                self._batches.pop(place[1], None)
            elif isinstance(place, tuple):
                self._announcements.get((place[1], place[2], place[3]), {}).pop(place[4], None)

    def _expire(self) -> None:
        now = self.clock()
        if now < self._next_expiry:
            return
        for batch_id in [k for k, v in self._batches.items() if v[0] <= now]:
            del self._batches[batch_id]
            self.budget.forget(("batch", batch_id))
        for place, entries in list(self._announcements.items()):
            for author in [a for a, v in entries.items() if v[0] <= now]:
                del entries[author]
                self.budget.forget(("ann", *place, author))
            if not entries:
                del self._announcements[place]
        kept = [v[0] for v in self._batches.values()] + [v[0] for e in self._announcements.values() for v in e.values()]
        self._next_expiry = min(kept, default=float("inf"))


class MemoryTransport:
    """One node's view of a `MemoryHub`."""

    def __init__(self, hub: MemoryHub, level: int = SETTINGS.base_level) -> None:
        self.hub = hub
        self.level = level
        self.rules = records.SwarmRules(None, hub.limits, clock=hub.clock)
        self.bytes_downloaded = 0

    @property
    def buckets(self) -> int:
        return 1 << self.level

    def store_batch(self, batch_id: bytes, envelope: bytes, timeout: float | None = None) -> None:
        if records.check_batch(self.rules, records.BatchRecord(batch_id, envelope)) is not None:
            raise ValueError("a batch is a signed rollout batch stored under the SHA-256 of its envelope")
        self.hub.put_batch(batch_id, envelope, records.batch_author(self.rules, envelope))

    def announce(self, window: int, envelope: bytes, timeout: float | None = None) -> None:
        signed = records.check_announcement(self.rules, records.AnnouncementRecord(envelope), records.ANY_WINDOW, ())
        if not isinstance(signed, records.Signed):
            raise ValueError("only valid signed announcements can be stored")
        for level in filing_levels():
            bucket = self.rules.bucket_of(signed.author, level)
            if not self.hub.put_announcement(window, bucket, signed, envelope, level):
                raise ValueError("its author's announcement kept for this window is newer")

    def announcements(self, window: int, bucket: int | None = None, timeout: float | None = None) -> list[bytes]:
        found = self.hub.announcements(window, range(self.buckets) if bucket is None else [bucket], self.level)
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
