"""A round's experience: scored question groups (local or from peers) and the I local / J external
selection that decides what the learner trains on (SAPO). In silo mode J = 0."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from swarmnode.grpo import has_signal
from swarmnode.tasks import Question


@dataclass(frozen=True)
class ScoredGroup:
    question: Question
    prompt_ids: Sequence[int]
    completion_ids: Sequence[Sequence[int]]
    rewards: Sequence[float]
    """Scores from this node's own verifier (never a peer's claim)."""
    source: str
    """"local", or the peer id of the author."""

    @property
    def informative(self) -> bool:
        return has_signal(list(self.rewards))


def select_groups(
    local: Sequence[ScoredGroup],
    external: Sequence[ScoredGroup],
    *,
    local_count: int,
    external_count: int,
    rng: random.Random | None = None,
) -> list[ScoredGroup]:
    """The node's first `local_count` own groups plus up to `external_count` peers' groups drawn
    uniformly from those with reward variance (groups without it carry no signal)."""
    chosen = list(local[:local_count])
    candidates = [g for g in external if g.informative]
    if external_count and candidates:
        picker = rng or random.Random(0)
        chosen += picker.sample(candidates, min(external_count, len(candidates)))
    return chosen
