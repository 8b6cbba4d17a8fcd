"""The GossipSub topic validator of the libp2p host (pure Python: no libp2p needed to run it): what it
refuses is counted, not kept and not forwarded."""

from __future__ import annotations

import time

import msgpack

import protocol
from protocol.testvectors import KEY_A, sample_announcement, sample_batch
from swarmnode.swarm.libp2p_host import State, frame

LIMITS = protocol.Limits()


def state() -> State:
    return State("demo-swarm", LIMITS, 60.0, 8, 10_000_000)


def pack(*item: object) -> bytes:
    data: bytes = msgpack.packb(list(item), use_bin_type=True)
    return data


def test_good_messages_are_kept() -> None:
    s = state()
    window = int(time.time() // 60)
    ann = protocol.seal_payload(sample_announcement(), KEY_A, LIMITS)
    raw = protocol.seal_payload(sample_batch(), KEY_A, LIMITS)
    assert s.accept_message(pack("ann", window, ann))
    assert s.accept_message(pack("batch", protocol.message_id(raw), raw))
    assert s.batches[protocol.message_id(raw)] == raw
    assert [e for entries in s.announcements.values() for e in entries.values()] == [ann]
    assert not s.rejected


def test_bad_messages_are_counted_and_dropped() -> None:
    s = state()
    window = int(time.time() // 60)
    ann = bytearray(protocol.seal_payload(sample_announcement(), KEY_A, LIMITS))
    ann[-2] ^= 1
    raw = protocol.seal_payload(sample_batch(), KEY_A, LIMITS)
    cases = [
        b"\xc1garbage",
        pack("what", 1, b""),
        pack("ann", window, bytes(ann)),
        pack("ann", window - 10, protocol.seal_payload(sample_announcement(), KEY_A, LIMITS)),
        pack("batch", b"\x00" * 32, raw),
        b"\x00" * (LIMITS.max_envelope_bytes + 2048),
    ]
    assert not any(s.accept_message(c) for c in cases)
    assert s.rejected == {
        "libp2p_malformed": 2,
        "libp2p_bad_announcement": 1,
        "libp2p_announcement_window": 1,
        "libp2p_batch_id_mismatch": 1,
        "libp2p_oversize": 1,
    }
    assert not s.batches and not s.announcements


def test_the_batch_store_is_bounded() -> None:
    s = State("demo-swarm", LIMITS, 60.0, 8, store_bytes=3000)
    for i in range(10):
        data = bytes([i]) * 1000
        s.keep_batch(bytes([i]) * 32, data)
    assert s.held <= 3000 and len(s.batches) == 3


def test_frames_are_length_prefixed_msgpack() -> None:
    data = frame({"id": 1, "op": "x"})
    assert int.from_bytes(data[:4], "big") == len(data) - 4
    assert msgpack.unpackb(data[4:]) == {"id": 1, "op": "x"}
