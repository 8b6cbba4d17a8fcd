"""The record rules (`swarm/records.py`), each check alone, and the same rules as the three transports apply
them: the hivemind record validator (hashed DHT keys), the libp2p topic validator and the in-memory hub."""

from __future__ import annotations

import dataclasses

import msgpack
import pytest

import protocol
from protocol.testvectors import KEY_A, KEY_B, sample_announcement, sample_batch
from swarmnode.swarm import records
from swarmnode.swarm.hivemind_dht import DHTKeys, announcement_key, batch_key, record_problem
from swarmnode.swarm.libp2p_host import State
from swarmnode.swarm.memory import MemoryHub, MemoryTransport

LIMITS = protocol.Limits()
SWARM = "demo-swarm"
NOW = 1_000_000 * 60.0
WINDOW = int(NOW // 60)


def rules(keys: records.RecordKeys | None = None, swarm: str | None = SWARM) -> records.SwarmRules:
    return records.SwarmRules(swarm, LIMITS, window_s=60.0, buckets=8, keys=keys, clock=lambda: NOW)


def peer(key: object) -> str:
    return protocol.peer_id(key.public_key().public_bytes_raw())  # type: ignore[attr-defined]


ANN_A = protocol.seal_payload(sample_announcement(), KEY_A, LIMITS)
BATCH = protocol.seal_payload(sample_batch(), KEY_A, LIMITS)
BUCKET_A = records.SwarmRules(SWARM, LIMITS, buckets=8).bucket_of(peer(KEY_A))


def test_batches_are_filed_under_the_hash_of_their_bytes_within_the_size_limit() -> None:
    r = rules()
    assert records.check_batch(r, records.BatchRecord(protocol.message_id(BATCH), BATCH)) is None
    assert records.check_batch(r, records.BatchRecord(b"\x01" * 32, BATCH)) == records.BATCH_ID_MISMATCH
    big = b"\x00" * (LIMITS.max_envelope_bytes + 1)
    assert records.check_batch(r, records.BatchRecord(protocol.message_id(big), big)) == records.OVERSIZE


def test_announcements_signed_for_this_swarm_under_their_signer_in_a_live_window_and_its_bucket() -> None:
    r = rules()
    good = records.check_announcement(r, records.AnnouncementRecord(ANN_A, (WINDOW, BUCKET_A), peer(KEY_A)))
    assert good == records.Signed(peer(KEY_A), sample_announcement())
    tampered = bytearray(ANN_A)
    tampered[-3] ^= 1
    foreign = protocol.seal_payload(dataclasses.replace(sample_announcement(), swarm="other"), KEY_A, LIMITS)
    cases = {
        records.BAD_ANNOUNCEMENT: [
            records.AnnouncementRecord(bytes(tampered), (WINDOW, BUCKET_A)),
            records.AnnouncementRecord(foreign, (WINDOW, BUCKET_A)),
            records.AnnouncementRecord(BATCH, (WINDOW, BUCKET_A)),  # a batch is no announcement
            records.AnnouncementRecord(ANN_A, (WINDOW, BUCKET_A), peer(KEY_B)),  # filed under somebody else
        ],
        records.ANNOUNCEMENT_WINDOW: [
            records.AnnouncementRecord(ANN_A, (WINDOW - 3, BUCKET_A)),
            records.AnnouncementRecord(ANN_A, (WINDOW + 2, BUCKET_A)),
            records.AnnouncementRecord(ANN_A, (WINDOW, (BUCKET_A + 1) % 8)),  # not its signer's bucket
        ],
    }
    for reason, bad in cases.items():
        for record in bad:
            assert records.check_announcement(r, record) == reason, record
    for window in range(WINDOW - 2, WINDOW + 2):
        assert isinstance(
            records.check_announcement(r, records.AnnouncementRecord(ANN_A, (window, BUCKET_A))), records.Signed
        )
    # a hub in one process takes any window and any swarm; still only signed announcements
    anywhere = rules(swarm=None)
    assert isinstance(
        records.check_announcement(anywhere, records.AnnouncementRecord(foreign), records.ANY_WINDOW, ()),
        records.Signed,
    )
    assert records.check_announcement(
        anywhere, records.AnnouncementRecord(bytes(tampered)), records.ANY_WINDOW, ()
    ) == (records.BAD_ANNOUNCEMENT)


def test_the_hivemind_validator_applies_the_same_rules_to_hashed_keys() -> None:
    pytest.importorskip("hivemind")
    r = rules(DHTKeys(SWARM))
    keys = DHTKeys(SWARM)

    def problem(key: str, value: bytes, subkey: str | None = None) -> str | None:
        packed_subkey: bytes = msgpack.packb(subkey)
        return record_problem(r, keys_of(key), packed_subkey, msgpack.packb(value, use_bin_type=True))

    def keys_of(key: str) -> bytes:
        from hivemind.dht.routing import DHTID

        return bytes(DHTID.generate(source=key).to_bytes())

    assert keys.batch(protocol.message_id(BATCH)) == keys_of(batch_key(SWARM, protocol.message_id(BATCH)))
    assert problem(batch_key(SWARM, protocol.message_id(BATCH)), BATCH) is None
    assert problem(batch_key(SWARM, b"\x01" * 32), BATCH) == records.BATCH_ID_MISMATCH
    ann_key = announcement_key(SWARM, WINDOW, BUCKET_A)
    assert problem(ann_key, ANN_A, peer(KEY_A)) is None
    assert problem(ann_key, ANN_A, peer(KEY_B)) == records.BAD_ANNOUNCEMENT
    assert problem(announcement_key(SWARM, WINDOW - 3, BUCKET_A), ANN_A, peer(KEY_A)) == records.ANNOUNCEMENT_WINDOW
    wrong_bucket = announcement_key(SWARM, WINDOW, (BUCKET_A + 1) % 8)
    assert problem(wrong_bucket, ANN_A, peer(KEY_A)) == records.ANNOUNCEMENT_WINDOW
    assert record_problem(r, keys_of(ann_key), msgpack.packb(peer(KEY_A)), b"\x01junk") == records.MALFORMED


def test_the_libp2p_topic_and_the_memory_hub_refuse_what_the_rules_refuse() -> None:
    state = State(SWARM, LIMITS, 60.0, 8, 10_000_000)
    state.rules.clock = lambda: NOW
    assert state.check_announcement(WINDOW, ANN_A) == peer(KEY_A)
    assert state.check_announcement(WINDOW - 3, ANN_A) is None
    assert not state.check_batch(b"\x01" * 32, BATCH)
    assert state.rejected == {"libp2p_announcement_window": 1, "libp2p_batch_id_mismatch": 1}
    hub = MemoryTransport(MemoryHub())
    with pytest.raises(ValueError):
        hub.store_batch(b"\x01" * 32, BATCH)
    hub.announce(WINDOW - 3, ANN_A)  # the hub files any window
    assert hub.announcements(WINDOW - 3, BUCKET_A) == [ANN_A]
