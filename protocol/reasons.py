"""The closed set of rejection reasons. Receivers count rejections by these codes (SPEC.md, "Reasons")."""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    NOT_BYTES = "not_bytes"
    OVERSIZE = "oversize"
    MALFORMED_ENVELOPE = "malformed_envelope"
    TRAILING_BYTES = "trailing_bytes"
    NON_CANONICAL = "non_canonical_envelope"
    UNSUPPORTED_VERSION = "unsupported_version"
    UNKNOWN_KIND = "unknown_kind"
    BAD_SIGNATURE = "bad_signature"
    MALFORMED_PAYLOAD = "malformed_payload"
    BAD_UTF8 = "bad_utf8"
    EXT_TYPE = "ext_type"
    TOO_DEEP = "too_deep"
    NON_FINITE = "non_finite_float"
    SCHEMA = "schema"
    LIMIT = "limit_exceeded"
    INTERNAL = "internal_error"
