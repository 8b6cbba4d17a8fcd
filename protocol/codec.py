"""Turn payload records into signed envelopes and untrusted bytes back into records.

`verify_and_decode` is the single entry point for bytes from the network. Its order is the
protocol's defence: length first, envelope shape second, signature third, and only then the
payload, decoded with hard limits and checked against the schema. It never raises.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar

import msgpack
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from protocol import envelope
from protocol.limits import Limits
from protocol.messages import PARSERS, Payload, SchemaError, kind_of, to_wire, version_of
from protocol.reasons import Reason

MAX_DEPTH = 5
"""Deepest container nesting any payload has (batch > groups > group > ref > params; v2 also batch > groups >
group > logprobs > row)."""


@dataclass(frozen=True, slots=True)
class Accepted:
    message_id: bytes
    kind: str
    author: bytes
    """The author's Ed25519 public key (32 bytes); the signature was made with it."""
    payload: Payload
    size: int
    ok: ClassVar[bool] = True

    @property
    def peer_id(self) -> str:
        return envelope.peer_id(self.author)


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: Reason
    detail: str
    ok: ClassVar[bool] = False


Verdict = Accepted | Rejected


class _ExtTypeFound(Exception):
    pass


def _refuse_ext(code: int, data: bytes) -> object:
    raise _ExtTypeFound(f"msgpack ext type {code} is not allowed")


def encode_payload(payload: Payload) -> bytes:
    packed: bytes = msgpack.packb(to_wire(payload), use_bin_type=True)
    return packed


def seal_payload(payload: Payload, key: Ed25519PrivateKey, limits: Limits) -> bytes:
    """Encode and sign `payload`; refuses (ValueError) to emit what a receiver with `limits` rejects."""
    raw = envelope.seal(kind_of(payload), encode_payload(payload), key, version_of(payload))
    verdict = verify_and_decode(raw, limits)
    if isinstance(verdict, Rejected):
        raise ValueError(f"refusing to send an invalid {kind_of(payload)}: {verdict.reason}: {verdict.detail}")
    return raw


def verify_and_decode(raw: object, limits: Limits) -> Verdict:
    """Check and decode one message from an untrusted peer. Returns Accepted or Rejected; never raises."""
    try:
        return _verify(raw, limits)
    except Exception as exc:  # a bug, not a peer's fault: still never crash the caller
        return Rejected(Reason.INTERNAL, f"{type(exc).__name__}: {exc}")


def _verify(raw: object, limits: Limits) -> Verdict:
    if isinstance(raw, memoryview):
        size = raw.nbytes
    elif isinstance(raw, (bytes, bytearray)):
        size = len(raw)
    else:
        return Rejected(Reason.NOT_BYTES, f"expected bytes, got {type(raw).__name__}")
    if size > limits.max_envelope_bytes:
        return Rejected(Reason.OVERSIZE, f"{size} bytes > {limits.max_envelope_bytes}")
    data = bytes(raw)

    try:
        fields = msgpack.unpackb(
            data,
            raw=False,
            use_list=True,
            strict_map_key=True,
            ext_hook=_refuse_ext,
            max_array_len=5,
            max_map_len=0,
            max_str_len=64,
            max_ext_len=0,
            max_bin_len=limits.max_envelope_bytes,
        )
    except msgpack.ExtraData:
        return Rejected(Reason.TRAILING_BYTES, "bytes after the envelope")
    except Exception as exc:
        return Rejected(Reason.MALFORMED_ENVELOPE, _describe(exc))
    problem = _envelope_shape_problem(fields)
    if problem:
        return Rejected(Reason.MALFORMED_ENVELOPE, problem)
    version, kind, author, signature, payload = fields
    if version not in envelope.VERSIONS:
        return Rejected(Reason.UNSUPPORTED_VERSION, f"version {version}, this node speaks {envelope.VERSIONS}")
    if kind not in PARSERS:
        return Rejected(Reason.UNKNOWN_KIND, f"kind {kind[:20]!r}")
    if envelope.pack_envelope(version, kind, author, signature, payload) != data:
        return Rejected(Reason.NON_CANONICAL, "envelope is not in its canonical msgpack form")

    try:
        Ed25519PublicKey.from_public_bytes(author).verify(signature, envelope.signing_input(kind, payload, version))
    except (InvalidSignature, ValueError):
        return Rejected(Reason.BAD_SIGNATURE, "signature does not match author and payload")

    try:
        decoded = msgpack.unpackb(
            payload,
            raw=False,
            use_list=True,
            strict_map_key=True,
            ext_hook=_refuse_ext,
            max_str_len=limits.max_str_bytes,
            max_bin_len=32,
            max_array_len=limits.max_array_len,
            max_map_len=max(8, limits.max_params),
        )
    except msgpack.ExtraData:
        return Rejected(Reason.TRAILING_BYTES, "bytes after the payload")
    except UnicodeDecodeError:
        return Rejected(Reason.BAD_UTF8, "a string is not valid UTF-8")
    except _ExtTypeFound as exc:
        return Rejected(Reason.EXT_TYPE, str(exc))
    except msgpack.StackError:
        return Rejected(Reason.TOO_DEEP, "nesting deeper than the decoder's stack")
    except Exception as exc:
        reason = Reason.LIMIT if "exceeds max_" in str(exc) else Reason.MALFORMED_PAYLOAD
        return Rejected(reason, _describe(exc))

    problem_reason = _scan(decoded)
    if problem_reason is not None:
        return Rejected(problem_reason[0], problem_reason[1])
    try:
        record = PARSERS[kind](decoded, limits, version)
    except SchemaError as exc:
        return Rejected(exc.reason, exc.detail)
    return Accepted(envelope.message_id(data), kind, author, record, size)


def _envelope_shape_problem(fields: object) -> str:
    if type(fields) is not list or len(fields) != 5:
        return "envelope must be an array of 5 fields"
    version, kind, author, signature, payload = fields
    if type(version) is not int:
        return "version must be an integer"
    if type(kind) is not str:
        return "kind must be a string"
    if type(author) is not bytes or len(author) != envelope.PUBLIC_KEY_BYTES:
        return "author must be 32 bytes"
    if type(signature) is not bytes or len(signature) != envelope.SIGNATURE_BYTES:
        return "signature must be 64 bytes"
    if type(payload) is not bytes:
        return "payload must be bytes"
    return ""


def _scan(obj: object, depth: int = 1) -> tuple[Reason, str] | None:
    """Reject what no schema allows anywhere: deep nesting, ext values (timestamps), NaN and infinities.

    Recursion is bounded: it stops at MAX_DEPTH + 1."""
    if isinstance(obj, dict):
        children: Iterable[object] = obj.values()
    elif isinstance(obj, list):
        children = obj
    else:
        return _scan_leaf(obj)
    if depth > MAX_DEPTH:
        return Reason.TOO_DEEP, f"containers nested deeper than {MAX_DEPTH}"
    for child in children:
        if type(child) is str:  # the common case, first
            continue
        found = _scan(child, depth + 1) if isinstance(child, (list, dict)) else _scan_leaf(child)
        if found:
            return found
    return None


def _scan_leaf(obj: object) -> tuple[Reason, str] | None:
    if type(obj) is float and not math.isfinite(obj):
        return Reason.NON_FINITE, f"{obj!r} is not a finite number"
    if isinstance(obj, msgpack.Timestamp):
        return Reason.EXT_TYPE, "msgpack timestamp ext is not allowed"
    return None


def _describe(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text[:200]
