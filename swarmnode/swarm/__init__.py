"""Sharing rollouts with untrusted peers: transports (in-memory, the hivemind DHT, GossipSub over py-libp2p),
the validation of what arrives, and the book of peers it came from.

Importing this package loads no transport: `open_transport` imports only the one the config names (hivemind
brings torch with it; the libp2p host runs in a child process).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from swarmnode.errors import UserError

if TYPE_CHECKING:
    from swarmnode.config import NodeConfig
    from swarmnode.swarm.transport import Transport


def open_transport(config: NodeConfig) -> Transport:
    """The node's network transport (`swarm.transport`): the hivemind DHT, or GossipSub over py-libp2p in a
    child process, or an in-process hub. NAT port mapping, AutoNAT and relays (hivemind's nat_port_map,
    auto_nat, use_relay) are on only when swarm.nat_traversal = true; the libp2p host has none of them."""
    sw = config.swarm
    if sw.transport == "memory":  # nothing listens
        from swarmnode.swarm.memory import MemoryHub, MemoryTransport

        return MemoryTransport(MemoryHub())
    common: dict[str, Any] = dict(
        initial_peers=sw.peers,
        host_maddrs=sw.host_maddrs,
        window_s=sw.window_s,
        op_timeout_s=sw.op_timeout_s,
        startup_timeout_s=sw.startup_timeout_s,
    )
    if sw.transport == "libp2p":
        from swarmnode.swarm.libp2p import Libp2pTransport

        if sw.nat_traversal:
            raise UserError("swarm.nat_traversal is only built for the hivemind transport")
        return Libp2pTransport(sw.name, log_path=config.run_dir / "libp2p-host.log", **common)
    from swarmnode.swarm.hivemind_dht import HivemindTransport

    return HivemindTransport(sw.name, ttl_s=sw.ttl_s, nat_traversal=sw.nat_traversal, **common)
