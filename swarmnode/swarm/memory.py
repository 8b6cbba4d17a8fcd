"""An in-memory transport: many nodes in one process share a `MemoryHub` (tests and simulations).

Like a DHT with record validation, the hub stores an announcement only under its own author's peer id
(checked by signature), so no peer can overwrite another's entry; entries expire after `ttl_s`.
Readers still verify everything they get.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable

import protocol
from swarmnode.swarm.transport import ANNOUNCE_BUCKETS, announcement_bucket


class MemoryHub:
    def __init__(
        self, ttl_s: float = 900.0, limits: protocol.Limits | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self.ttl_s = ttl_s
        self.limits = limits or protocol.Limits()
        self.clock = clock
        self._batches: dict[bytes, tuple[float, bytes]] = {}
        self._announcements: dict[tuple[int, int], dict[str, tuple[float, bytes]]] = {}
        self.bytes_served = 0

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
        self.bytes_downloaded = 0

    def store_batch(self, batch_id: bytes, envelope: bytes, timeout: float | None = None) -> None:
        if hashlib.sha256(envelope).digest() != batch_id or len(envelope) > self.hub.limits.max_envelope_bytes:
            raise ValueError("a batch is stored under the SHA-256 of its envelope, within the size limit")
        self.hub._batches[batch_id] = (self.hub.clock() + self.hub.ttl_s, envelope)

    def announce(self, window: int, envelope: bytes, timeout: float | None = None) -> None:
        verdict = protocol.verify_and_decode(envelope, self.hub.limits)
        if not isinstance(verdict, protocol.Accepted) or not isinstance(verdict.payload, protocol.Announcement):
            raise ValueError("only valid signed announcements can be stored")
        entries = self.hub._announcements.setdefault((window, announcement_bucket(verdict.peer_id, self.buckets)), {})
        entries[verdict.peer_id] = (self.hub.clock() + self.hub.ttl_s, envelope)

    def announcements(self, window: int, bucket: int | None = None, timeout: float | None = None) -> list[bytes]:
        self.hub._expire()
        buckets = range(self.buckets) if bucket is None else [bucket]
        found = [e for b in buckets for _, e in self.hub._announcements.get((window, b), {}).values()]
        self.bytes_downloaded += sum(len(e) for e in found)
        return found

    def fetch_batch(self, batch_id: bytes, timeout: float | None = None) -> bytes | None:
        self.hub._expire()
        entry = self.hub._batches.get(batch_id)
        if entry is None:
            return None
        self.bytes_downloaded += len(entry[1])
        return entry[1]

    def rejections(self) -> dict[str, int]:
        return {}

    def take_notices(self) -> list[str]:
        return []

    def visible_maddrs(self) -> list[str]:
        return []  # nothing listens: the hub is in this process

    def close(self) -> None:
        return None

    def connect(self, maddr: str) -> None:
        return None  # every transport on the same hub already sees the others
