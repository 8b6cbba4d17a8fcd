"""What a node keeps per round stays bounded, and cheap per item, so a node in a quiet swarm does not grow for
as long as it runs. The measures are structural: items held, and bytes per remembered item as tracemalloc
counts them (never RSS, never time).

What a quiet node takes in per round: about 200 completion digests (its own 128 and its peers') in the
validator's `Seen`, filling toward its 100 000 ids; every batch of the swarm in the DHT storage until its expiry
(bounded by `ttl_s` and the storage budget); and an entry of hivemind's map of lookups per key ever looked up,
never deleted (see `tests/integration/test_dht_memory.py`)."""

from __future__ import annotations

import tracemalloc
from functools import partial

import pytest
from sortedcontainers import SortedSet

import protocol
from protocol.testvectors import KEY_A
from swarmnode.groups import Group
from swarmnode.status import NodeStatus
from swarmnode.swarm.sharing.validate import BatchValidator, Seen
from swarmnode.swarm.transports.hivemind_storage import PENDING_SLACK, PendingGets
from swarmnode.tasks import TaskSet, make_task

LIMITS = protocol.Limits()
ROUNDS, QUESTIONS, COMPLETIONS = 40, 16, 8
"""A node's own rounds as the default configuration makes them (I = 16 questions, G = 8 completions)."""
BYTES_PER_DIGEST = 220
"""What a remembered completion may cost the validator (about 180 bytes now; 286 with a note string per id
in an `OrderedDict`)."""


def _rounds(tasks: TaskSet, rounds: int) -> list[list[Group]]:
    out = []
    for r in range(rounds):
        questions = tasks.draw(seed=7, start=r * QUESTIONS, count=QUESTIONS)
        out.append(
            [
                Group(q, tuple(f"<answer>{r}-{i}-{k}</answer>" for k in range(COMPLETIONS)), (0.0,) * COMPLETIONS)
                for i, q in enumerate(questions)
            ]
        )
    return out


def _traced(run: partial[object]) -> int:
    """Bytes that `run()` left allocated (what it built and keeps), as tracemalloc counts them."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        run()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def test_a_node_remembers_its_own_completions_cheaply() -> None:
    tasks = TaskSet([make_task("add")])
    validator = BatchValidator("s", tasks, LIMITS, own_peer_id="12D3KooW" + "x" * 44)
    rounds = _rounds(tasks, ROUNDS)

    def note_all() -> None:
        for r, groups in enumerate(rounds):
            validator.note_own(groups, 1_800_000_000.0 + r)

    used = _traced(partial(note_all))
    digests = ROUNDS * QUESTIONS * COMPLETIONS
    assert used / digests < BYTES_PER_DIGEST, f"{used / digests:.0f} bytes per remembered completion"


def test_a_node_remembers_its_peers_completions_cheaply() -> None:
    tasks = TaskSet([make_task("add")])
    validator = BatchValidator("s", tasks, LIMITS)
    now = 1_800_000_000.0
    validator.clock = lambda: now
    envelopes = []
    for r, groups in enumerate(_rounds(tasks, ROUNDS)):
        wire = tuple(protocol.RolloutGroup(g.question.ref, g.question.text, g.completions, g.rewards) for g in groups)
        envelopes.append(
            protocol.seal_payload(protocol.RolloutBatch("s", r, r, int(now * 1000), "tiny", wire), KEY_A, LIMITS)
        )
    kept: list[object] = []

    def check_all() -> None:
        kept.extend(len(validator.check(e).accepted) for e in envelopes)

    used = _traced(partial(check_all))
    assert kept == [QUESTIONS] * ROUNDS
    digests = ROUNDS * QUESTIONS * COMPLETIONS
    assert used / digests < BYTES_PER_DIGEST, f"{used / digests:.0f} bytes per remembered completion"


def test_seen_holds_its_capacity_and_no_more() -> None:
    seen = Seen(capacity=100)
    for i in range(1000):
        seen.add(i.to_bytes(32, "big"), "note")
    assert len(seen) == 100
    assert (999).to_bytes(32, "big") in seen and (899).to_bytes(32, "big") not in seen
    assert seen.add((899).to_bytes(32, "big"))  # forgotten: new again, and the oldest left goes
    assert (900).to_bytes(32, "big") not in seen and len(seen) == 100


def test_lookups_in_flight_are_kept_and_finished_ones_forgotten() -> None:
    """hivemind's use of its map: a lookup adds itself under its key and is removed when it finishes
    (`DHTNode.get_many_by_id`, `_reuse_finished_search_result`)."""
    pending = PendingGets(partial(SortedSet, key=lambda t: -t))
    in_flight = [f"busy{i}" for i in range(50)]
    for key in in_flight:
        pending[key].add(1.0)
    for i in range(20 * PENDING_SLACK):
        pending[f"done{i}"].add(2.0)
        pending[f"done{i}"].discard(2.0)
    assert len(pending) <= 2 * len(in_flight) + PENDING_SLACK + 1
    assert all(pending[key] == SortedSet([1.0]) for key in in_flight)


def _row(round_: int) -> dict[str, object]:
    return {"round": round_, "mean_reward": 0.5, "external_groups": 0}


def _peer(peer_id: str, banned: bool = False) -> dict[str, object]:
    return {"peer_id": peer_id, "model": "m", "last_seen_s": 0.0, "accepted_groups": 1, "rejected": {},
            "mean_reward": 0.0, "score": 1.0, "banned": banned}  # fmt: skip


def test_the_status_remembers_only_the_peers_of_the_peer_book() -> None:
    """Peers come and go (the peer book keeps at most `max_peers`): the status's memory of which peers it has
    announced and which are ignored is that of the book, not of every peer ever met."""
    status = NodeStatus({"version": "x", "swarm": "s", "silo": False, "model": "m", "tasks": [], "run_dir": "r",
                         "questions_per_round": 1, "external_groups": 1, "backend": "hf", "peer_id": None})  # fmt: skip
    for r in range(1, 501):  # 5 new peers a round, the book keeps the latest 20, the newest is banned
        ids = [f"peer{i}" for i in range(max(0, 5 * r - 20), 5 * r)]
        status.round_done(_row(r), [_peer(p, banned=p == ids[-1]) for p in ids])  # type: ignore[misc]
    assert len(status._known_peers) <= 20 and len(status._banned) <= 1
    before = status._seq
    status.round_done(_row(501), [_peer("peer0")])  # type: ignore[misc]  # back, after the book forgot it
    news = [e["text"] for e in status.events if e["seq"] > before and e["kind"] == "peer"]
    assert news == ["new peer peer0"]


def test_a_reply_to_a_call_that_timed_out_is_dropped_not_raised() -> None:
    """hivemind's daemon-reply reader does `pending_calls[id].set_result(reply)`; for a call whose caller
    gave up (its future cancelled) a plain dict raises InvalidStateError there, which ends the reader."""
    import asyncio

    from swarmnode.swarm.transports.hivemind_storage import SettledCalls

    async def replies(calls: dict[str, asyncio.Future[bytes]]) -> bytes:
        calls["late"] = asyncio.get_running_loop().create_future()
        calls["waiting"] = asyncio.get_running_loop().create_future()
        calls["late"].cancel()  # its caller timed out
        calls["late"].set_result(b"too late")  # the reader's line, for the reply that still came
        calls["waiting"].set_result(b"reply")
        return await calls["waiting"]

    assert asyncio.run(replies(SettledCalls())) == b"reply"
    with pytest.raises(asyncio.InvalidStateError):
        asyncio.run(replies({}))  # hivemind's own map
