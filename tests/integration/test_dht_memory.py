"""A hivemind DHT node's bookkeeping of lookups stays bounded, so a node in a quiet swarm does not grow for as
long as it runs. hivemind's `DHTNode` keeps a map of the lookups in flight per key and never deletes a key whose
lookups finished: left alone, every batch a node downloads and every announcement bucket it reads keeps an entry
(about 2 KB) for the life of the node. One node on 127.0.0.1, no NAT traversal; it is closed (and its daemon
with it) at the end."""

from __future__ import annotations

import os

from swarmnode.swarm.transports.hivemind_dht import HivemindTransport
from swarmnode.swarm.transports.hivemind_storage import PENDING_SLACK

LOOKUPS = 2 * PENDING_SLACK + 100


def test_finished_lookups_are_forgotten() -> None:
    dht = HivemindTransport("memory-bounds", op_timeout_s=20.0)
    try:
        for _ in range(LOOKUPS):  # a lookup per batch id, as a node downloading batches does
            assert dht.fetch_batch(os.urandom(32)) is None
        kept = dht.pending_lookups()
        assert kept <= PENDING_SLACK + 1, f"{kept} keys kept after {LOOKUPS} finished lookups"
    finally:
        dht.close()
