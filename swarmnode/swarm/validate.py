"""The node's validation chain for a peer's rollout batch, after (and including) the wire checks.

Order, each step counting its rejections by reason: size, signature, schema and limits (the protocol's
`verify_and_decode`); kind and swarm; freshness (age window, bounded clock skew); duplicates (by message
id, then per completion by task reference + completion digest); rebuilding each question from its task
reference with this node's own task code (a mismatch is rejected); refusing questions of this node's
held-out evaluation set; and re-scoring every completion with this node's own verifier. A peer's reward
numbers are never used. (How many batches one peer may send per round is the exchange's quota, checked
before download.)
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import protocol
from protocol import RolloutBatch, TaskRef
from swarmnode.groups import Group
from swarmnode.tasks import Question, TaskSet
from swarmnode.tasks.base import TaskError

SEEN_CAPACITY = 100_000
"""Ids a node remembers to spot repeats (message ids, completion digests, batches processed)."""


@dataclass(frozen=True)
class FreshnessPolicy:
    max_age_s: float = 900.0
    """Batches created longer ago than this are stale."""
    max_future_s: float = 30.0
    """Tolerated clock skew: batches stamped further in the future are rejected."""


@dataclass
class Outcome:
    accepted: list[Group] = field(default_factory=list)
    """The batch's groups that passed: questions as this node rebuilt them, rewards from its own verifier,
    `source` the author's peer id."""
    rejected: Counter[str] = field(default_factory=Counter)
    author: str | None = None


class Seen:
    """Ids seen lately, each with a note (for example who signed it); past `capacity` the oldest entry is
    forgotten first, so a peer cannot make it grow without bound."""

    def __init__(self, capacity: int = SEEN_CAPACITY) -> None:
        self.capacity = capacity
        self._items: OrderedDict[bytes, str] = OrderedDict()

    def add(self, key: bytes, note: str = "") -> bool:
        """Remember `key` with `note`; False (and nothing changed) if it was already there."""
        if key in self._items:
            return False
        self._items[key] = note
        if len(self._items) > self.capacity:
            self._items.popitem(last=False)
        return True

    def get(self, key: bytes) -> str | None:
        """The note `key` was remembered with, or None if it is not (or no longer) remembered."""
        return self._items.get(key)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)


def completion_digest(ref: TaskRef, completion: str) -> bytes:
    text = f"{ref.task}\0{ref.seed}\0{ref.index}\0{sorted(ref.params)!r}\0{completion}"
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


class BatchValidator:
    def __init__(
        self,
        swarm: str,
        tasks: TaskSet,
        limits: protocol.Limits,
        policy: FreshnessPolicy | None = None,
        clock: Callable[[], float] = time.time,
        held_out: Callable[[Question], bool] = lambda q: False,
        seen_capacity: int = SEEN_CAPACITY,
    ) -> None:
        self.held_out = held_out
        """True for questions this node evaluates on: peers' groups on them are refused, so nobody can train
        a node on its own test set."""
        self.swarm = swarm
        self.tasks = tasks
        self.limits = limits
        self.policy = policy or FreshnessPolicy()
        self.clock = clock
        self.counts: Counter[str] = Counter()
        """Rejections by reason since start."""
        self.misreported = 0
        """Accepted completions whose claimed reward differed from this node's own score (the claim is unused)."""
        self._seen_messages = Seen(seen_capacity)
        self._seen_completions = Seen(seen_capacity)

    def check(self, raw: object) -> Outcome:
        outcome = self._check(raw)
        self.counts.update(outcome.rejected)
        return outcome

    def _check(self, raw: object) -> Outcome:
        verdict = protocol.verify_and_decode(raw, self.limits)
        if isinstance(verdict, protocol.Rejected):
            return Outcome(rejected=Counter({verdict.reason.value: 1}))
        author = verdict.peer_id
        batch = verdict.payload
        if not isinstance(batch, RolloutBatch):
            return Outcome(rejected=Counter({"wrong_kind": 1}), author=author)
        if batch.swarm != self.swarm:
            return Outcome(rejected=Counter({"wrong_swarm": 1}), author=author)
        age = self.clock() - batch.created_ms / 1000.0
        if age > self.policy.max_age_s:
            return Outcome(rejected=Counter({"stale": 1}), author=author)
        if -age > self.policy.max_future_s:
            return Outcome(rejected=Counter({"future": 1}), author=author)
        if not self._seen_messages.add(verdict.message_id):
            return Outcome(rejected=Counter({"duplicate_message": 1}), author=author)
        outcome = Outcome(author=author)
        for group in batch.groups:
            try:
                question = self.tasks.rebuild(group.ref)
            except TaskError:
                outcome.rejected["unknown_task"] += 1
                continue
            if question.text != group.question:
                outcome.rejected["question_mismatch"] += 1
                continue
            if self.held_out(question):
                outcome.rejected["held_out_question"] += 1
                continue
            fresh = [
                (c, r)
                for c, r in zip(group.completions, group.rewards, strict=True)
                if self._seen_completions.add(completion_digest(group.ref, c))
            ]
            if not fresh:
                outcome.rejected["duplicate_completion"] += 1
                continue
            rewards = tuple(self.tasks.score(question, c) for c, _ in fresh)
            self.misreported += sum(abs(own - claim) > 1e-6 for own, (_, claim) in zip(rewards, fresh, strict=True))
            outcome.accepted.append(
                Group(
                    question,
                    tuple(c for c, _ in fresh),
                    rewards,
                    source=author,
                    model=batch.model,
                    claimed_rewards=tuple(r for _, r in fresh),
                )
            )
        return outcome
