"""Build the conformance vectors in protocol/vectors/ (run `python -m protocol.testvectors` to rewrite them).

Every vector is deterministic (fixed keys, fixed clock values; Ed25519 signatures are deterministic), so
the test suite regenerates them and checks the committed files did not drift, then checks each one
against `verify_and_decode`. Another implementation needs only the JSON files.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol.codec import Accepted, verify_and_decode
from protocol.envelope import pack_envelope, seal, signing_input
from protocol.limits import Limits
from protocol.messages import (
    KIND_ANNOUNCE,
    KIND_ROLLOUTS,
    Payload,
    to_wire,
)
from protocol.samples import KEY_A, KEY_B, sample_announcement, sample_batch, sample_unicode_batch, sample_v2_batch

VECTOR_DIR = Path(__file__).with_name("vectors")


def payload_to_json(payload: Payload) -> Any:
    """The payload as JSON (bytes as lowercase hex) for `expect.payload` in a vector."""

    def convert(obj: Any) -> Any:
        if isinstance(obj, bytes):
            return obj.hex()
        if isinstance(obj, dict):
            return {k: convert(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [convert(v) for v in obj]
        return obj

    return convert(to_wire(payload))


def _packed(obj: Any) -> bytes:
    data: bytes = msgpack.packb(obj, use_bin_type=True)
    return data


def _signed(kind: str, payload: bytes, key: Ed25519PrivateKey = KEY_A) -> bytes:
    return seal(kind, payload, key)


def _with_wire(change: Callable[[dict[str, Any]], None], version: int = 1) -> bytes:
    """A properly signed rollouts envelope whose payload map was altered by `change` before packing (from the
    v2 sample, signed as v2, when `version` is 2)."""
    wire = to_wire(sample_v2_batch() if version == 2 else sample_batch())
    change(wire)
    return seal(KIND_ROLLOUTS, _packed(wire), KEY_A, version)


def _group(wire: dict[str, Any]) -> dict[str, Any]:
    group: dict[str, Any] = wire["groups"][0]
    return group


def _bad_utf8_payload() -> bytes:
    wire = to_wire(sample_batch())
    _group(wire)["question"] = "MARKERMARKER"
    return _packed(wire).replace(b"MARKERMARKER", b"\xff\xfeMARKERMARK")


def _flip(data: bytes, index: int) -> bytes:
    out = bytearray(data)
    out[index] ^= 0x01
    return bytes(out)


def _nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


def build_vectors() -> list[dict[str, Any]]:
    batch_payload = _packed(to_wire(sample_batch()))
    v2_payload = _packed(to_wire(sample_v2_batch()))
    valid = _signed(KIND_ROLLOUTS, batch_payload)
    pub_a = KEY_A.public_key().public_bytes_raw()
    pub_b = KEY_B.public_key().public_bytes_raw()
    sig_a = KEY_A.sign(signing_input(KIND_ROLLOUTS, batch_payload))
    sig_b = KEY_B.sign(signing_input(KIND_ROLLOUTS, batch_payload))
    small = Limits(max_envelope_bytes=256)
    few = Limits(max_completions_per_group=3)
    tight = Limits(max_completion_chars=32, max_question_chars=32, max_name_chars=32)

    def set_field(path: tuple[Any, ...], value: Any) -> Callable[[dict[str, Any]], None]:
        def change(wire: dict[str, Any]) -> None:
            target: Any = wire
            for step in path[:-1]:
                target = target[step]
            target[path[-1]] = value

        return change

    def drop_field(name: str) -> Callable[[dict[str, Any]], None]:
        return lambda wire: wire.pop(name)

    cases: list[tuple[str, str, bytes, Limits, str | None]] = [
        ("valid-rollouts", "a well-formed rollout batch", valid, Limits(), None),
        (
            "valid-rollouts-unicode",
            "non-ASCII text, float/bool/str task parameters",
            _signed(KIND_ROLLOUTS, _packed(to_wire(sample_unicode_batch())), KEY_B),
            Limits(),
            None,
        ),
        (
            "valid-announce",
            "a well-formed announcement",
            _signed(KIND_ANNOUNCE, _packed(to_wire(sample_announcement()))),
            Limits(),
            None,
        ),
        (
            "payload-byte-flipped",
            "one bit of the payload flipped after signing",
            _flip(valid, len(valid) - 5),
            Limits(),
            "bad_signature",
        ),
        (
            "signature-byte-flipped",
            "one bit of the signature flipped",
            _flip(valid, 40),
            Limits(),
            "bad_signature",
        ),
        (
            "signed-by-other-key",
            "author is A, signature made by B",
            pack_envelope(1, KIND_ROLLOUTS, pub_a, sig_b, batch_payload),
            Limits(),
            "bad_signature",
        ),
        (
            "author-swapped",
            "signature made by A, author field replaced by B",
            pack_envelope(1, KIND_ROLLOUTS, pub_b, sig_a, batch_payload),
            Limits(),
            "bad_signature",
        ),
        (
            "kind-swapped",
            "a rollouts signature presented as an announcement",
            pack_envelope(1, KIND_ANNOUNCE, pub_a, sig_a, batch_payload),
            Limits(),
            "bad_signature",
        ),
        ("oversize", "a valid message longer than max_envelope_bytes (256 here)", valid, small, "oversize"),
        ("empty", "zero bytes", b"", Limits(), "malformed_envelope"),
        ("truncated", "the last byte cut off", valid[:-1], Limits(), "malformed_envelope"),
        ("trailing-bytes", "one extra byte after the envelope", valid + b"\x00", Limits(), "trailing_bytes"),
        (
            "envelope-not-array",
            "a map instead of the 5-array",
            _packed({"v": 1}),
            Limits(),
            "malformed_envelope",
        ),
        (
            "author-too-short",
            "a 31-byte author",
            pack_envelope(1, KIND_ROLLOUTS, pub_a[:31], sig_a, batch_payload),
            Limits(),
            "malformed_envelope",
        ),
        (
            "non-canonical-version",
            "version 1 written as uint8 (0xcc 0x01) instead of a fixint",
            b"\x95\xcc\x01" + valid[2:],
            Limits(),
            "non_canonical_envelope",
        ),
        (
            "unsupported-version",
            "version 3",
            pack_envelope(3, KIND_ROLLOUTS, pub_a, sig_a, batch_payload),
            Limits(),
            "unsupported_version",
        ),
        (
            "unknown-kind",
            "kind 'gossip', correctly signed",
            _signed("gossip", batch_payload),
            Limits(),
            "unknown_kind",
        ),
        (
            "reward-nan",
            "a NaN reward, correctly signed",
            _with_wire(set_field(("groups", 0, "rewards", 0), float("nan"))),
            Limits(),
            "non_finite_float",
        ),
        (
            "reward-infinite",
            "an infinite reward, correctly signed",
            _with_wire(set_field(("groups", 0, "rewards", 1), float("inf"))),
            Limits(),
            "non_finite_float",
        ),
        (
            "int-map-key",
            "an integer map key, correctly signed",
            _with_wire(set_field(("groups", 0, "ref", "params"), {1: 2})),
            Limits(),
            "malformed_payload",
        ),
        (
            "ext-type",
            "an ext value (type 5), correctly signed",
            _with_wire(set_field(("groups", 0, "question"), msgpack.ExtType(5, b"abc"))),
            Limits(),
            "ext_type",
        ),
        (
            "timestamp-ext",
            "a msgpack timestamp, correctly signed",
            _with_wire(set_field(("groups", 0, "question"), msgpack.Timestamp(1, 0))),
            Limits(),
            "ext_type",
        ),
        (
            "nested-100",
            "arrays nested 100 deep, correctly signed",
            _with_wire(set_field(("groups", 0, "question"), _nested(100))),
            Limits(),
            "too_deep",
        ),
        (
            "nested-5000",
            "arrays nested 5000 deep (beyond the decoder's stack), correctly signed",
            _signed(KIND_ROLLOUTS, b"\x91" * 5000 + b"\xc0"),
            Limits(),
            "too_deep",
        ),
        (
            "bad-utf8",
            "a string that is not UTF-8, correctly signed",
            _signed(KIND_ROLLOUTS, _bad_utf8_payload()),
            Limits(),
            "bad_utf8",
        ),
        (
            "payload-trailing-bytes",
            "a byte after the payload map, correctly signed",
            _signed(KIND_ROLLOUTS, batch_payload + b"\xc0"),
            Limits(),
            "trailing_bytes",
        ),
        (
            "huge-string-header",
            "a str32 header claiming 4 GiB with 0 bytes behind it, correctly signed",
            _signed(KIND_ROLLOUTS, b"\xdb\xff\xff\xff\xff"),
            Limits(),
            "malformed_payload",
        ),
        (
            "string-over-decoder-limit",
            "a 200-byte string where strings may hold 128 bytes (4 x 32 chars)",
            _with_wire(set_field(("groups", 0, "question"), "7" * 200)),
            tight,
            "limit_exceeded",
        ),
        (
            "too-many-completions",
            "4 completions where max_completions_per_group is 3",
            valid,
            few,
            "limit_exceeded",
        ),
        (
            "completion-too-long",
            "a completion longer than max_completion_chars",
            _with_wire(set_field(("groups", 0, "completions", 0), "7" * 16385)),
            Limits(),
            "limit_exceeded",
        ),
        ("missing-field", "no 'model' field", _with_wire(drop_field("model")), Limits(), "schema"),
        (
            "unknown-field",
            "an extra 'note' field",
            _with_wire(set_field(("note",), "hi")),
            Limits(),
            "schema",
        ),
        (
            "bool-as-integer",
            "round given as true",
            _with_wire(set_field(("round",), True)),
            Limits(),
            "schema",
        ),
        ("negative-round", "round -1", _with_wire(set_field(("round",), -1)), Limits(), "schema"),
        (
            "reward-count-mismatch",
            "3 rewards for 4 completions",
            _with_wire(set_field(("groups", 0, "rewards"), [1.0, 0.0, 1.0])),
            Limits(),
            "schema",
        ),
        (
            "reward-as-integer",
            "a reward given as the integer 1",
            _with_wire(set_field(("groups", 0, "rewards", 0), 1)),
            Limits(),
            "schema",
        ),
        ("no-groups", "an empty group list", _with_wire(set_field(("groups",), [])), Limits(), "schema"),
        (
            "control-char-in-model",
            "a model name with an escape character",
            _with_wire(set_field(("model",), "tiny\x1b[31m")),
            Limits(),
            "schema",
        ),
        (
            "announce-short-id",
            "a 31-byte batch id",
            _signed(
                KIND_ANNOUNCE,
                _packed(
                    {
                        **to_wire(sample_announcement()),
                        "batches": [{**to_wire(sample_announcement())["batches"][0], "id": b"\x00" * 31}],
                    }
                ),
            ),
            Limits(),
            "schema",
        ),
        (
            "valid-rollouts-v2",
            "protocol v2: a rollout batch whose groups carry the author's behaviour log-probs",
            seal(KIND_ROLLOUTS, v2_payload, KEY_A, 2),
            Limits(),
            None,
        ),
        (
            "v1-message-as-v2",
            "a v1 batch and its v1 signature, the envelope's version changed to 2 (the domain is signed)",
            pack_envelope(2, KIND_ROLLOUTS, pub_a, sig_a, batch_payload),
            Limits(),
            "bad_signature",
        ),
        (
            "logprobs-in-v1",
            "the v2 field 'logprobs' in a message signed as v1",
            seal(KIND_ROLLOUTS, v2_payload, KEY_A, 1),
            Limits(),
            "schema",
        ),
        (
            "logprob-positive",
            "v2: a log-probability of 0.5",
            _with_wire(set_field(("groups", 0, "logprobs", 0, 0), 0.5), version=2),
            Limits(),
            "schema",
        ),
        (
            "logprob-rows-mismatch",
            "v2: 3 log-prob rows for 4 completions",
            _with_wire(set_field(("groups", 0, "logprobs"), [[-1.0], [-1.0], [-1.0]]), version=2),
            Limits(),
            "schema",
        ),
        (
            "logprob-row-too-long",
            "v2: a row of 5 log-probs where max_completion_tokens is 4",
            _with_wire(set_field(("groups", 0, "logprobs", 0), [-1.0] * 5), version=2),
            Limits(max_completion_tokens=4),
            "limit_exceeded",
        ),
        (
            "logprob-integer",
            "v2: a log-probability given as the integer 0",
            _with_wire(set_field(("groups", 0, "logprobs", 1, 0), 0), version=2),
            Limits(),
            "schema",
        ),
    ]
    vectors = []
    for number, (name, description, raw, limits, reason) in enumerate(cases, start=1):
        expect: dict[str, Any]
        if reason is None:
            verdict = verify_and_decode(raw, limits)
            if not isinstance(verdict, Accepted):
                raise RuntimeError(f"vector {name} should be valid: {verdict}")
            expect = {
                "result": "accept",
                "kind": verdict.kind,
                "message_id": verdict.message_id.hex(),
                "author": verdict.author.hex(),
                "peer_id": verdict.peer_id,
                "payload": payload_to_json(verdict.payload),
            }
        else:
            expect = {"result": "reject", "reason": reason}
        vectors.append(
            {
                "name": f"{number:02d}-{name}",
                "description": description,
                "limits": dataclasses.asdict(limits),
                "envelope_hex": raw.hex(),
                "expect": expect,
            }
        )
    return vectors


def render(vector: dict[str, Any]) -> str:
    return json.dumps(vector, indent=2, ensure_ascii=False) + "\n"


def write_vectors(directory: Path = VECTOR_DIR) -> int:
    directory.mkdir(exist_ok=True)
    for old in directory.glob("*.json"):
        old.unlink()
    vectors = build_vectors()
    for vector in vectors:
        (directory / f"{vector['name']}.json").write_text(render(vector), encoding="utf-8")
    return len(vectors)


if __name__ == "__main__":
    count = write_vectors(Path(sys.argv[1]) if len(sys.argv) > 1 else VECTOR_DIR)
    print(f"wrote {count} vectors")
