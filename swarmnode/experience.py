"""The I local / J external selection that decides what the learner trains on among a round's scored
question groups (its own and peers') that decides what the learner trains on (SAPO). In silo mode J = 0.

External groups are sampled only among those with signal for this node (`Group.trains`: reward variance;
with the receiver's baseline, any reward away from the node's own recent reward on the family), and no
single peer may fill more than `max_share_per_peer` of the J slots. `uniform` draws at random among the
eligible groups; `advantage-aware` takes the groups with the largest reward variance first; `family-aware`
takes task families in turn, the family where the node's own recent reward is lowest first; `useful` takes
the groups furthest from what the node would score on them first (`Group.use`). A peer's success on a
question type the node rarely solves is signal it cannot get alone: under `baseline = "receiver"` each
peer's group is measured against the node's own recent reward on its family (`Experience.rebaseline`).

With a training budget (`train.budget_groups` = B) a round trains on at most B groups: the node's own with
signal first, peers' in the rest, at most J; with `generation.min_questions` the node's next round generates
fewer questions by as many peers' groups as it trained on (`questions_next`), so peers' groups replace own
generation instead of adding to the round.

Peers' groups carry their author's seniority (`Group.seniority`: cohort, junior; the words are defined in
`swarm/trust/standing.py`): juniors may take `newcomer_slots` first, earliest cohort first, then the elders'
groups fill the slots in the policy's order, earliest cohort first, and juniors get what is left
(`newcomer_share` counts those not taken). So however many identities arrive, the peers with a record keep
at least J - `newcomer_slots` of the slots they fill, and a latecomer keeps a share.

`Experience` is the node's side of it: each round it selects (I own groups, J peers'), keeps the node's
recent reward per family (the family-aware sampler's need), and hands the selection to the learner.
"""

from __future__ import annotations

import dataclasses
import math
import random
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

from swarmnode.groups import UNPLACED, Group, Seniority

if TYPE_CHECKING:  # the learner brings torch; selection does not need it
    from swarmnode.learner import StepStats

SamplerPolicy = Literal["uniform", "advantage-aware", "family-aware", "useful"]
Baseline = Literal["author", "receiver"]


def newcomer_slots(newcomer_share: float, slots: int) -> int:
    """Of `slots` (J, or a round's groups to download), those kept for juniors: `swarm.newcomer_share` of them."""
    return math.floor(newcomer_share * slots)


def per_peer_cap(max_share_per_peer: float, slots: int) -> int:
    """Of `slots`, the most one peer may fill (`swarm.max_share_per_peer`, at least one)."""
    return max(1, math.floor(max_share_per_peer * slots))


def peer_slots(local: Sequence[Group], local_count: int, external_count: int, budget: int) -> int:
    """The slots a round offers peers' groups: J, or with a training budget what the node's own groups with
    signal leave of it (at most J)."""
    if budget <= 0:
        return external_count
    own = sum(1 for g in local[:local_count] if g.trains)
    return max(0, min(external_count, budget - own))


def by_family_need(groups: Sequence[Group], need: Mapping[str, float], rng: random.Random) -> list[Group]:
    """`groups` reordered one family at a time in turn: the family with the highest `need` (1 - the node's
    own recent reward on it; a family the node has not seen counts as 1) first, then the next, and round
    again; random order within a family."""
    families: dict[str, list[Group]] = {}
    for g in groups:
        families.setdefault(g.question.ref.task, []).append(g)
    for members in families.values():
        rng.shuffle(members)
    order = sorted(families, key=lambda f: (-need.get(f, 1.0), f))
    out: list[Group] = []
    for turn in range(max((len(m) for m in families.values()), default=0)):
        out += [families[f][turn] for f in order if turn < len(families[f])]
    return out


def select_groups(
    local: Sequence[Group],
    external: Sequence[Group],
    *,
    local_count: int,
    external_count: int,
    rng: random.Random | None = None,
    policy: SamplerPolicy = "uniform",
    max_share_per_peer: float = 0.5,
    skipped: Counter[str] | None = None,
    need: Mapping[str, float] | None = None,
    newcomer_slots: int = 0,
    budget: int = 0,
) -> list[Group]:
    """The node's first `local_count` own groups plus up to `external_count` peers' groups; with `budget`,
    the own groups with signal (at most `budget`) and peers' in what is left of it (at most `external_count`).
    Each peers' group not taken is counted in `skipped` by why: `no_signal` (none for this node), `peer_share` (its peer
    already fills `max_share_per_peer` of the slots), `slots_full` (all `external_count` slots taken),
    `newcomer_share` (a junior's group left over when the slots were full)."""
    skipped = Counter() if skipped is None else skipped
    chosen = list(local[:local_count])
    if budget > 0:
        chosen = [g for g in chosen if g.trains][:budget]
    external_count = peer_slots(local, local_count, external_count, budget)
    candidates = [g for g in external if g.trains]
    if len(candidates) < len(external):
        skipped["no_signal"] += len(external) - len(candidates)
    if external_count <= 0:
        if candidates:
            skipped["slots_full"] += len(candidates)
        return chosen
    picker = rng or random.Random(0)
    if policy == "uniform":
        picker.shuffle(candidates)
    elif policy == "advantage-aware":
        picker.shuffle(candidates)  # random among equals
        candidates.sort(key=lambda g: -statistics.pvariance(g.rewards))
    elif policy == "family-aware":
        candidates = by_family_need(candidates, need or {}, picker)
    elif policy == "useful":
        picker.shuffle(candidates)  # random among equals
        candidates.sort(key=lambda g: -g.use)
    else:
        raise ValueError(f"unknown sampler policy {policy!r}")
    juniors: set[int] = set()
    if any(g.seniority is not None for g in candidates):
        old = sorted((g for g in candidates if not _seniority(g).junior), key=lambda g: _seniority(g).cohort)
        new = sorted((g for g in candidates if _seniority(g).junior), key=lambda g: _seniority(g).cohort)
        juniors = {id(g) for g in new}
        candidates = new[:newcomer_slots] + old + new[newcomer_slots:]  # sorted is stable: policy order kept
    cap = per_peer_cap(max_share_per_peer, external_count)
    per_peer: Counter[str] = Counter()
    taken = 0
    for group in candidates:
        if taken >= external_count:
            skipped["newcomer_share" if id(group) in juniors else "slots_full"] += 1
            continue
        if per_peer[group.source] >= cap:
            skipped["peer_share"] += 1
            continue
        per_peer[group.source] += 1
        chosen.append(group)
        taken += 1
    return chosen


def _seniority(group: Group) -> Seniority:
    """A peer's group that carries no seniority is taken as the most junior's."""
    return group.seniority or UNPLACED


class Trains(Protocol):
    def step(self, groups: Sequence[Group]) -> StepStats: ...


@dataclass
class Trained:
    """One round's training: the learner's statistics, and what the selection did with peers' groups."""

    stats: StepStats
    used: Counter[str] = field(default_factory=Counter)
    """Peers' groups trained on, by author."""
    skipped: Counter[str] = field(default_factory=Counter)
    """Peers' groups not trained on, by why (`select_groups`)."""
    slots: int = 0
    """The slots the round offered peers' groups (J, or what the budget left of it)."""


class Experience:
    """The node's choice of what to train on each round (`own` of its groups, up to `slots` of peers'), and
    the learner step on it."""

    def __init__(
        self,
        learner: Trains,
        *,
        own: int,
        slots: int,
        policy: SamplerPolicy = "uniform",
        max_share_per_peer: float = 0.5,
        newcomer_share: float = 0.0,
        keep: float = 0.9,
        baseline: Baseline = "author",
        budget: int = 0,
        fewest: int = 0,
    ) -> None:
        self.learner = learner
        self.own = own
        self.slots = slots
        self.policy: SamplerPolicy = policy
        self.max_share_per_peer = max_share_per_peer
        self.newcomer_slots = newcomer_slots(newcomer_share, slots)
        """Of the `slots`, those juniors may take first."""
        self.keep = keep
        """How much of the previous average the family rewards keep each round."""
        self.baseline: Baseline = baseline
        self.budget = budget
        """Groups trained on per round at most (0: no budget)."""
        self.fewest = fewest
        """Own questions a round generates at least, when peers fill the budget (0: always `own`)."""
        self.proven_trained = 0
        """Peers' groups trained on in the last round from authors who are not juniors (adaptive I's count)."""
        self.family_reward: dict[str, float] = {}
        """Recent mean reward of the node's own completions per task family (an exponential average)."""

    def train(self, local: Sequence[Group], external: Sequence[Group], seed: int) -> Trained:
        """Select from the round's own and peers' groups (randomness from `seed`), note the own rewards, and
        take one learner step on the selection."""
        skipped: Counter[str] = Counter()
        chosen = select_groups(
            local,
            self.rebaseline(external),
            local_count=self.own,
            external_count=self.slots,
            rng=random.Random(seed),
            policy=self.policy,
            max_share_per_peer=self.max_share_per_peer,
            skipped=skipped,
            need={f: 1.0 - r for f, r in self.family_reward.items()},
            newcomer_slots=self.newcomer_slots,
            budget=self.budget,
        )
        self._note_family_rewards(local)
        stats = self.learner.step(chosen)
        used = Counter(g.source for g in chosen if not g.local)
        self.proven_trained = sum(1 for g in chosen if not g.local and not _seniority(g).junior)
        return Trained(stats, used, skipped, peer_slots(local, self.own, self.slots, self.budget))

    def rebaseline(self, external: Sequence[Group]) -> list[Group]:
        """Peers' groups as this node measures them: under the receiver's baseline, a group whose mean reward
        is above the node's own recent reward on its family is measured against that (what the node lacks);
        any other keeps its own mean (GRPO), as does a family the node has not tried yet. A peer's all-wrong
        group on a family the node solves is no lesson: pushed down hard, such completions only disturb what
        the node already does well."""
        if self.baseline != "receiver":
            return list(external)
        own = self.family_reward
        out = []
        for g in external:
            mine = own.get(g.question.ref.task)
            above = mine is not None and g.rewards and sum(g.rewards) / len(g.rewards) > mine
            out.append(dataclasses.replace(g, baseline=mine) if above else g)
        return out

    def questions_next(self) -> int:
        """Own questions to generate next round: `own`, less the groups of peers with a record (not juniors)
        the last round trained on, when the node works to a budget with adaptive I (`fewest` > 0), never under
        `fewest`. Juniors' groups do not count: a crowd of new identities filling the budget must not make
        the honest nodes generate less (and so offer each other less, leaving the crowd more of the slots)."""
        if not (self.budget and self.fewest):
            return self.own
        return max(self.fewest, min(self.own, self.own - self.proven_trained))

    def _note_family_rewards(self, local: Sequence[Group]) -> None:
        by_family: dict[str, list[float]] = {}
        for g in local:
            by_family.setdefault(g.question.ref.task, []).extend(g.rewards)
        for family, rewards in by_family.items():
            mean = sum(rewards) / len(rewards)
            old = self.family_reward.get(family)
            self.family_reward[family] = mean if old is None else self.keep * old + (1 - self.keep) * mean
