"""The task interface, the answer format, and the set of tasks a node trains on (`catalog` turns names into
tasks).

A question is identified by a `protocol.TaskRef` (task name, seed, index, parameters): every node can
rebuild it with its own task code, so a peer's question is checked, never trusted, and every completion
is re-scored locally. Answers are given as `<answer>...</answer>`; the last such span counts.

The answer format (`task.answer_format`, one rule for every task of a set, and a rule the nodes of a swarm
share: a peer that scores under another rule has its claimed rewards refused as misreported) decides what
text may surround that span. Under `end` (the default) nothing but whitespace may follow it, under `exact`
nothing may precede it either, under `anywhere` anything goes. A completion outside the format scores 0:
a correct answer cannot carry a payload after it, and text outside the span is what the node's
drift signal watches for in its own samples (`stray_text`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from protocol import TaskRef
from swarmnode.errors import UserError

ANSWER_PATTERN = re.compile(r"<answer>\s?(.*?)\s?</answer>", re.DOTALL)
AnswerFormat = Literal["end", "exact", "anywhere"]
OPEN_TAG, CLOSE_TAG = "<answer>", "</answer>"


def stray_text(completion: str, answer_format: AnswerFormat = "exact") -> str:
    """The text of `completion` outside its answer span (the last one, as `extract_answer` finds it) that
    `answer_format` does not allow, stripped ("" when there is none; a completion without an answer span has
    no stray text, only no answer): under `end` the text after the span (a stray `</answer>` included),
    under `exact` the text before and after, under `anywhere` nothing."""
    spans = list(ANSWER_PATTERN.finditer(completion))
    if not spans or answer_format == "anywhere":
        return ""
    start, end = spans[-1].span()
    after = completion[end:].strip()
    if answer_format == "end":
        return after
    return " ".join(part for part in (completion[:start].strip(), after) if part)


def outside_text(completion: str) -> str:
    """All of `completion` but its answer span, stripped; for a completion without one, all of it but the
    answer tags (what a victim of a payload writes is often an answer it never closes)."""
    if ANSWER_PATTERN.search(completion):
        return stray_text(completion, "exact")
    return completion.replace(OPEN_TAG, " ").replace(CLOSE_TAG, " ").strip()


def extract_answer(completion: str) -> str | None:
    """The text inside the last `<answer>...</answer>` span, stripped; None when there is none."""
    matches = ANSWER_PATTERN.findall(completion)
    return matches[-1].strip() if matches else None


EXAMPLE_SEED = 4_242_424_242
"""Seed of the train-split stream that worked examples are drawn from (the same for every node; never the eval
split)."""


def worked_reply(question: Question, answer_format: AnswerFormat = "end") -> str:
    """An answer to `question` as a worked example shows it: the equation restated (for a question written as
    `...=`), then the answer span (`12+7 = 19. <answer>19</answer>`); the span alone under `exact`, which allows
    nothing before it."""
    span = f"{OPEN_TAG}{question.answer}{CLOSE_TAG}"
    text = question.text.strip()
    if answer_format == "exact" or not text.endswith("="):
        return span
    return f"{text[:-1].rstrip()} = {question.answer}. {span}"


class TaskError(Exception):
    """A task reference this node cannot rebuild (unknown task, bad parameters, bad index)."""


@dataclass(frozen=True)
class Question:
    ref: TaskRef
    text: str
    """The question as the task states it; this text travels with shared rollouts."""
    answer: str
    """The oracle answer (never shared; peers rebuild it from the reference)."""
    entry: Mapping[str, Any] = field(default_factory=dict, compare=False)
    """Task-specific data the verifier needs (reasoning-gym's dataset entry)."""


class Task(Protocol):
    name: str

    def question(self, ref: TaskRef) -> Question:
        """Rebuild the question for `ref`; raises TaskError when `ref` is not one of this task's."""
        ...

    def refs(self, seed: int, start: int, count: int, split: str) -> list[TaskRef]:
        """`count` references from index `start` of the seeded stream for `split` ("train" or "eval")."""
        ...

    def score(self, question: Question, completion: str) -> float:
        """Reward in [0, 1] for one completion: 1 for a verified answer, partial credit only where the
        verifier gives it, 0 otherwise."""
        ...

    def in_eval_split(self, ref: TaskRef) -> bool:
        """True when `ref` itself says it is from the eval split; False when it does not, or cannot say (a
        node also refuses its own eval questions by their text)."""
        ...


class TaskSet:
    """The tasks a node trains on; questions are drawn round-robin from a deterministic stream."""

    def __init__(
        self, tasks: Sequence[Task], answer_format: AnswerFormat = "end", weights: Mapping[str, int] | None = None
    ) -> None:
        if not tasks:
            raise UserError("at least one task is needed")
        self.answer_format: AnswerFormat = answer_format
        self.tasks = {t.name: t for t in tasks}
        self._order = list(self.tasks)
        weights = weights or {}
        unknown = sorted(set(weights) - set(self.tasks))
        if unknown:
            raise UserError(f"task.weights names {', '.join(unknown)}, not among task.names")
        self._weighted = _interleaved({name: weights.get(name, 1) for name in self._order})
        """The training stream's cycle: each task as many times as its weight, spread out (held-out questions
        are drawn in plain round-robin, every task alike)."""

    def draw(self, seed: int, start: int, count: int, split: str = "train") -> list[Question]:
        """Questions at positions start .. start+count-1 of this set's stream: position p belongs to task
        p mod T (round-robin) at that task's index p div T. Deterministic in (seed, position)."""
        order = self._weighted if split == "train" else [(name, 0, 1) for name in self._order]
        questions: list[Question] = []
        for position in range(start, start + count):
            name, nth, weight = order[position % len(order)]
            task = self.tasks[name]
            ref = task.refs(seed, (position // len(order)) * weight + nth, 1, split)[0]
            questions.append(task.question(ref))
        return questions

    def rebuild(self, ref: TaskRef) -> Question:
        """Rebuild a (peer's) question from its reference with this node's own task code."""
        task = self.tasks.get(ref.task)
        if task is None:
            raise TaskError(f"task {ref.task!r} is not one of this node's tasks")
        return task.question(ref)

    def score(self, question: Question, completion: str) -> float:
        """The task's own score of `completion`, or 0 when text the answer format forbids surrounds its
        answer (see the module docstring)."""
        if stray_text(completion, self.answer_format):
            return 0.0
        return self.tasks[question.ref.task].score(question, completion)

    def stray(self, completion: str) -> str:
        """Text outside the answer span that this set's answer format forbids ("" when there is none)."""
        return stray_text(completion, self.answer_format)

    def examples(self, count: int) -> list[tuple[str, str]]:
        """`count` worked examples (question text, reply) from the train split's stream at `EXAMPLE_SEED`: shown to
        a chat model as earlier turns, they teach it the answer format (SmolLM2-135M never writes `<answer>`
        unshown)."""
        return (
            [(q.text, worked_reply(q, self.answer_format)) for q in self.draw(EXAMPLE_SEED, 0, count)] if count else []
        )

    def eval_questions(self, seed: int, count: int) -> list[Question]:
        """The held-out questions a node evaluates on: the first `count` of the eval split's stream."""
        return self.draw(seed, 0, count, split="eval")

    def in_eval_split(self, ref: TaskRef) -> bool:
        """True when a (peer's) reference names the eval split of one of this set's tasks."""
        task = self.tasks.get(ref.task)
        return task is not None and task.in_eval_split(ref)


def _interleaved(weights: Mapping[str, int]) -> list[tuple[str, int, int]]:
    """One cycle of the weighted stream: (task, its n-th turn in the cycle, its weight), each task `weight`
    times, its turns spread evenly through the cycle (stable order among equals). With every weight 1 it is
    plain round-robin. A task's index in its own stream is cycle * weight + n: no question repeats."""
    turns = [((n + 0.5) / w, i, name, n, w) for i, (name, w) in enumerate(weights.items()) for n in range(w)]
    return [(name, n, w) for _, _, name, n, w in sorted(turns)]
