"""The swarm front: nodes built from their config share groups through it, and it counts what they refuse."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from swarmnode.config import NodeConfig
from swarmnode.groups import Group
from swarmnode.identity import Identity
from swarmnode.run_dir import SWARM_COUNTER_KEYS
from swarmnode.swarm.front import Swarm, open_swarm
from swarmnode.swarm.transports.memory import MemoryHub, MemoryTransport
from swarmnode.tasks import TaskSet, make_task
from tests.hostile import Attacker, OfferingAttacker, good_group, long_completions


def config(**swarm: object) -> NodeConfig:
    """A member's config; its rounds share in line (each `share` publishes, then collects) unless the test
    asks for the I/O thread (`background_sharing=True`)."""
    return NodeConfig.model_validate(
        {
            "silo": False,
            "swarm": {"name": "s", "background_sharing": False, **swarm},
            "model": {"name": "tiny"},
            "eval": {"questions": 20},
        }
    )


def member(hub: MemoryHub, tasks: TaskSet, **swarm: object) -> Swarm:
    identity = Identity(Ed25519PrivateKey.generate())
    return open_swarm(config(**swarm), tasks, transport=MemoryTransport(hub), identity=identity)


def groups(tasks: TaskSet, start: int, count: int = 3) -> list[Group]:
    out = []
    for q in tasks.draw(seed=9, start=start, count=count):
        completions = (f"<answer>{q.answer}</answer>", "<answer>0</answer>", "<answer>1</answer>")
        out.append(Group(q, completions, (1.0, 0.0, 0.0), token_ids=((1,), (2,), (3,))))
    return out


def test_members_share_groups_rescored_and_attributed_to_their_author() -> None:
    tasks = TaskSet([make_task("add")])
    hub = MemoryHub()
    a, b = member(hub, tasks), member(hub, tasks)
    lying = [Group(g.question, g.completions, (1.0, 1.0, 1.0)) for g in groups(tasks, 0)]
    assert a.share(1, 0, lying) == []  # nobody else has published yet
    got = b.share(1, 0, groups(tasks, 3))
    assert len(got) == 3 and {g.source for g in got} == {a.peer_id}
    assert all(g.rewards == (1.0, 0.0, 0.0) and g.claimed_rewards == (1.0, 1.0, 1.0) for g in got)
    assert all(g.model == "tiny" and g.token_ids is None for g in got)
    counters = b.counters()
    assert set(counters) == set(SWARM_COUNTER_KEYS)
    assert counters["misreported_rewards"] == 6 and counters["peers"] == 1 and counters["rejected"] == {}
    assert [p["peer_id"] for p in b.peers()] == [a.peer_id] and b.peers()[0]["accepted_groups"] == 3
    assert {g.source for g in a.share(2, 1, [])} == {b.peer_id}


def test_at_most_the_configured_external_groups_and_share_per_peer() -> None:
    tasks = TaskSet([make_task("add")])
    hub = MemoryHub()
    authors = [member(hub, tasks) for _ in range(3)]
    for round_ in range(1, 4):  # each author lists three batches of one group
        for i, author in enumerate(authors):
            author.share(round_, 0, groups(tasks, 10 * i + round_, count=1))
    reader = member(hub, tasks, external_groups=2, max_share_per_peer=0.5)  # J = 2, at most 1 per peer
    got = reader.share(1, 0, [])
    assert len(got) == 2 and len({g.source for g in got}) == 2


def test_the_nodes_own_and_marked_eval_questions_are_refused() -> None:
    tasks = TaskSet([make_task("add")])
    hub = MemoryHub()
    victim = member(hub, tasks)
    attacker = Attacker(MemoryTransport(hub), "s", tasks)
    own_eval = tasks.eval_questions(12345, 2)  # config.eval.seed's default
    other_eval = tasks.eval_questions(777, 3)  # not the node's questions, but marked as an eval split
    attacker.offer([attacker.batch([good_group(q) for q in own_eval + other_eval])])
    assert victim.share(1, 0, []) == []
    assert victim.counters()["rejected"] == {"held_out_question": 5}


def test_a_swarm_that_opened_its_transport_closes_it() -> None:
    tasks = TaskSet([make_task("add")])
    said: list[str] = []
    swarm = open_swarm(
        config(transport="memory"), tasks, identity=Identity(Ed25519PrivateKey.generate()), say=said.append
    )
    assert swarm.addresses() == []
    assert said[-1] == f"swarm s: peer id {swarm.peer_id}" and "memory transport" in said[0]
    swarm.close()
    swarm.close()


def test_peers_completions_are_bounded_in_the_nodes_own_tokens() -> None:
    """`count_tokens` (the node passes its prompter's) bounds each peer completion at twice
    `generation.max_new_tokens` unless `swarm.max_completion_tokens` says otherwise."""
    tasks = TaskSet([make_task("add")])
    hub = MemoryHub()
    cfg = config().model_copy(update={"generation": config().generation.model_copy(update={"max_new_tokens": 15})})
    victim = open_swarm(
        cfg, tasks, transport=MemoryTransport(hub), identity=Identity(Ed25519PrivateKey.generate()), count_tokens=len
    )
    attacker = OfferingAttacker(MemoryTransport(hub), "s", tasks)
    fits = attacker.questions(1)
    attacker.offer_true(
        [long_completions(attacker, attacker.questions(2), 100), attacker.batch([good_group(q) for q in fits])]
    )
    got = victim.share(1, 0, [])
    assert [g.question.text for g in got] == [fits[0].text]
    assert victim.counters()["rejected"] == {"long_completion": 4}
    unbounded = member(hub, tasks)  # no token count (benches, tests): only the protocol's character limit
    assert len(unbounded.share(1, 0, [])) == 3  # the long groups too
