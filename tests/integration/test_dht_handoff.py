"""A node that joins (or rejoins) the hivemind DHT is not handed every record its peers hold. hivemind's routing
update sends a node met for the first time every stored record it is now among the nearest for; in a small swarm
that is about everything (thousands of signed records), which the newcomer would check one by one on its DHT
thread, the likely cause of every peer's reads stalling for a round or two whenever a node restarts. Here records
stay on the nodes their writers stored them on, and the newcomer still finds them. Real DHT nodes on 127.0.0.1
(no NAT traversal), each with its own p2p daemon, closed at the end."""

from __future__ import annotations

import dataclasses

import protocol
from protocol.testvectors import KEY_A, sample_batch
from swarmnode.swarm.transports.hivemind_dht import HivemindTransport

SWARM = "demo-swarm"  # the swarm of the protocol's sample messages
BATCHES = 150


def test_a_joining_node_is_not_handed_its_peers_records_and_still_finds_them() -> None:
    holder = HivemindTransport(SWARM, op_timeout_s=20.0)
    opened = [holder]
    try:
        ids = []
        for i in range(BATCHES):  # minutes of a swarm's batches, held by the node the newcomer joins through
            raw = protocol.seal_payload(dataclasses.replace(sample_batch(), round=i), KEY_A, protocol.Limits())
            holder.store_batch(protocol.message_id(raw), raw)
            ids.append((protocol.message_id(raw), raw))
        held = holder.stored_bytes()
        assert held > BATCHES * 200
        newcomer = HivemindTransport(SWARM, initial_peers=holder.visible_maddrs(), op_timeout_s=20.0)
        opened.append(newcomer)
        assert newcomer.wait_joined(30.0), newcomer.last_join_error
        first_id, first = ids[0]
        assert newcomer.fetch_batch(first_id) == first  # found where its writer stored it
        last_id, last = ids[-1]
        assert newcomer.fetch_batch(last_id) == last
        # what it keeps for peers: at most what its own lookups cached (two batches), not the holder's records
        assert newcomer.stored_bytes() < held / 10, (newcomer.stored_bytes(), held)
    finally:
        for t in opened:
            t.close()
