"""The node-side validation chain and the peer book, one test per threat they handle."""

from __future__ import annotations

import dataclasses
from collections import Counter

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import protocol
from protocol.testvectors import KEY_A, KEY_B, sample_announcement
from swarmnode.groups import Group
from swarmnode.swarm.sharing.validate import MAX_CHARS_PER_TOKEN, BatchValidator, FreshnessPolicy, Seen
from swarmnode.swarm.trust.book import PeerBook
from swarmnode.tasks import TaskSet, make_task

NOW = 1_800_000_000.0
LIMITS = protocol.Limits()
PEER_A = protocol.peer_id(KEY_A.public_key().public_bytes_raw())
PEER_B = protocol.peer_id(KEY_B.public_key().public_bytes_raw())


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def tasks() -> TaskSet:
    return TaskSet([make_task("add", {"digits": 2})])


def batch(
    index: int = 0,
    swarm: str = "s",
    created_s: float = NOW,
    completions: tuple[str, ...] | None = None,
    rewards: tuple[float, ...] | None = None,
) -> protocol.RolloutBatch:
    ts = tasks()
    q = ts.draw(seed=1, start=index, count=1)[0]
    completions = completions or (f"<answer>{q.answer}</answer>", "<answer>0</answer>")
    rewards = rewards or tuple(1.0 if c == f"<answer>{q.answer}</answer>" else 0.0 for c in completions)
    group = protocol.RolloutGroup(q.ref, q.text, completions, rewards)
    return protocol.RolloutBatch(swarm, 3, 3, int(created_s * 1000), "tiny", (group,))


def sealed(b: protocol.RolloutBatch, key: Ed25519PrivateKey = KEY_A) -> bytes:
    return protocol.seal_payload(b, key, LIMITS)


def validator(**policy: float) -> BatchValidator:
    return BatchValidator("s", tasks(), LIMITS, FreshnessPolicy(**policy), clock=Clock())


def test_a_valid_batch_is_accepted_and_rescored() -> None:
    out = validator().check(sealed(batch()))
    assert out.rejected == Counter() and len(out.accepted) == 1
    group = out.accepted[0]
    assert group.rewards == (1.0, 0.0) and group.source == protocol.peer_id(KEY_A.public_key().public_bytes_raw())


def test_reward_inflation_is_ignored() -> None:
    inflated = batch(completions=("<answer>1</answer>", "<answer>2</answer>"), rewards=(1.0, 1.0))
    group = validator().check(sealed(inflated)).accepted[0]
    assert group.claimed_rewards == (1.0, 1.0) and group.rewards == (0.0, 0.0)


def test_forged_signature_and_tampered_payload() -> None:
    v = validator()
    raw = bytearray(sealed(batch()))
    raw[-4] ^= 1
    assert v.check(bytes(raw)).rejected == Counter({"bad_signature": 1})
    assert v.counts["bad_signature"] == 1


def test_a_replay_is_refused_every_time() -> None:
    v = validator()
    raw = sealed(batch())
    assert v.check(raw).accepted
    assert v.check(raw).rejected == Counter({"duplicate_message": 1})
    assert v.check(raw).rejected == Counter({"duplicate_message": 1})


def test_a_copy_resigned_by_another_identity_is_ignored_and_nobody_is_charged() -> None:
    v = validator()
    assert v.check(sealed(batch())).accepted
    copy = v.check(sealed(batch(), KEY_B))
    assert not copy.accepted and copy.rejected == Counter() and copy.ignored == Counter({"duplicate_completion": 1})
    assert v.counts == Counter({"duplicate_completion": 1})  # still counted by the node


def test_an_honest_author_is_never_charged_when_the_copy_arrived_first() -> None:
    v = validator()
    original = sealed(batch(created_s=NOW - 2))  # the honest author signed it first...
    assert v.check(sealed(batch(created_s=NOW - 1), KEY_B)).accepted  # ...but the copy got here first
    assert v.check(sealed(batch(created_s=NOW - 100), KEY_B)).rejected == Counter({"duplicate_completion": 1})
    honest = v.check(original)
    assert not honest.accepted and honest.rejected == Counter()  # ignored, not charged
    assert v.duplicate_reason(f"{PEER_B} {NOW - 1}", PEER_A, NOW - 2) == ("duplicate_completion", False)


def test_a_copy_signed_after_this_node_held_the_text_is_charged_to_its_signer() -> None:
    clock = Clock()
    v = BatchValidator("s", tasks(), LIMITS, FreshnessPolicy(max_future_s=5), clock=clock)
    assert v.check(sealed(batch())).accepted
    clock.now += 60
    backdated = v.check(sealed(batch(created_s=NOW - 30), KEY_B))  # could have been first: not provable
    assert backdated.rejected == Counter() and backdated.ignored == Counter({"duplicate_completion": 1})
    late = v.check(sealed(batch(created_s=NOW + 59), KEY_B))  # its own signature says it came after
    assert late.rejected == Counter({"copied_completion": 1})
    again = v.check(sealed(batch(created_s=NOW + 1)))  # the author's own text in a new batch: its duplicate
    assert again.rejected == Counter({"duplicate_completion": 1})


def test_own_batches_and_copies_of_own_completions_are_never_taken() -> None:
    v = BatchValidator("s", tasks(), LIMITS, clock=Clock(), own_peer_id=PEER_A)
    assert v.check(sealed(batch())).rejected == Counter({"own_batch": 1})
    q = tasks().draw(seed=1, start=5, count=1)[0]
    texts = (f"<answer>{q.answer}</answer>", "<answer>0</answer>")
    v.note_own([Group(q, texts, (1.0, 0.0))], NOW)
    copy = v.check(sealed(batch(index=5, completions=texts), KEY_B))
    assert not copy.accepted and copy.ignored == Counter({"duplicate_completion": 1})


def test_completions_over_the_token_bound_are_dropped_and_counted() -> None:
    counted: list[int] = []

    def count(text: str) -> int:
        counted.append(len(text))
        return len(text) // 2

    v = BatchValidator("s", tasks(), LIMITS, clock=Clock(), count_tokens=count, max_completion_tokens=20)
    q = tasks().draw(seed=1, start=0, count=1)[0]
    right = f"<answer>{q.answer}</answer>"
    out = v.check(sealed(batch(completions=(right + " " * 10, "<answer>0</answer>" + "y" * 30))))
    assert out.rejected == Counter({"long_completion": 1}) and out.accepted[0].completions == (right + " " * 10,)
    assert out.tokens == [(len(right) + 10) // 2]
    huge = "<answer>0</answer>" + "z" * (20 * MAX_CHARS_PER_TOKEN)
    out = v.check(sealed(batch(index=1, completions=(huge, huge + "!"))))
    assert out.rejected == Counter({"long_completion": 2}) and not out.accepted
    assert max(counted) < len(huge)  # too long to be worth tokenising: dropped on its length alone


def test_stale_and_future_batches() -> None:
    v = validator(max_age_s=60, max_future_s=5)
    assert v.check(sealed(batch(created_s=NOW - 61))).rejected == Counter({"stale": 1})
    assert v.check(sealed(batch(index=1, created_s=NOW + 6))).rejected == Counter({"future": 1})
    assert v.check(sealed(batch(index=2, created_s=NOW + 4))).accepted  # skew within the bound


def test_wrong_swarm_and_wrong_kind() -> None:
    v = validator()
    assert v.check(sealed(batch(swarm="other"))).rejected == Counter({"wrong_swarm": 1})
    assert v.check(protocol.seal_payload(sample_announcement(), KEY_A, LIMITS)).rejected == Counter({"wrong_kind": 1})


def test_the_memory_of_seen_ids_is_bounded_and_forgets_the_oldest_first() -> None:
    seen = Seen(capacity=2)
    assert seen.add(b"a", "peer-a") and seen.add(b"b") and not seen.add(b"a", "other")
    assert seen.get(b"a") == "peer-a" and seen.get(b"b") == "" and seen.get(b"c") is None
    assert seen.add(b"c") and len(seen) == 2 and b"a" not in seen and b"b" in seen
    v = BatchValidator("s", tasks(), LIMITS, clock=Clock(), seen_capacity=1)
    first, second = sealed(batch(index=1)), sealed(batch(index=2))
    assert v.check(first).accepted and v.check(second).accepted
    assert v.check(first).accepted  # a memory of one id each: the first batch was forgotten entirely


def test_question_that_does_not_match_its_reference() -> None:
    good = batch(index=3)
    other = batch(index=4).groups[0]
    forged = dataclasses.replace(good, groups=(dataclasses.replace(good.groups[0], question=other.question),))
    assert validator().check(sealed(forged)).rejected == Counter({"question_mismatch": 1})


def test_unknown_task() -> None:
    b = batch()
    ref = protocol.TaskRef("basic_arithmetic", 1, 0)
    forged = dataclasses.replace(b, groups=(dataclasses.replace(b.groups[0], ref=ref),))
    assert validator().check(sealed(forged)).rejected == Counter({"unknown_task": 1})


@pytest.mark.parametrize(("raw", "reason"), [(b"\x00" * (4 << 20), "oversize"), (b"\x95\x01", "malformed_envelope")])
def test_wire_level_rejections(raw: bytes, reason: str) -> None:
    assert validator().check(raw).rejected == Counter({reason: 1})


def test_peer_book_bans_repeat_offenders_for_a_while() -> None:
    clock = Clock()
    book = PeerBook(ban_after=3, ban_s=100, clock=clock)
    book.rejected("p", Counter({"stale": 50, "quota": 50}))  # ordinary in a busy swarm
    assert not book.is_banned("p")
    book.rejected("p", Counter({"bad_signature": 2}))
    assert not book.is_banned("p")
    book.rejected("p", Counter({"question_mismatch": 1}))
    assert book.is_banned("p")
    clock.now += 101
    assert not book.is_banned("p")


def test_peer_book_snapshot_and_capacity() -> None:
    clock = Clock()
    book = PeerBook(max_peers=2, clock=clock)
    book.accepted("a", "tiny", groups=2, rewards=[1.0, 0.0, 1.0, 1.0])
    clock.now += 1
    book.accepted("b", "qwen", groups=1, rewards=[0.0])
    clock.now += 1
    book.accepted("c", "tiny", groups=1, rewards=[1.0])
    snap = {row["peer_id"]: row for row in book.snapshot()}
    assert set(snap) == {"b", "c"}  # "a" was heard from least recently
    assert snap["c"]["mean_reward"] == 1.0 and snap["b"]["model"] == "qwen"
