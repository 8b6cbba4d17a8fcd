"""What the GossipSub host keeps and refuses (`State`): every topic message passes the record rules
(`records.py`) before it is kept or forwarded; batches are kept within a `StorageBudget`, announcements as
each author's newest signed one per window, and each refusal is counted as `libp2p_<reason>`. Nothing here
needs py-libp2p, so it runs (and is tested) without a host."""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable

import msgpack

import protocol
from swarmnode.swarm.transports import records
from swarmnode.swarm.transports.base import SETTINGS
from swarmnode.swarm.transports.storage_budget import StorageBudget
from swarmnode.swarm.trust.reasons import Refusal


class TopicKeys:
    """Where the topic's messages file records: a batch under its id; an announcement names only its window,
    and every receiver files it in its signer's bucket itself."""

    def batch(self, batch_id: bytes) -> Hashable:
        return batch_id

    def announcement(self, window: int, bucket: int, level: int = SETTINGS.base_level) -> Hashable:
        return window


class State:
    """What this host keeps (batches and announcements that passed the record rules; batches within `budget`)
    and what it refused."""

    def __init__(self, swarm: str, limits: protocol.Limits, window_s: float, budget: StorageBudget) -> None:
        self.rules = records.SwarmRules(swarm, limits, window_s=window_s, keys=TopicKeys())
        self.limits = limits
        self.budget = budget
        self.batches: dict[bytes, bytes] = {}
        self.announcements: dict[tuple[int, int], dict[str, tuple[int, bytes]]] = {}
        """Per (window, bucket at the highest level), each author's newest signed announcement: (its created_ms,
        its envelope). Buckets nest, so a bucket at a lower level is the union of some of these (`listed`)."""
        self.rejected: Counter[str] = Counter()
        self.received_bytes = 0
        """Bytes of other peers' messages and fetched batches this host took in (its real download)."""

    def refuse(self, reason: Refusal) -> None:
        """Count a record refused, as `libp2p_<rule>`."""
        self.rejected[f"libp2p_{reason.rule}"] += 1

    def keep_batch(self, batch_id: bytes, data: bytes) -> None:
        if batch_id in self.batches:
            return
        self.batches[batch_id] = data
        for place in self.budget.keep(batch_id, records.batch_author(self.rules, data), len(data)):
            if isinstance(place, bytes):
                self.batches.pop(place, None)
                self.refuse(records.OVER_BUDGET)

    def check_batch(self, batch_id: object, data: object) -> bool:
        """Whether a batch passes the record rules (a refusal is counted)."""
        if not isinstance(batch_id, bytes) or not isinstance(data, bytes):
            self.refuse(records.MALFORMED)
            return False
        reason = records.check_batch(self.rules, records.BatchRecord(batch_id, data))
        if reason is not None:
            self.refuse(reason)
        return reason is None

    def check_announcement(self, window: object, data: object) -> records.Signed | None:
        """A valid announcement for a live window, or None (and counted)."""
        if not isinstance(window, int) or not isinstance(data, bytes):
            self.refuse(records.MALFORMED)
            return None
        verdict = records.check_announcement(self.rules, records.AnnouncementRecord(data, window))
        if isinstance(verdict, Refusal):
            self.refuse(verdict)
            return None
        return verdict

    def keep_announcement(self, window: int, signed: records.Signed, data: bytes) -> bool:
        """Keep an author's announcement unless the one kept for it is newer signed (then False: dropped, not
        forwarded, and not counted, as gossip delivers an honest author's announcements out of order too)."""
        entries = self.announcements.setdefault((window, self.rules.bucket_of(signed.author, SETTINGS.max_level)), {})
        kept = entries.get(signed.author)
        if kept is not None and kept[1] != data and signed.announcement.created_ms <= kept[0]:
            return False
        entries[signed.author] = (signed.announcement.created_ms, data)
        oldest = self.rules.live_windows().start - 1
        for key in [k for k in self.announcements if k[0] < oldest]:
            del self.announcements[key]
        return True

    def listed(self, window: int, bucket: int | None, level: int) -> list[bytes]:
        """The announcements kept for a window, in one bucket at `level` or (None) in all."""
        mask = (1 << level) - 1
        return [
            e
            for (w, b), entries in self.announcements.items()
            if w == window and (bucket is None or b & mask == bucket)
            for _, e in entries.values()
        ]

    def accept_message(self, data: bytes) -> bool:
        """Validate one GossipSub message, and keep what it carries."""
        if len(data) > self.limits.max_envelope_bytes + 1024:
            self.refuse(records.OVERSIZE)
            return False
        try:
            item = msgpack.unpackb(data, raw=False, max_bin_len=self.limits.max_envelope_bytes, max_str_len=64)
        except Exception:  # any decoding failure of peer bytes is a rejection, never a crash
            self.refuse(records.MALFORMED)
            return False
        if not isinstance(item, list) or len(item) != 3 or item[0] not in ("ann", "batch"):
            self.refuse(records.MALFORMED)
            return False
        if item[0] == "ann":
            signed = self.check_announcement(item[1], item[2])
            return signed is not None and self.keep_announcement(item[1], signed, item[2])
        if not self.check_batch(item[1], item[2]):
            return False
        self.keep_batch(item[1], item[2])
        return True
