"""`swarmnode bench protocol`: what signing and strict validation cost over plain msgpack.

A typical rollout batch (8 questions x 8 completions x ~200 tokens) is encoded and decoded with plain
msgpack, and sealed (encode + Ed25519 sign) and opened (`verify_and_decode`) with the protocol, in the
same run. The ratio of the two is the protocol's cost.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import protocol
from protocol.envelope import seal
from protocol.messages import to_wire
from swarmnode.bench.report import format_table, write_json

WORDS = ("the", "sum", "of", "and", "is", "so", "answer", "we", "carry", "digit", "then", "add", "7", "45")


@dataclass(frozen=True)
class Shape:
    questions: int = 8
    completions: int = 8
    tokens: int = 200
    chars_per_token: int = 4


def typical_batch(shape: Shape, seed: int = 0) -> protocol.RolloutBatch:
    rng = random.Random(seed)

    def text(n_chars: int) -> str:
        words: list[str] = []
        while sum(len(w) + 1 for w in words) < n_chars:
            words.append(rng.choice(WORDS))
        return " ".join(words)[:n_chars]

    groups = tuple(
        protocol.RolloutGroup(
            ref=protocol.TaskRef("basic_arithmetic", seed=1234, index=i, params=(("difficulty", 2),)),
            question=text(240),
            completions=tuple(
                text(shape.tokens * shape.chars_per_token) + " <answer>52</answer>" for _ in range(shape.completions)
            ),
            rewards=tuple(float(rng.random() < 0.5) for _ in range(shape.completions)),
        )
        for i in range(shape.questions)
    )
    return protocol.RolloutBatch("bench", 1, 1, 1_700_000_000_000, "swarmnode/tiny-add", groups)


def _rate(fn: Callable[[], object], seconds: float) -> tuple[int, float]:
    """Calls `fn` repeatedly for about `seconds`; returns (calls, elapsed)."""
    fn()  # warm up
    calls, start = 0, time.perf_counter()
    while True:
        for _ in range(10):
            fn()
        calls += 10
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return calls, elapsed


def run(seconds: float, json_path: Path, shape: Shape | None = None) -> list[dict[str, Any]]:
    shape = shape or Shape()
    limits = protocol.Limits()
    key = Ed25519PrivateKey.generate()
    batch = typical_batch(shape)
    wire = to_wire(batch)
    packed: bytes = msgpack.packb(wire, use_bin_type=True)
    sealed = protocol.seal_payload(batch, key, limits)
    assert protocol.verify_and_decode(sealed, limits).ok

    ops: list[tuple[str, str, Callable[[], object], int]] = [
        ("msgpack encode", "plain", lambda: msgpack.packb(to_wire(batch), use_bin_type=True), len(packed)),
        (
            "sign+encode",
            "protocol",
            lambda: seal(protocol.KIND_ROLLOUTS, protocol.encode_payload(batch), key),
            len(sealed),
        ),
        ("msgpack decode", "plain", lambda: msgpack.unpackb(packed, raw=False), len(packed)),
        ("verify+decode", "protocol", lambda: protocol.verify_and_decode(sealed, limits), len(sealed)),
    ]
    rows: list[dict[str, Any]] = []
    for name, family, fn, size in ops:
        calls, elapsed = _rate(fn, seconds)
        rows.append(
            {
                "operation": name,
                "family": family,
                "bytes": size,
                "msgs_per_s": calls / elapsed,
                "mb_per_s": calls * size / elapsed / 1e6,
                "us_per_msg": elapsed / calls * 1e6,
            }
        )
    for plain, proto in ((rows[0], rows[1]), (rows[2], rows[3])):
        proto["cost_vs_plain"] = proto["us_per_msg"] / plain["us_per_msg"]
        plain["cost_vs_plain"] = 1.0

    print(
        f"protocol bench: {shape.questions} questions x {shape.completions} completions x "
        f"~{shape.tokens} tokens; envelope {len(sealed):,} bytes, plain msgpack {len(packed):,} bytes"
    )
    print(
        format_table(
            ("operation", "msgs/s", "MB/s", "us/msg", "x plain"),
            [
                (
                    r["operation"],
                    r["msgs_per_s"],
                    r["mb_per_s"],
                    r["us_per_msg"],
                    f"{r['cost_vs_plain']:.2f}x",
                )
                for r in rows
            ],
        )
    )
    write_json(json_path, "protocol", {"seconds": seconds, **shape.__dict__}, rows)
    print(f"wrote {json_path}")
    return rows
