"""reasoning-gym datasets as tasks: its generators rebuild a question from (dataset, seed, index,
config) and its `score_answer` is the verifier. Imported only when such a task is used (slow import)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from protocol import TaskRef
from protocol.messages import Scalar
from swarmnode.tasks.base import Question, TaskError, extract_answer

EVAL_SEED_OFFSET = 1_000_003
"""The eval split uses a different seed, so held-out questions come from another stream."""


def is_dataset(name: str) -> bool:
    import reasoning_gym.factory

    return name in reasoning_gym.factory.DATASETS


@lru_cache(maxsize=64)
def _dataset(name: str, seed: int, size: int, params: tuple[tuple[str, Scalar], ...]) -> Any:
    import reasoning_gym

    return reasoning_gym.create_dataset(name, seed=seed, size=size, **dict(params))


def _size_for(index: int) -> int:
    size = 1024
    while size <= index:
        size *= 2
    return size


class ReasoningGymTask:
    def __init__(self, name: str, params: Mapping[str, Scalar]) -> None:
        self.name = name
        self.params = tuple(sorted(params.items()))
        _dataset(name, 0, 1024, self.params)[0]  # fail early on bad parameters

    def refs(self, seed: int, start: int, count: int, split: str) -> list[TaskRef]:
        if split == "eval":
            seed = (seed + EVAL_SEED_OFFSET) % 2**32
        return [TaskRef(self.name, seed, start + i, self.params) for i in range(count)]

    def in_eval_split(self, ref: TaskRef) -> bool:
        return False  # the eval split is another seed's stream, which a reference cannot be told apart from

    def question(self, ref: TaskRef) -> Question:
        if ref.task != self.name:
            raise TaskError(f"not a {self.name} reference: {ref.task}")
        if ref.params != self.params:
            raise TaskError(
                f"{self.name} reference with parameters {dict(ref.params)}, this node uses {dict(self.params)}"
            )
        if ref.seed >= 2**32 or ref.index >= 2**31:
            raise TaskError("seed or index out of range for reasoning-gym")
        try:
            entry = _dataset(self.name, ref.seed, _size_for(ref.index), self.params)[ref.index]
        except Exception as exc:  # a generator failing on some index is the peer's problem, not a crash
            raise TaskError(f"{self.name} could not build item {ref.index}: {type(exc).__name__}") from exc
        return Question(ref, str(entry["question"]), str(entry["answer"]), entry)

    def score(self, question: Question, completion: str) -> float:
        answer = extract_answer(completion)
        try:
            reward = float(
                _dataset(self.name, question.ref.seed, _size_for(question.ref.index), self.params).score_answer(
                    answer, dict(question.entry)
                )
            )
        except Exception:
            return 0.0
        return min(max(reward, 0.0), 1.0) if math.isfinite(reward) else 0.0
