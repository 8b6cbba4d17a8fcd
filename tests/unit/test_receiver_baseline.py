"""Taking what the receiver lacks: peers' groups measured against the node's own recent reward on their
family (`swarm.baseline = "receiver"`), ranked by their use to it (`swarm.sampler = "useful"`), a fixed
training budget (`train.budget_groups`) and fewer own questions when peers fill it (`generation.min_questions`)."""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from collections.abc import Sequence

import pytest
import torch

from protocol import TaskRef
from swarmnode import grpo
from swarmnode.config import TrainConfig, load_config, parse_override
from swarmnode.experience import Experience, select_groups
from swarmnode.groups import Group, Seniority
from swarmnode.learner import Learner, StepStats
from swarmnode.policy import Prompter
from swarmnode.tasks import Question
from tests.helpers import tiny_model


def group(family: str, rewards: tuple[float, ...], source: str = "peer", baseline: float | None = None) -> Group:
    question = Question(TaskRef(family, 0, 0), "01+01=", "2")
    return Group(question, ("x",) * len(rewards), rewards, source, baseline=baseline)


def test_an_all_correct_group_carries_signal_only_against_a_receiver_that_fails_its_family() -> None:
    solved = (1.0,) * 8
    assert not group("add", solved).trains  # GRPO: all alike, nothing to learn
    assert group("add", solved, baseline=0.1).trains  # the receiver solves it one time in ten
    assert not group("add", solved, baseline=1.0).trains  # the receiver always solves it
    assert group("add", (0.0,) * 8, baseline=0.9).trains  # all wrong where the receiver mostly succeeds
    assert group("add", solved, baseline=0.1).use == pytest.approx(0.9)
    assert group("add", (1.0, 0.0) * 4).use == pytest.approx(0.5)  # no baseline: the group's own spread


def test_receiver_advantages_are_scaled_by_the_baseline_and_bounded() -> None:
    adv = grpo.baseline_advantages(torch.tensor([1.0, 1.0]), 0.1)
    assert torch.allclose(adv, torch.tensor([3.0, 3.0]))  # 0.9 / sqrt(0.09)
    adv = grpo.baseline_advantages(torch.tensor([1.0, 0.0]), 0.5)
    assert torch.allclose(adv, torch.tensor([1.0, -1.0]))
    never = grpo.baseline_advantages(torch.tensor([1.0]), 0.0)  # a family never solved: the floor, then the clamp
    assert float(never[0]) == pytest.approx(grpo.BASELINE_CLAMP)


def test_useful_sampler_takes_what_the_receiver_lacks_first() -> None:
    """Against a receiver at 0.1 on `mul` and 0.9 on `add`: the all-correct mul group is the most useful, the
    all-correct add group nearly useless."""
    external = [
        group("add", (1.0,) * 4, "a", baseline=0.9),
        group("mul", (1.0,) * 4, "b", baseline=0.1),
        group("add", (1.0, 0.0, 1.0, 0.0), "c", baseline=0.9),
    ]
    chosen = select_groups([], external, local_count=0, external_count=2, policy="useful", max_share_per_peer=1.0)
    assert [g.source for g in chosen] == ["b", "c"]


def test_a_budget_takes_own_groups_with_signal_first_and_peers_in_the_rest() -> None:
    own = [group("add", (1.0, 0.0), "local"), group("add", (1.0, 1.0), "local"), group("add", (0.0, 1.0), "local")]
    peers = [group("add", (1.0, 0.0), f"p{i}") for i in range(10)]
    skipped: Counter[str] = Counter()
    chosen = select_groups(
        own,
        peers,
        local_count=3,
        external_count=8,
        budget=5,
        rng=random.Random(0),
        skipped=skipped,
        max_share_per_peer=1,
    )
    assert [g.local for g in chosen] == [True, True, False, False, False]  # 2 own with signal, 3 peers' to 5
    assert skipped["slots_full"] == 7
    few = select_groups(own, peers, local_count=3, external_count=2, budget=5, max_share_per_peer=1.0)
    assert len(few) == 4  # J still bounds the peers' part


class Recorder:
    def __init__(self) -> None:
        self.seen: list[Group] = []

    def step(self, groups: Sequence[Group]) -> StepStats:
        self.seen = list(groups)
        return StepStats(bool(groups), len(groups), 0, 0)


def test_experience_rebaselines_by_its_own_family_reward_and_adapts_its_questions() -> None:
    learner = Recorder()
    exp = Experience(
        learner, own=8, slots=8, baseline="receiver", budget=8, fewest=2, policy="useful", max_share_per_peer=1.0
    )
    first_round_own = [group("mul", (0.0,) * 7 + (1.0,), "local") for _ in range(2)]
    first_round_own += [group("mul", (0.0,) * 8, "local") for _ in range(6)]  # 2 of 64 solved
    elder = Seniority(0, junior=False)
    peers = [dataclasses.replace(group("mul", (1.0,) * 8, f"p{i % 3}"), seniority=elder) for i in range(6)]
    peers.append(group("sub", (1.0,) * 8, "p9"))
    exp.train(first_round_own, peers, seed=1)
    # round 1: nothing known of mul yet, so the peers' all-correct groups carry nothing
    assert all(g.local for g in learner.seen) and len(learner.seen) == 2 and exp.questions_next() == 8
    exp.train(first_round_own, peers, seed=2)  # now the node knows it solves mul 1 time in 32
    taken = [g for g in learner.seen if not g.local]
    assert len(taken) == 6 and all(g.baseline == pytest.approx(1 / 32) for g in taken)  # sub: never tried, no baseline
    assert exp.questions_next() == 2  # 8 - 6 elders' groups, at least 2
    crowd = [dataclasses.replace(g, seniority=None) for g in peers]  # the same groups from new identities
    exp.train(first_round_own, crowd, seed=3)
    assert len([g for g in learner.seen if not g.local]) == 6 and exp.questions_next() == 8  # juniors: no fewer
    exp.family_reward["add"] = 0.9
    wrong, mixed = group("add", (0.0,) * 8), group("add", (1.0, 0.0) * 4)
    assert [g.baseline for g in exp.rebaseline([wrong, mixed])] == [None, None]  # not above the node: GRPO's
    author = Experience(Recorder(), own=8, slots=8, budget=8, fewest=2)
    author.train(first_round_own, peers, seed=2)
    assert author.questions_next() == 8  # the author's baseline: all-correct groups are nothing, own fill the budget


def test_the_learner_steps_on_a_receiver_baselined_group_and_raises_its_completions() -> None:
    model, tok = tiny_model()
    prompter = Prompter(tok, "off", "")
    learner = Learner(model, TrainConfig(lr=1e-3, peer_min_logprob=0.0, warmup_updates=0), prompter)
    solved = Group(Question(TaskRef("add", 0, 0), "1+1=", "2"), ("<answer>2</answer>",) * 4, (1.0,) * 4, "peer")
    assert not learner.step([solved]).stepped  # GRPO: nothing
    prompt, rows = learner.token_rows(solved)

    def logp() -> float:
        from swarmnode.learner import completion_log_probs, pack

        with torch.no_grad():
            return float(completion_log_probs(model, pack([(prompt, rows[0])], prompter.pad_id)).sum())

    before = logp()
    stats = learner.step([dataclasses.replace(solved, baseline=0.1)])
    assert stats.stepped and stats.groups == 1 and logp() > before


def test_settings_are_checked() -> None:
    with pytest.raises(Exception, match="min_questions"):
        load_config(
            None, [parse_override("generation.min_questions=9"), parse_override("generation.questions_per_round=8")]
        )
    config = load_config(None, [parse_override("swarm.baseline=receiver"), parse_override("swarm.sampler=useful")])
    assert config.swarm.baseline == "receiver"
