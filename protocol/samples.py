"""Fixed, public test keys and sample payloads: what the conformance vectors and the test suites sign.
Never use these keys for anything real."""

from __future__ import annotations

import dataclasses
import hashlib

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol.messages import Announcement, BatchSummary, RolloutBatch, RolloutGroup, TaskRef


def test_key(label: str) -> Ed25519PrivateKey:
    """A fixed, public key for vectors and tests: the seed is SHA-256 of the label. Never use for real."""
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(label.encode()).digest())


KEY_A = test_key("swarmnode test key A")
KEY_B = test_key("swarmnode test key B")


def sample_batch() -> RolloutBatch:
    groups = tuple(
        RolloutGroup(
            ref=TaskRef("add", seed=7, index=i, params=(("digits", 2),)),
            question=f"{10 + i:02d}+{45 - i:02d}=",
            completions=("<answer>55</answer>", "<answer>54</answer>", "55", "<answer>55</answer>"),
            rewards=(1.0, 0.0, 0.0, 1.0),
        )
        for i in range(2)
    )
    return RolloutBatch("demo-swarm", 12, 11, 1_764_000_000_000, "swarmnode/tiny-add", groups)


def sample_v2_batch() -> RolloutBatch:
    """`sample_batch` with the author's behaviour log-probs (protocol v2): one per sampled token."""
    base = sample_batch()
    lp = ((-0.25, -0.5, -0.125), (-1.5, -0.75), (-3.0,), (-0.0625, -0.25, -0.5))
    groups = tuple(dataclasses.replace(g, logprobs=lp) for g in base.groups)
    return dataclasses.replace(base, groups=groups)


def sample_unicode_batch() -> RolloutBatch:
    group = RolloutGroup(
        ref=TaskRef(
            "basic_arithmetic",
            seed=2**40,
            index=3,
            params=(("difficulty", 0.5), ("name", "Zoë"), ("strict", True)),
        ),
        question="Combien font 3 × 4 ? Réponds entre <answer></answer>.",  # noqa: RUF001
        completions=("Trois fois quatre: <answer>12</answer> ✓", "\n\t<answer>13</answer>"),
        rewards=(1.0, 0.0),
    )
    return RolloutBatch("essaim-é", 0, 0, 0, "Qwen/Qwen2.5-0.5B-Instruct", (group,))


def sample_announcement() -> Announcement:
    summary = BatchSummary(
        batch_id=hashlib.sha256(b"batch").digest(),
        size=2048,
        round=12,
        groups=2,
        informative_groups=2,
        mean_reward=0.5,
    )
    return Announcement("demo-swarm", 12, 1_764_000_000_500, "swarmnode/tiny-add", (summary,))
