"""The hivemind DHT transport on 127.0.0.1 (NAT traversal off): a 2 MB batch stored and fetched, one
announcement per peer, and forged entries refused by the record validator. Announcements are signed:
a DHT keeps one exactly its life past its signed time."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterator

import pytest

import protocol
from protocol.testvectors import KEY_A, KEY_B, sample_announcement, sample_batch
from swarmnode.swarm.transports.base import announcement_bucket
from swarmnode.swarm.transports.hivemind_dht import HivemindTransport
from swarmnode.swarm.transports.hivemind_records import announcement_key

LIMITS = protocol.Limits()


def fresh(key: object) -> bytes:
    """The sample announcement, signed now by `key`."""
    now = dataclasses.replace(sample_announcement(), created_ms=int(time.time() * 1000))
    return protocol.seal_payload(now, key, LIMITS)  # type: ignore[arg-type]


@pytest.fixture
def pair() -> Iterator[tuple[HivemindTransport, HivemindTransport]]:
    a = HivemindTransport("demo-swarm", window_s=60.0, op_timeout_s=20.0)
    b = HivemindTransport("demo-swarm", initial_peers=a.visible_maddrs(), window_s=60.0, op_timeout_s=20.0)
    assert b.wait_joined(30.0), b.last_join_error
    try:
        yield a, b
    finally:
        b.close()
        a.close()


def test_maddrs_are_loopback_only(pair: tuple[HivemindTransport, HivemindTransport]) -> None:
    for transport in pair:
        assert all(m.startswith("/ip4/127.0.0.1/") for m in transport.visible_maddrs())


def test_a_two_megabyte_batch_is_stored_and_fetched(pair: tuple[HivemindTransport, HivemindTransport]) -> None:
    a, b = pair
    base = sample_batch()
    group = base.groups[0]
    big = protocol.RolloutGroup(
        group.ref, group.question, tuple(os.urandom(6000).hex() for _ in range(64)), (0.0,) * 64
    )
    batch = protocol.RolloutBatch(base.swarm, 1, 1, base.created_ms, base.model, (big,) * 3)
    raw = protocol.seal_payload(batch, KEY_A, LIMITS)
    assert 2_000_000 < len(raw) < LIMITS.max_envelope_bytes
    batch_id = protocol.message_id(raw)
    a.store_batch(batch_id, raw)
    assert b.fetch_batch(batch_id) == raw
    assert b.fetch_batch(b"\x01" * 32) is None


def test_announcements_one_per_peer(pair: tuple[HivemindTransport, HivemindTransport]) -> None:
    a, b = pair
    window = int(time.time() // 60.0)
    a.announce(window, fresh(KEY_A))
    b.announce(window, fresh(KEY_B))
    seen = b.announcements(window)
    authors = {protocol.verify_and_decode(e, LIMITS).peer_id for e in seen}  # type: ignore[union-attr]
    assert authors == {protocol.peer_id(k.public_key().public_bytes_raw()) for k in (KEY_A, KEY_B)}


def test_forged_subkey_is_refused(pair: tuple[HivemindTransport, HivemindTransport]) -> None:
    a, b = pair
    window = int(time.time() // 60.0)
    victim = protocol.peer_id(KEY_B.public_key().public_bytes_raw())
    forged = fresh(KEY_A)  # A's announcement under B's name
    key = announcement_key("demo-swarm", window, announcement_bucket(victim, 8))
    refused = a.rejections().get("dht_bad_announcement", 0) + b.rejections().get("dht_bad_announcement", 0)
    expires = a.rules.announcement_expiry(protocol.verify_and_decode(forged, LIMITS).payload)  # type: ignore[union-attr, arg-type]
    assert not a.put_record(key, forged, subkey=victim, timeout=20, expiration=expires)
    assert b.announcements(window) == []
    assert a.rejections().get("dht_bad_announcement", 0) + b.rejections().get("dht_bad_announcement", 0) > refused
    # the same record under its signer's own name is stored: the refusal was the forged subkey
    signer = protocol.peer_id(KEY_A.public_key().public_bytes_raw())
    own = announcement_key("demo-swarm", window, announcement_bucket(signer, 8))
    assert a.put_record(own, forged, subkey=signer, expiration=expires)
    assert b.announcements(window) == [forged]
