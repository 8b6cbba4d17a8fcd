"""The in-memory transport: content addressing, one announcement per author, expiry."""

from __future__ import annotations

import dataclasses

import pytest

import protocol
from protocol.testvectors import KEY_A, KEY_B, sample_announcement, sample_batch
from swarmnode.swarm.transports.memory import MemoryHub, MemoryTransport
from swarmnode.swarm.transports.storage_budget import StorageBudget

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
    later = dataclasses.replace(sample_announcement(), round=13, created_ms=sample_announcement().created_ms + 1)
    second = protocol.seal_payload(later, KEY_A, LIMITS)
    other = protocol.seal_payload(sample_announcement(), KEY_B, LIMITS)
    for envelope in (first, second, other, second):  # the same one again changes nothing
        a.announce(5, envelope)
    assert sorted(a.announcements(5)) == sorted([second, other])
    with pytest.raises(ValueError):  # an older one of the same author, replayed by anybody, is refused
        MemoryTransport(hub).announce(5, first)
    same_time = protocol.seal_payload(dataclasses.replace(later, round=14), KEY_A, LIMITS)
    with pytest.raises(ValueError):  # signed at the same time as the kept one: the first stays
        a.announce(5, same_time)
    assert sorted(a.announcements(5)) == sorted([second, other])
    assert a.announcements(6) == []
    tampered = bytearray(first)
    tampered[-3] ^= 1
    with pytest.raises(ValueError):
        a.announce(5, bytes(tampered))
    with pytest.raises(ValueError):
        a.announce(5, protocol.seal_payload(sample_batch(), KEY_A, LIMITS))


def test_junk_at_its_own_hash_is_refused() -> None:
    a = MemoryTransport(MemoryHub())
    junk = bytes(range(256)) * 4000
    with pytest.raises(ValueError):
        a.store_batch(protocol.message_id(junk), junk)


def test_the_hub_keeps_each_author_within_its_budget() -> None:
    hub = MemoryHub(budget=StorageBudget(total_bytes=40_000, author_bytes=12_000))
    a = MemoryTransport(hub)
    group = dataclasses.replace(sample_batch().groups[0], completions=("x" * 500,) * 4)
    ids = []
    for i in range(20):
        raw = protocol.seal_payload(dataclasses.replace(sample_batch(), round=i, groups=(group,)), KEY_B, LIMITS)
        ids.append(protocol.message_id(raw))
        a.store_batch(ids[-1], raw)
    assert hub.stored_bytes() <= 12_000
    assert a.fetch_batch(ids[-1]) is not None and a.fetch_batch(ids[0]) is None  # its oldest went first
