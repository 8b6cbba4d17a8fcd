"""Build the conformance vectors in protocol/vectors/ (run `python -m protocol.testvectors` to rewrite them).

Every vector is deterministic (fixed keys, fixed clock values; Ed25519 signatures are deterministic), so
the test suite regenerates them and checks the committed files did not drift, then checks each one
against `verify_and_decode`. Another implementation needs only the JSON files. The cases themselves are in
`vector_cases`, the messages they alter in `vector_messages`.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from protocol.codec import Accepted, verify_and_decode
from protocol.limits import Limits
from protocol.messages import Payload, to_wire
from protocol.samples import KEY_A, KEY_B, sample_announcement, sample_batch, sample_unicode_batch, sample_v2_batch
from protocol.vector_cases import all_cases

__all__ = [
    "KEY_A",
    "KEY_B",
    "VECTOR_DIR",
    "build_vectors",
    "payload_to_json",
    "render",
    "sample_announcement",
    "sample_batch",
    "sample_unicode_batch",
    "sample_v2_batch",
    "write_vectors",
]
"""The generator, and the fixed keys and sample messages the tests also take from here."""

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


def expectation(name: str, raw: bytes, limits: Limits, reason: str | None) -> dict[str, Any]:
    """A vector's `expect`: what a receiver decodes from an accepted message, or the reason it refuses it."""
    if reason is not None:
        return {"result": "reject", "reason": reason}
    verdict = verify_and_decode(raw, limits)
    if not isinstance(verdict, Accepted):
        raise RuntimeError(f"vector {name} should be valid: {verdict}")
    return {
        "result": "accept",
        "kind": verdict.kind,
        "message_id": verdict.message_id.hex(),
        "author": verdict.author.hex(),
        "peer_id": verdict.peer_id,
        "payload": payload_to_json(verdict.payload),
    }


def build_vectors() -> list[dict[str, Any]]:
    return [
        {
            "name": f"{number:02d}-{name}",
            "description": description,
            "limits": dataclasses.asdict(limits),
            "envelope_hex": raw.hex(),
            "expect": expectation(name, raw, limits, reason),
        }
        for number, (name, description, raw, limits, reason) in enumerate(all_cases(), start=1)
    ]


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
