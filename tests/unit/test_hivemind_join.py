"""Joining (`swarm/transports/hivemind_join.py`) against a stand-in for hivemind's node, whose dead peer never answers
and whose neighbour lookup hangs: a node is in the swarm as soon as one initial peer answers (a restarted node
waiting for its dead peers and its lookup would train its first rounds alone)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from swarmnode.swarm.transports.hivemind_join import Joining

LIVE = "/ip4/127.0.0.1/tcp/41855/p2p/12D3KooWE5uJt5WPKi5XVXW8raEVEv7CoRJaEcPiLZWcoTA8THpw"
DEAD = "/ip4/127.0.0.1/tcp/37135/p2p/12D3KooWPmGQ3UZRw6U5X3tR2pFhJMnX3njrqgENPktHMHBcUyH6"
HANG_S = 3600.0


class StandIn:
    """hivemind's `DHTNode`, as far as joining uses it: connecting to DEAD and looking up neighbours hang."""

    def __init__(self) -> None:
        self.node_id = b"me"
        self.p2p = SimpleNamespace(_client=SimpleNamespace(connect=self.connect))
        self.protocol = SimpleNamespace(call_ping=self.ping)
        self.lookups = 0

    async def connect(self, peer: Any, addrs: list[Any]) -> None:
        if "37135" in str(addrs[0]):
            await asyncio.sleep(HANG_S)

    async def ping(self, peer: Any) -> bytes:
        return b"pong"

    async def find_nearest_nodes(self, ids: list[bytes]) -> dict[bytes, Any]:
        self.lookups += 1
        await asyncio.sleep(HANG_S)
        return {}


class Joiner(Joining):
    def __init__(self, peers: list[str]) -> None:
        self._node = StandIn()
        self.op_timeout_s = 30.0
        self.initial_peers = peers
        self.joined = False
        self.join_attempts = self.reached = 0
        self.last_join_error = self.last_cache_error = ""
        self.peers_cache = None
        self._notices = []
        self._settler = None

    async def attempt(self) -> bool:
        """One join attempt, as `swarmnode join` makes it (the lookup of neighbours left in the background)."""
        return await self._join_once(wait=False)

    def lookups(self) -> int:
        return self.stand_in.lookups

    def settling(self) -> bool:
        """Whether the lookup after the join is still going on; it is stopped here."""
        going = self._settler is not None and not self._settler.done()
        if self._settler is not None:
            self._settler.cancel()
        return going

    @property
    def stand_in(self) -> StandIn:
        assert isinstance(self._node, StandIn)
        return self._node


def test_joined_at_the_first_answer_while_a_dead_peer_and_the_lookup_hang() -> None:
    async def main() -> None:
        joiner = Joiner([DEAD, LIVE])
        # well under the 30 s a dead peer costs: the live one answers at once, and the rest waits 0.5 s
        assert await asyncio.wait_for(joiner.attempt(), 5.0)
        assert joiner.reached == 1
        await asyncio.sleep(0)
        assert joiner.lookups() == 1  # the lookup of its neighbours goes on in the background
        assert joiner.settling()

    asyncio.run(main())


def test_no_answer_is_no_join() -> None:
    async def main() -> None:
        joiner = Joiner([DEAD])
        joiner.op_timeout_s = 0.2
        assert not await joiner.attempt()
        assert joiner.reached == 0 and "37135" in joiner.last_join_error

    asyncio.run(main())
