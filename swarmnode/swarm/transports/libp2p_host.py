"""The py-libp2p host of the GossipSub transport, run as its own process (`python -m
swarmnode.swarm.transports.libp2p_host`): py-libp2p cannot share a process with hivemind (duplicate protobuf
symbols) and runs only on trio. It imports `protocol` and nothing of the node.

It talks to its parent over stdin/stdout in frames (`libp2p_pipe.py`): requests {"id", "op", ...} in,
replies {"id", "ok", "value" | "error"} out, and first a {"id": 0, "op": "ready", "addrs": [...]} frame.

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
from typing import Any

import msgpack

import protocol
from swarmnode.swarm.transports import records
from swarmnode.swarm.transports.base import SETTINGS
from swarmnode.swarm.transports.libp2p_pipe import KEY_ENV, frame, read_exactly, read_frame
from swarmnode.swarm.transports.libp2p_store import State
from swarmnode.swarm.transports.storage_budget import AUTHOR_BYTES, TOTAL_BYTES, StorageBudget
from swarmnode.swarm.trust.reasons import Refusal

FETCH_PROTOCOL = "/swarmnode/fetch/1.0.0"
log = logging.getLogger("swarmnode.libp2p")


async def close_quietly(stream: Any) -> None:
    """Close a libp2p stream that the peer may already have reset (bounded in time)."""
    import trio

    with trio.move_on_after(5):
        try:
            await stream.close()
        except Exception as exc:  # already reset by the peer
            log.debug("closing a stream: %s", exc)


def mesh_router(**options: Any) -> Any:
    """A GossipSub router with the swarm's mesh degrees and heartbeat; `options`: scoring, rate limits."""
    from libp2p.custom_types import TProtocol
    from libp2p.pubsub.gossipsub import GossipSub

    meshsub = [TProtocol("/meshsub/1.1.0"), TProtocol("/meshsub/1.0.0")]
    return GossipSub(meshsub, 6, 4, 12, heartbeat_initial_delay=0.2, heartbeat_interval=1, **options)


def keyed_host() -> Any:
    """A py-libp2p host with the key its parent keeps (in the environment, not argv), so that a restarted host
    keeps its peer id and address."""
    from libp2p import new_host
    from libp2p.crypto.ed25519 import create_new_key_pair

    seed = os.environ.get(KEY_ENV)
    key_pair = create_new_key_pair(bytes.fromhex(seed)) if seed else None
    # no mDNS, no UPnP port mapping and no relays: nothing leaves the listen addresses unless the user
    # asks (the hivemind transport keeps nat_port_map / auto_nat / use_relay off the same way)
    return new_host(key_pair=key_pair, enable_mDNS=False, enable_upnp=False)


def scored_router(rate: float) -> Any:
    """The topic's GossipSub router, with explicit peer-score thresholds and a rate limit of `rate` messages
    per second."""
    from libp2p.pubsub.score import ScoreParams, TopicScoreParams

    scores = ScoreParams(
        p4_invalid_messages=TopicScoreParams(weight=-10.0, cap=100.0, decay=0.9),
        publish_threshold=-50.0,
        gossip_threshold=-20.0,
        graylist_threshold=-80.0,
        accept_px_threshold=0.0,
    )
    return mesh_router(
        time_to_live=60,
        score_params=scores,
        max_messages_per_topic_per_second=rate,
        min_mesh_diversity_ips=1,  # loopback swarms share one IP
    )


def peer_info(maddr: str) -> Any:
    """The peer id and address a `/p2p/` multiaddress names."""
    import multiaddr
    from libp2p.peer.peerinfo import info_from_p2p_addr

    return info_from_p2p_addr(multiaddr.Multiaddr(maddr))


class GossipHost:
    """One running host: its py-libp2p host and the swarm's topic, what it keeps (`State`), the peer addresses
    it keeps dialled, and the pipe to its parent. Built and run inside `trio.run`."""

    def __init__(self, args: argparse.Namespace) -> None:
        import trio
        from libp2p.pubsub.pubsub import ContentAddressedMessageIDGenerator, Pubsub

        self.args = args
        self.limits = protocol.Limits()
        self.state = State(args.swarm, self.limits, args.window_s, StorageBudget(args.store_bytes, args.author_bytes))
        self.topic = f"swarmnode/{args.swarm}/v1"
        self.host = keyed_host()
        self.own_id = self.host.get_id()
        self.gossipsub = scored_router(args.rate)
        self.pubsub = Pubsub(
            self.host,
            self.gossipsub,
            seen_ttl=600,  # the seen cache: the same message id is not delivered or forwarded twice
            msg_id_constructor=ContentAddressedMessageIDGenerator(),  # ids by content, so replays are seen too
            max_inbound_rpc_size=args.push_limit + 64 * 1024,  # refused before it is read into memory
            allowed_topics={self.topic},
        )
        self.out = trio.lowlevel.FdStream(os.dup(sys.stdout.fileno()))
        self.stdin = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
        self.write_lock = trio.Lock()
        self.known: list[str] = list(args.peers)
        """Peer addresses dialled again whenever they are not connected (given at start or through "connect")."""
        self.unreachable: set[str] = set()
        """Known addresses the last dial failed to reach (each warned about once)."""

    async def run(self) -> None:
        """Listen, join the topic, dial the known peers, say "ready", then answer the parent until it is gone."""
        import multiaddr
        import trio
        from libp2p.custom_types import TProtocol
        from libp2p.tools.anyio_service import background_trio_service

        listen = [multiaddr.Multiaddr(a) for a in self.args.listen]
        async with self.host.run(listen_addrs=listen), trio.open_nursery() as nursery:
            self.host.set_stream_handler(TProtocol(FETCH_PROTOCOL), self.serve_fetch)
            self.pubsub.set_topic_validator(self.topic, self.validate, False)
            async with background_trio_service(self.pubsub), background_trio_service(self.gossipsub):
                await self.pubsub.wait_until_ready()
                subscription = await self.pubsub.subscribe(self.topic)
                nursery.start_soon(drain, subscription)
                await self.dial_known()
                nursery.start_soon(self.keep_connected)
                await self.send({"id": 0, "op": "ready", "addrs": self.addresses()})
                while True:
                    request = await read_frame(self.stdin)
                    if request is None:  # the parent is gone
                        nursery.cancel_scope.cancel()
                        return
                    nursery.start_soon(self.answer, request)

    def validate(self, peer: Any, msg: Any) -> bool:
        """The topic validator: whether a message passes the record rules (then kept); others' bytes counted."""
        if peer != self.own_id:
            self.state.received_bytes += len(msg.data)
        return self.state.accept_message(msg.data)

    def addresses(self) -> list[str]:
        """The host's listen addresses, each ending in its peer id."""
        peer_id = self.host.get_id().to_string()
        return [f"{a}" if "/p2p/" in str(a) else f"{a}/p2p/{peer_id}" for a in self.host.get_addrs()]

    async def send(self, value: dict[str, Any]) -> None:
        async with self.write_lock:
            await self.out.send_all(frame(value))

    async def answer(self, request: dict[str, Any]) -> None:
        import trio

        try:
            with trio.fail_after(self.args.op_timeout_s):
                value = await self.execute(request)
            await self.send({"id": request.get("id"), "ok": True, "value": value})
        except Exception as exc:  # reported to the parent, which raises it there
            await self.send({"id": request.get("id"), "ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]})

    async def execute(self, request: dict[str, Any]) -> Any:
        """Carry out one request of the parent; its answer's value."""
        op = request.get("op")
        if op == "store_batch":
            return await self.store_batch(request["batch_id"], request["data"])
        if op == "announce":
            return await self.announce(request["window"], request["data"])
        if op == "announcements":
            level = request.get("level", SETTINGS.base_level)
            if level not in SETTINGS.levels:
                return []
            return self.state.listed(request["window"], request.get("bucket"), level)
        if op == "fetch_batch":
            found = self.state.batches.get(request["batch_id"])
            return found if found is not None else await self.fetch_remote(request["batch_id"])
        if op == "connect":
            await self.host.connect(peer_info(request["maddr"]))
            if request["maddr"] not in self.known:
                self.known.append(request["maddr"])
            return True
        if op == "rejections":
            return dict(self.state.rejected)
        if op == "peers":
            return len(self.host.get_connected_peers())
        if op == "received_bytes":
            return self.state.received_bytes
        raise ValueError(f"unknown op {op!r}")

    async def store_batch(self, batch_id: bytes, data: bytes) -> bool:
        """Keep one of the node's own batches, and publish it on the topic if it is within the push limit."""
        if records.check_batch(self.state.rules, records.BatchRecord(batch_id, data)) is not None:
            raise ValueError("a batch is a signed rollout batch stored under the SHA-256 of its envelope")
        self.state.keep_batch(batch_id, data)
        if len(data) <= self.args.push_limit:
            await self.pubsub.publish(self.topic, msgpack.packb(["batch", batch_id, data], use_bin_type=True))
        return True

    async def announce(self, window: int, data: bytes) -> bool:
        """Keep the node's own announcement for a window, and publish it on the topic."""
        signed = self.state.check_announcement(window, data)
        if signed is None:
            raise ValueError("only valid signed announcements can be stored")
        if not self.state.keep_announcement(window, signed, data):
            raise ValueError("its author's announcement kept for this window is newer")
        await self.pubsub.publish(self.topic, msgpack.packb(["ann", window, data], use_bin_type=True))
        return True

    async def serve_fetch(self, stream: Any) -> None:
        """Answer one fetch: a 32-byte batch id in, its envelope (4-byte length first) or an empty answer out.
        Whatever a peer does on this stream (stalls, resets it, sends junk) ends only this stream."""
        import trio

        try:
            with trio.move_on_after(self.args.op_timeout_s):
                wanted = await read_exactly(stream.read, 32)
                data = self.state.batches.get(wanted or b"") or b""
                await stream.write(len(data).to_bytes(4, "big") + data)
        except Exception as exc:  # one peer's broken stream
            self.state.refuse(Refusal.RECORD_FETCH_STREAM)
            log.debug("fetch stream from a peer failed: %s", exc)
        finally:
            await close_quietly(stream)

    async def fetch_remote(self, batch_id: bytes) -> bytes | None:
        """Ask connected peers, in random order, for a batch this host does not hold."""
        peers = list(self.host.get_connected_peers())
        random.shuffle(peers)
        for peer in peers:
            data = await self.fetch_from(peer, batch_id)
            if data is not None:
                return data
        return None

    async def fetch_from(self, peer: Any, batch_id: bytes) -> bytes | None:
        """A batch from one peer, if it answers with one that passes the record rules (then kept)."""
        import trio
        from libp2p.custom_types import TProtocol

        stream = None
        try:
            with trio.move_on_after(self.args.op_timeout_s):
                stream = await self.host.new_stream(peer, [TProtocol(FETCH_PROTOCOL)])
                await stream.write(batch_id)
                header = await read_exactly(stream.read, 4)
                length = int.from_bytes(header or b"\0\0\0\0", "big")
                ok = 0 < length <= self.limits.max_envelope_bytes
                data = await read_exactly(stream.read, length) if ok else None
                self.state.received_bytes += len(data or b"")
                record = records.BatchRecord(batch_id, data or b"")
                if data is not None and records.check_batch(self.state.rules, record) is None:
                    self.state.keep_batch(batch_id, data)
                    return data
        except Exception as exc:  # a peer that fails to answer: try the next one
            log.debug("fetch from %s failed: %s", peer, exc)
        finally:
            if stream is not None:
                await close_quietly(stream)
        return None

    async def dial_known(self) -> None:
        """Dial every known peer address not connected now."""
        import trio

        connected = set(self.host.get_connected_peers())
        for maddr in list(self.known):
            try:
                info = peer_info(maddr)
                if info.peer_id in connected:
                    continue
                with trio.fail_after(self.args.op_timeout_s):
                    await self.host.connect(info)
                self.unreachable.discard(maddr)
            except Exception as exc:  # unreachable for now: tried again later, said once
                if maddr not in self.unreachable:
                    log.warning("could not reach %s (retrying every %.0f s): %s", maddr, self.args.redial_s, exc)
                self.unreachable.add(maddr)

    async def keep_connected(self) -> None:
        """Dial the known peers again every `redial_s`: a peer that restarted, or a link that broke."""
        import trio

        while True:
            await trio.sleep(self.args.redial_s)
            await self.dial_known()


async def drain(subscription: Any) -> None:
    """Consume the topic's messages: the validator kept what passed, so there is nothing left to do with them."""
    while True:
        await subscription.get()


async def serve(args: argparse.Namespace) -> None:
    await GossipHost(args).run()


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
