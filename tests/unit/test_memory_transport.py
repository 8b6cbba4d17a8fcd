"""The in-memory transport: content addressing, one announcement per author, expiry."""

from __future__ import annotations

import dataclasses

import pytest

import protocol
from protocol.testvectors import KEY_A, KEY_B, sample_announcement, sample_batch
from swarmnode.swarm.memory import MemoryHub, MemoryTransport

LIMITS = protocol.Limits()


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_batches_are_content_addressed_and_expire() -> None:
    clock = Clock()
    hub = MemoryHub(ttl_s=10, clock=clock)
    a, b = MemoryTransport(hub), MemoryTransport(hub)
    raw = protocol.seal_payload(sample_batch(), KEY_A, LIMITS)
    a.store_batch(protocol.message_id(raw), raw)
    assert b.fetch_batch(protocol.message_id(raw)) == raw and b.bytes_downloaded == len(raw)
    with pytest.raises(ValueError):
        a.store_batch(b"\x00" * 32, raw)
    clock.now += 11
    assert b.fetch_batch(protocol.message_id(raw)) is None


def test_one_announcement_per_author_and_no_forgery() -> None:
    hub = MemoryHub()
    a = MemoryTransport(hub)
    first = protocol.seal_payload(sample_announcement(), KEY_A, LIMITS)
    second = protocol.seal_payload(dataclasses.replace(sample_announcement(), round=13), KEY_A, LIMITS)
    other = protocol.seal_payload(sample_announcement(), KEY_B, LIMITS)
    for envelope in (first, second, other):
        a.announce(5, envelope)
    assert sorted(a.announcements(5)) == sorted([second, other])
    assert a.announcements(6) == []
    tampered = bytearray(first)
    tampered[-3] ^= 1
    with pytest.raises(ValueError):
        a.announce(5, bytes(tampered))
    with pytest.raises(ValueError):
        a.announce(5, protocol.seal_payload(sample_batch(), KEY_A, LIMITS))
