"""A node whose clock is off (`swarm.clock_offset_s`): it says about how far off it is; within the tolerated
skew it still shares, beyond it what it shares is refused with a reason that says why."""

from __future__ import annotations

import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from swarmnode.identity import Identity
from swarmnode.swarm.front import Swarm, open_swarm
from swarmnode.swarm.sharing.clock import WATCHED_PEERS, ClockWatch
from swarmnode.swarm.transports.memory import MemoryHub, MemoryTransport
from swarmnode.tasks import TaskSet, make_task
from tests.unit.test_swarm_front import config, groups


def test_the_watch_estimates_the_offset_from_first_sightings_and_says_it_once() -> None:
    watch = ClockWatch()
    assert watch.offset() is None and watch.line(30.0) is None
    # peers with good clocks, seen 0.5-4 s after they signed; this node is 31 s ahead
    for k, delay in enumerate((0.5, 2.0, 4.0)):
        for t in range(0, 100, 10):
            watch.note(f"p{k}", 1000.0 + t, 1000.0 + t + delay + 31.0)
            watch.note(f"p{k}", 1000.0 + t, 1000.0 + t + delay + 45.0)  # read again later: not a new sighting
    offset, peers = watch.offset() or (0.0, 0)
    assert peers == 3 and 31.0 <= offset <= 33.0
    line = watch.line(30.0)
    assert line is not None and "about 33 s ahead of its peers' (median of 3 peers)" in line
    assert "beyond the 30 s the swarm tolerates" in line
    assert watch.line(30.0) is None  # said once
    for k in range(3):  # the clock is set right
        for t in range(100, 200, 10):
            watch.note(f"p{k}", 1000.0 + t, 1000.0 + t + 1.0)
    assert watch.line(30.0) == "this node's clock is back within 10 s of its peers' (3 peers)"
    assert watch.line(30.0) is None


def test_the_watch_says_nothing_for_the_network_s_own_delays_and_forgets_old_peers() -> None:
    watch = ClockWatch()
    for k in range(WATCHED_PEERS + 50):
        watch.note(f"p{k}", 10.0, 12.0 + k % 5)
    assert watch.line(30.0) is None
    assert watch.watched() == WATCHED_PEERS  # bounded, whatever the swarm's size


def _member(hub: MemoryHub, tasks: TaskSet, offset: float) -> Swarm:
    cfg = config(clock_offset_s=offset)
    return open_swarm(cfg, tasks, transport=MemoryTransport(hub), identity=Identity(Ed25519PrivateKey.generate()))


def test_a_node_25_s_ahead_still_shares_and_is_told_its_clock_is_ahead() -> None:
    tasks = TaskSet([make_task("add")])
    hub = MemoryHub()
    good, ahead = _member(hub, tasks, 0.0), _member(hub, tasks, 25.0)
    good.share(1, 0, groups(tasks, 0))
    assert len(ahead.share(1, 0, groups(tasks, 3))) == 3  # the good node's groups
    assert len(good.share(2, 1, [])) == 3  # and the other way round
    assert good.counters()["rejected"] == {} and ahead.counters()["rejected"] == {}
    assert ahead.clock_offset() is not None and 24.0 <= (ahead.clock_offset() or 0.0) <= 26.0
    assert any("clock is about 25 s ahead of its peers'" in line for line in ahead.trouble())
    assert any("clock is about 25 s behind its peers'" in line for line in good.trouble())


def test_a_node_beyond_the_tolerated_skew_is_refused_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    # at the start of a window: the node 45 s ahead files its announcement in the window the good node reads
    start, perf0 = 60.0 * 30_000_000, time.perf_counter()
    monkeypatch.setattr(time, "time", lambda: start + (time.perf_counter() - perf0))
    tasks = TaskSet([make_task("add")])
    hub = MemoryHub()
    good, ahead = _member(hub, tasks, 0.0), _member(hub, tasks, 45.0)
    ahead.share(1, 0, groups(tasks, 0))
    assert good.share(1, 0, groups(tasks, 3)) == []
    assert good.counters()["rejected"] == {"future_announcement": 1}
    lines = ahead.trouble() + ahead.trouble()
    ahead.share(2, 0, [])
    lines += ahead.trouble()
    assert any("about 45 s ahead" in line and "beyond the 30 s" in line for line in lines), lines
