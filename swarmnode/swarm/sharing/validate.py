"""The node's validation chain for a peer's rollout batch, after (and including) the wire checks.

Order, each step counting its rejections by reason: size, signature, schema and limits (the protocol's
`verify_and_decode`); kind and swarm; this node's own signature (`own_batch`: never taken as external);
freshness (age window, bounded clock skew); duplicates (by message id, then per completion by task
reference + completion digest, see `BatchValidator.duplicate_reason`); rebuilding each question from its
task reference with this node's own task code (a mismatch is rejected); refusing questions of this node's
held-out evaluation set; bounding each completion's length in this node's tokens (`long_completion`, a
cheap character bound first); and re-scoring every completion with this node's own verifier. A peer's
reward numbers are never used. (How many batches one peer may send per round, and how many tokens a
round takes from peers, are the exchange's budgets.)
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import protocol
from protocol import RolloutBatch, TaskRef
from swarmnode.groups import Group
from swarmnode.swarm.trust.reasons import Refusal, refusal
from swarmnode.tasks import Question, TaskSet
from swarmnode.tasks.base import TaskError

SEEN_CAPACITY = 100_000
"""Ids a node remembers to spot repeats (message ids, completion digests, batches processed). A quiet node
notes about 200 completion digests a round (its own and its peers'), so this is reached after some hundreds
of rounds; then a `Seen` holds about 18 MB (about 180 bytes an id, its note shared by a batch's ids) and no
more."""

MAX_CHARS_PER_TOKEN = 32
"""A completion longer than this many characters per allowed token is dropped without tokenising it (no
tokenizer's tokens average that long over a text), so a flood of long texts costs no tokenizer time."""


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
    """Refusals charged to the author (the exchange charges the announcer where the author is unknown or
    is this node)."""
    author: str | None = None
    ignored: Counter[str] = field(default_factory=Counter)
    """Refusals counted but charged to nobody (duplicates of content the signer cannot be shown to have
    copied)."""
    tokens: list[int] = field(default_factory=list)
    """Completion tokens of each accepted group (0 without a token counter)."""
    batch: RolloutBatch | None = None
    """The decoded batch, when it got that far (the exchange compares it with the offer's summary)."""
    misreported: int = 0
    """Accepted completions of this batch whose claimed reward differs from this node's score."""


class Seen:
    """Ids seen lately, each with a note (for example who signed it); past `capacity` the oldest entry is
    forgotten first, so a peer cannot make it grow without bound. (A plain dict and a queue of its keys: an
    `OrderedDict` costs about 50 bytes more an id.)"""

    def __init__(self, capacity: int = SEEN_CAPACITY) -> None:
        self.capacity = capacity
        self._items: dict[bytes, str] = {}
        self._order: deque[bytes] = deque()

    def add(self, key: bytes, note: str = "") -> bool:
        """Remember `key` with `note`; False (and nothing changed) if it was already there."""
        if key in self._items:
            return False
        self._items[key] = note
        self._order.append(key)
        if len(self._order) > self.capacity:
            del self._items[self._order.popleft()]
        return True

    def get(self, key: bytes) -> str | None:
        """The note `key` was remembered with, or None if it is not (or no longer) remembered."""
        return self._items.get(key)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)


def _note(signer: str, received_s: float) -> str:
    """What `Seen` keeps for a completion: who this node took it from, and when it had it."""
    return f"{signer} {received_s:.3f}"


def _blame(duplicate: tuple[Refusal, bool]) -> tuple[bool, bool]:
    """Of a group's duplicate completions, the one charged most is counted: copied, then own, then none."""
    reason, charged = duplicate
    return charged, reason == Refusal.COPIED_COMPLETION


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
        *,
        own_peer_id: str = "",
        count_tokens: Callable[[str], int] | None = None,
        max_completion_tokens: int | None = None,
    ) -> None:
        self.own_peer_id = own_peer_id
        """Batches signed by this node are refused (`own_batch`)."""
        self.count_tokens = count_tokens
        """This node's token count of a completion's text (as its learner tokenises it); None: no count."""
        self.max_completion_tokens = max_completion_tokens
        """Completions longer than this (in this node's tokens) are dropped as `long_completion`; None: no
        bound."""
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
        self.counts.update(outcome.ignored)
        return outcome

    def note_own(self, groups: Sequence[Group], created_s: float) -> None:
        """Remember this node's own completions, published at `created_s`: a peer's copy of them is never
        taken (and, when signed after they were published, charged as `copied_completion`)."""
        note = _note(self.own_peer_id, created_s)  # one string for them all (about 120 bytes each otherwise)
        for g in groups:
            for c in g.completions:
                self._seen_completions.add(completion_digest(g.question.ref, c), note)

    def duplicate_reason(self, first: str, signer: str, signed_s: float) -> tuple[Refusal, bool]:
        """Why a completion seen before is refused, and whether its signer is charged for it.

        `first` notes who this node first took it from and when it had it. Signed times cannot settle who
        copied whom (either side can backdate its own), but nobody can sign a text before it has it: a
        batch whose own signed time is later, by more than the tolerated skew, than the moment this node
        already held the same completion from somebody else attests that its signer published it after it
        was out, and is charged (`copied_completion`; no strike: honest nodes with a shared seed and model
        produce identical text). A later copy of the signer's own text is its own `duplicate_completion`,
        charged to it. Any other duplicate is counted and charged to nobody, so a copier whose copy gets
        here first never gets the honest author charged."""
        first_signer, _, received = first.partition(" ")
        if first_signer == signer:
            return Refusal.DUPLICATE_COMPLETION, True
        if received and signed_s > float(received) + self.policy.max_future_s:
            return Refusal.COPIED_COMPLETION, True
        return Refusal.DUPLICATE_COMPLETION, False

    def _tokens(self, text: str) -> int | None:
        """The completion's length in this node's tokens, or None when it is over the bound."""
        bound = self.max_completion_tokens
        if bound is not None and len(text) > bound * MAX_CHARS_PER_TOKEN:
            return None
        tokens = self.count_tokens(text) if self.count_tokens is not None else 0
        return None if bound is not None and tokens > bound else tokens

    def _check(self, raw: object) -> Outcome:
        verdict = protocol.verify_and_decode(raw, self.limits)
        if isinstance(verdict, protocol.Rejected):
            return Outcome(rejected=Counter({refusal(verdict.reason.value): 1}))
        author = verdict.peer_id
        batch = verdict.payload
        if not isinstance(batch, RolloutBatch):
            return Outcome(rejected=Counter({Refusal.WRONG_KIND: 1}), author=author)
        if batch.swarm != self.swarm:
            return Outcome(rejected=Counter({Refusal.WRONG_SWARM: 1}), author=author)
        if author == self.own_peer_id:
            return Outcome(rejected=Counter({Refusal.OWN_BATCH: 1}), author=author)
        age = self.clock() - batch.created_ms / 1000.0
        if age > self.policy.max_age_s:
            return Outcome(rejected=Counter({Refusal.STALE: 1}), author=author)
        if -age > self.policy.max_future_s:
            return Outcome(rejected=Counter({Refusal.FUTURE: 1}), author=author)
        if not self._seen_messages.add(verdict.message_id):
            return Outcome(rejected=Counter({Refusal.DUPLICATE_MESSAGE: 1}), author=author)
        outcome = Outcome(author=author, batch=batch)
        received = self.clock()
        note = _note(author, received)  # shared by the batch's completions in `_seen_completions`
        for group in batch.groups:
            try:
                question = self.tasks.rebuild(group.ref)
            except TaskError:
                outcome.rejected[Refusal.UNKNOWN_TASK] += 1
                continue
            if question.text != group.question:
                outcome.rejected[Refusal.QUESTION_MISMATCH] += 1
                continue
            if self.held_out(question):
                outcome.rejected[Refusal.HELD_OUT_QUESTION] += 1
                continue
            fresh: list[tuple[str, float, tuple[float, ...] | None]] = []
            tokens = 0
            duplicate: tuple[Refusal, bool] | None = None
            for i, (c, r) in enumerate(zip(group.completions, group.rewards, strict=True)):
                digest = completion_digest(group.ref, c)
                first = self._seen_completions.get(digest)
                if first is not None:
                    found = self.duplicate_reason(first, author, batch.created_ms / 1000.0)
                    if duplicate is None or _blame(found) > _blame(duplicate):
                        duplicate = found
                    continue
                counted = self._tokens(c)
                if counted is None:
                    outcome.rejected[Refusal.LONG_COMPLETION] += 1
                    continue
                self._seen_completions.add(digest, note)
                fresh.append((c, r, None if group.logprobs is None else group.logprobs[i]))
                tokens += counted
            if not fresh:
                if duplicate is not None:
                    reason, charged = duplicate
                    (outcome.rejected if charged else outcome.ignored)[reason] += 1
                continue
            rewards = tuple(self.tasks.score(question, c) for c, _, _ in fresh)
            off_format = sum(1 for c, _, _ in fresh if self.tasks.stray(c))
            if off_format:  # kept, at reward 0: a payload after a right answer is a wrong answer here
                outcome.rejected[Refusal.OFF_FORMAT] += off_format
            misreported = sum(abs(own - claim) > 1e-6 for own, (_, claim, _) in zip(rewards, fresh, strict=True))
            outcome.misreported += misreported
            self.misreported += misreported
            outcome.tokens.append(tokens)
            outcome.accepted.append(
                Group(
                    question,
                    tuple(c for c, _, _ in fresh),
                    rewards,
                    source=author,
                    model=batch.model,
                    claimed_rewards=tuple(r for _, r, _ in fresh),
                    logprobs=None if group.logprobs is None else tuple(lp or () for _, _, lp in fresh),
                )
            )
        return outcome
