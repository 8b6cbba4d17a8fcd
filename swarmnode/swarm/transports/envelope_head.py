"""A cheap first look at a signed envelope: its kind and its author's public key, read from its first bytes
without decoding the rest or checking the signature. The record rules take it before verifying a batch and
to charge a batch to its author; reading offers takes the author an announcement claims."""

from __future__ import annotations

import protocol


def envelope_head(envelope: bytes) -> tuple[str, bytes] | None:
    """The kind and the author's public key of a canonical envelope, read from its first bytes without decoding
    the rest (the signature is not checked: a cheap first look)."""
    if (
        len(envelope) < 40
        or envelope[0] != 0x95
        or envelope[1] not in protocol.VERSIONS
        or not 0xA1 <= envelope[2] <= 0xB0
    ):
        return None
    end = 3 + envelope[2] - 0xA0
    if envelope[end : end + 2] != b"\xc4\x20" or len(envelope) < end + 34:
        return None
    try:
        return envelope[3:end].decode("ascii"), envelope[end + 2 : end + 34]
    except UnicodeDecodeError:
        return None
