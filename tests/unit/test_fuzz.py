"""Hostile inputs for `verify_and_decode`: more than 10,000 per run, none raises, each is rejected with a
reason (or, if a re-signed mutation happens to be valid, it round-trips exactly), and valid messages
still round-trip.

Each fuzzer is a hypothesis-driven check that counts, by source, the inputs it checked. `test_fuzzer` runs
one; the count test runs every fuzzer that has not run yet in this module's session and adds up what all of
them checked, so it checks the same inputs alone, first, or after the others (and nothing twice)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from typing import Any

import msgpack
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

import protocol
from protocol.envelope import pack_envelope, seal
from protocol.messages import to_wire
from protocol.testvectors import KEY_A, sample_announcement, sample_batch, sample_unicode_batch, sample_v2_batch

LIMITS = protocol.Limits()
VALID = [
    protocol.seal_payload(sample_batch(), KEY_A, LIMITS),
    protocol.seal_payload(sample_unicode_batch(), KEY_A, LIMITS),
    protocol.seal_payload(sample_announcement(), KEY_A, LIMITS),
    protocol.seal_payload(sample_v2_batch(), KEY_A, LIMITS),
]
PUB_A = KEY_A.public_key().public_bytes_raw()
MIN_HOSTILE = 10_000

Tally = Counter[str]
"""Inputs a fuzzer checked, by source ("valid" for the messages that must round-trip, every other one hostile)."""
Fuzzer = Callable[[Tally], None]
"""A hypothesis-driven check: called with a tally, it runs all its examples and counts each one it checked."""
FUZZERS: list[Fuzzer] = []


def fuzzer(check: Fuzzer) -> Fuzzer:
    """Register a fuzzer: `test_fuzzer` runs it, and its inputs count towards the total."""
    FUZZERS.append(check)
    return check


def rejected(seen: Tally, raw: Any, limits: protocol.Limits = LIMITS, source: str = "") -> protocol.Rejected:
    verdict = protocol.verify_and_decode(raw, limits)
    assert isinstance(verdict, protocol.Rejected), f"accepted hostile input from {source}"
    assert verdict.reason is not protocol.Reason.INTERNAL, verdict.detail
    seen[source] += 1
    return verdict


def rejected_or_round_trips(seen: Tally, raw: bytes, source: str) -> protocol.Verdict:
    """For re-signed mutations: a valid result must decode to a record that re-encodes to the same payload."""
    verdict = protocol.verify_and_decode(raw, LIMITS)
    if isinstance(verdict, protocol.Rejected):
        assert verdict.reason is not protocol.Reason.INTERNAL, verdict.detail
    else:
        again = protocol.verify_and_decode(protocol.seal_payload(verdict.payload, KEY_A, LIMITS), LIMITS)
        assert isinstance(again, protocol.Accepted) and again.payload == verdict.payload
    seen[source] += 1
    return verdict


# --------------------------------------------------------------------------- raw byte attacks


@fuzzer
@settings(max_examples=2500)
@given(st.binary(max_size=4096))
def random_bytes(seen: Tally, data: bytes) -> None:
    rejected(seen, data, source="random")


@fuzzer
@settings(max_examples=1000)
@given(st.sampled_from(VALID), st.data())
def truncated(seen: Tally, raw: bytes, data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(raw) - 1))
    rejected(seen, raw[:cut], source="truncated")


@fuzzer
@settings(max_examples=2000)
@given(st.sampled_from(VALID), st.data())
def flipped_bits(seen: Tally, raw: bytes, data: st.DataObject) -> None:
    positions = data.draw(st.lists(st.integers(0, len(raw) * 8 - 1), min_size=1, max_size=4, unique=True))
    tampered = bytearray(raw)
    for p in positions:
        tampered[p // 8] ^= 1 << (p % 8)
    rejected(seen, bytes(tampered), source="bitflip")


@fuzzer
@settings(max_examples=500)
@given(st.binary(min_size=32, max_size=32), st.sampled_from(VALID), st.booleans())
def wrong_keys(seen: Tally, seed: bytes, raw: bytes, swap_author: bool) -> None:
    other = Ed25519PrivateKey.from_private_bytes(seed)
    version, kind, author, signature, payload = msgpack.unpackb(raw, raw=False)
    if swap_author:  # A's signature presented under another author
        forged = pack_envelope(version, kind, other.public_key().public_bytes_raw(), signature, payload)
    else:  # another key's signature presented under A's name
        signature = other.sign(protocol.signing_input(kind, payload, version))
        forged = pack_envelope(version, kind, author, signature, payload)
    if forged == raw:  # the drawn seed is A's own key
        return
    assert rejected(seen, forged, source="wrongkey").reason is protocol.Reason.BAD_SIGNATURE


@fuzzer
@settings(max_examples=1000)
@given(st.integers(0, 2**32 - 1), st.binary(max_size=64), st.sampled_from([b"\xc4", b"\xc5", b"\xc6", b"\xdb"]))
def oversize_length_headers(seen: Tally, claimed: int, tail: bytes, header: bytes) -> None:
    width = {b"\xc4": 1, b"\xc5": 2, b"\xc6": 4, b"\xdb": 4}[header]
    length = (claimed % (1 << (8 * width))).to_bytes(width, "big")
    head = b"\x95\x01\xa8rollouts\xc4\x20" + PUB_A + b"\xc4\x40" + b"\x00" * 64
    raw = head + header + length + tail
    rejected(seen, raw, source="length-header")


@fuzzer
@settings(max_examples=1000)
@given(st.sampled_from(VALID), st.integers(1, 4096))
def small_envelope_limit(seen: Tally, raw: bytes, cap: int) -> None:
    verdict = rejected(seen, raw, protocol.Limits(max_envelope_bytes=min(cap, len(raw) - 1)), source="oversize")
    assert verdict.reason is protocol.Reason.OVERSIZE


# ------------------------------------------------------------------ correctly signed, hostile payloads

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.binary(max_size=40),
    st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=8)),
    st.builds(msgpack.Timestamp, st.integers(0, 2**32 - 1)),
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=6),
        st.dictionaries(st.one_of(st.text(max_size=12), st.integers(-5, 5)), children, max_size=6),
    ),
    max_leaves=40,
)


@fuzzer
@settings(max_examples=2000)
@given(values, st.sampled_from(["rollouts", "announce"]))
def signed_arbitrary_payload(seen: Tally, value: Any, kind: str) -> None:
    payload = msgpack.packb(value, use_bin_type=True)
    rejected_or_round_trips(seen, seal(kind, payload, KEY_A), source="signed-arbitrary")


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(obj, dict):
        for k, v in obj.items():
            found += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            found += _paths(v, (*prefix, i))
    return found


WIRES = [
    to_wire(sample_batch()),
    to_wire(sample_unicode_batch()),
    to_wire(sample_announcement()),
    to_wire(sample_v2_batch()),
]
KINDS = ["rollouts", "rollouts", "announce", "rollouts"]
VERSIONS = [1, 1, 1, 2]


@fuzzer
@settings(max_examples=1500)
@given(st.integers(0, len(WIRES) - 1), st.data(), values)
def signed_mutated_field(seen: Tally, which: int, data: st.DataObject, replacement: Any) -> None:
    wire = msgpack.unpackb(msgpack.packb(WIRES[which], use_bin_type=True), raw=False)
    path = data.draw(st.sampled_from(_paths(wire)))
    target = wire
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = replacement
    raw = seal(KINDS[which], msgpack.packb(wire, use_bin_type=True), KEY_A, VERSIONS[which])
    rejected_or_round_trips(seen, raw, source="signed-mutated")


@fuzzer
@settings(max_examples=1000)
@given(st.integers(0, len(WIRES) - 1), st.data())
def signed_corrupted_payload_bytes(seen: Tally, which: int, data: st.DataObject) -> None:
    payload = bytearray(msgpack.packb(WIRES[which], use_bin_type=True))
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["set", "insert", "delete"]))
        at = data.draw(st.integers(0, len(payload) - 1))
        if op == "set":
            payload[at] = data.draw(st.integers(0, 255))
        elif op == "insert":
            payload[at:at] = data.draw(st.binary(min_size=1, max_size=8))
        else:
            del payload[at : at + data.draw(st.integers(1, 8))]
    rejected_or_round_trips(seen, seal(KINDS[which], bytes(payload), KEY_A, VERSIONS[which]), source="signed-corrupted")


@fuzzer
@settings(max_examples=500)
@given(st.integers(0, len(WIRES) - 1), st.binary(min_size=1, max_size=32))
def signed_trailing_bytes(seen: Tally, which: int, tail: bytes) -> None:
    payload = msgpack.packb(WIRES[which], use_bin_type=True) + tail
    verdict = rejected(seen, seal(KINDS[which], payload, KEY_A, VERSIONS[which]), source="signed-trailing")
    assert verdict.reason is protocol.Reason.TRAILING_BYTES


@fuzzer
@settings(max_examples=500)
@given(st.sampled_from([float("nan"), float("inf"), float("-inf")]), st.integers(0, 3), st.integers(0, 1))
def signed_non_finite_rewards(seen: Tally, value: float, index: int, group: int) -> None:
    wire = to_wire(sample_batch())
    wire["groups"][group]["rewards"][index] = value
    verdict = rejected(seen, seal("rollouts", msgpack.packb(wire, use_bin_type=True), KEY_A), source="signed-nan")
    assert verdict.reason is protocol.Reason.NON_FINITE


# --------------------------------------------------------------------------- valid messages still round-trip

names = st.text(st.characters(codec="utf-8", categories=("L", "N", "P", "S")), min_size=1, max_size=20)
texts = st.text(max_size=200)
uints = st.integers(0, 2**63 - 1)
rewards = st.floats(-10, 10, allow_nan=False)
logprobs = st.floats(-100, 0, allow_nan=False)


@st.composite
def batches(draw: st.DrawFn) -> protocol.RolloutBatch:
    groups = []
    for _ in range(draw(st.integers(1, 4))):
        g = draw(st.integers(1, 6))
        params = draw(st.dictionaries(names, st.one_of(st.booleans(), st.integers(-5, 5), names), max_size=3))
        groups.append(
            protocol.RolloutGroup(
                ref=protocol.TaskRef(draw(names), draw(uints), draw(uints), tuple(sorted(params.items()))),
                question=draw(texts),
                completions=tuple(draw(st.lists(texts, min_size=g, max_size=g))),
                rewards=tuple(draw(st.lists(rewards, min_size=g, max_size=g))),
                logprobs=draw(
                    st.none()
                    | st.lists(st.tuples(*[logprobs] * draw(st.integers(0, 5))), min_size=g, max_size=g).map(tuple)
                ),
            )
        )
    return protocol.RolloutBatch(draw(names), draw(uints), draw(uints), draw(uints), draw(names), tuple(groups))


@fuzzer
@settings(max_examples=1000)
@given(batches())
def valid_batches_round_trip(seen: Tally, batch: protocol.RolloutBatch) -> None:
    raw = protocol.seal_payload(batch, KEY_A, LIMITS)
    verdict = protocol.verify_and_decode(raw, LIMITS)
    assert isinstance(verdict, protocol.Accepted)
    assert verdict.payload == batch
    assert all(math.isfinite(r) for g in verdict.payload.groups for r in g.rewards)
    expected_version = 2 if any(g.logprobs is not None for g in batch.groups) else 1
    assert msgpack.unpackb(raw)[0] == expected_version  # v1 whenever nothing needs v2
    seen["valid"] += 1


@pytest.fixture(scope="module")
def tallies() -> dict[str, Tally]:
    """What each fuzzer that ran in this module's session checked, by fuzzer."""
    return {}


def checked(check: Fuzzer, tallies: dict[str, Tally]) -> Tally:
    """Run `check` unless it already ran in this session; what it checked."""
    if check.__name__ not in tallies:
        seen: Tally = Counter()
        check(seen)
        tallies[check.__name__] = seen
    return tallies[check.__name__]


@pytest.mark.parametrize("check", FUZZERS, ids=[f.__name__ for f in FUZZERS])
def test_fuzzer(check: Fuzzer, tallies: dict[str, Tally]) -> None:
    assert sum(checked(check, tallies).values()) > 0


def test_at_least_ten_thousand_hostile_inputs(tallies: dict[str, Tally]) -> None:
    seen: Tally = sum((checked(check, tallies) for check in FUZZERS), Counter())
    hostile = sum(n for source, n in seen.items() if source != "valid")
    print(f"hostile inputs: {hostile} {dict(seen)}")
    assert hostile >= MIN_HOSTILE, dict(seen)
    assert seen["valid"] >= 500
