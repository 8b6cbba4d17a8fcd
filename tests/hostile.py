"""The hostile peers of the tests: each attack of the threat list (DESIGN.md, protocol/SPEC.md 6 and 6b) as
real wire bytes, offered through any `Transport` (the in-memory hub in unit tests, hivemind or libp2p against
running nodes in integration tests), or stored by an outside client that checks nothing.

- `Attacker`: a peer with a valid identity whose own signed announcements offer what it builds: forged,
  tampered, malformed, wrongly scored, mismatched, stale, future and re-signed (`rewrapped`) batches. It
  seals its batches with the project's `Publisher` (one per identity) and tells its lies with `protocol`.
- `OfferingAttacker` (findings 2 and 4-7 of the offer attacks): `phantom_offers` (batches that exist nowhere,
  claiming 64 informative groups), `long_completions`, `offered_back` (a victim's own batches), `rewrapped`
  (plagiarism, to frame the honest author), `announce_dated` (+-1 day), `under_claimed` / `over_claimed`.
- `RawDHTPeer` (findings 1 and 3, hivemind): `pin` (an honest peer's old announcement re-stored under its
  subkey with a one-day expiry), `store_junk` (random blobs at their own sha256), `signed_flood`.
- `RawGossipPeer` (findings 1 and 3, libp2p): a GossipSub client of its own process that publishes any bytes
  unchecked: `replayed` (an honest peer's old announcement, again and in the next window), `junk_message`.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

import msgpack
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import protocol
from protocol.envelope import pack_envelope
from swarmnode.identity import Identity
from swarmnode.swarm.sharing import publish
from swarmnode.swarm.transports.base import Transport, TransportError, announcement_bucket
from swarmnode.swarm.transports.hivemind_records import announcement_key, batch_key
from swarmnode.tasks import Question, TaskSet, extract_answer
from swarmnode.tasks.base import stray_text

LIMITS = protocol.Limits()
DAY_S = 86_400.0
T = TypeVar("T")


def new_identity() -> Identity:
    return Identity(Ed25519PrivateKey.generate())


def good_group(question: Question, completions: Sequence[str] | None = None) -> protocol.RolloutGroup:
    """A group with reward variance: one right answer and two wrong ones, honestly scored (under the default
    answer format)."""
    texts = tuple(completions or (f"<answer>{question.answer}</answer>", "<answer>-1</answer>", "no idea"))
    rewards = tuple(float(extract_answer(t) == question.answer and not stray_text(t, "end")) for t in texts)
    return protocol.RolloutGroup(question.ref, question.text, texts, rewards)


class Attacker:
    """A peer of its own identity: its batches are sealed as an honest publisher seals them (`batch`), unless
    an attack dates them or takes them over the protocol's limits; its announcements list whatever an attack
    offers."""

    def __init__(
        self, transport: Transport, swarm: str, tasks: TaskSet, window_s: float = 60.0, identity: Identity | None = None
    ) -> None:
        self.publisher = publish.Publisher(transport, identity or new_identity(), swarm, "evil", LIMITS, window_s)
        self.tasks = tasks
        self._next_index = 10_000_000  # questions no honest node of the tests draws

    @property
    def transport(self) -> Transport:
        return self.publisher.transport

    @property
    def swarm(self) -> str:
        return self.publisher.swarm

    @property
    def identity(self) -> Identity:
        return self.publisher.identity

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
        round_: int = 1,
        check_limits: bool = True,
    ) -> bytes:
        """A batch of `groups` signed by this attacker: sealed by its publisher, or by hand when it is dated
        (`created_ms`) or may go over the protocol's limits."""
        if created_ms is None and check_limits:
            return self.publisher.seal(round_, 0, groups)[0]
        payload = protocol.RolloutBatch(
            self.swarm, round_, 0, int(time.time() * 1000) if created_ms is None else created_ms, "evil", tuple(groups)
        )
        if check_limits:
            return protocol.seal_payload(payload, self.identity.key, LIMITS)
        return protocol.seal(protocol.KIND_ROLLOUTS, protocol.encode_payload(payload), self.identity.key)

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
        """Announce `summaries`, signed now by this attacker, in the current window (an honest publisher lists
        only its own stored batches, with their true summaries: an attacker lists what the attack needs)."""
        envelope = self._announcement(summaries, time.time(), check_limits)
        for attempt in range(5):  # a DHT that just refused a hostile store may need a moment
            try:
                self.transport.announce(self._window(), envelope)
                return
            except TransportError:
                if attempt == 4:
                    raise
                time.sleep(1.0)

    def _announcement(
        self, summaries: Sequence[protocol.BatchSummary], created_s: float, check_limits: bool = True
    ) -> bytes:
        announcement = protocol.Announcement(self.swarm, 1, int(created_s * 1000), "evil", tuple(summaries))
        if check_limits:
            return protocol.seal_payload(announcement, self.identity.key, LIMITS)
        # an announcement over the protocol's limits: sealed by hand, as a hostile peer would
        return protocol.seal(protocol.KIND_ANNOUNCE, protocol.encode_payload(announcement), self.identity.key)

    def _window(self) -> int:
        return int(time.time() // self.publisher.window_s)


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


# ---------------------------------------------------------------- offers that lie


def summary_of(envelope: bytes) -> protocol.BatchSummary:
    """The true summary of a sealed batch, as an honest author announces it."""
    verdict = protocol.verify_and_decode(envelope, LIMITS)
    assert isinstance(verdict, protocol.Accepted) and isinstance(verdict.payload, protocol.RolloutBatch)
    return publish.summary_of(envelope, verdict.payload)


class OfferingAttacker(Attacker):
    """An attacker whose announcements state the true summary of what it stores unless told to lie."""

    def offer_true(self, envelopes: Sequence[bytes]) -> list[bytes]:
        for envelope in envelopes:
            self.transport.store_batch(protocol.message_id(envelope), envelope)
        summaries = [summary_of(e) for e in envelopes]
        self.announce(summaries)
        return [s.batch_id for s in summaries]

    def announce_dated(self, summaries: Sequence[protocol.BatchSummary], created_s: float) -> None:
        """An announcement signed with `created_s` as its time, filed in the current window (tried once)."""
        self.transport.announce(self._window(), self._announcement(summaries, created_s))


def phantom_offers(attacker: Attacker, count: int = 16, informative: int = 64) -> list[bytes]:
    """`count` batches that exist nowhere, each claimed to hold `informative` informative groups (the most
    a batch may have): a reader that believes the claims spends its downloads on misses."""
    ids = [protocol.message_id(f"phantom {attacker.peer_id} {i} {time.time()}".encode()) for i in range(count)]
    attacker.announce([protocol.BatchSummary(i, 20_000, 1, informative, informative, 0.5) for i in ids])
    return ids


def long_completions(attacker: Attacker, questions: Sequence[Question], length: int) -> bytes:
    """A valid batch whose right answers come after `length` characters (text before the answer is allowed
    by the default answer format): each group has a correct (scored 1) and a wrong completion, both `length`
    long, so every group has reward variance."""
    head = "x" * length + " "
    groups = [good_group(q, (f"{head}<answer>{q.answer}</answer>", f"{head}<answer>-1</answer>")) for q in questions]
    return attacker.batch(groups)


def offered_back(attacker: OfferingAttacker, summaries: Sequence[protocol.BatchSummary]) -> None:
    """Announce somebody else's batches (read from its announcements) as if they were the attacker's."""
    attacker.announce(list(summaries))


def announced_summaries(envelope: bytes) -> list[protocol.BatchSummary]:
    """The batch summaries an announcement envelope lists ([] when it is not a valid announcement)."""
    verdict = protocol.verify_and_decode(envelope, LIMITS)
    if not isinstance(verdict, protocol.Accepted) or not isinstance(verdict.payload, protocol.Announcement):
        return []
    return list(verdict.payload.batches)


def under_claimed(attacker: OfferingAttacker, envelope: bytes) -> bytes:
    """Store a real batch and offer it with a size claim far below its length."""
    batch_id = protocol.message_id(envelope)
    attacker.transport.store_batch(batch_id, envelope)
    true = summary_of(envelope)
    attacker.announce([protocol.BatchSummary(batch_id, 100, true.round, true.groups, true.informative_groups, 0.5)])
    return batch_id


def over_claimed(attacker: OfferingAttacker, envelope: bytes, informative: int = 64) -> bytes:
    """Store a real batch and offer it claiming more informative groups than it has."""
    batch_id = protocol.message_id(envelope)
    attacker.transport.store_batch(batch_id, envelope)
    true = summary_of(envelope)
    attacker.announce([protocol.BatchSummary(batch_id, true.size, true.round, 64, informative, 0.5)])
    return batch_id


# ---------------------------------------------------------------- records stored by an outside DHT client


class RawDHTPeer:
    """A DHT node that checks nothing and stores what it is told, on its own event loop thread; it listens
    on 127.0.0.1 only (no NAT port mapping, AutoNAT or relays)."""

    def __init__(self, initial_peers: Sequence[str]) -> None:
        from hivemind.dht.node import DHTNode

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="raw-dht-peer", daemon=True)
        self.thread.start()
        options: dict[str, Any] = dict(
            host_maddrs=["/ip4/127.0.0.1/tcp/0"], nat_port_map=False, auto_nat=False, use_relay=False
        )
        self.node: Any = self.run(DHTNode.create(initial_peers=list(initial_peers), **options), 90)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def store_at(
        self, maddrs: Sequence[str], key: str, envelope: bytes, expiration: float, subkey: str | None = None
    ) -> list[bool | None]:
        """Ask the node at each address to store one record; what each answered (None: no answer)."""
        return [self.run(self._store_one(m, key, envelope, expiration, subkey), 90) for m in maddrs]

    async def _store_one(
        self, maddr: str, key: str, envelope: bytes, expiration: float, subkey: str | None
    ) -> bool | None:
        from hivemind.dht.routing import DHTID
        from hivemind.p2p import PeerID
        from hivemind.utils.serializer import MSGPackSerializer

        peer = PeerID.from_base58(maddr.split("/p2p/")[1])
        answer = await self.node.protocol.call_store(
            peer, [DHTID.generate(source=key)], [MSGPackSerializer.dumps(envelope)], expiration, subkeys=[subkey]
        )
        return None if answer is None else bool(answer[0])

    def keep_own(self, key: str, envelope: bytes, expiration: float, subkey: str | None = None) -> None:
        """Keep a record in this node's own storage, so that it serves it in answer to lookups."""
        from hivemind.dht.routing import DHTID
        from hivemind.utils.serializer import MSGPackSerializer

        async def keep() -> None:
            self.node.protocol.storage.store(
                DHTID.generate(source=key), MSGPackSerializer.dumps(envelope), expiration, subkey=subkey
            )

        self.run(keep())

    def close(self) -> None:
        async def cancel_pending() -> None:  # hivemind leaves tasks running on its loop
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        try:
            self.run(self.node.shutdown(), 30)
            self.run(cancel_pending(), 10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)


def peer_of(key: Ed25519PrivateKey) -> str:
    return protocol.peer_id(key.public_key().public_bytes_raw())


def announcement(key: Ed25519PrivateKey, swarm: str, created_s: float) -> bytes:
    """A peer's own validly signed announcement, signed at `created_s`."""
    summary = protocol.BatchSummary(os.urandom(32), 2048, 1, 2, 2, 0.5)
    payload = protocol.Announcement(swarm, 1, int(created_s * 1000), "honest", (summary,))
    return protocol.seal_payload(payload, key, LIMITS)


def pin(
    attacker: RawDHTPeer, maddrs: Sequence[str], swarm: str, victim: str, old: bytes, windows: Sequence[int]
) -> list[bool | None]:
    """Finding 1: `old` (the victim's own announcement) re-stored under its subkey with a one-day expiry in
    each window, at every node; also kept by the attacker's own node, which serves it to lookups."""
    answers: list[bool | None] = []
    expiry = time.time() + DAY_S
    for window in windows:
        key = announcement_key(swarm, window, announcement_bucket(victim, 8))
        answers += attacker.store_at(maddrs, key, old, expiry, subkey=victim)
        attacker.keep_own(key, old, expiry, subkey=victim)
    return answers


def junk_blob(size: int = 1024 * 1024) -> bytes:
    return os.urandom(size)


def store_junk(
    attacker: RawDHTPeer, maddrs: Sequence[str], swarm: str, blob: bytes, expiry_s: float = 365 * DAY_S
) -> list[bool | None]:
    """Finding 3: random bytes at `<swarm>/batch/<sha256 of the bytes>`, for `expiry_s` (a year by default)."""
    key = batch_key(swarm, protocol.message_id(blob))
    return attacker.store_at(maddrs, key, blob, time.time() + expiry_s)


def signed_time_s(envelope: bytes) -> float:
    verdict = protocol.verify_and_decode(envelope, LIMITS)
    assert isinstance(verdict, protocol.Accepted)
    return verdict.payload.created_ms / 1000


def signed_flood(key: Ed25519PrivateKey, swarm: str, count: int, size: int = 1024 * 1024) -> list[bytes]:
    """`count` valid rollout batches of about `size` bytes, signed by `key` (distinct bytes each)."""
    per = min(LIMITS.max_completion_chars, max(2, size // LIMITS.max_completions_per_group))
    n = min(LIMITS.max_completions_per_group, max(1, size // per))
    found = []
    for i in range(count):
        completions = tuple(os.urandom(per // 2).hex() for _ in range(n))
        group = protocol.RolloutGroup(protocol.TaskRef("add", 7, i, ()), "1+1=", completions, (0.0,) * n)
        batch = protocol.RolloutBatch(swarm, i, 0, int(time.time() * 1000), "flood", (group,))
        found.append(protocol.seal_payload(batch, key, LIMITS))
    return found


def newest_by(envelopes: Sequence[bytes], author: str) -> bytes | None:
    """The newest signed of `author`'s announcements among `envelopes`."""
    own = [e for e in envelopes if signer(e) == author]
    return max(own, key=signed_time_s, default=None)


def signer(envelope: bytes) -> str | None:
    """The peer id of a valid envelope's signer, or None."""
    verdict = protocol.verify_and_decode(envelope, LIMITS)
    return verdict.peer_id if isinstance(verdict, protocol.Accepted) else None


# ---------------------------------------------------------------- messages published by an outside GossipSub client


class RawGossipPeer:
    """A GossipSub peer in its own process (`tests/libp2p_raw_peer.py`: py-libp2p cannot share a process with
    hivemind) that joins a swarm's topic through `maddr` and publishes whatever bytes it is given, unchecked;
    it listens on 127.0.0.1 only."""

    def __init__(self, swarm: str, maddr: str, timeout_s: float = 60.0) -> None:
        from swarmnode.swarm.transports.libp2p_pipe import frame

        self._frame = frame
        self.sent = 0
        script = Path(__file__).with_name("libp2p_raw_peer.py")
        self.proc = subprocess.Popen(
            [sys.executable, str(script), swarm, maddr], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        try:
            self._expect(b"ready", timeout_s)
        except BaseException:
            self.close()
            raise

    def _expect(self, line: bytes, timeout_s: float) -> None:
        assert self.proc.stdout is not None
        timer = threading.Timer(timeout_s, self.proc.kill)  # a peer that hangs is killed, and the read ends
        timer.start()
        try:
            got = self.proc.stdout.readline().strip()
        finally:
            timer.cancel()
        assert got == line, f"the raw GossipSub peer said {got!r}, not {line!r}"

    def publish(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(self._frame({"data": data}))
        self.proc.stdin.flush()
        self.sent += 1
        self._expect(f"sent {self.sent}".encode(), 60.0)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)


def replayed(peer: RawGossipPeer, old: bytes, windows: Sequence[int]) -> None:
    """Finding 1 over GossipSub: an honest peer's own old announcement published again, in each window."""
    for window in windows:
        peer.publish(msgpack.packb(["ann", window, old], use_bin_type=True))


def junk_message(size: int) -> bytes:
    """Finding 3 over GossipSub: random bytes offered as a batch under their own sha256."""
    blob = os.urandom(size)
    return bytes(msgpack.packb(["batch", hashlib.sha256(blob).digest(), blob], use_bin_type=True))
