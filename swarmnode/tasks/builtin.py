"""Built-in task families that need nothing but Python, sized for the embedded tiny model.

`add`: sum of two zero-padded numbers of `digits` digits (`07+45=` -> `<answer>52</answer>`). About 10%
of all operand pairs are held out: the "train" split never produces them, the "eval" split only them.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping

from protocol import TaskRef
from protocol.messages import Scalar
from swarmnode.tasks.base import Question, TaskError, extract_answer

EVAL_FRACTION_PER_256 = 26  # ~10% of operand pairs are held out for evaluation
MAX_TRIES = 10_000


def is_held_out(a: int, b: int, digits: int) -> bool:
    return hashlib.sha256(f"add:{digits}:{a}:{b}".encode()).digest()[0] < EVAL_FRACTION_PER_256


class AddTask:
    name = "add"

    def __init__(self, digits: int = 2) -> None:
        if type(digits) is not int or not 1 <= digits <= 6:
            raise TaskError(f"digits must be an integer from 1 to 6, got {digits!r}")
        self.digits = digits

    @classmethod
    def from_params(cls, params: Mapping[str, Scalar]) -> AddTask:
        unknown = set(params) - {"digits"}
        if unknown:
            raise TaskError(f"unknown parameters {sorted(unknown)} (add takes: digits)")
        digits = params.get("digits", 2)
        if type(digits) is not int:
            raise TaskError(f"digits must be an integer, got {digits!r}")
        return cls(digits)

    def _operands(self, seed: int, index: int, split: str) -> tuple[int, int]:
        rng = random.Random(f"add:{self.digits}:{seed}:{index}:{split}")
        want_eval = split == "eval"
        for _ in range(MAX_TRIES):
            a, b = rng.randrange(10**self.digits), rng.randrange(10**self.digits)
            if self.digits == 1 or is_held_out(a, b, self.digits) == want_eval:
                return a, b
        raise TaskError("could not draw operands")  # unreachable for digits >= 2

    def refs(self, seed: int, start: int, count: int, split: str) -> list[TaskRef]:
        params: tuple[tuple[str, bool | int | float | str], ...] = (("digits", self.digits),)
        if split != "train":
            params = (("digits", self.digits), ("split", split))
        return [TaskRef(self.name, seed, start + i, params) for i in range(count)]

    def question(self, ref: TaskRef) -> Question:
        params = dict(ref.params)
        if ref.task != self.name or set(params) - {"digits", "split"}:
            raise TaskError(f"not an add reference: {ref}")
        if params.get("digits") != self.digits:
            raise TaskError(f"add reference with digits={params.get('digits')!r}, this node uses {self.digits}")
        split = params.get("split", "train")
        if split not in ("train", "eval"):
            raise TaskError(f"unknown split {split!r}")
        a, b = self._operands(ref.seed, ref.index, str(split))
        d = self.digits
        return Question(ref, f"{a:0{d}d}+{b:0{d}d}=", str(a + b))

    def score(self, question: Question, completion: str) -> float:
        return 1.0 if extract_answer(completion) == question.answer else 0.0

    def in_eval_split(self, ref: TaskRef) -> bool:
        return ref.task == self.name and dict(ref.params).get("split") == "eval"


TASKS = {"add": AddTask.from_params}
