"""The cases behind the conformance vectors, one function per family: what each message is, how it was made,
the limits it is decoded under, and the reason it is refused (None: accepted). `testvectors` numbers them in
the order `all_cases` gives and writes them out."""

from __future__ import annotations

from collections.abc import Callable

import msgpack

from protocol.envelope import pack_envelope, seal
from protocol.limits import Limits
from protocol.messages import KIND_ANNOUNCE, KIND_ROLLOUTS, to_wire
from protocol.samples import KEY_A, KEY_B, sample_announcement, sample_unicode_batch
from protocol.vector_messages import (
    bad_utf8_payload,
    batch_payload,
    batch_signature,
    drop_field,
    flip,
    nested,
    packed,
    public_bytes,
    set_field,
    signed,
    v2_payload,
    valid_envelope,
    with_wire,
)

Case = tuple[str, str, bytes, Limits, str | None]
"""(name, description, the message's bytes, the limits it is decoded under, the reason it is refused or None)."""


def valid_cases() -> list[Case]:
    """Well-formed v1 messages: a rollout batch, one with non-ASCII text, an announcement."""
    return [
        ("valid-rollouts", "a well-formed rollout batch", valid_envelope(), Limits(), None),
        (
            "valid-rollouts-unicode",
            "non-ASCII text, float/bool/str task parameters",
            signed(KIND_ROLLOUTS, packed(to_wire(sample_unicode_batch())), KEY_B),
            Limits(),
            None,
        ),
        (
            "valid-announce",
            "a well-formed announcement",
            signed(KIND_ANNOUNCE, packed(to_wire(sample_announcement()))),
            Limits(),
            None,
        ),
    ]


def signature_cases() -> list[Case]:
    """A signature that does not cover the message as it arrives: flipped bits, another key, swapped fields."""
    valid, payload = valid_envelope(), batch_payload()
    pub_a, pub_b = public_bytes(KEY_A), public_bytes(KEY_B)
    sig_a, sig_b = batch_signature(KEY_A), batch_signature(KEY_B)
    return [
        (
            "payload-byte-flipped",
            "one bit of the payload flipped after signing",
            flip(valid, len(valid) - 5),
            Limits(),
            "bad_signature",
        ),
        ("signature-byte-flipped", "one bit of the signature flipped", flip(valid, 40), Limits(), "bad_signature"),
        (
            "signed-by-other-key",
            "author is A, signature made by B",
            pack_envelope(1, KIND_ROLLOUTS, pub_a, sig_b, payload),
            Limits(),
            "bad_signature",
        ),
        (
            "author-swapped",
            "signature made by A, author field replaced by B",
            pack_envelope(1, KIND_ROLLOUTS, pub_b, sig_a, payload),
            Limits(),
            "bad_signature",
        ),
        (
            "kind-swapped",
            "a rollouts signature presented as an announcement",
            pack_envelope(1, KIND_ANNOUNCE, pub_a, sig_a, payload),
            Limits(),
            "bad_signature",
        ),
    ]


def envelope_cases() -> list[Case]:
    """The envelope itself wrong: its size, its framing, its version, its kind."""
    valid, payload = valid_envelope(), batch_payload()
    pub_a, sig_a = public_bytes(KEY_A), batch_signature(KEY_A)
    small = Limits(max_envelope_bytes=256)
    return [
        ("oversize", "a valid message longer than max_envelope_bytes (256 here)", valid, small, "oversize"),
        ("empty", "zero bytes", b"", Limits(), "malformed_envelope"),
        ("truncated", "the last byte cut off", valid[:-1], Limits(), "malformed_envelope"),
        ("trailing-bytes", "one extra byte after the envelope", valid + b"\x00", Limits(), "trailing_bytes"),
        ("envelope-not-array", "a map instead of the 5-array", packed({"v": 1}), Limits(), "malformed_envelope"),
        (
            "author-too-short",
            "a 31-byte author",
            pack_envelope(1, KIND_ROLLOUTS, pub_a[:31], sig_a, payload),
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
            pack_envelope(3, KIND_ROLLOUTS, pub_a, sig_a, payload),
            Limits(),
            "unsupported_version",
        ),
        ("unknown-kind", "kind 'gossip', correctly signed", signed("gossip", payload), Limits(), "unknown_kind"),
    ]


def decoding_cases() -> list[Case]:
    """Correctly signed payloads the strict decoder refuses: floats, keys, ext types, depth, UTF-8, framing."""
    return [
        (
            "reward-nan",
            "a NaN reward, correctly signed",
            with_wire(set_field(("groups", 0, "rewards", 0), float("nan"))),
            Limits(),
            "non_finite_float",
        ),
        (
            "reward-infinite",
            "an infinite reward, correctly signed",
            with_wire(set_field(("groups", 0, "rewards", 1), float("inf"))),
            Limits(),
            "non_finite_float",
        ),
        (
            "int-map-key",
            "an integer map key, correctly signed",
            with_wire(set_field(("groups", 0, "ref", "params"), {1: 2})),
            Limits(),
            "malformed_payload",
        ),
        (
            "ext-type",
            "an ext value (type 5), correctly signed",
            with_wire(set_field(("groups", 0, "question"), msgpack.ExtType(5, b"abc"))),
            Limits(),
            "ext_type",
        ),
        (
            "timestamp-ext",
            "a msgpack timestamp, correctly signed",
            with_wire(set_field(("groups", 0, "question"), msgpack.Timestamp(1, 0))),
            Limits(),
            "ext_type",
        ),
        (
            "nested-100",
            "arrays nested 100 deep, correctly signed",
            with_wire(set_field(("groups", 0, "question"), nested(100))),
            Limits(),
            "too_deep",
        ),
        (
            "nested-5000",
            "arrays nested 5000 deep (beyond the decoder's stack), correctly signed",
            signed(KIND_ROLLOUTS, b"\x91" * 5000 + b"\xc0"),
            Limits(),
            "too_deep",
        ),
        (
            "bad-utf8",
            "a string that is not UTF-8, correctly signed",
            signed(KIND_ROLLOUTS, bad_utf8_payload()),
            Limits(),
            "bad_utf8",
        ),
        (
            "payload-trailing-bytes",
            "a byte after the payload map, correctly signed",
            signed(KIND_ROLLOUTS, batch_payload() + b"\xc0"),
            Limits(),
            "trailing_bytes",
        ),
        (
            "huge-string-header",
            "a str32 header claiming 4 GiB with 0 bytes behind it, correctly signed",
            signed(KIND_ROLLOUTS, b"\xdb\xff\xff\xff\xff"),
            Limits(),
            "malformed_payload",
        ),
    ]


def limit_cases() -> list[Case]:
    """Well-formed payloads over one of the receiver's limits."""
    few = Limits(max_completions_per_group=3)
    tight = Limits(max_completion_chars=32, max_question_chars=32, max_name_chars=32)
    return [
        (
            "string-over-decoder-limit",
            "a 200-byte string where strings may hold 128 bytes (4 x 32 chars)",
            with_wire(set_field(("groups", 0, "question"), "7" * 200)),
            tight,
            "limit_exceeded",
        ),
        (
            "too-many-completions",
            "4 completions where max_completions_per_group is 3",
            valid_envelope(),
            few,
            "limit_exceeded",
        ),
        (
            "completion-too-long",
            "a completion longer than max_completion_chars",
            with_wire(set_field(("groups", 0, "completions", 0), "7" * 16385)),
            Limits(),
            "limit_exceeded",
        ),
    ]


def schema_cases() -> list[Case]:
    """Payloads that decode but do not fit the message schema: fields missing, extra, mistyped, out of range."""
    announcement = to_wire(sample_announcement())
    return [
        ("missing-field", "no 'model' field", with_wire(drop_field("model")), Limits(), "schema"),
        ("unknown-field", "an extra 'note' field", with_wire(set_field(("note",), "hi")), Limits(), "schema"),
        ("bool-as-integer", "round given as true", with_wire(set_field(("round",), True)), Limits(), "schema"),
        ("negative-round", "round -1", with_wire(set_field(("round",), -1)), Limits(), "schema"),
        (
            "reward-count-mismatch",
            "3 rewards for 4 completions",
            with_wire(set_field(("groups", 0, "rewards"), [1.0, 0.0, 1.0])),
            Limits(),
            "schema",
        ),
        (
            "reward-as-integer",
            "a reward given as the integer 1",
            with_wire(set_field(("groups", 0, "rewards", 0), 1)),
            Limits(),
            "schema",
        ),
        ("no-groups", "an empty group list", with_wire(set_field(("groups",), [])), Limits(), "schema"),
        (
            "control-char-in-model",
            "a model name with an escape character",
            with_wire(set_field(("model",), "tiny\x1b[31m")),
            Limits(),
            "schema",
        ),
        (
            "announce-short-id",
            "a 31-byte batch id",
            signed(
                KIND_ANNOUNCE,
                packed({**announcement, "batches": [{**announcement["batches"][0], "id": b"\x00" * 31}]}),
            ),
            Limits(),
            "schema",
        ),
    ]


def v2_cases() -> list[Case]:
    """Protocol v2 (behaviour log-probs): a valid batch, the version and the field out of step, bad log-probs."""
    v2 = v2_payload()
    return [
        (
            "valid-rollouts-v2",
            "protocol v2: a rollout batch whose groups carry the author's behaviour log-probs",
            seal(KIND_ROLLOUTS, v2, KEY_A, 2),
            Limits(),
            None,
        ),
        (
            "v1-message-as-v2",
            "a v1 batch and its v1 signature, the envelope's version changed to 2 (the domain is signed)",
            pack_envelope(2, KIND_ROLLOUTS, public_bytes(KEY_A), batch_signature(KEY_A), batch_payload()),
            Limits(),
            "bad_signature",
        ),
        (
            "logprobs-in-v1",
            "the v2 field 'logprobs' in a message signed as v1",
            seal(KIND_ROLLOUTS, v2, KEY_A, 1),
            Limits(),
            "schema",
        ),
        (
            "logprob-positive",
            "v2: a log-probability of 0.5",
            with_wire(set_field(("groups", 0, "logprobs", 0, 0), 0.5), version=2),
            Limits(),
            "schema",
        ),
        (
            "logprob-rows-mismatch",
            "v2: 3 log-prob rows for 4 completions",
            with_wire(set_field(("groups", 0, "logprobs"), [[-1.0], [-1.0], [-1.0]]), version=2),
            Limits(),
            "schema",
        ),
        (
            "logprob-row-too-long",
            "v2: a row of 5 log-probs where max_completion_tokens is 4",
            with_wire(set_field(("groups", 0, "logprobs", 0), [-1.0] * 5), version=2),
            Limits(max_completion_tokens=4),
            "limit_exceeded",
        ),
        (
            "logprob-integer",
            "v2: a log-probability given as the integer 0",
            with_wire(set_field(("groups", 0, "logprobs", 1, 0), 0), version=2),
            Limits(),
            "schema",
        ),
    ]


FAMILIES: tuple[Callable[[], list[Case]], ...] = (
    valid_cases,
    signature_cases,
    envelope_cases,
    decoding_cases,
    limit_cases,
    schema_cases,
    v2_cases,
)
"""The families in the order the vectors are numbered: a vector added anywhere but at the end renumbers the ones
after it."""


def all_cases() -> list[Case]:
    return [case for family in FAMILIES for case in family()]
