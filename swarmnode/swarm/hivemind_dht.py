"""The hivemind DHT transport: a `DHTNode` run in this process, on its own thread and event loop.

Why in-process: hivemind's `DHT` class talks to a child process through a pipe that uvloop makes
non-blocking, and a value over ~60 KB kills that child (`BlockingIOError`, then `EOFError`). Rollout
batches are bigger, so the node drives `DHTNode` directly. NAT port mapping, AutoNAT and relays stay off
unless the user turns them on; tests bind 127.0.0.1.

Keys: `<swarm>/batch/<sha256 hex>` holds one batch envelope; `<swarm>/ann/<window>` holds one
announcement per peer under the subkey = its peer id. Every node's `SwarmRecordValidator` refuses to
store or return a batch whose key is not the hash of its bytes, or an announcement that is not validly
signed by the peer its subkey names — so no peer can overwrite another's entry on honest nodes.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

import protocol
from swarmnode.errors import UserError
from swarmnode.swarm.transport import ANNOUNCE_BUCKETS, TransportError, announcement_bucket

__all__ = ["HivemindTransport", "TransportError", "make_record_validator"]

T = TypeVar("T")


def batch_key(swarm: str, batch_id: bytes) -> str:
    return f"{swarm}/batch/{batch_id.hex()}"


def announcement_key(swarm: str, window: int, bucket: int) -> str:
    return f"{swarm}/ann/{window}/{bucket}"


def _msgpack_bin(data: bytes) -> bytes | None:
    """The payload of a msgpack bin value (how hivemind serialises bytes), parsed strictly by hand."""
    if len(data) < 2:
        return None
    header = data[0]
    widths = {0xC4: 1, 0xC5: 2, 0xC6: 4}
    if header not in widths:
        return None
    width = widths[header]
    length = int.from_bytes(data[1 : 1 + width], "big")
    body = data[1 + width :]
    return body if len(body) == length else None


def _msgpack_str(data: bytes) -> str | None:
    """A short msgpack str (fixstr or str8), parsed strictly by hand."""
    if not data:
        return None
    if 0xA0 <= data[0] <= 0xBF:
        length, body = data[0] - 0xA0, data[1:]
    elif data[0] == 0xD9 and len(data) >= 2:
        length, body = data[1], data[2:]
    else:
        return None
    if len(body) != length:
        return None
    try:
        return body.decode("ascii")
    except UnicodeDecodeError:
        return None


def make_record_validator(
    swarm: str,
    limits: protocol.Limits,
    window_s: float,
    clock: Callable[[], float] = time.time,
    buckets: int = ANNOUNCE_BUCKETS,
) -> Any:
    from hivemind.dht.routing import DHTID
    from hivemind.dht.validation import DHTRecord, RecordValidatorBase

    class SwarmRecordValidator(RecordValidatorBase):  # type: ignore[misc]
        """Refuses records that no honest node writes; counts each refusal by reason (`counts`)."""

        def __init__(self) -> None:
            super().__init__()
            self.counts: Counter[str] = Counter()

        def validate(self, record: DHTRecord) -> bool:
            reason = self._problem(record)
            if reason:
                self.counts[reason] += 1
            return not reason

        def _problem(self, record: DHTRecord) -> str:
            value = _msgpack_bin(record.value)
            if value is None:
                return "dht_malformed_record"
            if len(value) > limits.max_envelope_bytes:
                return "dht_oversize"
            if record.subkey == b"\xc0":  # no subkey: a batch under the hash of its bytes
                expected = DHTID.generate(source=batch_key(swarm, hashlib.sha256(value).digest())).to_bytes()
                return "" if record.key == expected else "dht_batch_key_mismatch"
            subkey = _msgpack_str(record.subkey)
            verdict = protocol.verify_and_decode(value, limits)
            if (
                subkey is None
                or not isinstance(verdict, protocol.Accepted)
                or not isinstance(verdict.payload, protocol.Announcement)
                or verdict.peer_id != subkey
                or verdict.payload.swarm != swarm
            ):
                return "dht_bad_announcement"
            now = int(clock() // window_s)
            bucket = announcement_bucket(subkey, buckets)
            keys = {
                DHTID.generate(source=announcement_key(swarm, w, bucket)).to_bytes() for w in range(now - 2, now + 2)
            }
            return "" if record.key in keys else "dht_announcement_window"

    return SwarmRecordValidator()


class HivemindTransport:
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
        buckets: int = ANNOUNCE_BUCKETS,
    ) -> None:
        from hivemind.dht.node import DHTNode

        self.swarm = swarm
        self.buckets = buckets
        self.limits = limits or protocol.Limits()
        self.ttl_s = ttl_s
        self.op_timeout_s = op_timeout_s
        self.bytes_downloaded = 0
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
        try:
            self.validator = make_record_validator(swarm, self.limits, window_s, buckets=buckets)
            self.node = self._run(DHTNode.create(record_validator=self.validator, **options), startup_timeout_s + 10)
        except TransportError as exc:
            self.close()
            raise UserError(f"the DHT node did not start: {exc} (a longer swarm.startup_timeout_s may help)") from exc
        self.initial_peers = list(initial_peers)
        self.joined = not self.initial_peers
        self.join_attempts = 0
        self.last_join_error = ""
        if self.initial_peers:
            self._joiner = asyncio.run_coroutine_threadsafe(self._keep_joining(), self._loop)

    def connect(self, maddr: str) -> None:
        """Reach one more peer now (for example across a healed partition); TransportError if it does not answer."""
        if not self._run(self._join_once([maddr]), self.op_timeout_s * 3):
            raise TransportError(f"could not reach {maddr}: {self.last_join_error}")

    async def _join_once(self, peers: Sequence[str] | None = None) -> bool:
        from hivemind.p2p import PeerID
        from hivemind.utils.multiaddr import Multiaddr

        reached = 0
        for text in self.initial_peers if peers is None else peers:
            try:
                maddr = Multiaddr(text)
                peer = PeerID.from_base58(maddr["p2p"])
                transport_part = maddr.decapsulate(Multiaddr(f"/p2p/{maddr['p2p']}"))
                await asyncio.wait_for(self.node.p2p._client.connect(peer, [transport_part]), self.op_timeout_s)
                if await asyncio.wait_for(self.node.protocol.call_ping(peer), self.op_timeout_s) is not None:
                    reached += 1
            except Exception as exc:  # a bad address or a dead peer: try the others, and again later
                self.last_join_error = f"{text}: {type(exc).__name__}"
        if reached:
            await asyncio.wait_for(self.node.find_nearest_nodes([self.node.node_id]), self.op_timeout_s)
        return reached > 0

    async def _keep_joining(self) -> None:
        delay = 2.0
        while not self.joined:
            self.join_attempts += 1
            try:
                self.joined = await self._join_once()
            except Exception as exc:  # never let the retry loop die
                self.last_join_error = f"{type(exc).__name__}: {exc}"
            if not self.joined:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 300.0)

    def wait_joined(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self.joined and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.joined

    def rejections(self) -> dict[str, int]:
        return dict(self.validator.counts)

    def take_notices(self) -> list[str]:
        return []

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
        return [str(m) for m in self._run(self.node.get_visible_maddrs(), self.op_timeout_s)]

    def _expiration(self) -> float:
        from hivemind.utils import get_dht_time

        return float(get_dht_time()) + self.ttl_s

    def store_batch(self, batch_id: bytes, envelope: bytes, timeout: float | None = None) -> None:
        if hashlib.sha256(envelope).digest() != batch_id:
            raise ValueError("a batch is stored under the SHA-256 of its envelope")
        if not self._run(
            self.node.store(batch_key(self.swarm, batch_id), envelope, self._expiration()), self._timeout(timeout)
        ):
            raise TransportError("no DHT node accepted the batch")

    def announce(self, window: int, envelope: bytes, timeout: float | None = None) -> None:
        verdict = protocol.verify_and_decode(envelope, self.limits)
        if not isinstance(verdict, protocol.Accepted):
            raise ValueError("only valid signed announcements can be stored")
        stored = self._run(
            self.node.store(
                announcement_key(self.swarm, window, announcement_bucket(verdict.peer_id, self.buckets)),
                envelope,
                self._expiration(),
                subkey=verdict.peer_id,
            ),
            self._timeout(timeout),
        )
        if not stored:
            raise TransportError("no DHT node accepted the announcement")

    def announcements(self, window: int, bucket: int | None = None, timeout: float | None = None) -> list[bytes]:
        values: list[bytes] = []
        for b in range(self.buckets) if bucket is None else [bucket]:
            key = announcement_key(self.swarm, window, b)
            found = self._run(self.node.get(key, latest=True), self._timeout(timeout))
            if found is None or not isinstance(found.value, dict):
                continue
            values += [e.value for e in found.value.values() if isinstance(getattr(e, "value", None), bytes)]
        self.bytes_downloaded += sum(len(v) for v in values)
        return values

    def fetch_batch(self, batch_id: bytes, timeout: float | None = None) -> bytes | None:
        found = self._run(self.node.get(batch_key(self.swarm, batch_id)), self._timeout(timeout))
        if found is None or not isinstance(found.value, bytes):
            return None
        self.bytes_downloaded += len(found.value)
        return found.value

    def close(self) -> None:
        joiner = getattr(self, "_joiner", None)
        if joiner is not None:
            joiner.cancel()
        node = getattr(self, "node", None)
        if node is not None:
            try:
                self._run(node.shutdown(), 10)
            except TransportError:
                pass
        try:
            self._run(_cancel_pending(), 10)
        except TransportError:
            pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)


async def _cancel_pending() -> None:
    """Cancel the tasks hivemind leaves running on its loop, so none is destroyed while still pending."""
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
