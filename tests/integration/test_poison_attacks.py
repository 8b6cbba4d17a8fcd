"""Valid but poisoned against a running node: one real `swarmnode join` process on 127.0.0.1
(hivemind DHT, the embedded model, training rounds, its default defenses; seniority after 5 rounds to keep
the test short) and, in this test process, an honest peer that publishes from the node's first rounds and
twenty sybil identities that arrive later, each publishing valid batches whose right answers carry a payload
(after the answer or before it).

The node must keep running; count the payloads after the answer (`off_format`) and those the likelihood
gate dropped (`improbable`) in its metrics; keep taking the honest peer's full share of its external groups
(`max_share_per_peer` of J: the sybils get what is left);
show its drift signal, with none of the refused text in its own samples; and say all of it on its dashboard's
data source, the status API."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from swarmnode.bench.attacks import Crowd, clean_group
from swarmnode.groups import Group
from tests.helpers import wait_for
from tests.victim import Victim, honest_exchange, running_victim

SWARM = "poisoned"
TRUST_ROUNDS = 5
pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def victim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Victim]:
    sets = ("generation.questions_per_round=4", f"swarm.trust_rounds={TRUST_ROUNDS}", "status.enabled=true")
    with running_victim(tmp_path_factory.mktemp("poison"), SWARM, minutes=12, sets=sets) as victim:
        victim.wait_round(1, "the node's first round")
        yield victim


def test_poisoning_sybils_arriving_later_are_refused_counted_and_kept_to_a_small_share(victim: Victim) -> None:
    honest = honest_exchange(victim.transport, SWARM, victim.tasks)
    rng = random.Random(0)
    index = 7_000_000

    def publish_honest(round_: int) -> None:
        # two batches a turn, twice what the node may take of one peer a round: the honest peer always has a
        # batch on offer, even when the node reads before this turn's batches are stored (it is not in step)
        nonlocal index
        honest.start_round()
        for _ in range(2):
            questions = victim.tasks.draw(seed=31, start=index, count=8)
            index += 8
            groups = [clean_group(q, victim.tasks, rng) for q in questions]
            batch = [Group(q, g.completions, g.rewards) for q, g in zip(questions, groups, strict=True)]
            honest.publish(round_, 0, batch)

    sybils = Crowd(victim.transport, SWARM, victim.tasks, 20, poison=True, where="both")
    start = victim.round()
    for turn in range(1, 60):  # the honest peer alone until it has a record, then the sybils too
        seen = victim.round()
        publish_honest(turn)
        if seen >= start + TRUST_ROUNDS + 3:
            sybils.publish(turn)
        if seen >= start + TRUST_ROUNDS + 15:
            break
        wait_for(lambda seen=seen: victim.round() > seen or None, f"the node's round after {seen}", 60)
    assert victim.proc.poll() is None, "the node stopped"
    rows = victim.rows()
    last = rows[-1]
    attacked = [r for r in rows if r["round"] > start + TRUST_ROUNDS + 4]
    assert attacked
    from_sybils = sum(n for r in attacked for p, n in r["external_by_peer"].items() if p in sybils.peer_ids)
    from_honest = sum(n for r in attacked for p, n in r["external_by_peer"].items() if p == honest.identity.peer_id)
    # one honest peer may fill at most max_share_per_peer of J (4 of 8); the sybils get only what is left
    mine = honest.identity.peer_id
    per_round = [(r["round"], r["external_by_peer"].get(mine, 0), r["external_available"]) for r in attacked]
    assert from_honest >= 3 * len(attacked), (from_honest, from_sybils, per_round)
    assert last["rejected"].get("off_format", 0) > 0, last["rejected"]  # payloads after the answer: score 0
    improbable = last["rejected"].get("improbable", 0)
    assert improbable > 0 or from_sybils == 0, last["rejected"]  # payloads before it, when taken: gated
    drift = last["drift"]
    assert drift["refused_fragments"] > 0 and drift["peer_text_rate"] == 0.0, drift
    status = victim.status()
    assert "drift" in status["recent_rounds"][-1] and status["rejected"].get("off_format", 0) > 0
