"""(Starts and listens on nothing, so no `nat_port_map` here: `hivemind_dht.py` opens DHT nodes with it off.)
How the swarm's records sit in hivemind's DHT: the keys batches and announcements are filed under
(`batch_key`, `announcement_key`, and their hashes, `DHTKeys`), the record rules (`records.py`) applied to a
record as hivemind serialises it (`record_problem`), the validator every DHT node runs with them
(`make_record_validator`), and the counter each refusal is counted under (`DHT_COUNTERS`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable
from typing import Any, Protocol

from swarmnode.swarm.transports import records
from swarmnode.swarm.transports.base import SETTINGS
from swarmnode.swarm.trust.reasons import Refusal


class RecordCounter(Protocol):
    """The record validator as this transport sees it: what it refused, by counter name."""

    counts: Counter[str]

    def validate(self, record: Any) -> bool: ...


def batch_key(swarm: str, batch_id: bytes) -> str:
    return f"{swarm}/batch/{batch_id.hex()}"


def announcement_key(swarm: str, window: int, bucket: int, level: int = SETTINGS.base_level) -> str:
    """The key of a bucket of a window at a level (the base level's keys are those of the 8 fixed buckets
    before levels, so nodes of either version meet in a small swarm)."""
    if level == SETTINGS.base_level:
        return f"{swarm}/ann/{window}/{bucket}"
    return f"{swarm}/ann/{window}/{level}/{bucket}"


def msgpack_bin(data: bytes) -> bytes | None:
    """The payload of a msgpack bin value (how hivemind serialises bytes), parsed strictly by hand."""
    width = {0xC4: 1, 0xC5: 2, 0xC6: 4}.get(data[0], 0) if len(data) >= 2 else 0
    body = data[1 + width :]
    return body if width and len(body) == int.from_bytes(data[1 : 1 + width], "big") else None


def _msgpack_str(data: bytes) -> str | None:
    """A short msgpack str (fixstr or str8), parsed strictly by hand."""
    if not data:
        return None
    if 0xA0 <= data[0] <= 0xBF:
        length, body = data[0] - 0xA0, data[1:]
    elif data[0] == 0xD9 and len(data) >= 2:
        length, body = data[1], data[2:]
    else:
        return None
    if len(body) != length:
        return None
    try:
        return body.decode("ascii")
    except UnicodeDecodeError:
        return None


DHT_COUNTERS = {r: r.counter for r in records.REASONS}
"""The counter each record rule's refusal is counted under (`rejections`; `Refusal.counter`)."""


class DHTKeys:
    """The DHT keys records are filed under: the hashes (`DHTID`) of `batch_key` and `announcement_key`."""

    def __init__(self, swarm: str) -> None:
        self.swarm = swarm

    def batch(self, batch_id: bytes) -> Hashable:
        return _dht_id(batch_key(self.swarm, batch_id))

    def announcement(self, window: int, bucket: int, level: int = SETTINGS.base_level) -> Hashable:
        return _dht_id(announcement_key(self.swarm, window, bucket, level))


def _dht_id(key: str) -> bytes:
    from hivemind.dht.routing import DHTID

    return bytes(DHTID.generate(source=key).to_bytes())


def record_problem(
    rules: records.SwarmRules, key: bytes, subkey: bytes, value: bytes, expires: float | None = None
) -> Refusal | None:
    """Why a DHT record (as hivemind serialises it) breaks the swarm's record rules, or None."""
    envelope = msgpack_bin(value)
    if envelope is None:
        return records.MALFORMED
    if subkey == b"\xc0":  # no subkey: a batch under the hash of its bytes
        return records.check_batch(rules, records.BatchRecord(key, envelope, expires))
    author = _msgpack_str(subkey)
    if author is None:
        return records.BAD_ANNOUNCEMENT
    verdict = records.check_announcement(rules, records.AnnouncementRecord(envelope, key, author, expires))
    return verdict if isinstance(verdict, Refusal) else None


def make_record_validator(rules: records.SwarmRules) -> RecordCounter:
    """hivemind's record validator for `rules` (whose keys must be `DHTKeys`)."""
    from hivemind.dht.validation import DHTRecord, RecordValidatorBase

    class SwarmRecordValidator(RecordValidatorBase):  # type: ignore[misc]
        """Refuses records that no honest node writes; counts each refusal by reason (`counts`)."""

        def __init__(self) -> None:
            super().__init__()
            self.counts: Counter[str] = Counter()

        def validate(self, record: DHTRecord) -> bool:
            reason = record_problem(rules, record.key, record.subkey, record.value, record.expiration_time)
            if reason is not None:
                self.counts[DHT_COUNTERS[reason]] += 1
            return reason is None

    validator: RecordCounter = SwarmRecordValidator()
    return validator
