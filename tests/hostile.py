"""A hostile peer for tests: builds the attacks of the threat list (DESIGN.md) as real wire bytes and
offers them through any `Transport` — the in-memory hub in unit tests, a real hivemind DHT against a
running node in integration tests. Every attack is announced by the attacker's own validly signed
announcement (the only kind of announcement honest DHT nodes store), so the victim downloads it and its
validation chain has to catch it. The valid-data attacks of issue 14 (SPEC 6b) build on it: record
attacks (pinning, junk, signed floods) in `tests/hostile_records.py`, offer attacks (phantom offers, long
completions, own batches offered back, plagiarism, dated announcements, size lies) in `tests/hostile_offers.py`."""

from __future__ import annotations

import time
from collections.abc import Sequence

import msgpack
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import protocol
from protocol.envelope import pack_envelope
from swarmnode.identity import Identity
from swarmnode.swarm.transport import Transport, TransportError
from swarmnode.tasks import Question, TaskSet

LIMITS = protocol.Limits()


def new_identity() -> Identity:
    return Identity(Ed25519PrivateKey.generate())


def good_group(question: Question, completions: Sequence[str] | None = None) -> protocol.RolloutGroup:
    """A group with reward variance: one right answer and two wrong ones, honestly scored."""
    texts = tuple(completions or (f"<answer>{question.answer}</answer>", "<answer>-1</answer>", "no idea"))
    rewards = tuple(1.0 if t == f"<answer>{question.answer}</answer>" else 0.0 for t in texts)
    return protocol.RolloutGroup(question.ref, question.text, texts, rewards)


class Attacker:
    def __init__(self, transport: Transport, swarm: str, tasks: TaskSet, window_s: float = 60.0) -> None:
        self.transport = transport
        self.swarm = swarm
        self.tasks = tasks
        self.window_s = window_s
        self.identity = new_identity()
        self._next_index = 10_000_000  # questions no honest node of the tests draws

    @property
    def peer_id(self) -> str:
        return self.identity.peer_id

    def questions(self, count: int) -> list[Question]:
        found = self.tasks.draw(seed=4242, start=self._next_index, count=count)
        self._next_index += count
        return found

    def batch(
        self,
        groups: Sequence[protocol.RolloutGroup],
        *,
        created_ms: int | None = None,
        key: Ed25519PrivateKey | None = None,
        round_: int = 1,
        check_limits: bool = True,
    ) -> bytes:
        payload = protocol.RolloutBatch(
            self.swarm, round_, 0, int(time.time() * 1000) if created_ms is None else created_ms, "evil", tuple(groups)
        )
        if check_limits:
            return protocol.seal_payload(payload, key or self.identity.key, LIMITS)
        return protocol.seal(protocol.KIND_ROLLOUTS, protocol.encode_payload(payload), key or self.identity.key)

    def offer(self, envelopes: Sequence[bytes], claimed_sizes: Sequence[int] | None = None) -> list[bytes]:
        """Store each envelope under its content id and announce them all, signed by this attacker, in the
        current window. Returns the batch ids."""
        ids = [protocol.message_id(e) for e in envelopes]
        for batch_id, envelope in zip(ids, envelopes, strict=True):
            self.transport.store_batch(batch_id, envelope)
        sizes = claimed_sizes or [len(e) for e in envelopes]
        summaries = tuple(
            protocol.BatchSummary(batch_id, size, 1, 1, 1, 1.0) for batch_id, size in zip(ids, sizes, strict=True)
        )
        self.announce(summaries)
        return ids

    def announce(self, summaries: Sequence[protocol.BatchSummary], check_limits: bool = True) -> None:
        announcement = protocol.Announcement(self.swarm, 1, int(time.time() * 1000), "evil", tuple(summaries))
        if check_limits:
            envelope = protocol.seal_payload(announcement, self.identity.key, LIMITS)
        else:  # an announcement over the protocol's limits: sealed by hand, as a hostile peer would
            envelope = protocol.seal(protocol.KIND_ANNOUNCE, protocol.encode_payload(announcement), self.identity.key)
        for attempt in range(5):  # a DHT that just refused a hostile store may need a moment
            try:
                self.transport.announce(int(time.time() // self.window_s), envelope)
                return
            except TransportError:
                if attempt == 4:
                    raise
                time.sleep(1.0)


# ---------------------------------------------------------------- the attacks, as bytes


def forged_signature(attacker: Attacker, victim_public_key: bytes) -> bytes:
    """A valid batch whose author field names somebody else: the signature does not verify."""
    honest = attacker.batch([good_group(q) for q in attacker.questions(2)])
    version, kind, _author, signature, payload = msgpack.unpackb(honest, raw=False)
    return pack_envelope(version, kind, victim_public_key, signature, payload)


def tampered_payload(attacker: Attacker) -> bytes:
    """A validly signed batch with one character of a completion changed after signing."""
    honest = attacker.batch([good_group(q) for q in attacker.questions(2)])
    version, kind, author, signature, payload = msgpack.unpackb(honest, raw=False)
    at = payload.index(b"<answer>") + 1
    changed = payload[:at] + bytes([payload[at] ^ 0x01]) + payload[at + 1 :]
    return pack_envelope(version, kind, author, signature, changed)


def malformed(attacker: Attacker) -> bytes:
    """Bytes that are not msgpack at all (a truncated map header and garbage)."""
    return b"\xde\xff" + bytes(range(200))


def wrong_answers_claiming_reward(attacker: Attacker) -> bytes:
    """Every completion is wrong, and the batch claims reward 1 for each."""
    groups = [
        protocol.RolloutGroup(q.ref, q.text, ("<answer>-7</answer>", "<answer>-8</answer>", "x"), (1.0, 1.0, 1.0))
        for q in attacker.questions(2)
    ]
    return attacker.batch(groups)


def mismatched_question(attacker: Attacker) -> bytes:
    """A task reference whose question text is not the one the reference rebuilds to."""
    a, b = attacker.questions(2)
    return attacker.batch([protocol.RolloutGroup(a.ref, b.text, *_texts_and_rewards(b))])


def _texts_and_rewards(q: Question) -> tuple[tuple[str, ...], tuple[float, ...]]:
    g = good_group(q)
    return g.completions, g.rewards


def stale(attacker: Attacker, age_s: float) -> bytes:
    return attacker.batch([good_group(q) for q in attacker.questions(1)], created_ms=int((time.time() - age_s) * 1000))


def future(attacker: Attacker, ahead_s: float) -> bytes:
    return attacker.batch(
        [good_group(q) for q in attacker.questions(1)], created_ms=int((time.time() + ahead_s) * 1000)
    )


def rewrapped(attacker: Attacker, original: bytes) -> bytes:
    """Somebody else's completions re-signed as the attacker's own (a content replay)."""
    verdict = protocol.verify_and_decode(original, LIMITS)
    assert isinstance(verdict, protocol.Accepted) and isinstance(verdict.payload, protocol.RolloutBatch)
    return attacker.batch(verdict.payload.groups)
