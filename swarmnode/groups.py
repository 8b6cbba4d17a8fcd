"""One question group, as text, from scoring to the learner's door: the node's own (scored by its verifier
right after generation) and peers' (rebuilt from their task reference and re-scored here). It is what the
node publishes, collects, selects from and trains on; it becomes token ids only in the learner.
No torch here: the swarm side (and a node without a model) uses it too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import protocol
from swarmnode.tasks import Question

LOCAL = "local"
"""The `source` of this node's own groups (a peer's group has the author's peer id)."""

SIGNAL_TOLERANCE = 1e-6


def has_signal(rewards: Sequence[float], tol: float = SIGNAL_TOLERANCE) -> bool:
    """A group trains the policy only if its rewards are not all equal (GRPO's advantages are zero
    otherwise). The one definition: the learner, the sampler and the offers a node announces use it."""
    return len(rewards) > 1 and max(rewards) - min(rewards) > tol


class Seniority(NamedTuple):
    """A peer's place among this node's peers in the round its group was taken (`swarm/trust/standing.py`)."""

    cohort: int
    """The stretch of rounds its tenure began in (earlier: more senior)."""
    junior: bool
    """It shares the juniors' reserve of the J slots."""


UNPLACED = Seniority(1 << 30, True)
"""The seniority of a peer without tenure, or one the node knows nothing of: after every real cohort, junior."""


@dataclass(frozen=True)
class Group:
    question: Question
    completions: tuple[str, ...]
    rewards: tuple[float, ...]
    """Scores from this node's own verifier (never a peer's claim)."""
    source: str = LOCAL
    """LOCAL, or the peer id of the author."""
    token_ids: tuple[tuple[int, ...], ...] | None = None
    """The completions exactly as this node sampled them (own groups only): trained on as sampled, since
    decoding and encoding again need not give the same tokens. None: tokenised from text by the learner."""
    model: str = ""
    """The author's model name (peers' groups)."""
    claimed_rewards: tuple[float, ...] = ()
    """What the author said its rewards were (peers' groups; kept only to count misreports)."""
    logprobs: tuple[tuple[float, ...], ...] | None = None
    """Behaviour log-probs, per completion one per token its author sampled (own groups: recorded at
    generation; peers': the author's claim, protocol v2). None: not known."""
    round_trips: tuple[bool, ...] | None = None
    """Own groups: whether each completion's text re-tokenises to exactly the ids sampled. A BPE model can sample
    a split its tokenizer never makes (SmolLM2: `1` `0` where encoding `10` gives one token); a receiver lines
    behaviour log-probs up with its own tokenization of the text, so such a row is not shared."""
    seniority: Seniority | None = None
    """Peers' groups: the author's seniority in the round the group was taken (None: own, or not known)."""
    baseline: float | None = None
    """Peers' groups under `swarm.baseline = "receiver"`: this node's own recent reward on the group's family,
    which its advantages are measured against (None: the group's own mean, GRPO's)."""

    @property
    def informative(self) -> bool:
        """Its rewards vary: it carries GRPO signal for anyone (its author included)."""
        return has_signal(self.rewards)

    @property
    def trains(self) -> bool:
        """It carries signal for this node: rewards that vary, or (with a baseline) any reward away from it."""
        if self.baseline is None:
            return self.informative
        return any(abs(r - self.baseline) > SIGNAL_TOLERANCE for r in self.rewards)

    @property
    def use(self) -> float:
        """How far its rewards lie from what this node expects on it: the root-mean-square of reward less the
        baseline (or the group's mean: its standard deviation), before any scaling."""
        if not self.rewards:
            return 0.0
        centre = sum(self.rewards) / len(self.rewards) if self.baseline is None else self.baseline
        return math.sqrt(sum((r - centre) ** 2 for r in self.rewards) / len(self.rewards))

    @property
    def local(self) -> bool:
        return self.source == LOCAL


def wire_group(group: Group, limits: protocol.Limits, logprobs: bool) -> protocol.RolloutGroup:
    """A group as published: its text (each completion cut to the limit) and this node's rewards, never token
    ids; with `logprobs`, its behaviour log-probs when it has them and they still match the text sent (no
    completion cut, no row over `max_completion_tokens`); an empty row for a completion whose text does not
    re-tokenise to the ids sampled (`round_trips`: the row would not line up with the text's tokens)."""
    cut = limits.max_completion_chars
    rows = group.logprobs if logprobs else None
    if rows is not None and group.round_trips is not None and len(group.round_trips) == len(rows):
        rows = tuple(row if same else () for row, same in zip(rows, group.round_trips, strict=True))
        rows = rows if any(rows) else None  # nothing left to share: a v1 message
    if rows is not None and (
        len(rows) != len(group.completions)
        or any(len(c) > cut for c in group.completions)
        or any(len(lp) > limits.max_completion_tokens for lp in rows)
    ):
        rows = None
    return protocol.RolloutGroup(
        group.question.ref,
        group.question.text,
        tuple(c[:cut] for c in group.completions),
        tuple(float(r) for r in group.rewards),
        rows,
    )
