"""Sharing off the round's critical path (`swarm.background_sharing`): the I/O thread publishes and fetches
while the round goes on, the round takes what has arrived and never waits on the network, and what the
thread counts reaches the round's counters."""

from __future__ import annotations

import threading
import time

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from swarmnode.identity import Identity
from swarmnode.swarm.front import Swarm, open_swarm
from swarmnode.swarm.transports.memory import MemoryHub, MemoryTransport
from swarmnode.tasks import TaskSet, make_task
from tests.helpers import wait_for
from tests.unit.test_swarm_front import config, groups


def member(transport: MemoryTransport, tasks: TaskSet, **swarm: object) -> Swarm:
    identity = Identity(Ed25519PrivateKey.generate())
    return open_swarm(config(background_sharing=True, **swarm), tasks, transport=transport, identity=identity)


class BlockedTransport(MemoryTransport):
    """A network that hangs: every read waits until the test lets it go (`release`)."""

    def __init__(self, hub: MemoryHub) -> None:
        super().__init__(hub)
        self.release = threading.Event()
        self.reading = threading.Event()

    def announcements(self, window: int, bucket: int | None = None, timeout: float | None = None) -> list[bytes]:
        self.reading.set()
        self.release.wait(30.0)
        return super().announcements(window, bucket, timeout)


class BrokenTransport(MemoryTransport):
    """Reads raise a bug (not a `TransportError`) `failures` times, then work."""

    def __init__(self, hub: MemoryHub, failures: int) -> None:
        super().__init__(hub)
        self.failures = failures

    def announcements(self, window: int, bucket: int | None = None, timeout: float | None = None) -> list[bytes]:
        if self.failures > 0:
            self.failures -= 1
            raise RuntimeError("a bug in the transport")
        return super().announcements(window, bucket, timeout)


def test_the_thread_publishes_and_fetches_and_the_round_takes_what_arrived() -> None:
    tasks = TaskSet([make_task("add")])
    hub = MemoryHub()
    a, b = member(MemoryTransport(hub), tasks), member(MemoryTransport(hub), tasks)
    try:
        a.share(1, 0, groups(tasks, 0))  # handed over: a's thread stores and announces it
        # b's thread finds it on its own, between b's rounds (so the first wait after a's publish may be a poll)
        wait_for(lambda: b.waiting() == 3, "the sharing thread", 20.0)
        got = b.share(1, 0, groups(tasks, 3))
        assert len(got) == 3 and {g.source for g in got} == {a.peer_id}
        assert all(g.seniority is not None and not g.seniority.junior for g in got)  # as the thread saw it
        assert b.share(2, 1, []) == []  # taken once
        wait_for(lambda: a.waiting() == 3, "the sharing thread", 20.0)  # b's round-1 groups
        assert {g.source for g in a.share(2, 1, [])} == {b.peer_id}
        assert a.io_seconds() > 0.0 and b.counters()["peers"] == 1
    finally:
        a.close()
        b.close()


def test_the_round_never_waits_on_the_network() -> None:
    tasks = TaskSet([make_task("add")])
    hub = MemoryHub()
    author = member(MemoryTransport(hub), tasks)
    hung = BlockedTransport(hub)
    reader = member(hung, tasks)
    try:
        author.share(1, 0, groups(tasks, 0))
        assert hung.reading.wait(10.0)  # the reader's thread is stuck in the network
        # rounds go on while it hangs: each hands its groups over and takes nothing yet
        for round_ in range(1, 4):
            assert reader.share(round_, 0, groups(tasks, 10 * round_)) == []
        assert reader.counters()["io_errors"] == 0
        hung.release.set()  # the network answers: the next rounds take the author's groups
        wait_for(lambda: reader.waiting() == 3, "the sharing thread", 20.0)
        assert {g.source for g in reader.share(4, 0, [])} == {author.peer_id}
    finally:
        hung.release.set()
        author.close()
        reader.close()


def test_a_bug_in_the_thread_is_counted_and_said_and_the_thread_carries_on() -> None:
    tasks = TaskSet([make_task("add")])
    hub = MemoryHub()
    author = member(MemoryTransport(hub), tasks)
    reader = member(BrokenTransport(hub, failures=2), tasks)
    try:
        author.share(1, 0, groups(tasks, 0))
        wait_for(lambda: reader.counters()["io_errors"] >= 2, "the sharing thread", 20.0)
        wait_for(lambda: reader.waiting() == 3, "the sharing thread", 20.0)
        assert len(reader.share(1, 0, [])) == 3
        lines = reader.trouble()
        assert any("sharing thread: RuntimeError: a bug in the transport" in line for line in lines), lines
    finally:
        author.close()
        reader.close()


def test_gated_completions_are_charged_by_the_thread_and_counted() -> None:
    tasks = TaskSet([make_task("add")])
    hub = MemoryHub()
    author = member(MemoryTransport(hub), tasks)
    reader = member(MemoryTransport(hub), tasks)
    try:
        author.share(1, 0, groups(tasks, 0))
        wait_for(lambda: reader.waiting() == 3, "the sharing thread", 20.0)
        reader.share(1, 0, [])
        reader.note_gated({author.peer_id: 2})
        wait_for(lambda: reader.counters()["rejected"].get("improbable") == 2, "the sharing thread", 20.0)
        row = next(p for p in reader.peers() if p["peer_id"] == author.peer_id)
        assert row["rejected"] == {"improbable": 2}
    finally:
        author.close()
        reader.close()


def test_closing_stores_the_latest_hand_over() -> None:
    tasks = TaskSet([make_task("add")])
    hub = MemoryHub()
    node = member(MemoryTransport(hub), tasks)
    node.share(1, 0, groups(tasks, 0))
    node.close()  # at once: the thread stores what it was handed before it stops
    window = int(time.time() // 60.0)
    assert any(MemoryTransport(hub).announcements(w) for w in (window - 1, window))
