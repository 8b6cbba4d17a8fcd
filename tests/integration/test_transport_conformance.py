"""One conformance suite for every `Transport` backend: the same tests, parametrised over the in-memory
hub, real hivemind DHT nodes on 127.0.0.1 (each with its own p2p daemon process) and real py-libp2p
GossipSub hosts (each its own process). The partition test runs on the two network backends (one
in-memory hub cannot be partitioned): two groups that never met, then a bridge between them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import pytest

import protocol
from protocol.testvectors import KEY_A, KEY_B, sample_announcement, sample_batch
from swarmnode.swarm.transports.base import Transport, TransportError, announcement_bucket
from swarmnode.swarm.transports.hivemind_dht import HivemindTransport
from swarmnode.swarm.transports.libp2p import Libp2pTransport, libp2p_available
from swarmnode.swarm.transports.memory import MemoryHub, MemoryTransport

LIMITS = protocol.Limits()
SWARM = "demo-swarm"  # the swarm of the protocol's sample messages


class Swarm:
    """Creates transports that can see each other, and closes them all at the end."""

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.hub = MemoryHub()
        self.opened: list[Transport] = []

    def node(self, via: Transport | Literal[False] | None = None) -> Transport:
        """A new node joined through `via` (default: the first node; False: none, the first of a new group)."""
        through = self.opened[0] if via is None and self.opened else (via or None)
        t: Transport
        if self.backend == "memory":
            t = MemoryTransport(self.hub)
        elif self.backend == "libp2p":
            peers = through.visible_maddrs()[:1] if through is not None else []
            t = Libp2pTransport(SWARM, initial_peers=peers, op_timeout_s=10.0)
        else:
            peers = through.visible_maddrs() if through is not None else []
            dht = HivemindTransport(SWARM, initial_peers=peers, op_timeout_s=20.0)
            assert dht.wait_joined(30.0), dht.last_join_error
            t = dht
        self.opened.append(t)
        return t

    def leave(self, t: Transport) -> None:
        t.close()
        self.opened.remove(t)

    def close(self) -> None:
        for t in self.opened:
            t.close()


BACKENDS = [
    "memory",
    "hivemind",
    pytest.param("libp2p", marks=pytest.mark.skipif(not libp2p_available(), reason="needs the libp2p extra")),
]


@pytest.fixture(params=BACKENDS)
def swarm(request: pytest.FixtureRequest) -> Iterator[Swarm]:
    s = Swarm(request.param)
    try:
        yield s
    finally:
        s.close()


def window() -> int:
    return int(time.time() // 60.0)


def authors(envelopes: list[bytes]) -> set[str]:
    found = set()
    for e in envelopes:
        verdict = protocol.verify_and_decode(e, LIMITS)
        assert isinstance(verdict, protocol.Accepted)
        found.add(verdict.peer_id)
    return found


def peer(key: Any) -> str:
    return protocol.peer_id(key.public_key().public_bytes_raw())


def eventually(check: Callable[[], bool], limit: float = 20.0) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return False


def test_publish_and_receive(swarm: Swarm) -> None:
    w = window()  # one window throughout: the minute may turn while the test waits
    a, b = swarm.node(), swarm.node()
    raw = protocol.seal_payload(sample_batch(), KEY_A, LIMITS)
    batch_id = protocol.message_id(raw)
    a.store_batch(batch_id, raw)
    a.announce(w, fresh_announcement(KEY_A))
    assert eventually(lambda: b.fetch_batch(batch_id) == raw)
    bucket = announcement_bucket(peer(KEY_A), b.buckets)
    assert eventually(lambda: authors(b.announcements(w, bucket)) == {peer(KEY_A)})  # pushed or stored
    assert authors(b.announcements(w)) == {peer(KEY_A)}  # all buckets
    other = (bucket + 1) % b.buckets
    assert b.announcements(w, other) == []
    assert b.fetch_batch(b"\x02" * 32) is None


def big_batch() -> bytes:
    """A signed batch of about 1 MiB: over the libp2p push limit (so fetched from its holder, in many reads)
    and over hivemind's ~60 KB pipe limit of DHT.store (the transport uses DHTNode in-process)."""
    completions = tuple(f"<answer>{i}</answer>" + "x" * 16_000 for i in range(64))
    group = protocol.RolloutGroup(sample_batch().groups[0].ref, "10+45=", completions, (1.0,) * 64)
    batch = protocol.RolloutBatch(SWARM, 12, 11, 1_764_000_000_000, "m", (group,))
    raw = protocol.seal_payload(batch, KEY_A, LIMITS)
    assert 1_000_000 < len(raw) <= LIMITS.max_envelope_bytes
    return raw


def test_a_big_batch_is_fetched_from_its_holder(swarm: Swarm) -> None:
    a, b = swarm.node(), swarm.node()
    raw = big_batch()
    a.store_batch(protocol.message_id(raw), raw)
    assert eventually(lambda: b.fetch_batch(protocol.message_id(raw)) == raw)
    late = swarm.node(via=b)  # joined after the batch was stored
    assert eventually(lambda: late.fetch_batch(protocol.message_id(raw)) == raw)


def test_only_signed_announcements_and_content_addressed_batches_are_stored(swarm: Swarm) -> None:
    a = swarm.node()
    swarm.node()
    good = bytearray(protocol.seal_payload(sample_announcement(), KEY_A, LIMITS))
    good[-3] ^= 0x01  # tampered after signing
    with pytest.raises((ValueError, TransportError)):
        a.announce(window(), bytes(good))
    raw = protocol.seal_payload(sample_batch(), KEY_A, LIMITS)
    with pytest.raises((ValueError, TransportError)):
        a.store_batch(b"\x03" * 32, raw)  # not the SHA-256 of the bytes


def test_size_cap(swarm: Swarm) -> None:
    a, b = swarm.node(), swarm.node()
    big = b"\x00" * (LIMITS.max_envelope_bytes + 1)
    big_id = protocol.message_id(big)
    try:
        a.store_batch(big_id, big)
    except (ValueError, TransportError):
        pass  # refused at once, or by every node
    assert b.fetch_batch(big_id) is None  # in no case can another node get it


def test_one_announcement_per_author_per_window(swarm: Swarm) -> None:
    w = window()  # one window throughout: the minute may turn while the test waits
    a, b = swarm.node(), swarm.node()
    first = fresh_announcement(KEY_A)
    later = protocol.seal_payload(
        protocol.Announcement(SWARM, 2, int(time.time() * 1000) + 1000, "m", sample_announcement().batches),
        KEY_A,
        LIMITS,
    )
    a.announce(w, first)
    time.sleep(0.05)  # a later expiration for the replacement
    a.announce(w, later)
    b.announce(w, fresh_announcement(KEY_B))

    def settled() -> bool:
        seen = b.announcements(w)
        return len(seen) == 2 and later in seen and first not in seen

    assert eventually(settled)


def test_a_peer_leaves_and_comes_back(swarm: Swarm) -> None:
    w = window()  # one window throughout: the minute may turn while the test waits
    a, b, c = swarm.node(), swarm.node(), swarm.node()
    c.announce(w, fresh_announcement(KEY_B))
    assert eventually(lambda: peer(KEY_B) in authors(a.announcements(w)))
    swarm.leave(c)
    raw = protocol.seal_payload(sample_batch(), KEY_A, LIMITS)
    b.store_batch(protocol.message_id(raw), raw)  # the others carry on without it
    assert eventually(lambda: a.fetch_batch(protocol.message_id(raw)) == raw)
    back = swarm.node()  # the same peer, restarted
    back.announce(w, fresh_announcement(KEY_B))
    assert eventually(lambda: back.fetch_batch(protocol.message_id(raw)) == raw)
    assert eventually(lambda: peer(KEY_B) in authors(a.announcements(w)))


def fresh_announcement(key: Any) -> bytes:
    """A new announcement by `key` (nodes announce every round; a push transport drops a repeated message)."""
    again = sample_announcement()
    return protocol.seal_payload(
        protocol.Announcement(SWARM, 2, int(time.time() * 1000), "m", again.batches), key, LIMITS
    )


def marker_batch(key: Any, label: str) -> bytes:
    group = sample_batch().groups[0]
    batch = protocol.RolloutBatch(SWARM, 12, 11, int(time.time() * 1000), label, (group,))
    return protocol.seal_payload(batch, key, LIMITS)


def test_a_partition_heals(swarm: Swarm) -> None:
    if swarm.backend == "memory":
        pytest.skip("one in-memory hub has no partitions")
    a = swarm.node()
    b = swarm.node(via=a)
    c = swarm.node(via=False)  # a second group that never met the first
    d = swarm.node(via=c)
    key_c = KEY_B
    w = window()  # one window throughout: it stays live for two more
    a.announce(w, fresh_announcement(KEY_A))
    c.announce(w, fresh_announcement(key_c))
    assert eventually(lambda: peer(KEY_A) in authors(b.announcements(w)))
    assert eventually(lambda: peer(key_c) in authors(d.announcements(w)))
    # Positive controls: on each side a batch stored after both announcements reaches the other member of
    # that side. Whatever links the two sides had, the announcements had at least as long to cross.
    marker_a, marker_c = marker_batch(KEY_A, "side-a"), marker_batch(key_c, "side-c")
    a.store_batch(protocol.message_id(marker_a), marker_a)
    c.store_batch(protocol.message_id(marker_c), marker_c)
    assert eventually(lambda: b.fetch_batch(protocol.message_id(marker_a)) == marker_a), "no control on a's side"
    assert eventually(lambda: d.fetch_batch(protocol.message_id(marker_c)) == marker_c), "no control on c's side"
    # the partition held: each side sees its own announcement and batch, nothing of the other side
    assert authors(b.announcements(w)) == {peer(KEY_A)}
    assert authors(d.announcements(w)) == {peer(key_c)}
    assert b.fetch_batch(protocol.message_id(marker_c)) is None
    assert d.fetch_batch(protocol.message_id(marker_a)) is None

    b.connect(c.visible_maddrs()[0])  # the bridge

    def healed() -> bool:
        a.announce(w, fresh_announcement(KEY_A))  # nodes announce again every round
        c.announce(w, fresh_announcement(key_c))
        time.sleep(0.5)  # a GossipSub heartbeat grafts the new link into the mesh
        both = {peer(KEY_A), peer(key_c)}
        return authors(b.announcements(w)) == both and authors(d.announcements(w)) == both

    assert eventually(healed, 40.0)


@pytest.mark.skipif(not libp2p_available(), reason="needs the libp2p extra")
def test_a_libp2p_host_that_dies_is_restarted_with_its_address_and_peer_id() -> None:
    a = Libp2pTransport(SWARM, op_timeout_s=10.0, restart_every_s=0.0)
    b = Libp2pTransport(SWARM, initial_peers=a.visible_maddrs(), op_timeout_s=10.0)
    try:
        before, pid = a.visible_maddrs(), a.host_pid
        os.kill(pid, signal.SIGKILL)  # the host process dies (a crash, the OOM killer)
        assert eventually(lambda: not a.host_alive(), 10.0)
        assert a.announcements(window()) == []  # the next operation starts a new host
        assert a.visible_maddrs() == before and a.restarts == 1 and a.host_pid != pid and a.host_alive()
        assert [n for n in a.take_notices() if "restarted" in n] and a.take_notices() == []
        raw = protocol.seal_payload(sample_batch(), KEY_A, LIMITS)
        a.store_batch(protocol.message_id(raw), raw)

        def b_reaches_a() -> bool:  # b announces every round, as nodes do
            again = sample_announcement()
            fresh = protocol.Announcement(SWARM, 2, int(time.time() * 1000), "m", again.batches)
            b.announce(window(), protocol.seal_payload(fresh, KEY_B, LIMITS))
            time.sleep(0.5)
            return peer(KEY_B) in authors(a.announcements(window()))

        # b redials the peers it was given (a's address is the same): they meet again, share both ways
        assert eventually(b_reaches_a, 40.0)
        assert eventually(lambda: b.fetch_batch(protocol.message_id(raw)) == raw)
    finally:
        a.close()
        b.close()


@pytest.mark.skipif(not libp2p_available(), reason="needs the libp2p extra")
def test_a_libp2p_host_survives_broken_fetch_streams_and_answers_a_request_sent_in_pieces() -> None:
    a = Libp2pTransport(SWARM, op_timeout_s=10.0)
    pid = a.host_pid
    try:
        raw = big_batch()
        a.store_batch(protocol.message_id(raw), raw)
        probe = Path(__file__).parents[1] / "libp2p_probe.py"
        done = subprocess.run(
            [sys.executable, str(probe), a.visible_maddrs()[0], protocol.message_id(raw).hex()],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=Path(__file__).parents[2],
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert json.loads(done.stdout) == {"sha256": protocol.message_id(raw).hex(), "length": len(raw)}
        assert a.host_alive() and a.host_pid == pid and a.restarts == 0  # the host never died
        assert a.announcements(window()) == []  # and still answers
    finally:
        a.close()
