"""The GossipSub topic validator of the libp2p host (pure Python: no libp2p needed to run it): what it
refuses is counted, not kept and not forwarded."""

from __future__ import annotations

import dataclasses
import time

import msgpack

import protocol
from protocol.testvectors import KEY_A, KEY_B, sample_announcement, sample_batch
from swarmnode.swarm.transports.libp2p_pipe import frame
from swarmnode.swarm.transports.libp2p_store import State
from swarmnode.swarm.transports.storage_budget import StorageBudget

LIMITS = protocol.Limits()


def state(budget: StorageBudget | None = None) -> State:
    return State("demo-swarm", LIMITS, 60.0, budget or StorageBudget(10_000_000))


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
    assert [e for entries in s.announcements.values() for _, e in entries.values()] == [ann]
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
    s = state(StorageBudget(total_bytes=3000, entry_bytes=0))
    for i in range(10):
        data = bytes([i]) * 1000
        s.keep_batch(bytes([i]) * 32, data)
    assert s.budget.used <= 3000 and len(s.batches) == 3


def signed_batch(key: object, i: int) -> bytes:
    group = dataclasses.replace(sample_batch().groups[0], completions=("x" * 500,) * 4)
    return protocol.seal_payload(dataclasses.replace(sample_batch(), round=i, groups=(group,)), key, LIMITS)  # type: ignore[arg-type]


def test_junk_at_its_own_hash_is_refused_and_each_signer_has_a_budget() -> None:
    s = state(StorageBudget(total_bytes=100_000, author_bytes=10_000))
    junk = bytes(range(256)) * 4000  # a 1 MB random-looking blob at its own hash
    assert not s.accept_message(pack("batch", protocol.message_id(junk), junk))
    assert s.rejected == {"libp2p_bad_batch": 1} and not s.batches
    flood = [signed_batch(KEY_B, i) for i in range(20)]  # one signer, ~48 KB of valid batches
    honest = signed_batch(KEY_A, 0)
    assert s.accept_message(pack("batch", protocol.message_id(honest), honest))
    for raw in flood:
        assert s.accept_message(pack("batch", protocol.message_id(raw), raw))  # valid: forwarded, kept in budget
    assert s.budget.author_used[protocol.peer_id(KEY_B.public_key().public_bytes_raw())] <= 10_000
    assert protocol.message_id(honest) in s.batches  # the flood pushed out only its own oldest batches
    assert protocol.message_id(flood[-1]) in s.batches and protocol.message_id(flood[0]) not in s.batches
    assert s.rejected["libp2p_over_budget"] == s.budget.evicted > 0  # each batch pushed out is counted


def test_an_older_announcement_of_an_author_does_not_replace_its_newer_one() -> None:
    s = state()
    now_ms = int(time.time() * 1000)
    window = now_ms // 60_000
    old, new = (
        protocol.seal_payload(dataclasses.replace(sample_announcement(), created_ms=t), KEY_A, LIMITS)
        for t in (now_ms - 5_000, now_ms)
    )
    assert s.accept_message(pack("ann", window, new))
    assert not s.accept_message(pack("ann", window, old))  # replayed by somebody: dropped, not forwarded
    assert s.accept_message(pack("ann", window, new))  # the same one again is no refusal
    assert [e for entries in s.announcements.values() for _, e in entries.values()] == [new]
    assert s.rejected == {}  # gossip reorders an honest author's announcements too: not a refusal


def test_frames_are_length_prefixed_msgpack() -> None:
    data = frame({"id": 1, "op": "x"})
    assert int.from_bytes(data[:4], "big") == len(data) - 4
    assert msgpack.unpackb(data[4:]) == {"id": 1, "op": "x"}
