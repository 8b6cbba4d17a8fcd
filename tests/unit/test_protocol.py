"""Envelope and payload behaviour: round trips, tampering, the order of checks, and the limits."""

from __future__ import annotations

import dataclasses
from typing import Any

import msgpack
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import protocol
from protocol import codec
from protocol.envelope import pack_envelope
from protocol.testvectors import KEY_A, KEY_B, sample_announcement, sample_batch, sample_unicode_batch

LIMITS = protocol.Limits()


def fields(raw: bytes) -> list[Any]:
    out: list[Any] = msgpack.unpackb(raw, raw=False)
    return out


@pytest.mark.parametrize("make", [sample_batch, sample_unicode_batch, sample_announcement])
def test_round_trip(make: Any) -> None:
    payload = make()
    raw = protocol.seal_payload(payload, KEY_A, LIMITS)
    verdict = protocol.verify_and_decode(raw, LIMITS)
    assert isinstance(verdict, protocol.Accepted)
    assert verdict.payload == payload
    assert verdict.message_id == protocol.message_id(raw)
    assert verdict.author == KEY_A.public_key().public_bytes_raw()
    assert verdict.size == len(raw)


def test_accepts_bytearray_and_memoryview() -> None:
    raw = protocol.seal_payload(sample_batch(), KEY_A, LIMITS)
    assert protocol.verify_and_decode(bytearray(raw), LIMITS).ok
    assert protocol.verify_and_decode(memoryview(raw), LIMITS).ok


@pytest.mark.parametrize("value", [None, "text", 7, [b"x"], {"a": 1}, object()])
def test_non_bytes_rejected(value: object) -> None:
    verdict = protocol.verify_and_decode(value, LIMITS)
    assert isinstance(verdict, protocol.Rejected) and verdict.reason is protocol.Reason.NOT_BYTES


def test_every_single_bit_flip_is_rejected() -> None:
    raw = protocol.seal_payload(sample_batch(), KEY_A, LIMITS)
    for index in range(len(raw)):
        for bit in range(8):
            tampered = bytearray(raw)
            tampered[index] ^= 1 << bit
            verdict = protocol.verify_and_decode(bytes(tampered), LIMITS)
            assert isinstance(verdict, protocol.Rejected), (index, bit)
            assert verdict.reason is not protocol.Reason.INTERNAL, verdict.detail


def test_signature_by_another_key_is_rejected() -> None:
    raw = protocol.seal_payload(sample_batch(), KEY_A, LIMITS)
    version, kind, author, _, payload = fields(raw)
    forged = KEY_B.sign(protocol.signing_input(kind, payload))
    verdict = protocol.verify_and_decode(pack_envelope(version, kind, author, forged, payload), LIMITS)
    assert isinstance(verdict, protocol.Rejected) and verdict.reason is protocol.Reason.BAD_SIGNATURE


def test_author_field_swapped_is_rejected() -> None:
    raw = protocol.seal_payload(sample_batch(), KEY_A, LIMITS)
    version, kind, _, signature, payload = fields(raw)
    other = KEY_B.public_key().public_bytes_raw()
    verdict = protocol.verify_and_decode(pack_envelope(version, kind, other, signature, payload), LIMITS)
    assert isinstance(verdict, protocol.Rejected) and verdict.reason is protocol.Reason.BAD_SIGNATURE


def test_signature_does_not_carry_over_to_another_domain() -> None:
    payload = protocol.encode_payload(sample_batch())
    raw_signature = KEY_A.sign(payload)  # signed without the domain prefix
    author = KEY_A.public_key().public_bytes_raw()
    verdict = protocol.verify_and_decode(pack_envelope(1, "rollouts", author, raw_signature, payload), LIMITS)
    assert isinstance(verdict, protocol.Rejected) and verdict.reason is protocol.Reason.BAD_SIGNATURE


def test_oversize_is_rejected_before_the_decoder_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = protocol.seal_payload(sample_batch(), KEY_A, LIMITS)
    calls: list[int] = []

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        raise AssertionError("decoder must not run")

    monkeypatch.setattr(codec.msgpack, "unpackb", spy)
    small = protocol.Limits(max_envelope_bytes=len(raw) - 1)
    verdict = protocol.verify_and_decode(raw, small)
    assert isinstance(verdict, protocol.Rejected) and verdict.reason is protocol.Reason.OVERSIZE
    assert calls == []
    # a 100 MB blob is refused by its length alone
    verdict = protocol.verify_and_decode(b"\x00" * 100_000_000, LIMITS)
    assert isinstance(verdict, protocol.Rejected) and verdict.reason is protocol.Reason.OVERSIZE
    assert calls == []


def test_signature_is_checked_before_the_payload_is_decoded(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = bytearray(protocol.seal_payload(sample_batch(), KEY_A, LIMITS))
    raw[-3] ^= 0xFF
    decoded: list[Any] = []
    real = msgpack.unpackb

    def spy(data: bytes, **kwargs: Any) -> Any:
        decoded.append(len(data))
        return real(data, **kwargs)

    monkeypatch.setattr(codec.msgpack, "unpackb", spy)
    verdict = protocol.verify_and_decode(bytes(raw), LIMITS)
    assert isinstance(verdict, protocol.Rejected) and verdict.reason is protocol.Reason.BAD_SIGNATURE
    assert decoded == [len(raw)]  # only the envelope was decoded, never the payload


def test_seal_refuses_invalid_payloads() -> None:
    batch = sample_batch()
    bad_group = dataclasses.replace(batch.groups[0], rewards=(float("nan"), 0.0, 0.0, 1.0))
    with pytest.raises(ValueError, match="non_finite_float"):
        protocol.seal_payload(dataclasses.replace(batch, groups=(bad_group,)), KEY_A, LIMITS)
    with pytest.raises(ValueError, match="limit_exceeded"):
        protocol.seal_payload(batch, KEY_A, protocol.Limits(max_completions_per_group=2))
    with pytest.raises(ValueError, match="invalid message kind"):
        protocol.seal("Bad Kind", b"", KEY_A)


def test_limits_must_be_positive_integers() -> None:
    with pytest.raises(ValueError, match="max_groups_per_batch"):
        protocol.Limits(max_groups_per_batch=0)
    with pytest.raises(ValueError, match="max_envelope_bytes"):
        protocol.Limits(max_envelope_bytes=1.5)  # type: ignore[arg-type]


def test_peer_id_is_stable_and_distinct() -> None:
    a = KEY_A.public_key().public_bytes_raw()
    b = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    assert protocol.peer_id(a) == protocol.peer_id(a)
    assert protocol.peer_id(a) != protocol.peer_id(b)
    assert len(protocol.peer_id(a)) == 32 and protocol.peer_id(a).isalnum()


def test_message_id_differs_per_author_for_the_same_payload() -> None:
    batch = sample_batch()
    assert protocol.message_id(protocol.seal_payload(batch, KEY_A, LIMITS)) != protocol.message_id(
        protocol.seal_payload(batch, KEY_B, LIMITS)
    )
