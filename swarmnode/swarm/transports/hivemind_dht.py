"""The hivemind DHT transport: a `DHTNode` run in this process, on its own thread and event loop.

Why in-process: hivemind's `DHT` class talks to a child process through a pipe that uvloop makes
non-blocking, and a value over ~60 KB kills that child (`BlockingIOError`, then `EOFError`). Rollout
batches are bigger, so the node drives `DHTNode` directly. NAT port mapping, AutoNAT and relays stay off
unless the user turns them on; tests bind 127.0.0.1.

Keys: `<swarm>/batch/<sha256 hex>` holds one batch envelope; `<swarm>/ann/<window>/<bucket>` (the base
level) and `<swarm>/ann/<window>/<level>/<bucket>` (the others) hold one announcement per peer under the
subkey = its peer id. Every node's record validator applies the swarm's
record rules (`records.py`) to what it stores and returns: no batch that is not a signed batch of this
swarm under the hash of its bytes, no announcement that is not validly signed by the peer its subkey names,
no expiry beyond what a record's time allows. An announcement's expiry is its signed time plus the live
windows' span, exactly: hivemind keeps (and its lookups merge to) the latest expiry per subkey, which is
then the newest signed announcement: no peer can overwrite or pin another's entry. Storage and cache stay
within a budget per author and in total (`hivemind_storage.py`).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Sequence
from concurrent.futures import Future
from typing import Any, TypeVar

import protocol
from swarmnode.errors import UserError
from swarmnode.swarm.transports import records
from swarmnode.swarm.transports.base import SETTINGS, TransportError, filing_levels
from swarmnode.swarm.transports.hivemind_join import Joining
from swarmnode.swarm.transports.hivemind_records import (
    DHT_COUNTERS,
    DHTKeys,
    announcement_key,
    batch_key,
    make_record_validator,
    msgpack_bin,
)
from swarmnode.swarm.transports.peers_cache import PeersCache, join_through
from swarmnode.swarm.transports.storage_budget import StorageBudget

__all__ = ["HivemindTransport", "TransportError"]

T = TypeVar("T")


class HivemindTransport(Joining):
    def __init__(
        self,
        swarm: str,
        *,
        initial_peers: Sequence[str] = (),
        host_maddrs: Sequence[str] = ("/ip4/127.0.0.1/tcp/0",),
        limits: protocol.Limits | None = None,
        window_s: float = 60.0,
        ttl_s: float = 900.0,
        op_timeout_s: float = 30.0,
        startup_timeout_s: float = 60.0,
        nat_traversal: bool = False,
        level: int = SETTINGS.base_level,
        skew_s: float = records.CLOCK_SKEW_S,
        budget: StorageBudget | None = None,
        peers_cache: PeersCache | None = None,
        cache_every_s: float = 30.0,
    ) -> None:
        from hivemind.dht.node import DHTNode

        self.swarm = swarm
        self.level = level
        self.limits = limits or protocol.Limits()
        self.rules = records.SwarmRules(
            swarm, self.limits, window_s=window_s, keys=DHTKeys(swarm), ttl_s=ttl_s, skew_s=skew_s
        )
        self.budget = budget or StorageBudget()
        """What this node keeps for peers: its DHT storage, and its cache within a quarter of the same total."""
        self.ttl_s = ttl_s
        self.op_timeout_s = op_timeout_s
        self.bytes_downloaded = 0
        self._node: Any = None  # hivemind's `DHTNode` (untyped), reached only through this class
        self._joiner: Future[None] | None = None
        self._cacher: Future[None] | None = None
        self._settler: asyncio.Future[None] | None = None  # a join's lookup of its neighbours, after the join
        self.reached = 0
        """Peers that answered the latest join attempt."""
        self.last_cache_error = ""
        self._closed = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="swarmnode-dht", daemon=True)
        self._thread.start()
        options: dict[str, Any] = dict(
            host_maddrs=list(host_maddrs),
            startup_timeout=startup_timeout_s,
            nat_port_map=nat_traversal,
            auto_nat=nat_traversal,
            use_relay=nat_traversal,
            use_auto_relay=nat_traversal,
        )
        # Start alone, then join: hivemind's own bootstrap makes the daemon exit when no initial peer answers,
        # which would stop the node; here unreachable peers only mean training alone and retrying with backoff.
        from swarmnode.swarm.transports.hivemind_storage import limit_daemon_memory

        limit_daemon_memory()  # the p2p daemon holds little after relaying junk
        try:
            self.validator = make_record_validator(self.rules)
            self._node = self._run(DHTNode.create(record_validator=self.validator, **options), startup_timeout_s + 10)
            self._run(self._budget_storage(), startup_timeout_s)
        except TransportError as exc:
            self.close()
            if "address already in use" in str(exc.__cause__ or exc).lower():  # the whole message, not cut
                raise UserError(
                    f"swarm.host_maddrs {' '.join(host_maddrs)}: the port is taken (address already in use); "
                    "stop what uses it or choose another port"
                ) from exc
            raise UserError(f"the DHT node did not start: {exc} (a longer swarm.startup_timeout_s may help)") from exc
        self.peers_cache = peers_cache
        cached = [m for m in peers_cache.load() if m not in initial_peers] if peers_cache else []
        self.initial_peers = join_through(initial_peers, cached)
        self.joined = not self.initial_peers
        self.join_attempts = 0
        self.last_join_error = ""
        self._notices: list[str] = []
        if self.initial_peers:
            self._joiner = asyncio.run_coroutine_threadsafe(self._keep_joining(len(cached)), self._loop)
        if peers_cache is not None:
            self._cacher = asyncio.run_coroutine_threadsafe(self._keep_cache(peers_cache, cache_every_s), self._loop)

    async def _budget_storage(self) -> None:
        """Give the node storages within budget (before it meets any peer, so both are still empty)."""
        from swarmnode.swarm.transports.hivemind_storage import install_budgets

        def author_of(value: bytes) -> str:
            return records.batch_author(self.rules, msgpack_bin(value) or b"")

        install_budgets(self._node, self.budget, author_of, self.validator.counts, DHT_COUNTERS.__getitem__)

    @property
    def buckets(self) -> int:
        return 1 << self.level

    def stored_bytes(self) -> int:
        """What this node keeps for peers (its DHT storage and cache), as its budgets count it."""
        protocol_ = self._node.protocol
        return int(protocol_.storage.budget.used + protocol_.cache.budget.used)

    def pending_lookups(self) -> int:
        """Keys in hivemind's map of lookups in flight (kept bounded: `hivemind_storage.PendingGets`)."""
        return len(self._node.pending_get_requests)

    def wire_bytes(self) -> int:
        return self.bytes_downloaded  # a pull transport: what it read

    def rejections(self) -> dict[str, int]:
        return dict(self.validator.counts)

    def _timeout(self, timeout: float | None) -> float:
        return self.op_timeout_s if timeout is None else min(self.op_timeout_s, timeout)

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        if timeout <= 0:
            coro.close()
            raise TransportError("no time left in this round for swarm I/O")
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout)
        except Exception as exc:
            future.cancel()
            raise TransportError(f"{type(exc).__name__}: {str(exc)[:200]}") from exc

    def visible_maddrs(self) -> list[str]:
        return [str(m) for m in self._run(self._node.get_visible_maddrs(), self.op_timeout_s)]

    def put_record(
        self,
        key: str,
        value: bytes,
        subkey: str | None = None,
        timeout: float | None = None,
        expiration: float | None = None,
    ) -> bool:
        """Store one record under a DHT key (`batch_key`, `announcement_key`) until `expiration` (default: `ttl_s`
        from now), with none of this node's own checks before it is sent: whether another node (this one, while
        it knows no other) accepted it. Every DHT node's record validator still applies, so tests and hostile
        peers can offer records no honest node writes."""
        from hivemind.utils import get_dht_time

        expires = float(get_dht_time()) + self.ttl_s if expiration is None else expiration
        return self._run(self._store_anywhere(key, value, expires, subkey), self._timeout(timeout))

    async def _store_anywhere(self, key: str, value: bytes, expiration: float, subkey: str | None) -> bool:
        """hivemind's store to the nearest nodes, answering whether any other node took the record (this one's
        own storage counts only while it knows no other). `DHTNode.store` answers what the last node to answer
        said: one node that refuses everything would fail honest stores."""
        from hivemind.dht.routing import DHTID
        from hivemind.dht.validation import DHTRecord
        from hivemind.utils.serializer import MSGPackSerializer

        key_id, packed = DHTID.generate(source=key), MSGPackSerializer.dumps(value)
        nearest = await self._node.find_nearest_nodes([key_id], k_nearest=self._node.num_replicas)

        async def store_at(node_id: Any, peer_id: Any) -> bool:
            if node_id == self._node.node_id:
                record = DHTRecord(key_id.to_bytes(), MSGPackSerializer.dumps(subkey), packed, expiration)
                storage = self._node.protocol.storage
                return self.validator.validate(record) and bool(storage.store(key_id, packed, expiration, subkey))
            answer = await self._node.protocol.call_store(peer_id, [key_id], [packed], expiration, subkeys=[subkey])
            return bool(answer and answer[0])

        others = [n for n in nearest[key_id] if n != self._node.node_id]
        answers = await asyncio.gather(*(store_at(n, p) for n, p in nearest[key_id].items()), return_exceptions=True)
        taken = [n for n, a in zip(nearest[key_id], answers, strict=True) if a is True]
        return any(n in others for n in taken) if others else bool(taken)

    def holds(self, key: str) -> bool:
        """Whether this node's own storage holds a record under a DHT key (without asking any peer)."""
        from hivemind.dht.routing import DHTID

        return self._node.protocol.storage.get(DHTID.generate(source=key)) is not None

    def store_batch(self, batch_id: bytes, envelope: bytes, timeout: float | None = None) -> None:
        # only the content id is checked here: an oversize batch is refused (and counted) by every DHT node
        record = records.BatchRecord(self.rules.keys.batch(batch_id), envelope)
        if records.content_addressed(self.rules, record) is not None:
            raise ValueError("a batch is stored under the SHA-256 of its envelope")
        if not self.put_record(batch_key(self.swarm, batch_id), envelope, timeout=timeout):
            raise TransportError("no DHT node accepted the batch")

    def announce(self, window: int, envelope: bytes, timeout: float | None = None) -> None:
        signed = records.signed_announcement(self.rules, envelope)
        if signed is None:
            raise ValueError("only valid signed announcements of this swarm can be stored")
        expires = self.rules.announcement_expiry(signed.announcement)
        levels = filing_levels()
        keys = [announcement_key(self.swarm, window, self.rules.bucket_of(signed.author, k), k) for k in levels]
        stored = self._run(self._store_all(keys, envelope, expires, signed.author), self._timeout(timeout))
        if not stored[levels.index(SETTINGS.base_level)]:  # the others are for readers at other levels: best effort
            raise TransportError("no DHT node accepted the announcement (an expired or an older one?)")

    async def _store_all(self, keys: list[str], value: bytes, expiration: float, subkey: str) -> list[bool]:
        """One record under several keys at once (an announcement at each of its levels)."""
        answers = await asyncio.gather(
            *(self._store_anywhere(k, value, expiration, subkey) for k in keys), return_exceptions=True
        )
        return [a is True for a in answers]

    def announcements(self, window: int, bucket: int | None = None, timeout: float | None = None) -> list[bytes]:
        from hivemind.utils.timed_storage import ValueWithExpiration

        values: list[bytes] = []
        for b in range(self.buckets) if bucket is None else [bucket]:
            key = announcement_key(self.swarm, window, b, self.level)
            found = self._run(self._node.get(key, latest=True), self._timeout(timeout))
            if found is None or not isinstance(found.value, dict):
                continue
            entries = [e for e in found.value.values() if isinstance(e, ValueWithExpiration)]
            values += [e.value for e in entries if isinstance(e.value, bytes)]
        self.bytes_downloaded += sum(len(v) for v in values)
        return values

    def fetch_batch(self, batch_id: bytes, timeout: float | None = None) -> bytes | None:
        found = self._run(self._node.get(batch_key(self.swarm, batch_id)), self._timeout(timeout))
        if found is None or not isinstance(found.value, bytes):
            return None
        self.bytes_downloaded += len(found.value)
        return found.value

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for task in (self._joiner, self._cacher):
            if task is not None:
                task.cancel()
        if self._node is not None:
            try:
                self._run(self._node.shutdown(), 30)
            except TransportError:
                pass
            try:  # the p2p daemon gone before the loop stops, so its process transport is not left to the GC
                self._run(_end_daemon(self._node), 10)
            except TransportError:
                pass
        try:
            self._run(_cancel_pending(), 10)
        except TransportError:
            pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)


async def _end_daemon(node: Any) -> None:
    """Kill hivemind's p2p daemon if its shutdown left it running (a busy machine), and wait for it: an
    asyncio subprocess transport collected after its loop stopped prints a traceback at exit."""
    child = getattr(getattr(node, "p2p", None), "_child", None)
    if child is not None and child.returncode is None:
        child.kill()
        await child.wait()


async def _cancel_pending() -> None:
    """Cancel the tasks hivemind leaves running on its loop, so none is destroyed while still pending."""
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
