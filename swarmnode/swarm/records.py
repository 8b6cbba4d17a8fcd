"""The record rules of a swarm, written once for every transport: what a node stores, serves and forwards.

A batch is filed under the SHA-256 of its bytes and fits the envelope limit. An announcement is a validly
signed `Announcement` of this swarm, filed under the peer that signed it, for a live window (the current
one, two behind, one ahead) and in its signer's bucket. Each rule is one small check that returns a reason
(a key of `REASONS`) or None; a transport composes the checks it applies and counts each reason under its
own counter name (`dht_...`, `libp2p_...`). A transport only says how it names the places records are
filed under (`RecordKeys`): plain ids and windows, or a DHT's hashed keys.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Protocol

import protocol
from swarmnode.swarm.transport import ANNOUNCE_BUCKETS, announcement_bucket

MALFORMED = "malformed"
OVERSIZE = "oversize"
BATCH_ID_MISMATCH = "batch_id_mismatch"
BAD_ANNOUNCEMENT = "bad_announcement"
ANNOUNCEMENT_WINDOW = "announcement_window"
REASONS = (MALFORMED, OVERSIZE, BATCH_ID_MISMATCH, BAD_ANNOUNCEMENT, ANNOUNCEMENT_WINDOW)
"""Why a record is refused: malformed where a transport cannot even read it, then one reason per rule."""

WINDOWS_BEHIND = 2
WINDOWS_AHEAD = 1
"""Live windows: readers list the current and the previous window; one more behind and one ahead leave room
for clock skew between peers."""


class RecordKeys(Protocol):
    """How a transport names the place a record is filed under."""

    def batch(self, batch_id: bytes) -> Hashable: ...

    def announcement(self, window: int, bucket: int) -> Hashable: ...


class PlainKeys:
    """Batches under their id, announcements under (window, bucket)."""

    def batch(self, batch_id: bytes) -> Hashable:
        return batch_id

    def announcement(self, window: int, bucket: int) -> Hashable:
        return (window, bucket)


class SwarmRules:
    """What every node of one swarm agrees on, and the transport's names for places."""

    def __init__(
        self,
        swarm: str | None,
        limits: protocol.Limits,
        *,
        window_s: float = 60.0,
        buckets: int = ANNOUNCE_BUCKETS,
        keys: RecordKeys | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.swarm = swarm
        """The swarm announcements must name (None: any, for an in-process hub shared by tests)."""
        self.limits = limits
        self.window_s = window_s
        self.buckets = buckets
        self.keys: RecordKeys = keys or PlainKeys()
        self.clock = clock
        self._live: tuple[int, dict[int | None, frozenset[Hashable]]] = (0, {})

    def live_windows(self) -> range:
        now = int(self.clock() // self.window_s)
        return range(now - WINDOWS_BEHIND, now + WINDOWS_AHEAD + 1)

    def bucket_of(self, author: str) -> int:
        return announcement_bucket(author, self.buckets)

    def live_keys(self, bucket: int | None = None) -> frozenset[Hashable]:
        """Where announcements of the live windows are filed: in one bucket, or (None) in any. Computed once
        per window (a DHT's keys are hashes)."""
        windows = self.live_windows()
        if self._live[0] != windows.start:
            self._live = (windows.start, {})
        cache = self._live[1]
        if bucket not in cache:
            buckets = range(self.buckets) if bucket is None else [bucket]
            cache[bucket] = frozenset(self.keys.announcement(w, b) for w in windows for b in buckets)
        return cache[bucket]


@dataclass(frozen=True)
class BatchRecord:
    key: Hashable
    """Where it is filed (`RecordKeys.batch` of the id it claims)."""
    envelope: bytes


@dataclass(frozen=True)
class AnnouncementRecord:
    envelope: bytes
    key: Hashable = None
    """Where it is filed (`RecordKeys.announcement`); None where the transport files it by its signer."""
    subkey: str | None = None
    """The author it is filed under; None where the transport files it under its signer."""


@dataclass(frozen=True)
class Signed:
    """A validly signed announcement of this swarm."""

    author: str
    announcement: protocol.Announcement


BatchCheck = Callable[[SwarmRules, BatchRecord], str | None]
PlacementCheck = Callable[[SwarmRules, AnnouncementRecord], str | None]
"""A check of where and how big a record is, run before its signature is verified (cheap)."""
SignerCheck = Callable[[SwarmRules, AnnouncementRecord, Signed], str | None]
"""A check that needs the announcement's verified author."""


def within_size(rules: SwarmRules, record: BatchRecord | AnnouncementRecord) -> str | None:
    return OVERSIZE if len(record.envelope) > rules.limits.max_envelope_bytes else None


def content_addressed(rules: SwarmRules, record: BatchRecord) -> str | None:
    return None if record.key == rules.keys.batch(protocol.message_id(record.envelope)) else BATCH_ID_MISMATCH


def in_live_window(rules: SwarmRules, record: AnnouncementRecord) -> str | None:
    return None if record.key in rules.live_keys() else ANNOUNCEMENT_WINDOW


def filed_under_signer(rules: SwarmRules, record: AnnouncementRecord, signed: Signed) -> str | None:
    return None if record.subkey in (None, signed.author) else BAD_ANNOUNCEMENT


def in_signer_bucket(rules: SwarmRules, record: AnnouncementRecord, signed: Signed) -> str | None:
    return None if record.key in rules.live_keys(rules.bucket_of(signed.author)) else ANNOUNCEMENT_WINDOW


BATCH_CHECKS: tuple[BatchCheck, ...] = (within_size, content_addressed)
LIVE_WINDOW: tuple[PlacementCheck, ...] = (within_size, in_live_window)
ANY_WINDOW: tuple[PlacementCheck, ...] = (within_size,)
"""For a hub in one process (tests and simulations run their own clocks)."""
SIGNER_CHECKS: tuple[SignerCheck, ...] = (filed_under_signer, in_signer_bucket)


def signed_announcement(rules: SwarmRules, envelope: bytes) -> Signed | None:
    """The author of a validly signed announcement of this swarm, or None."""
    verdict = protocol.verify_and_decode(envelope, rules.limits)
    if not isinstance(verdict, protocol.Accepted) or not isinstance(verdict.payload, protocol.Announcement):
        return None
    if rules.swarm is not None and verdict.payload.swarm != rules.swarm:
        return None
    return Signed(verdict.peer_id, verdict.payload)


def check_batch(rules: SwarmRules, record: BatchRecord, checks: tuple[BatchCheck, ...] = BATCH_CHECKS) -> str | None:
    """The first reason to refuse a batch record, or None."""
    for check in checks:
        reason = check(rules, record)
        if reason is not None:
            return reason
    return None


def check_announcement(
    rules: SwarmRules,
    record: AnnouncementRecord,
    placement: tuple[PlacementCheck, ...] = LIVE_WINDOW,
    signer: tuple[SignerCheck, ...] = SIGNER_CHECKS,
) -> Signed | str:
    """The signed announcement, or the first reason to refuse it: where it is filed and its size first (no
    signature is verified for a record that could not stand there), then its signature, then its author."""
    for place in placement:
        reason = place(rules, record)
        if reason is not None:
            return reason
    signed = signed_announcement(rules, record.envelope)
    if signed is None:
        return BAD_ANNOUNCEMENT
    for check in signer:
        reason = check(rules, record, signed)
        if reason is not None:
            return reason
    return signed
