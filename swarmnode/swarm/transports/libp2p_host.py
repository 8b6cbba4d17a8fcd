"""The py-libp2p host of the GossipSub transport, run as its own process (`python -m
swarmnode.swarm.transports.libp2p_host`): py-libp2p cannot share a process with hivemind (duplicate protobuf
symbols) and runs only on trio. It imports `protocol` and nothing of the node.

It talks to its parent over stdin/stdout in frames (4-byte big-endian length + msgpack map, each at most
MAX_FRAME bytes): requests {"id", "op", ...} in, replies {"id", "ok", "value" | "error"} out, and first a
{"id": 0, "op": "ready", "addrs": [...]} frame.

One GossipSub topic per swarm carries ["ann", window, envelope] (announcements) and ["batch", id, envelope]
(batches up to `push_limit` bytes). Bigger batches stay with their author and are fetched on demand over
the `/swarmnode/fetch/1.0.0` stream protocol (request: 32-byte id; answer: the envelope or nothing, read
with a size cap). The topic validator applies the record rules (`records.py`): what they refuse is dropped,
counted and not forwarded. Inbound RPCs over the push limit are refused unread; message ids are content
hashes in a 10-minute seen cache; rate limit and peer-score thresholds are explicit (py-libp2p's are lax).
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import sys
from collections import Counter
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

import msgpack

import protocol
from swarmnode.swarm.transports import records
from swarmnode.swarm.transports.base import SETTINGS
from swarmnode.swarm.transports.storage_budget import AUTHOR_BYTES, TOTAL_BYTES, StorageBudget

MAX_FRAME = 8 * 1024 * 1024
FETCH_PROTOCOL = "/swarmnode/fetch/1.0.0"
KEY_ENV = "SWARMNODE_LIBP2P_KEY"
log = logging.getLogger("swarmnode.libp2p")


class TopicKeys:
    """Where the topic's messages file records: a batch under its id; an announcement names only its window,
    and every receiver files it in its signer's bucket itself."""

    def batch(self, batch_id: bytes) -> Hashable:
        return batch_id

    def announcement(self, window: int, bucket: int, level: int = SETTINGS.base_level) -> Hashable:
        return window


class State:
    """What this host keeps (batches and announcements that passed the record rules; batches within `budget`)
    and what it refused."""

    def __init__(self, swarm: str, limits: protocol.Limits, window_s: float, budget: StorageBudget) -> None:
        self.rules = records.SwarmRules(swarm, limits, window_s=window_s, keys=TopicKeys())
        self.limits = limits
        self.budget = budget
        self.batches: dict[bytes, bytes] = {}
        self.announcements: dict[tuple[int, int], dict[str, tuple[int, bytes]]] = {}
        """Per (window, bucket at the highest level), each author's newest signed announcement: (its created_ms,
        its envelope). Buckets nest, so a bucket at a lower level is the union of some of these (`listed`)."""
        self.rejected: Counter[str] = Counter()
        self.received_bytes = 0
        """Bytes of other peers' messages and fetched batches this host took in (its real download)."""

    def refuse(self, reason: str) -> None:
        self.rejected[f"libp2p_{reason}"] += 1

    def keep_batch(self, batch_id: bytes, data: bytes) -> None:
        if batch_id in self.batches:
            return
        self.batches[batch_id] = data
        for place in self.budget.keep(batch_id, records.batch_author(self.rules, data), len(data)):
            if isinstance(place, bytes):
                self.batches.pop(place, None)
                self.refuse(records.OVER_BUDGET)

    def check_batch(self, batch_id: object, data: object) -> bool:
        """Whether a batch passes the record rules (a refusal is counted)."""
        if not isinstance(batch_id, bytes) or not isinstance(data, bytes):
            self.refuse(records.MALFORMED)
            return False
        reason = records.check_batch(self.rules, records.BatchRecord(batch_id, data))
        if reason is not None:
            self.refuse(reason)
        return reason is None

    def check_announcement(self, window: object, data: object) -> records.Signed | None:
        """A valid announcement for a live window, or None (and counted)."""
        if not isinstance(window, int) or not isinstance(data, bytes):
            self.refuse(records.MALFORMED)
            return None
        verdict = records.check_announcement(self.rules, records.AnnouncementRecord(data, window))
        if isinstance(verdict, str):
            self.refuse(verdict)
            return None
        return verdict

    def keep_announcement(self, window: int, signed: records.Signed, data: bytes) -> bool:
        """Keep an author's announcement unless the one kept for it is newer signed (then False: dropped, not
        forwarded, and not counted, as gossip delivers an honest author's announcements out of order too)."""
        entries = self.announcements.setdefault((window, self.rules.bucket_of(signed.author, SETTINGS.max_level)), {})
        kept = entries.get(signed.author)
        if kept is not None and kept[1] != data and signed.announcement.created_ms <= kept[0]:
            return False
        entries[signed.author] = (signed.announcement.created_ms, data)
        oldest = self.rules.live_windows().start - 1
        for key in [k for k in self.announcements if k[0] < oldest]:
            del self.announcements[key]
        return True

    def listed(self, window: int, bucket: int | None, level: int) -> list[bytes]:
        """The announcements kept for a window, in one bucket at `level` or (None) in all."""
        mask = (1 << level) - 1
        return [
            e
            for (w, b), entries in self.announcements.items()
            if w == window and (bucket is None or b & mask == bucket)
            for _, e in entries.values()
        ]

    def accept_message(self, data: bytes) -> bool:
        """Validate one GossipSub message, and keep what it carries."""
        if len(data) > self.limits.max_envelope_bytes + 1024:
            self.refuse(records.OVERSIZE)
            return False
        try:
            item = msgpack.unpackb(data, raw=False, max_bin_len=self.limits.max_envelope_bytes, max_str_len=64)
        except Exception:  # any decoding failure of peer bytes is a rejection, never a crash
            self.refuse(records.MALFORMED)
            return False
        if not isinstance(item, list) or len(item) != 3 or item[0] not in ("ann", "batch"):
            self.refuse(records.MALFORMED)
            return False
        if item[0] == "ann":
            signed = self.check_announcement(item[1], item[2])
            return signed is not None and self.keep_announcement(item[1], signed, item[2])
        if not self.check_batch(item[1], item[2]):
            return False
        self.keep_batch(item[1], item[2])
        return True


async def read_frame(stream: Any) -> dict[str, Any] | None:
    """One frame from the parent (a trio stream)."""
    header = await read_exactly(stream.receive_some, 4)
    if header is None:
        return None
    length = int.from_bytes(header, "big")
    if length > MAX_FRAME:
        raise ValueError(f"frame of {length} bytes from the parent")
    body = await read_exactly(stream.receive_some, length)
    if body is None:
        return None
    value = msgpack.unpackb(body, raw=False)
    return value if isinstance(value, dict) else None


async def read_exactly(read: Callable[[int], Awaitable[bytes]], n: int) -> bytes | None:
    """`n` bytes from `read` (a trio stream's receive_some, a libp2p stream's read: either may return
    fewer bytes than asked), or None if the stream ends first."""
    chunks = b""
    while len(chunks) < n:
        chunk = await read(n - len(chunks))
        if not chunk:
            return None
        chunks += chunk
    return chunks


async def close_quietly(stream: Any) -> None:
    """Close a libp2p stream that the peer may already have reset (bounded in time)."""
    import trio

    with trio.move_on_after(5):
        try:
            await stream.close()
        except Exception as exc:  # already reset by the peer
            log.debug("closing a stream: %s", exc)


def frame(value: dict[str, Any]) -> bytes:
    body: bytes = msgpack.packb(value, use_bin_type=True)
    return len(body).to_bytes(4, "big") + body


def mesh_router(**options: Any) -> Any:
    """A GossipSub router with the swarm's mesh degrees and heartbeat; `options`: scoring, rate limits."""
    from libp2p.custom_types import TProtocol
    from libp2p.pubsub.gossipsub import GossipSub

    meshsub = [TProtocol("/meshsub/1.1.0"), TProtocol("/meshsub/1.0.0")]
    return GossipSub(meshsub, 6, 4, 12, heartbeat_initial_delay=0.2, heartbeat_interval=1, **options)


async def serve(args: argparse.Namespace) -> None:
    import multiaddr
    import trio
    from libp2p import new_host
    from libp2p.custom_types import TProtocol
    from libp2p.peer.peerinfo import info_from_p2p_addr
    from libp2p.pubsub.pubsub import ContentAddressedMessageIDGenerator, Pubsub
    from libp2p.pubsub.score import ScoreParams, TopicScoreParams
    from libp2p.tools.anyio_service import background_trio_service

    limits = protocol.Limits()
    state = State(args.swarm, limits, args.window_s, StorageBudget(args.store_bytes, args.author_bytes))
    topic = f"swarmnode/{args.swarm}/v1"
    # no mDNS, no UPnP port mapping and no relays: nothing leaves the listen addresses unless the user
    # asks (the hivemind transport keeps nat_port_map / auto_nat / use_relay off the same way)
    from libp2p.crypto.ed25519 import create_new_key_pair

    # the parent keeps the host's key (in the environment, not argv): a restarted host keeps peer id and address
    seed = os.environ.get(KEY_ENV)
    key_pair = create_new_key_pair(bytes.fromhex(seed)) if seed else None
    host = new_host(key_pair=key_pair, enable_mDNS=False, enable_upnp=False)
    scores = ScoreParams(
        p4_invalid_messages=TopicScoreParams(weight=-10.0, cap=100.0, decay=0.9),
        publish_threshold=-50.0,
        gossip_threshold=-20.0,
        graylist_threshold=-80.0,
        accept_px_threshold=0.0,
    )
    gossipsub = mesh_router(
        time_to_live=60,
        score_params=scores,
        max_messages_per_topic_per_second=args.rate,
        min_mesh_diversity_ips=1,  # loopback swarms share one IP
    )
    pubsub = Pubsub(
        host,
        gossipsub,
        seen_ttl=600,  # the seen cache: the same message id is not delivered or forwarded twice
        msg_id_constructor=ContentAddressedMessageIDGenerator(),  # ids by content, so replays are seen too
        max_inbound_rpc_size=args.push_limit + 64 * 1024,  # refused before it is read into memory
        allowed_topics={topic},
    )
    out = trio.lowlevel.FdStream(os.dup(sys.stdout.fileno()))
    stdin = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
    write_lock = trio.Lock()

    async def send(value: dict[str, Any]) -> None:
        async with write_lock:
            await out.send_all(frame(value))

    async def fetch_handler(stream: Any) -> None:
        """Answer one fetch: a 32-byte batch id in, its envelope (4-byte length first) or an empty answer out.
        Whatever a peer does on this stream (stalls, resets it, sends junk) ends only this stream."""
        try:
            with trio.move_on_after(args.op_timeout_s):
                wanted = await read_exactly(stream.read, 32)
                data = state.batches.get(wanted or b"") or b""
                await stream.write(len(data).to_bytes(4, "big") + data)
        except Exception as exc:  # one peer's broken stream
            state.rejected["libp2p_fetch_stream"] += 1
            log.debug("fetch stream from a peer failed: %s", exc)
        finally:
            await close_quietly(stream)

    async def fetch_remote(batch_id: bytes) -> bytes | None:
        """Ask connected peers, in random order, for a batch this host does not hold."""
        peers = list(host.get_connected_peers())
        random.shuffle(peers)
        for peer in peers:
            stream = None
            try:
                with trio.move_on_after(args.op_timeout_s):
                    stream = await host.new_stream(peer, [TProtocol(FETCH_PROTOCOL)])
                    await stream.write(batch_id)
                    header = await read_exactly(stream.read, 4)
                    length = int.from_bytes(header or b"\0\0\0\0", "big")
                    ok = 0 < length <= limits.max_envelope_bytes
                    data = await read_exactly(stream.read, length) if ok else None
                    state.received_bytes += len(data or b"")
                    record = records.BatchRecord(batch_id, data or b"")
                    if data is not None and records.check_batch(state.rules, record) is None:
                        state.keep_batch(batch_id, data)
                        return data
            except Exception as exc:  # a peer that fails to answer: try the next one
                log.debug("fetch from %s failed: %s", peer, exc)
            finally:
                if stream is not None:
                    await close_quietly(stream)
        return None

    async def handle(request: dict[str, Any]) -> Any:
        op = request.get("op")
        if op == "store_batch":
            batch_id, data = request["batch_id"], request["data"]
            if records.check_batch(state.rules, records.BatchRecord(batch_id, data)) is not None:
                raise ValueError("a batch is a signed rollout batch stored under the SHA-256 of its envelope")
            state.keep_batch(batch_id, data)
            if len(data) <= args.push_limit:
                await pubsub.publish(topic, msgpack.packb(["batch", batch_id, data], use_bin_type=True))
            return True
        if op == "announce":
            signed = state.check_announcement(request["window"], request["data"])
            if signed is None:
                raise ValueError("only valid signed announcements can be stored")
            if not state.keep_announcement(request["window"], signed, request["data"]):
                raise ValueError("its author's announcement kept for this window is newer")
            await pubsub.publish(topic, msgpack.packb(["ann", request["window"], request["data"]], use_bin_type=True))
            return True
        if op == "announcements":
            level = request.get("level", SETTINGS.base_level)
            return state.listed(request["window"], request.get("bucket"), level) if level in SETTINGS.levels else []
        if op == "fetch_batch":
            found = state.batches.get(request["batch_id"])
            return found if found is not None else await fetch_remote(request["batch_id"])
        if op == "connect":
            info = info_from_p2p_addr(multiaddr.Multiaddr(request["maddr"]))
            await host.connect(info)
            if request["maddr"] not in known:
                known.append(request["maddr"])
            return True
        if op == "rejections":
            return dict(state.rejected)
        if op == "peers":
            return len(host.get_connected_peers())
        if op == "received_bytes":
            return state.received_bytes
        raise ValueError(f"unknown op {op!r}")

    async def answer(request: dict[str, Any]) -> None:
        try:
            with trio.fail_after(args.op_timeout_s):
                value = await handle(request)
            await send({"id": request.get("id"), "ok": True, "value": value})
        except Exception as exc:  # reported to the parent, which raises it there
            await send({"id": request.get("id"), "ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]})

    listen = [multiaddr.Multiaddr(a) for a in args.listen]
    async with host.run(listen_addrs=listen), trio.open_nursery() as nursery:
        host.set_stream_handler(TProtocol(FETCH_PROTOCOL), fetch_handler)
        own_id = host.get_id()

        def validate(peer: Any, msg: Any) -> bool:
            if peer != own_id:
                state.received_bytes += len(msg.data)
            return state.accept_message(msg.data)

        pubsub.set_topic_validator(topic, validate, False)
        async with background_trio_service(pubsub), background_trio_service(gossipsub):
            await pubsub.wait_until_ready()
            subscription = await pubsub.subscribe(topic)

            async def drain() -> None:  # validated messages were kept by the validator; just consume them
                while True:
                    await subscription.get()

            nursery.start_soon(drain)
            known = list(args.peers)
            unreachable: set[str] = set()

            async def dial_known() -> None:
                """Dial every known peer address (given at start or through "connect") not connected now."""
                connected = set(host.get_connected_peers())
                for maddr in list(known):
                    try:
                        info = info_from_p2p_addr(multiaddr.Multiaddr(maddr))
                        if info.peer_id in connected:
                            continue
                        with trio.fail_after(args.op_timeout_s):
                            await host.connect(info)
                        unreachable.discard(maddr)
                    except Exception as exc:  # unreachable for now: tried again later, said once
                        if maddr not in unreachable:
                            log.warning("could not reach %s (retrying every %.0f s): %s", maddr, args.redial_s, exc)
                        unreachable.add(maddr)

            async def keep_connected() -> None:  # a peer that restarted, or a link that broke, is dialled again
                while True:
                    await trio.sleep(args.redial_s)
                    await dial_known()

            await dial_known()
            nursery.start_soon(keep_connected)
            peer_id = host.get_id().to_string()
            addrs = [f"{a}" if "/p2p/" in str(a) else f"{a}/p2p/{peer_id}" for a in host.get_addrs()]
            await send({"id": 0, "op": "ready", "addrs": addrs})
            while True:
                request = await read_frame(stdin)
                if request is None:  # the parent is gone
                    nursery.cancel_scope.cancel()
                    return
                nursery.start_soon(answer, request)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="swarmnode's py-libp2p GossipSub host (run by the node)")
    parser.add_argument("--swarm", required=True)
    parser.add_argument("--listen", nargs="+", default=["/ip4/127.0.0.1/tcp/0"])
    parser.add_argument("--peers", nargs="*", default=[])
    parser.add_argument("--window-s", type=float, default=60.0)
    parser.add_argument("--push-limit", type=int, default=512 * 1024, help="batches above this go by fetch")
    parser.add_argument("--store-bytes", type=int, default=TOTAL_BYTES, help="batch store cap")
    parser.add_argument("--author-bytes", type=int, default=AUTHOR_BYTES, help="batch store cap per signer")
    parser.add_argument("--rate", type=float, default=50.0, help="messages per topic per second accepted")
    parser.add_argument("--op-timeout-s", type=float, default=20.0)
    parser.add_argument("--redial-s", type=float, default=5.0, help="how often unconnected known peers are dialled")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    import trio

    trio.run(serve, args)


if __name__ == "__main__":
    main()
