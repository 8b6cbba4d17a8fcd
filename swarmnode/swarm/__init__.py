"""Sharing rollouts with untrusted peers: transports (in-memory, the hivemind DHT, GossipSub over py-libp2p)
and the record rules they share, the validation of what arrives, and the book of peers it came from.

Importing this package loads no transport: `open_transport` imports only the one the config names (hivemind
brings torch with it; the libp2p host runs in a child process).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict

if TYPE_CHECKING:
    from swarmnode.config import NodeConfig
    from swarmnode.swarm.transports.base import Transport


class NetworkOptions(TypedDict):
    """What both network transports take from `[swarm]`."""

    initial_peers: list[str]
    host_maddrs: list[str]
    window_s: float
    op_timeout_s: float
    startup_timeout_s: float


def open_transport(config: NodeConfig, remember_peers: bool = True) -> Transport:
    """The node's network transport (`swarm.transport`): the hivemind DHT, or GossipSub over py-libp2p in a
    child process, or an in-process hub. NAT port mapping, AutoNAT and relays (hivemind's nat_port_map,
    auto_nat, use_relay) are on only when swarm.transport.nat_traversal = true; the libp2p host has none.
    With `remember_peers` (and swarm.peers_cache > 0) the hivemind transport also joins through the peers
    cached in the run directory and keeps that cache (`peers_cache.py`)."""
    sw = config.swarm
    chosen = sw.transport
    if chosen.type == "memory":  # nothing listens
        from swarmnode.swarm.transports.memory import MemoryHub, MemoryTransport

        return MemoryTransport(MemoryHub())
    network = NetworkOptions(
        initial_peers=sw.peers,
        host_maddrs=sw.host_maddrs,
        window_s=sw.window_s,
        op_timeout_s=sw.op_timeout_s,
        startup_timeout_s=sw.startup_timeout_s,
    )
    total, per_author = chosen.budget_bytes()  # what the node keeps for peers (swarm.transport.store_mib ...)
    if chosen.type == "libp2p":
        from swarmnode.swarm.transports.libp2p import Libp2pTransport

        log_path = config.run_dir / "libp2p-host.log"
        return Libp2pTransport(sw.name, log_path=log_path, store_bytes=total, author_bytes=per_author, **network)
    from swarmnode.swarm.transports.hivemind_dht import HivemindTransport
    from swarmnode.swarm.transports.peers_cache import PeersCache
    from swarmnode.swarm.transports.storage_budget import StorageBudget

    cache = PeersCache.of_run_dir(config.run_dir, sw.peers_cache) if remember_peers and sw.peers_cache else None

    return HivemindTransport(
        sw.name,
        ttl_s=chosen.ttl_s,
        nat_traversal=chosen.nat_traversal,
        skew_s=sw.max_clock_skew_s,
        budget=StorageBudget(total, per_author),
        peers_cache=cache,
        **network,
    )
