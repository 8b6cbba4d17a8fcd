"""A raw GossipSub peer for tests, run as its own process (py-libp2p cannot share a process with hivemind):
what an attacker's client written from protocol/SPEC.md and py-libp2p's public API does. It joins a swarm's
topic with no validator of its own and publishes, unchecked, whatever message bytes its parent sends it
(a replayed announcement, junk at its own hash, anything). It listens on 127.0.0.1 only, with mDNS and
UPnP off.

    python tests/libp2p_raw_peer.py SWARM MADDR

stdin: frames as the node's host reads them (`libp2p_host.frame`: 4-byte length + msgpack map), each
{"data": <message bytes>}; stdout: a line "ready" once connected and subscribed, then "sent N" after the
N-th message is published.
"""

from __future__ import annotations

import os
import sys

import multiaddr
import trio
from libp2p import new_host
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.pubsub.pubsub import Pubsub
from libp2p.tools.anyio_service import background_trio_service

from swarmnode.swarm.transports.libp2p_host import mesh_router, read_frame


async def serve(swarm: str, maddr: str) -> None:
    host = new_host(enable_mDNS=False, enable_upnp=False)
    gossipsub = mesh_router()  # the swarm's mesh, with no scoring or rate limit of its own
    pubsub = Pubsub(host, gossipsub)
    topic = f"swarmnode/{swarm}/v1"
    stdin = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
    async with host.run(listen_addrs=[multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]):
        async with background_trio_service(pubsub), background_trio_service(gossipsub):
            await pubsub.wait_until_ready()
            await pubsub.subscribe(topic)
            await host.connect(info_from_p2p_addr(multiaddr.Multiaddr(maddr)))
            await trio.sleep(2.0)  # a few heartbeats: the victim grafts us into its mesh
            print("ready", flush=True)
            sent = 0
            while True:
                request = await read_frame(stdin)
                if request is None:  # the parent is gone
                    return
                await pubsub.publish(topic, request["data"])
                sent += 1
                print(f"sent {sent}", flush=True)


def main() -> None:
    swarm, maddr = sys.argv[1], sys.argv[2]
    trio.run(serve, swarm, maddr)


if __name__ == "__main__":
    main()
