"""Messages for the conformance vectors: the sample batch packed and signed, and the ways the vectors alter a
well-formed message (a field set or dropped before signing, a bit flipped after, arrays nested deep)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgpack
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol.envelope import seal, signing_input
from protocol.messages import KIND_ROLLOUTS, to_wire
from protocol.samples import KEY_A, sample_batch, sample_v2_batch


def packed(obj: Any) -> bytes:
    """`obj` as msgpack, strings as str and bytes as bin."""
    data: bytes = msgpack.packb(obj, use_bin_type=True)
    return data


def signed(kind: str, payload: bytes, key: Ed25519PrivateKey = KEY_A) -> bytes:
    """`payload` sealed as a v1 message of `kind` by `key`."""
    return seal(kind, payload, key)


def batch_payload() -> bytes:
    """The sample batch's payload, packed: most tampered vectors start from it."""
    return packed(to_wire(sample_batch()))


def v2_payload() -> bytes:
    """The v2 sample batch's payload (with behaviour log-probs), packed."""
    return packed(to_wire(sample_v2_batch()))


def valid_envelope() -> bytes:
    """The sample batch, signed by A: the well-formed message the other vectors alter."""
    return signed(KIND_ROLLOUTS, batch_payload())


def public_bytes(key: Ed25519PrivateKey) -> bytes:
    """`key`'s public key, raw (the envelope's author field)."""
    return key.public_key().public_bytes_raw()


def batch_signature(key: Ed25519PrivateKey) -> bytes:
    """`key`'s signature of the sample batch's payload as a rollouts message."""
    return key.sign(signing_input(KIND_ROLLOUTS, batch_payload()))


def with_wire(change: Callable[[dict[str, Any]], None], version: int = 1) -> bytes:
    """A properly signed rollouts envelope whose payload map was altered by `change` before packing (from the
    v2 sample, signed as v2, when `version` is 2)."""
    wire = to_wire(sample_v2_batch() if version == 2 else sample_batch())
    change(wire)
    return seal(KIND_ROLLOUTS, packed(wire), KEY_A, version)


def set_field(path: tuple[Any, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    """A change for `with_wire`: the value at `path` (map keys and list indexes) set to `value`."""

    def change(wire: dict[str, Any]) -> None:
        target: Any = wire
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value

    return change


def drop_field(name: str) -> Callable[[dict[str, Any]], None]:
    """A change for `with_wire`: the top-level field `name` removed."""
    return lambda wire: wire.pop(name)


def _group(wire: dict[str, Any]) -> dict[str, Any]:
    group: dict[str, Any] = wire["groups"][0]
    return group


def bad_utf8_payload() -> bytes:
    """The sample batch's payload with a question whose bytes are not UTF-8 (the string's length unchanged)."""
    wire = to_wire(sample_batch())
    _group(wire)["question"] = "MARKERMARKER"
    return packed(wire).replace(b"MARKERMARKER", b"\xff\xfeMARKERMARK")


def flip(data: bytes, index: int) -> bytes:
    """`data` with the lowest bit of byte `index` flipped."""
    out = bytearray(data)
    out[index] ^= 0x01
    return bytes(out)


def nested(depth: int) -> Any:
    """The string "x" inside `depth` one-element arrays."""
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value
