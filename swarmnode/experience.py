"""A round's experience: scored question groups (local or from peers) and the I local / J external
selection that decides what the learner trains on (SAPO). In silo mode J = 0.

External groups are sampled only among those with reward variance (the others carry no GRPO signal), and
no single peer may fill more than `max_share_per_peer` of the J slots. `uniform` draws at random among
the eligible groups; `advantage-aware` takes the groups with the largest reward variance first.
"""

from __future__ import annotations

import math
import random
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from swarmnode.grpo import has_signal
from swarmnode.tasks import Question

SamplerPolicy = Literal["uniform", "advantage-aware"]


@dataclass(frozen=True)
class ScoredGroup:
    question: Question
    prompt_ids: Sequence[int]
    completion_ids: Sequence[Sequence[int]]
    rewards: Sequence[float]
    """Scores from this node's own verifier (never a peer's claim)."""
    source: str
    """"local", or the peer id of the author."""
    texts: Sequence[str] = ()
    """The completions as text (what the node shares), kept so they are not decoded twice."""

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
    policy: SamplerPolicy = "uniform",
    max_share_per_peer: float = 0.5,
) -> list[ScoredGroup]:
    """The node's first `local_count` own groups plus up to `external_count` peers' groups."""
    chosen = list(local[:local_count])
    if external_count <= 0:
        return chosen
    picker = rng or random.Random(0)
    candidates = [g for g in external if g.informative]
    if policy == "uniform":
        picker.shuffle(candidates)
    elif policy == "advantage-aware":
        picker.shuffle(candidates)  # random among equals
        candidates.sort(key=lambda g: -statistics.pvariance(g.rewards))
    else:
        raise ValueError(f"unknown sampler policy {policy!r}")
    cap = max(1, math.floor(max_share_per_peer * external_count))
    per_peer: Counter[str] = Counter()
    taken = 0
    for group in candidates:
        if taken >= external_count:
            break
        if per_peer[group.source] >= cap:
            continue
        per_peer[group.source] += 1
        chosen.append(group)
        taken += 1
    return chosen
