"""Payload records of protocol v1 and v2 (rollout batch, announcement) and their strict msgpack schema.
v2 differs from v1 in one optional field: a group's `logprobs`, the author's behaviour log-probs.

Records are frozen dataclasses. `to_wire` builds the msgpack map; `parse_*` checks a decoded map
field by field against the schema and the `Limits`, raising `SchemaError` (caught by `codec.verify_and_decode`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from protocol.limits import Limits
from protocol.reasons import Reason

Scalar = bool | int | float | str

KIND_ROLLOUTS = "rollouts"
KIND_ANNOUNCE = "announce"

MAX_UINT = 2**63 - 1
"""Largest integer in any integer field (they are all unsigned and fit a signed 64-bit int)."""


class SchemaError(Exception):
    """A decoded payload does not match the schema; `reason` says which rule it broke."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class TaskRef:
    """Everything a peer needs to rebuild a question with its own task code."""

    task: str
    seed: int
    index: int
    params: tuple[tuple[str, Scalar], ...] = ()
    """Task parameters (difficulty and so on), sorted by name."""


@dataclass(frozen=True, slots=True)
class RolloutGroup:
    """One question and the G completions the author sampled for it."""

    ref: TaskRef
    question: str
    completions: tuple[str, ...]
    rewards: tuple[float, ...]
    """The author's own scores: informative only, a receiver re-scores every completion."""
    logprobs: tuple[tuple[float, ...], ...] | None = None
    """v2 only: per completion, the log-probability of each token the author sampled under the distribution
    it sampled from (its own tokenizer's tokens). Claims, like `rewards`: a receiver caps what they can do."""


@dataclass(frozen=True, slots=True)
class RolloutBatch:
    swarm: str
    round: int
    """The author's round counter when it generated the batch."""
    policy_version: int
    """Number of optimizer updates behind the policy that sampled the completions."""
    created_ms: int
    """Author's wall clock at creation, Unix milliseconds."""
    model: str
    groups: tuple[RolloutGroup, ...]


@dataclass(frozen=True, slots=True)
class BatchSummary:
    """What an announcement says about one batch, so readers can choose before downloading."""

    batch_id: bytes
    """SHA-256 of the batch's signed envelope (its message id)."""
    size: int
    """Envelope length in bytes."""
    round: int
    groups: int
    informative_groups: int
    """Groups whose (author-claimed) rewards are not all equal."""
    mean_reward: float


@dataclass(frozen=True, slots=True)
class Announcement:
    swarm: str
    round: int
    created_ms: int
    model: str
    batches: tuple[BatchSummary, ...]


Payload = RolloutBatch | Announcement


# ---------------------------------------------------------------- encoding


def _ref_to_wire(ref: TaskRef) -> dict[str, Any]:
    return {
        "task": ref.task,
        "seed": ref.seed,
        "index": ref.index,
        "params": {k: v for k, v in sorted(ref.params)},
    }


def _group_to_wire(group: RolloutGroup) -> dict[str, Any]:
    wire: dict[str, Any] = {
        "ref": _ref_to_wire(group.ref),
        "question": group.question,
        "completions": list(group.completions),
        "rewards": [float(r) for r in group.rewards],
    }
    if group.logprobs is not None:
        wire["logprobs"] = [[float(x) for x in row] for row in group.logprobs]
    return wire


def version_of(payload: Payload) -> int:
    """The protocol version a payload needs: 2 when a group carries log-probs, else 1 (so a v1 receiver
    still reads everything that has no v2 field)."""
    if isinstance(payload, RolloutBatch) and any(g.logprobs is not None for g in payload.groups):
        return 2
    return 1


def to_wire(payload: Payload) -> dict[str, Any]:
    """The msgpack map for a payload, keys in the order SPEC.md lists them."""
    if isinstance(payload, RolloutBatch):
        return {
            "swarm": payload.swarm,
            "round": payload.round,
            "policy_version": payload.policy_version,
            "created_ms": payload.created_ms,
            "model": payload.model,
            "groups": [_group_to_wire(g) for g in payload.groups],
        }
    return {
        "swarm": payload.swarm,
        "round": payload.round,
        "created_ms": payload.created_ms,
        "model": payload.model,
        "batches": [
            {
                "id": b.batch_id,
                "size": b.size,
                "round": b.round,
                "groups": b.groups,
                "informative_groups": b.informative_groups,
                "mean_reward": float(b.mean_reward),
            }
            for b in payload.batches
        ],
    }


def kind_of(payload: Payload) -> str:
    return KIND_ROLLOUTS if isinstance(payload, RolloutBatch) else KIND_ANNOUNCE


# ---------------------------------------------------------------- schema checks


def _map(obj: object, where: str, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict[str, Any]:
    if type(obj) is not dict:
        raise SchemaError(Reason.SCHEMA, f"{where}: expected a map, got {type(obj).__name__}")
    keys = set(obj)
    if not set(required) <= keys <= set(required) | set(optional):
        missing = sorted(set(required) - keys)
        extra = sorted(str(k) for k in keys - set(required) - set(optional))
        raise SchemaError(Reason.SCHEMA, f"{where}: missing fields {missing}, unknown fields {extra}")
    return obj


def _uint(obj: object, where: str) -> int:
    if type(obj) is not int:  # bool is rejected here on purpose
        raise SchemaError(Reason.SCHEMA, f"{where}: expected an integer, got {type(obj).__name__}")
    if not 0 <= obj <= MAX_UINT:
        raise SchemaError(Reason.SCHEMA, f"{where}: integer {obj} out of range 0..2^63-1")
    return obj


def _float(obj: object, where: str) -> float:
    if type(obj) is not float:
        raise SchemaError(Reason.SCHEMA, f"{where}: expected a float, got {type(obj).__name__}")
    if not math.isfinite(obj):
        raise SchemaError(Reason.NON_FINITE, f"{where}: {obj!r} is not finite")
    return obj


def _text(obj: object, where: str, max_chars: int) -> str:
    if type(obj) is not str:
        raise SchemaError(Reason.SCHEMA, f"{where}: expected a string, got {type(obj).__name__}")
    if len(obj) > max_chars:
        raise SchemaError(Reason.LIMIT, f"{where}: {len(obj)} characters > {max_chars}")
    return obj


def _name(obj: object, where: str, limits: Limits) -> str:
    text = _text(obj, where, limits.max_name_chars)
    if not text or not text.isprintable():
        raise SchemaError(Reason.SCHEMA, f"{where}: names must be non-empty printable text")
    return text


def _list(obj: object, where: str, max_len: int, min_len: int = 0) -> list[Any]:
    if type(obj) is not list:
        raise SchemaError(Reason.SCHEMA, f"{where}: expected an array, got {type(obj).__name__}")
    if len(obj) > max_len:
        raise SchemaError(Reason.LIMIT, f"{where}: {len(obj)} items > {max_len}")
    if len(obj) < min_len:
        raise SchemaError(Reason.SCHEMA, f"{where}: {len(obj)} items < {min_len}")
    return obj


def _scalar(obj: object, where: str, limits: Limits) -> Scalar:
    if type(obj) is bool:
        return obj
    if type(obj) is int:
        if not -MAX_UINT - 1 <= obj <= MAX_UINT:
            raise SchemaError(Reason.SCHEMA, f"{where}: integer out of signed 64-bit range")
        return obj
    if type(obj) is float:
        return _float(obj, where)
    if type(obj) is str:
        return _text(obj, where, limits.max_name_chars)
    raise SchemaError(Reason.SCHEMA, f"{where}: expected a scalar, got {type(obj).__name__}")


def parse_task_ref(obj: object, where: str, limits: Limits) -> TaskRef:
    m = _map(obj, where, ("task", "seed", "index", "params"))
    params = m["params"]
    if type(params) is not dict:
        raise SchemaError(Reason.SCHEMA, f"{where}.params: expected a map")
    if len(params) > limits.max_params:
        raise SchemaError(Reason.LIMIT, f"{where}.params: {len(params)} entries > {limits.max_params}")
    checked = tuple(
        (_name(k, f"{where}.params key", limits), _scalar(v, f"{where}.params[{k}]", limits))
        for k, v in sorted(params.items())
    )
    return TaskRef(
        task=_name(m["task"], f"{where}.task", limits),
        seed=_uint(m["seed"], f"{where}.seed"),
        index=_uint(m["index"], f"{where}.index"),
        params=checked,
    )


def _parse_logprobs(obj: object, where: str, completions: int, limits: Limits) -> tuple[tuple[float, ...], ...]:
    """v2 behaviour log-probs: one array per completion, each float finite and at most 0."""
    rows = _list(obj, where, limits.max_completions_per_group)
    if len(rows) != completions:
        raise SchemaError(Reason.SCHEMA, f"{where}: {len(rows)} rows for {completions} completions")
    out = []
    for i, row in enumerate(rows):
        values = _list(row, f"{where}[{i}]", limits.max_completion_tokens)
        for j, x in enumerate(values):
            if type(x) is not float or not -math.inf < x <= 0.0:
                _float(x, f"{where}[{i}][{j}]")  # not a float, or not finite
                raise SchemaError(Reason.SCHEMA, f"{where}[{i}][{j}]: log-probability {x} > 0")
        out.append(tuple(values))
    return tuple(out)


def _parse_group(obj: object, where: str, limits: Limits, version: int) -> RolloutGroup:
    optional = ("logprobs",) if version >= 2 else ()
    m = _map(obj, where, ("ref", "question", "completions", "rewards"), optional)
    completions = _list(m["completions"], f"{where}.completions", limits.max_completions_per_group, 1)
    rewards = _list(m["rewards"], f"{where}.rewards", limits.max_completions_per_group, 1)
    if len(rewards) != len(completions):
        raise SchemaError(Reason.SCHEMA, f"{where}: {len(rewards)} rewards for {len(completions)} completions")
    # The bulk of a batch: check items inline and build the error location only on failure.
    max_chars = limits.max_completion_chars
    for i, c in enumerate(completions):
        if type(c) is not str or len(c) > max_chars:
            _text(c, f"{where}.completions[{i}]", max_chars)
    for i, r in enumerate(rewards):
        if type(r) is not float or not math.isfinite(r):
            _float(r, f"{where}.rewards[{i}]")
    return RolloutGroup(
        ref=parse_task_ref(m["ref"], f"{where}.ref", limits),
        question=_text(m["question"], f"{where}.question", limits.max_question_chars),
        completions=tuple(completions),
        rewards=tuple(rewards),
        logprobs=_parse_logprobs(m["logprobs"], f"{where}.logprobs", len(completions), limits)
        if "logprobs" in m
        else None,
    )


def parse_rollout_batch(obj: object, limits: Limits, version: int = 1) -> RolloutBatch:
    m = _map(obj, "batch", ("swarm", "round", "policy_version", "created_ms", "model", "groups"))
    groups = _list(m["groups"], "batch.groups", limits.max_groups_per_batch, 1)
    return RolloutBatch(
        swarm=_name(m["swarm"], "batch.swarm", limits),
        round=_uint(m["round"], "batch.round"),
        policy_version=_uint(m["policy_version"], "batch.policy_version"),
        created_ms=_uint(m["created_ms"], "batch.created_ms"),
        model=_name(m["model"], "batch.model", limits),
        groups=tuple(_parse_group(g, f"batch.groups[{i}]", limits, version) for i, g in enumerate(groups)),
    )


def _parse_summary(obj: object, where: str) -> BatchSummary:
    m = _map(obj, where, ("id", "size", "round", "groups", "informative_groups", "mean_reward"))
    batch_id = m["id"]
    if type(batch_id) is not bytes or len(batch_id) != 32:
        raise SchemaError(Reason.SCHEMA, f"{where}.id: expected 32 bytes")
    groups = _uint(m["groups"], f"{where}.groups")
    informative = _uint(m["informative_groups"], f"{where}.informative_groups")
    if informative > groups:
        raise SchemaError(Reason.SCHEMA, f"{where}: informative_groups {informative} > groups {groups}")
    return BatchSummary(
        batch_id=batch_id,
        size=_uint(m["size"], f"{where}.size"),
        round=_uint(m["round"], f"{where}.round"),
        groups=groups,
        informative_groups=informative,
        mean_reward=_float(m["mean_reward"], f"{where}.mean_reward"),
    )


def parse_announcement(obj: object, limits: Limits, version: int = 1) -> Announcement:
    m = _map(obj, "announce", ("swarm", "round", "created_ms", "model", "batches"))
    batches = _list(m["batches"], "announce.batches", limits.max_batches_per_announcement, 1)
    return Announcement(
        swarm=_name(m["swarm"], "announce.swarm", limits),
        round=_uint(m["round"], "announce.round"),
        created_ms=_uint(m["created_ms"], "announce.created_ms"),
        model=_name(m["model"], "announce.model", limits),
        batches=tuple(_parse_summary(b, f"announce.batches[{i}]") for i, b in enumerate(batches)),
    )


PARSERS: dict[str, Callable[[object, Limits, int], Payload]] = {
    KIND_ROLLOUTS: parse_rollout_batch,
    KIND_ANNOUNCE: parse_announcement,
}
