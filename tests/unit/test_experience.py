"""The I local / J external sampler."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from protocol import TaskRef
from swarmnode.experience import select_groups
from swarmnode.groups import Group
from swarmnode.tasks import Question

Q = Question(TaskRef("add", 0, 0), "01+01=", "2")


def group(source: str, rewards: tuple[float, ...]) -> Group:
    return Group(Q, ("x",) * len(rewards), rewards, source)


def test_silo_takes_only_local_groups() -> None:
    local = [group("local", (1.0, 0.0)) for _ in range(5)]
    assert select_groups(local, [group("p", (1.0, 0.0))], local_count=4, external_count=0) == local[:4]


def test_external_groups_without_signal_are_never_picked() -> None:
    external = [group("p", (1.0, 1.0)), group("q", (0.0, 0.0)), group("r", (1.0, 0.0))]
    chosen = select_groups([], external, local_count=0, external_count=3, max_share_per_peer=1.0)
    assert [g.source for g in chosen] == ["r"]


def test_no_peer_fills_more_than_its_share() -> None:
    external = [group("flood", (1.0, 0.0)) for _ in range(100)] + [group(f"p{i}", (1.0, 0.0)) for i in range(3)]
    chosen = select_groups([], external, local_count=0, external_count=4, rng=random.Random(1), max_share_per_peer=0.5)
    counts = Counter(g.source for g in chosen)
    assert len(chosen) == 4 and counts["flood"] <= 2


def test_advantage_aware_prefers_high_variance() -> None:
    external = [group("a", (1.0, 0.0, 0.0, 0.0)), group("b", (1.0, 1.0, 0.0, 0.0)), group("c", (0.5, 0.0, 0.0, 0.0))]
    chosen = select_groups([], external, local_count=0, external_count=1, policy="advantage-aware")
    assert chosen[0].source == "b"


def test_empty_pool_and_unknown_policy() -> None:
    assert select_groups([], [], local_count=4, external_count=4) == []
    with pytest.raises(ValueError, match="policy"):
        select_groups([], [group("a", (1.0, 0.0))], local_count=0, external_count=1, policy="best")  # type: ignore[arg-type]


def test_every_peers_group_not_taken_is_counted_by_why() -> None:
    """2 groups without signal; flood's 5 informative groups against a cap of 2 of the 4 slots, and p0's one:
    3 taken, so flood's other 3 are over its share and no slot was ever full."""
    external = [group("quiet", (0.0, 0.0)), group("quiet", (1.0, 1.0)), group("p0", (1.0, 0.0))]
    external += [group("flood", (1.0, 0.0)) for _ in range(5)]
    skipped: Counter[str] = Counter()
    chosen = select_groups(
        [], external, local_count=0, external_count=4, rng=random.Random(3), max_share_per_peer=0.5, skipped=skipped
    )
    assert len(chosen) == 3 and skipped == {"no_signal": 2, "peer_share": 3}
    # one slot among three peers' informative groups: two find it full
    full: Counter[str] = Counter()
    three = [group(f"p{i}", (1.0, 0.0)) for i in range(3)]
    assert len(select_groups([], three, local_count=0, external_count=1, skipped=full)) == 1
    assert full == {"slots_full": 2}
    silo: Counter[str] = Counter()
    select_groups([], external, local_count=0, external_count=0, skipped=silo)
    assert silo == {"no_signal": 2, "slots_full": 6}


def fam(task: str, source: str = "p") -> Group:
    return Group(Question(TaskRef(task, 0, 0), "q", "a"), ("x", "y"), (1.0, 0.0), source)


def test_family_aware_takes_the_neediest_family_first_and_families_in_turn() -> None:
    """Own recent reward: add 0.9, mul 0.1, sort 0.3; count never seen (need 1). Order: count, mul, sort, add,
    then round again."""
    external = [fam("add"), fam("add"), fam("mul"), fam("mul"), fam("sort"), fam("count")]
    need = {"add": 0.1, "mul": 0.9, "sort": 0.7}
    chosen = select_groups(
        [], external, local_count=0, external_count=5, policy="family-aware", need=need, max_share_per_peer=1.0
    )
    assert [g.question.ref.task for g in chosen] == ["count", "mul", "sort", "add", "mul"]
    skipped: Counter[str] = Counter()
    two = select_groups(
        [],
        external,
        local_count=0,
        external_count=2,
        policy="family-aware",
        need=need,
        skipped=skipped,
        max_share_per_peer=1.0,
    )
    assert [g.question.ref.task for g in two] == ["count", "mul"] and skipped == {"slots_full": 4}
