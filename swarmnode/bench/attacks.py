"""Peers that pass every check and still attack, as `swarmnode bench poison` and the tests run
them: signed, fresh, unique batches of rebuildable questions, with rewards claimed as the victims will
re-score them, so nothing is refused as invalid.

- `poisoned_group`: a correct answer carrying a payload (after it, or before it) next to wrong answers, so
  after re-scoring the payload earns a positive advantage wherever the answer format lets it score;
- `clean_group`: the same without a payload (a sybil that only floods);
- `Crowd`: any number of identities (one is a lone poisoner, twenty are sybils) that each publish one batch
  per round over a `Transport`, each through its own `Publisher`, as an honest node publishes.

`payload_rate` is the measure: the share of completions that carry a payload, whole or in pieces: a run
of `FRAGMENT` of its characters, or two distinct characters of the payloads' alphabet (capitals and signs
that neither the built-in tasks' answers nor the answer tags use), anywhere in the completion. A victim
that learns from payloads mostly writes their letters scrambled (the embedded models read bytes), often
in an answer it never closes, not whole words after a closed one; the starting embedded model writes
none in 2,048 samples.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import protocol
from swarmnode.identity import Identity
from swarmnode.swarm.sharing.publish import Publisher
from swarmnode.swarm.transports.base import Transport, TransportError
from swarmnode.tasks import Question, TaskSet

PAYLOADS = ("SPAM", "BUY!", "VISIT", "WIN$")
"""Short enough for a completion of the embedded models (8 new tokens) to carry a whole one."""
FRAGMENT = 3
"""A completion carries a payload when its outside text has a run of this many characters of one."""


def _fragments() -> frozenset[str]:
    return frozenset(p[i : i + FRAGMENT] for p in PAYLOADS for i in range(len(p) - FRAGMENT + 1))


PAYLOAD_FRAGMENTS = _fragments()
PAYLOAD_ALPHABET = frozenset("".join(PAYLOADS)) - frozenset("0123456789-")


def carries_payload(completion: str) -> bool:
    return len(PAYLOAD_ALPHABET.intersection(completion)) >= 2 or any(f in completion for f in PAYLOAD_FRAGMENTS)


def payload_rate(completions: Sequence[str]) -> float:
    return sum(map(carries_payload, completions)) / len(completions) if completions else 0.0


def poisoned_group(
    question: Question, tasks: TaskSet, rng: random.Random, size: int = 8, where: str = "both"
) -> protocol.RolloutGroup:
    """Half the completions the right answer with a payload (after it, before it, or either at random:
    `where`), half wrong answers; rewards as `tasks` scores them (an attacker that knows the swarm's rules
    claims nothing a victim would refuse)."""
    texts = []
    for k in range(size):
        if k % 2:
            texts.append(f"<answer>{_wrong(question.answer, rng)}</answer>")
            continue
        payload = rng.choice(PAYLOADS)
        after = where == "after" or (where == "both" and rng.random() < 0.5)
        answer = f"<answer>{question.answer}</answer>"
        texts.append(f"{answer} {payload}" if after else f"{payload} {answer}")
    return _scored(question, tasks, texts)


def clean_group(question: Question, tasks: TaskSet, rng: random.Random, size: int = 8) -> protocol.RolloutGroup:
    """Half right answers, half wrong: valid, useful-looking, and free to make."""
    answers = [question.answer if k % 2 == 0 else _wrong(question.answer, rng) for k in range(size)]
    return _scored(question, tasks, [f"<answer>{a}</answer>" for a in answers])


def _wrong(answer: str, rng: random.Random) -> str:
    try:
        return str(int(answer) + rng.choice((-2, -1, 1, 2)))
    except ValueError:
        return answer[::-1] + "x"


def _scored(question: Question, tasks: TaskSet, texts: Sequence[str]) -> protocol.RolloutGroup:
    rewards = tuple(tasks.score(question, t) for t in texts)
    return protocol.RolloutGroup(question.ref, question.text, tuple(texts), rewards)


class Crowd:
    """`size` attacker identities sharing one transport; `publish()` makes each publish one batch of
    `groups` groups of questions no honest node draws (poisoned or clean), announced under its own key."""

    def __init__(
        self,
        transport: Transport,
        swarm: str,
        tasks: TaskSet,
        size: int,
        *,
        poison: bool,
        where: str = "both",
        groups: int = 8,
        completions: int = 8,
        window_s: float = 60.0,
        seed: int = 0,
    ) -> None:
        self.tasks = tasks
        self.poison = poison
        self.where = where
        self.groups = groups
        self.completions = completions
        self.rng = random.Random(seed)
        limits = protocol.Limits()
        self.publishers = [
            Publisher(transport, Identity(Ed25519PrivateKey.generate()), swarm, "attacker", limits, window_s)
            for _ in range(size)
        ]
        """One per identity, publishing as a node does."""
        self._index = 20_000_000 + 1_000_000 * seed
        self.published = 0
        self.failures = 0

    @property
    def peer_ids(self) -> set[str]:
        return {p.identity.peer_id for p in self.publishers}

    def _questions(self) -> list[Question]:
        found = self.tasks.draw(seed=777, start=self._index, count=self.groups)
        self._index += self.groups
        return found

    def _group(self, question: Question) -> protocol.RolloutGroup:
        if self.poison:
            return poisoned_group(question, self.tasks, self.rng, self.completions, self.where)
        return clean_group(question, self.tasks, self.rng, self.completions)

    def publish(self, round_: int) -> None:
        """Each identity seals one batch, stores it and announces its 4 latest (a failed store or announcement
        is counted in `failures`)."""
        for publisher in self.publishers:
            envelope, summary = publisher.seal(round_, 0, [self._group(q) for q in self._questions()])
            try:
                publisher.store(envelope, summary)
                publisher.announce(round_)
                self.published += 1
            except (TransportError, ValueError):
                self.failures += 1
