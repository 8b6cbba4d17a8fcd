"""Findings 1 and 3 of the offer attacks, replayed against real hivemind DHT nodes on 127.0.0.1: a `swarmnode
bootstrap` process and two DHT nodes of this process (the swarm's own `HivemindTransport`), attacked by an
outside DHT peer that checks nothing and asks each node in turn to store its records (`tests/hostile.RawDHTPeer`).

(a) Pinning: an honest peer's own old announcement, re-stored under its subkey with a one-day expiry (and
served by the attacker's own node): the peer's next announcement is still stored and read by the others.
The same pinning against a running `swarmnode join` process: its next announcements are still read.
(b) Junk: 1 MB random blobs at `<swarm>/batch/<their sha256>` are refused by every node, and the bootstrap
process grows by less than 20 MB per 100 MB sent to it. (c) A flood of valid signed batches from one
identity stays within a node's budget, and an honest author's batch stays.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import protocol
from swarmnode.swarm.transports.base import announcement_bucket
from swarmnode.swarm.transports.hivemind_dht import HivemindTransport
from swarmnode.swarm.transports.hivemind_records import announcement_key, batch_key
from swarmnode.swarm.transports.storage_budget import StorageBudget
from tests import hostile
from tests.helpers import SWARMNODE, read_line_matching, wait_for
from tests.victim import running_victim

SWARM = "t"
MB = 1024 * 1024
pytestmark = pytest.mark.timeout(600)


@dataclass
class Arena:
    boot: subprocess.Popen[str]
    boot_maddr: str
    honest: list[HivemindTransport]
    attacker: hostile.RawDHTPeer

    @property
    def maddrs(self) -> list[str]:
        """Every honest DHT node's address (the bootstrap process's and the two of this process)."""
        return [self.boot_maddr, *(t.visible_maddrs()[0] for t in self.honest)]


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


def eventually(check: Callable[[], bool], limit: float = 30.0) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.3)
    return False


def window() -> int:
    return int(time.time() // 60)


@pytest.fixture
def arena(request: pytest.FixtureRequest) -> Iterator[Arena]:
    budget = getattr(request, "param", None)
    boot = subprocess.Popen(
        [SWARMNODE, "bootstrap", "--swarm", SWARM], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    honest: list[HivemindTransport] = []
    attacker = None
    try:
        maddr = read_line_matching(boot, r"--peers (\S+)").group(1)
        assert maddr.startswith("/ip4/127.0.0.1/")
        for _ in range(2):
            options = {"budget": budget} if budget is not None else {}  # the default, or a test's own
            node = HivemindTransport(SWARM, initial_peers=[maddr], op_timeout_s=20.0, **options)
            honest.append(node)
            assert node.wait_joined(60.0), node.last_join_error
        attacker = hostile.RawDHTPeer([maddr])
        yield Arena(boot, maddr, honest, attacker)
    finally:
        if attacker is not None:
            attacker.close()
        for node in honest:
            node.close()
        if boot.poll() is None:
            boot.kill()
        boot.wait(timeout=30)


def test_an_old_announcement_re_stored_with_a_far_expiry_does_not_pin_its_author(arena: Arena) -> None:
    victim, reader = arena.honest
    key = Ed25519PrivateKey.generate()
    author = hostile.peer_of(key)
    bucket = announcement_bucket(author, victim.buckets)
    w = window()
    old = hostile.announcement(key, SWARM, time.time())
    victim.announce(w, old)
    assert eventually(lambda: old in reader.announcements(w, bucket))

    answers = hostile.pin(arena.attacker, arena.maddrs, SWARM, author, old, [w, w + 1])
    time.sleep(0.05)
    new = hostile.announcement(key, SWARM, time.time())
    victim.announce(w, new)  # stored despite the pinned record (raises if no DHT node accepts it)
    following = hostile.announcement(key, SWARM, time.time() + 0.01)
    victim.announce(w + 1, following)  # the next window was pinned too

    assert eventually(lambda: reader.announcements(w, bucket) == [new])  # the attacker's own node serves `old`
    assert eventually(lambda: reader.announcements(w + 1, bucket) == [following])
    assert answers == [False] * len(answers) == [False] * 6  # every honest node refused the pinned record
    refused = sum(t.rejections().get("dht_expiry", 0) for t in arena.honest)
    assert refused >= 2  # counted by this process's nodes (the bootstrap process counts its own)
    # the old one with the very expiry its signed time gives may stand only until a newer one: not after
    exact = hostile.signed_time_s(old) + victim.rules.announcement_life_s
    key_w = announcement_key(SWARM, w, bucket)
    assert arena.attacker.store_at(arena.maddrs, key_w, old, exact, subkey=author) == [False] * 3
    assert reader.announcements(w, bucket) == [new]
    assert sum(t.rejections().get("dht_older_announcement", 0) for t in arena.honest) >= 2


def test_random_blobs_at_their_own_hash_are_refused_and_take_no_memory(arena: Arena) -> None:
    honest = arena.honest[0]
    time.sleep(2.0)  # let the bootstrap settle before measuring it
    before = rss_bytes(arena.boot.pid)
    sent = 0
    answers: list[bool | None] = []
    keys = []
    deadline = time.monotonic() + 240
    for i in range(100):  # 100 MB to each of the three honest nodes, half for 10 minutes, half for a year
        blob = hostile.junk_blob(MB)
        answers += hostile.store_junk(arena.attacker, arena.maddrs, SWARM, blob, 600.0 if i % 2 else 365 * 86_400.0)
        keys.append(batch_key(SWARM, protocol.message_id(blob)))
        sent += len(blob)
        assert time.monotonic() < deadline, "the junk took too long to send"
    growth = rss_bytes(arena.boot.pid) - before
    print(f"bootstrap RSS {before / MB:.0f} MB -> +{growth / MB:.1f} MB for {sent / MB:.0f} MB of junk sent to it")
    assert not any(honest.holds(k) for k in keys)
    assert answers == [False] * 300, answers  # no honest node took any (none failed to answer either)
    assert growth < 20 * MB * sent / (100 * MB), f"the bootstrap grew {growth / MB:.0f} MB for {sent / MB:.0f} MB"
    for t in arena.honest:  # junk for 10 minutes is no signed batch; for a year, also beyond any batch's life
        assert t.rejections().get("dht_bad_batch", 0) >= 50 and t.rejections().get("dht_expiry", 0) >= 50
    assert honest.stored_bytes() < MB


@pytest.mark.parametrize("arena", [StorageBudget(total_bytes=12 * MB, author_bytes=4 * MB)], indirect=True)
def test_a_flood_of_valid_batches_stays_within_the_node_budget(arena: Arena) -> None:
    node = arena.honest[0]
    honest_key = Ed25519PrivateKey.generate()
    (honest_batch,) = hostile.signed_flood(honest_key, SWARM, 1, 256 * 1024)
    node.store_batch(protocol.message_id(honest_batch), honest_batch)
    here = [node.visible_maddrs()[0]]
    flooders = [Ed25519PrivateKey.generate() for _ in range(4)]
    taken = 0
    for key in flooders:  # 4 identities x 8 valid batches of 1 MB: 32 MB at a node with a 12 MB budget
        for raw in hostile.signed_flood(key, SWARM, 8):
            answer = arena.attacker.store_at(here, batch_key(SWARM, protocol.message_id(raw)), raw, time.time() + 600)
            taken += answer == [True]
    assert taken == 32  # each was valid, and taken...
    assert node.stored_bytes() <= 12 * MB + 3 * MB  # ...within the budget (and its cache's): the oldest went
    assert node.holds(batch_key(SWARM, protocol.message_id(honest_batch)))  # the honest author's batch stayed
    assert node.rejections().get("dht_over_budget", 0) >= 32 - 12


def test_a_running_node_keeps_announcing_after_its_announcement_is_pinned(tmp_path: Path) -> None:
    """The same attack against a real `swarmnode join` process, which announces every round by itself."""
    boot = subprocess.Popen(
        [SWARMNODE, "bootstrap", "--swarm", SWARM], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        boot_maddr = read_line_matching(boot, r"--peers (\S+)").group(1)
        sets = ("generation.questions_per_round=2", "generation.max_new_tokens=8")
        reading = {"op_timeout_s": 20.0}  # the test's node reads the node's announcements through the bootstrap
        with running_victim(
            tmp_path, SWARM, "--peers", boot_maddr, minutes=8, sets=sets, via=boot_maddr, peer_options=reading
        ) as node:
            node.wait_round(2, "the node's first rounds")
            reader = node.transport
            with closing(hostile.RawDHTPeer([boot_maddr])) as attacker:
                bucket = announcement_bucket(node.peer_id, reader.buckets)
                w = window()
                announced = lambda: hostile.newest_by(reader.announcements(w, bucket), node.peer_id)  # noqa: E731
                old = wait_for(announced, "the node's announcement", 60)
                maddrs = [boot_maddr, node.maddr, reader.visible_maddrs()[0]]
                answers = hostile.pin(attacker, maddrs, SWARM, node.peer_id, old, [w, w + 1])

                def announced_since() -> bytes | None:  # the node's newer announcement, in whatever window is current
                    found = hostile.newest_by(reader.announcements(window(), bucket), node.peer_id)
                    newer = found is not None and hostile.signed_time_s(found) > hostile.signed_time_s(old)
                    return found if newer else None

                wait_for(announced_since, "a newer announcement of the node, read by another node", 90)
                assert answers == [False] * 6  # no honest node took the pinned record
                assert node.proc.poll() is None
    finally:
        if boot.poll() is None:
            boot.kill()
        boot.wait(timeout=30)
