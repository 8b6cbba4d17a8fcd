"""Built-in task families that need nothing but Python, sized for the embedded tiny models.

Each family draws a question from a seeded stream at a difficulty `level` (for `add`, `digits`) and checks
the answer exactly; about 10% of all questions of a level are held out (decided by a hash of the question,
so no node can train on them): the "train" split never produces them, the "eval" split only them.

| family | question (level 2) | answer | level |
| --- | --- | --- | --- |
| `add` | `07+45=` | `52` | digits of each operand |
| `sub` | `83-45=` | `38` | digits of each operand (never negative) |
| `mul` | `7*45=` | `315` | digits of the second operand |
| `rev` | `rev kqz=` | `zqk` | letters: level + 1 |
| `sort` | `sort 5129=` | `1259` | digits: level + 2 |
| `count` | `count a:abcaaa=` | `4` | letters: 2 x level + 2 |
| `max` | `max 3,9,2=` | `9` | numbers: level + 1, each of one or two digits |
"""

from __future__ import annotations

import hashlib
import random
import string
from collections.abc import Callable, Mapping

from protocol import TaskRef
from protocol.messages import Scalar
from swarmnode.tasks.base import Question, TaskError, extract_answer

EVAL_FRACTION_PER_256 = 26  # ~10% of questions are held out for evaluation
MAX_TRIES = 10_000
Drawn = tuple[str, str, str]
"""(question text, answer, the key whose hash decides whether the question is held out)."""


def held_out(key: str) -> bool:
    return hashlib.sha256(key.encode()).digest()[0] < EVAL_FRACTION_PER_256


def is_held_out(a: int, b: int, digits: int) -> bool:
    return held_out(f"add:{digits}:{a}:{b}")


class BuiltinTask:
    """A family of generated questions: a subclass gives its `name`, the name of its level parameter, the
    levels it has, and `draw` (one question from a random generator at a level)."""

    name = ""
    param = "level"
    levels = range(1, 7)
    default = 2

    def __init__(self, level: int | None = None) -> None:
        level = self.default if level is None else level
        if type(level) is not int or level not in self.levels:
            raise TaskError(
                f"{self.param} must be an integer from {self.levels.start} to {self.levels.stop - 1}, got {level!r}"
            )
        self.level = level

    @classmethod
    def from_params(cls, params: Mapping[str, Scalar]) -> BuiltinTask:
        unknown = set(params) - {cls.param}
        if unknown:
            raise TaskError(f"unknown parameters {sorted(unknown)} ({cls.name} takes: {cls.param})")
        level = params.get(cls.param, cls.default)
        if type(level) is not int:
            raise TaskError(f"{cls.param} must be an integer, got {level!r}")
        return cls(level)

    def draw(self, rng: random.Random) -> Drawn:
        raise NotImplementedError

    def splits(self) -> bool:
        """Whether this level has enough distinct questions to hold some out."""
        return True

    def _drawn(self, seed: int, index: int, split: str) -> Drawn:
        rng = random.Random(f"{self.name}:{self.level}:{seed}:{index}:{split}")
        want_eval = split == "eval"
        for _ in range(MAX_TRIES):
            drawn = self.draw(rng)
            if not self.splits() or held_out(drawn[2]) == want_eval:
                return drawn
        raise TaskError(f"could not draw a {self.name} question")

    def refs(self, seed: int, start: int, count: int, split: str) -> list[TaskRef]:
        params: tuple[tuple[str, bool | int | float | str], ...] = ((self.param, self.level),)
        if split != "train":
            params = ((self.param, self.level), ("split", split))
        return [TaskRef(self.name, seed, start + i, params) for i in range(count)]

    def question(self, ref: TaskRef) -> Question:
        params = dict(ref.params)
        if ref.task != self.name or set(params) - {self.param, "split"}:
            raise TaskError(f"not a {self.name} reference: {ref}")
        if params.get(self.param) != self.level:
            raise TaskError(
                f"{self.name} reference with {self.param}={params.get(self.param)!r}, this node uses {self.level}"
            )
        split = params.get("split", "train")
        if split not in ("train", "eval"):
            raise TaskError(f"unknown split {split!r}")
        text, answer, _ = self._drawn(ref.seed, ref.index, str(split))
        return Question(ref, text, answer)

    def score(self, question: Question, completion: str) -> float:
        return 1.0 if extract_answer(completion) == question.answer else 0.0

    def in_eval_split(self, ref: TaskRef) -> bool:
        return ref.task == self.name and dict(ref.params).get("split") == "eval"


class AddTask(BuiltinTask):
    name = "add"
    param = "digits"

    def __init__(self, digits: int = 2) -> None:
        super().__init__(digits)
        self.digits = digits

    def splits(self) -> bool:
        return self.level > 1

    def draw(self, rng: random.Random) -> Drawn:
        d = self.level
        a, b = rng.randrange(10**d), rng.randrange(10**d)
        return f"{a:0{d}d}+{b:0{d}d}=", str(a + b), f"add:{d}:{a}:{b}"


class SubTask(BuiltinTask):
    name = "sub"
    param = "digits"

    def draw(self, rng: random.Random) -> Drawn:
        d = self.level
        a, b = sorted((rng.randrange(10**d), rng.randrange(10**d)), reverse=True)
        text = f"{a:0{d}d}-{b:0{d}d}="
        return text, str(a - b), f"sub:{text}"


class MulTask(BuiltinTask):
    name = "mul"
    param = "digits"
    levels = range(1, 5)

    def draw(self, rng: random.Random) -> Drawn:
        a, b = rng.randrange(2, 10), rng.randrange(10**self.level)
        text = f"{a}*{b:0{self.level}d}="
        return text, str(a * b), f"mul:{text}"


def letters(rng: random.Random, count: int, alphabet: str = string.ascii_lowercase) -> str:
    return "".join(rng.choice(alphabet) for _ in range(count))


class RevTask(BuiltinTask):
    name = "rev"

    def draw(self, rng: random.Random) -> Drawn:
        word = letters(rng, self.level + 1)
        return f"rev {word}=", word[::-1], f"rev:{word}"


class SortTask(BuiltinTask):
    name = "sort"

    def draw(self, rng: random.Random) -> Drawn:
        digits = letters(rng, self.level + 2, string.digits)
        return f"sort {digits}=", "".join(sorted(digits)), f"sort:{digits}"


class CountTask(BuiltinTask):
    name = "count"

    def draw(self, rng: random.Random) -> Drawn:
        word = letters(rng, 2 * self.level + 2, "abcd")
        char = rng.choice("abcd")
        return f"count {char}:{word}=", str(word.count(char)), f"count:{char}:{word}"


class MaxTask(BuiltinTask):
    name = "max"

    def draw(self, rng: random.Random) -> Drawn:
        numbers = [rng.randrange(100) for _ in range(self.level + 1)]
        text = "max " + ",".join(map(str, numbers)) + "="
        return text, str(max(numbers)), f"max:{text}"


FAMILIES: dict[str, type[BuiltinTask]] = {
    t.name: t for t in (AddTask, SubTask, MulTask, RevTask, SortTask, CountTask, MaxTask)
}
TASKS: dict[str, Callable[[Mapping[str, Scalar]], BuiltinTask]] = {n: t.from_params for n, t in FAMILIES.items()}
