"""The signed envelope: `[version, kind, author, signature, payload]` in msgpack, Ed25519-signed.

The signature covers `DOMAINS[version] + kind + b"\\0" + payload` — the exact payload bytes, so a
receiver verifies before it decodes anything inside and never needs a canonical re-encoding of the payload;
the version is bound through its domain, so a message cannot be re-dated to another version (and given a
second id) without a new signature.
"""

from __future__ import annotations

import base64
import hashlib
import re

import msgpack
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

VERSIONS = (1, 2)
"""Versions a receiver accepts: v2 is v1 plus optional behaviour log-probs in rollout groups."""
VERSION = 2
"""The newest version. A sender writes v1 whenever a payload has nothing only v2 can carry."""
DOMAINS = {1: b"swarmnode/v1\x00", 2: b"swarmnode/v2\x00"}
DOMAIN = DOMAINS[1]
KIND_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,15}")
PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64


def signing_input(kind: str, payload: bytes, version: int = 1) -> bytes:
    """The exact bytes an author signs for a message of `kind` carrying `payload` in protocol `version`."""
    return DOMAINS[version] + kind.encode("ascii") + b"\x00" + payload


def public_key_bytes(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes_raw()


def seal(kind: str, payload: bytes, key: Ed25519PrivateKey, version: int = 1) -> bytes:
    """Sign `payload` as a message of `kind` and return the envelope bytes (canonical msgpack)."""
    if not KIND_PATTERN.fullmatch(kind):
        raise ValueError(f"invalid message kind {kind!r}")
    signature = key.sign(signing_input(kind, payload, version))
    return pack_envelope(version, kind, public_key_bytes(key), signature, payload)


def pack_envelope(version: int, kind: str, author: bytes, signature: bytes, payload: bytes) -> bytes:
    """Encode the five envelope fields exactly as SPEC.md prescribes (smallest msgpack forms)."""
    packed: bytes = msgpack.packb([version, kind, author, signature, payload], use_bin_type=True)
    return packed


def message_id(envelope: bytes) -> bytes:
    """A message's content id: the SHA-256 of its envelope bytes."""
    return hashlib.sha256(envelope).digest()


def peer_id(public_key: bytes) -> str:
    """A peer's stable id: base32 (lowercase, unpadded) of the first 20 bytes of a domain-separated
    SHA-256 of its Ed25519 public key. 32 characters."""
    digest = hashlib.sha256(b"swarmnode/peer\x00" + public_key).digest()[:20]
    return base64.b32encode(digest).decode("ascii").lower()
