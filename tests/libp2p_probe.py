"""A raw py-libp2p peer for tests, run as its own process (py-libp2p cannot share a process with hivemind):
it misbehaves on a host's fetch protocol, then asks properly for one batch in pieces, and prints what it
got as JSON: {"sha256": hex or null, "length": int}.

    python tests/libp2p_probe.py MADDR BATCH_ID_HEX
"""

from __future__ import annotations

import hashlib
import json
import sys

import multiaddr
import trio
from libp2p import new_host
from libp2p.custom_types import TProtocol
from libp2p.peer.peerinfo import info_from_p2p_addr

from swarmnode.swarm.transports.libp2p_host import FETCH_PROTOCOL, read_exactly


async def probe(maddr: str, batch_id: bytes) -> dict[str, object]:
    host = new_host(enable_mDNS=False, enable_upnp=False)
    async with host.run(listen_addrs=[multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]):
        info = info_from_p2p_addr(multiaddr.Multiaddr(maddr))
        await host.connect(info)
        fetch = [TProtocol(FETCH_PROTOCOL)]
        # 1. half a request, then the stream is reset under the host
        stream = await host.new_stream(info.peer_id, fetch)
        await stream.write(batch_id[:5])
        await stream.reset()
        # 2. a request cut short by closing
        stream = await host.new_stream(info.peer_id, fetch)
        await stream.write(b"\xff" * 7)
        await stream.close()
        # 3. the id in two pieces, with a pause between them (the host must wait for all 32 bytes)
        await trio.sleep(0.3)
        stream = await host.new_stream(info.peer_id, fetch)
        await stream.write(batch_id[:16])
        await trio.sleep(0.5)
        await stream.write(batch_id[16:])
        header = await read_exactly(stream.read, 4)
        length = int.from_bytes(header or b"\0\0\0\0", "big")
        data = await read_exactly(stream.read, length) if length else b""
        await stream.close()
        return {"sha256": hashlib.sha256(data).hexdigest() if data else None, "length": length}


def main() -> None:
    maddr, batch_hex = sys.argv[1], sys.argv[2]
    result: dict[str, object] = {}

    async def run() -> None:
        with trio.fail_after(60):
            result.update(await probe(maddr, bytes.fromhex(batch_hex)))

    trio.run(run)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
