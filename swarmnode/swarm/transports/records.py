"""The record rules of a swarm, written once for every transport: what a node stores, serves and forwards.

A batch is a validly signed rollout batch of this swarm, filed under the SHA-256 of its bytes within the
envelope limit. An announcement is a validly signed `Announcement` of this swarm, filed under the peer that
signed it, for a live window (the current one, two behind, one ahead) and in its signer's bucket at one of
the swarm's levels (`base.SwarmSettings`); of one author's announcements a node keeps the newest *signed*
one (`replaces`). Where a peer chooses a record's expiry (a DHT), a batch lives at most `ttl_s` + the clock
skew past now and an announcement exactly `announcement_life_s` past its signed time, so that "latest expiry
wins" is "newest signed wins". Each rule is one small check that returns a reason (a member of `REASONS`) or
None; a transport composes the checks it applies and counts each reason under its own counter name
(`dht_...`, `libp2p_...`). What a node keeps for peers is bounded per author and in total
(`storage_budget.py`). A transport only says how it names the places records are filed under (`RecordKeys`):
plain ids and windows, or a DHT's hashed keys.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Protocol

import protocol
from swarmnode.swarm.transports.base import SETTINGS, announcement_bucket
from swarmnode.swarm.transports.envelope_head import envelope_head
from swarmnode.swarm.trust.reasons import RECORD_RULES, Refusal

MALFORMED = Refusal.RECORD_MALFORMED
OVERSIZE = Refusal.RECORD_OVERSIZE
BATCH_ID_MISMATCH = Refusal.RECORD_BATCH_ID_MISMATCH
BAD_ANNOUNCEMENT = Refusal.RECORD_BAD_ANNOUNCEMENT
ANNOUNCEMENT_WINDOW = Refusal.RECORD_ANNOUNCEMENT_WINDOW
BAD_BATCH = Refusal.RECORD_BAD_BATCH
EXPIRY = Refusal.RECORD_EXPIRY
OLDER_ANNOUNCEMENT = Refusal.RECORD_OLDER_ANNOUNCEMENT
OVER_BUDGET = Refusal.RECORD_OVER_BUDGET
REASONS: tuple[Refusal, ...] = tuple(r for r in RECORD_RULES if r is not Refusal.RECORD_FETCH_STREAM)
"""Why a record is refused: malformed where a transport cannot even read it, then one reason per rule:
`bad_batch` a batch value that is not a validly signed rollout batch of this swarm, `expiry` an expiry a
record's time does not allow, `older_announcement` an announcement signed before the one kept for its
author; `over_budget` counts records evicted to keep a node's storage within its `StorageBudget`."""

CLOCK_SKEW_S = SETTINGS.clock_skew_s
"""Clock difference between peers tolerated in expiries (the default of `swarm.max_clock_skew_s`)."""
VERIFIED_IDS = 4096
"""Batch ids whose signature was verified, remembered so that a batch stored, replicated and fetched again
is verified once."""
CHECKED_ANNOUNCEMENTS = 1024
"""Announcements whose signature was checked, by message id, with what the check found (~4 KB each at most,
with 16 listed batches: ~4 MB in all). Every reading pass reads a window's announcements again, and a DHT
lookup returns each from several nodes, so without this each is verified many times a minute (in
`tests/integration/test_offer_attacks.py`, 30 identities' phantom offers would keep a node's DHT thread busy
enough to slow its every reading pass)."""

WINDOWS_BEHIND = SETTINGS.windows_behind
WINDOWS_AHEAD = SETTINGS.windows_ahead
"""Live windows (`base.SwarmSettings`)."""
LEVELS = SETTINGS.levels
"""The levels an announcement may be filed at (2^level buckets per window each)."""


class RecordKeys(Protocol):
    """How a transport names the place a record is filed under."""

    def batch(self, batch_id: bytes) -> Hashable: ...

    def announcement(self, window: int, bucket: int, level: int = SETTINGS.base_level) -> Hashable: ...


class PlainKeys:
    """Batches under their id, announcements under (window, bucket) at the base level, (window, bucket, level)
    at the others."""

    def batch(self, batch_id: bytes) -> Hashable:
        return batch_id

    def announcement(self, window: int, bucket: int, level: int = SETTINGS.base_level) -> Hashable:
        return (window, bucket) if level == SETTINGS.base_level else (window, bucket, level)


class SwarmRules:
    """What every node of one swarm agrees on, and the transport's names for places."""

    def __init__(
        self,
        swarm: str | None,
        limits: protocol.Limits,
        *,
        window_s: float = SETTINGS.window_s,
        levels: range = LEVELS,
        keys: RecordKeys | None = None,
        clock: Callable[[], float] = time.time,
        ttl_s: float = 900.0,
        skew_s: float = CLOCK_SKEW_S,
    ) -> None:
        self.swarm = swarm
        """The swarm batches and announcements must name (None: any, for an in-process hub shared by tests)."""
        self.limits = limits
        self.window_s = window_s
        self.levels = levels
        """The levels announcements may be filed at."""
        self.keys: RecordKeys = keys or PlainKeys()
        self.clock = clock
        self.ttl_s = ttl_s
        """The longest a batch is kept (past now)."""
        self.skew_s = skew_s
        self._live: dict[int, dict[tuple[int, int] | None, frozenset[Hashable]]] = {}
        """Per live window, where announcements are filed in it: in one (level, bucket), or (None) anywhere."""
        self._verified: OrderedDict[bytes, str] = OrderedDict()
        self._checked: OrderedDict[bytes, Signed | None] = OrderedDict()

    @property
    def announcement_life_s(self) -> float:
        """How long an announcement lives past its signed time: the span of the live windows (every node of a
        swarm agrees on it, as on `window_s`)."""
        return (WINDOWS_BEHIND + WINDOWS_AHEAD + 1) * self.window_s

    def announcement_expiry(self, announcement: protocol.Announcement) -> float:
        """The one expiry an announcement is stored with where peers choose expiries (a DHT)."""
        return announcement.created_ms / 1000 + self.announcement_life_s

    def verified_author(self, batch_id: bytes) -> str | None:
        return self._verified.get(batch_id)

    def note_verified(self, batch_id: bytes, author: str) -> None:
        self._verified[batch_id] = author
        while len(self._verified) > VERIFIED_IDS:
            self._verified.popitem(last=False)

    def checked_announcement(self, envelope: bytes, check: Callable[[], Signed | None]) -> Signed | None:
        """What `check` finds of `envelope`, run once per announcement (by message id: its SHA-256) among the
        last `CHECKED_ANNOUNCEMENTS`."""
        announcement_id = protocol.message_id(envelope)
        try:
            return self._checked[announcement_id]
        except KeyError:  # not checked yet, or dropped meanwhile by another thread
            pass
        found = self._checked[announcement_id] = check()
        while len(self._checked) > CHECKED_ANNOUNCEMENTS:
            self._checked.popitem(last=False)
        return found

    def live_windows(self) -> range:
        now = int(self.clock() // self.window_s)
        return range(now - WINDOWS_BEHIND, now + WINDOWS_AHEAD + 1)

    def bucket_of(self, author: str, level: int = SETTINGS.base_level) -> int:
        return announcement_bucket(author, 1 << level)

    def is_live(self, key: Hashable, place: tuple[int, int] | None = None) -> bool:
        """Whether announcements of a live window are filed under `key`: in one (level, bucket), or (None) in
        any bucket of any level. Each window's keys are computed once (a DHT's keys are hashes)."""
        windows = self.live_windows()
        for w in [w for w in self._live if w not in windows]:
            del self._live[w]
        for w in windows:
            cache = self._live.setdefault(w, {})
            if place not in cache:
                places = [(k, b) for k in self.levels for b in range(1 << k)] if place is None else [place]
                cache[place] = frozenset(self.keys.announcement(w, b, k) for k, b in places)
            if key in cache[place]:
                return True
        return False

    def is_signers(self, key: Hashable, author: str) -> bool:
        """Whether `key` is where an author's announcements may be filed: its bucket at a level, in a live
        window."""
        return any(self.is_live(key, (k, self.bucket_of(author, k))) for k in self.levels)


@dataclass(frozen=True)
class BatchRecord:
    key: Hashable
    """Where it is filed (`RecordKeys.batch` of the id it claims)."""
    envelope: bytes
    expires: float | None = None
    """The expiry a peer asks for (a DHT); None where the node keeping it decides."""


@dataclass(frozen=True)
class AnnouncementRecord:
    envelope: bytes
    key: Hashable = None
    """Where it is filed (`RecordKeys.announcement`); None where the transport files it by its signer."""
    subkey: str | None = None
    """The author it is filed under; None where the transport files it under its signer."""
    expires: float | None = None
    """The expiry a peer asks for (a DHT); None where the node keeping it decides."""


@dataclass(frozen=True)
class Signed:
    """A validly signed announcement of this swarm."""

    author: str
    announcement: protocol.Announcement


BatchCheck = Callable[[SwarmRules, BatchRecord], Refusal | None]
PlacementCheck = Callable[[SwarmRules, AnnouncementRecord], Refusal | None]
"""A check of where and how big a record is, run before its signature is verified (cheap)."""
SignerCheck = Callable[[SwarmRules, AnnouncementRecord, Signed], Refusal | None]
"""A check that needs the announcement's verified author."""


def within_size(rules: SwarmRules, record: BatchRecord | AnnouncementRecord) -> Refusal | None:
    return OVERSIZE if len(record.envelope) > rules.limits.max_envelope_bytes else None


def content_addressed(rules: SwarmRules, record: BatchRecord) -> Refusal | None:
    return None if record.key == rules.keys.batch(protocol.message_id(record.envelope)) else BATCH_ID_MISMATCH


def in_live_window(rules: SwarmRules, record: AnnouncementRecord) -> Refusal | None:
    return None if rules.is_live(record.key) else ANNOUNCEMENT_WINDOW


def filed_under_signer(rules: SwarmRules, record: AnnouncementRecord, signed: Signed) -> Refusal | None:
    return None if record.subkey in (None, signed.author) else BAD_ANNOUNCEMENT


def in_signer_bucket(rules: SwarmRules, record: AnnouncementRecord, signed: Signed) -> Refusal | None:
    return None if rules.is_signers(record.key, signed.author) else ANNOUNCEMENT_WINDOW


def batch_expiry(rules: SwarmRules, record: BatchRecord) -> Refusal | None:
    """A batch lives at most `ttl_s` (and the clock skew) past now: junk cannot be pinned for a year."""
    if record.expires is None:
        return None
    return EXPIRY if record.expires > rules.clock() + rules.ttl_s + rules.skew_s else None


def announcement_expiry(rules: SwarmRules, record: AnnouncementRecord, signed: Signed) -> Refusal | None:
    """An announcement expires exactly `announcement_life_s` past its signed time, and is not signed in the
    future: so where the latest expiry is kept (a DHT), the newest signed one is, and an old announcement
    re-stored with a far expiry cannot pin its author's entry."""
    if record.expires is None:
        return None
    created_s = signed.announcement.created_ms / 1000
    if created_s > rules.clock() + rules.skew_s:
        return EXPIRY
    return EXPIRY if abs(record.expires - rules.announcement_expiry(signed.announcement)) > 1e-3 else None


def signed_batch(rules: SwarmRules, record: BatchRecord) -> Refusal | None:
    """A validly signed rollout batch of this swarm: its first bytes first, then its signature and payload
    (verified once per batch id; the caller checked the id is the hash of the bytes)."""
    batch_id = protocol.message_id(record.envelope)
    if rules.verified_author(batch_id) is not None:
        return None
    head = envelope_head(record.envelope)
    if head is None or head[0] != protocol.KIND_ROLLOUTS:
        return BAD_BATCH
    verdict = protocol.verify_and_decode(record.envelope, rules.limits)
    if not isinstance(verdict, protocol.Accepted) or not isinstance(verdict.payload, protocol.RolloutBatch):
        return BAD_BATCH
    if rules.swarm is not None and verdict.payload.swarm != rules.swarm:
        return BAD_BATCH
    rules.note_verified(batch_id, verdict.peer_id)
    return None


def batch_author(rules: SwarmRules, envelope: bytes) -> str:
    """The peer id of a batch's signer (verified, or read from its first bytes; "" when unreadable)."""
    known = rules.verified_author(protocol.message_id(envelope))
    if known is not None:
        return known
    head = envelope_head(envelope)
    return protocol.peer_id(head[1]) if head is not None else ""


def replaces(kept: protocol.Announcement | None, offered: protocol.Announcement) -> bool:
    """Whether an author's announcement replaces the one kept for it: only a newer signed one does."""
    return kept is None or offered.created_ms > kept.created_ms


BATCH_CHECKS: tuple[BatchCheck, ...] = (within_size, content_addressed, batch_expiry, signed_batch)
LIVE_WINDOW: tuple[PlacementCheck, ...] = (within_size, in_live_window)
ANY_WINDOW: tuple[PlacementCheck, ...] = (within_size,)
"""For a hub in one process (tests and simulations run their own clocks)."""
SIGNER_CHECKS: tuple[SignerCheck, ...] = (filed_under_signer, in_signer_bucket, announcement_expiry)


def signed_announcement(rules: SwarmRules, envelope: bytes) -> Signed | None:
    """The author of a validly signed announcement of this swarm, or None (checked once per announcement)."""
    return rules.checked_announcement(envelope, lambda: _signed_announcement(rules, envelope))


def _signed_announcement(rules: SwarmRules, envelope: bytes) -> Signed | None:
    verdict = protocol.verify_and_decode(envelope, rules.limits)
    if not isinstance(verdict, protocol.Accepted) or not isinstance(verdict.payload, protocol.Announcement):
        return None
    if rules.swarm is not None and verdict.payload.swarm != rules.swarm:
        return None
    return Signed(verdict.peer_id, verdict.payload)


def check_batch(
    rules: SwarmRules, record: BatchRecord, checks: tuple[BatchCheck, ...] = BATCH_CHECKS
) -> Refusal | None:
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
) -> Signed | Refusal:
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
