"""The I local / J external selection that decides what the learner trains on among a round's scored
question groups (its own and peers') that decides what the learner trains on (SAPO). In silo mode J = 0.

External groups are sampled only among those with reward variance (the others carry no GRPO signal), and
no single peer may fill more than `max_share_per_peer` of the J slots. `uniform` draws at random among
the eligible groups; `advantage-aware` takes the groups with the largest reward variance first;
`family-aware` takes task families in turn, the family where the node's own recent reward is lowest first
(a peer's success on a question type the node rarely solves is signal it cannot get alone).

With peers' `standing` ((cohort, junior): seniority, `swarm.peers`), juniors (young peers and later
cohorts) may take `newcomer_slots` first, earliest cohort first, then the earliest cohort's groups fill the
slots in the policy's order, and juniors get what is left (`newcomer_share` counts those not taken). So
however many identities arrive, the peers with a record keep at least J - `newcomer_slots` of the slots
they fill, and a latecomer keeps a share.
"""

from __future__ import annotations

import math
import random
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Literal

from swarmnode.groups import Group

SamplerPolicy = Literal["uniform", "advantage-aware", "family-aware"]


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
    standing: Mapping[str, tuple[int, bool]] | None = None,
    newcomer_slots: int = 0,
) -> list[Group]:
    """The node's first `local_count` own groups plus up to `external_count` peers' groups. Each peers' group
    not taken is counted in `skipped` by why: `no_signal` (no reward variance), `peer_share` (its peer
    already fills `max_share_per_peer` of the slots), `slots_full` (all `external_count` slots taken),
    `newcomer_share` (a young peer's group left over when the slots were full)."""
    skipped = Counter() if skipped is None else skipped
    chosen = list(local[:local_count])
    candidates = [g for g in external if g.informative]
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
    else:
        raise ValueError(f"unknown sampler policy {policy!r}")
    young: set[int] = set()
    if standing is not None:
        old = sorted((g for g in candidates if not standing[g.source][1]), key=lambda g: standing[g.source][0])
        new = sorted((g for g in candidates if standing[g.source][1]), key=lambda g: standing[g.source][0])
        young = {id(g) for g in new}
        candidates = new[:newcomer_slots] + old + new[newcomer_slots:]  # sorted is stable: policy order kept
    cap = max(1, math.floor(max_share_per_peer * external_count))
    per_peer: Counter[str] = Counter()
    taken = 0
    for group in candidates:
        if taken >= external_count:
            skipped["newcomer_share" if id(group) in young else "slots_full"] += 1
            continue
        if per_peer[group.source] >= cap:
            skipped["peer_share"] += 1
            continue
        per_peer[group.source] += 1
        chosen.append(group)
        taken += 1
    return chosen
