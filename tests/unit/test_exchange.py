"""Two and three identities exchanging rollouts through the in-memory transport."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import protocol
from swarmnode.identity import Identity
from swarmnode.swarm.exchange import OwnGroup, RolloutExchange
from swarmnode.swarm.memory import MemoryHub, MemoryTransport
from swarmnode.swarm.peers import PeerBook
from swarmnode.swarm.validate import BatchValidator
from swarmnode.tasks import TaskSet, make_task

LIMITS = protocol.Limits()


def node(hub: MemoryHub, tasks: TaskSet) -> RolloutExchange:
    return RolloutExchange(
        MemoryTransport(hub),
        Identity(Ed25519PrivateKey.generate()),
        "s",
        BatchValidator("s", tasks, LIMITS),
        PeerBook(),
        LIMITS,
        model="tiny",
    )


def own_groups(tasks: TaskSet, start: int) -> list[OwnGroup]:
    out = []
    for q in tasks.draw(seed=9, start=start, count=3):
        completions = (f"<answer>{q.answer}</answer>", "<answer>0</answer>", "<answer>1</answer>")
        out.append(OwnGroup(q, completions, (1.0, 1.0, 1.0)))  # claims are ignored by readers
    return out


def test_nodes_receive_each_others_groups_once_and_rescored() -> None:
    tasks = TaskSet([make_task("add")])
    hub = MemoryHub()
    a, b, c = node(hub, tasks), node(hub, tasks), node(hub, tasks)
    a.publish(1, 1, own_groups(tasks, 0))
    b.publish(1, 1, own_groups(tasks, 3))
    got = c.collect(1)
    assert {g.author for g in got} == {a.identity.peer_id, b.identity.peer_id}
    assert all(g.rewards == (1.0, 0.0, 0.0) for g in got)
    assert {g.author for g in a.collect(1)} == {b.identity.peer_id}  # never its own
    assert c.collect(1) == []  # already fetched: not downloaded or counted again
    assert sum(c.validator.counts.values()) == 0
    book = {row["peer_id"]: row for row in c.book.snapshot()}
    assert book[a.identity.peer_id]["accepted_groups"] == 3


def test_a_lying_peer_is_rejected_and_recorded() -> None:
    tasks = TaskSet([make_task("add")])
    hub = MemoryHub()
    liar, reader = node(hub, tasks), node(hub, tasks)
    groups = own_groups(tasks, 0)
    other = tasks.draw(seed=9, start=7, count=1)[0]
    liar.publish(
        1,
        1,
        [
            OwnGroup(g.question.__class__(g.question.ref, other.text, other.answer), g.completions, g.rewards)
            for g in groups
        ],
    )
    assert reader.collect(1) == []
    assert reader.validator.counts["question_mismatch"] == 3
    assert reader.book.snapshot()[0]["rejected"] == {"question_mismatch": 3}
