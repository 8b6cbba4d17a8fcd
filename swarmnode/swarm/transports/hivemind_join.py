"""How a hivemind node joins its swarm and stays findable (`HivemindTransport` is a `Joining`): reaching its
initial peers (the ones given and those of its peers cache) all at once, retrying with backoff while none
answers (the node trains alone meanwhile), and remembering the peers it is connected to in the peers cache
(`swarm.peers_cache`), so a restarted node rejoins through them when its bootstrap peers are gone."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

from swarmnode.swarm.transports.base import TransportError
from swarmnode.swarm.transports.peers_cache import PeersCache

T = TypeVar("T")

ANSWER_GRACE_S = 0.5
"""After the first peer answered a join, how long the others' answers are waited for (to count them)."""


class Joining:
    """The joining half of `HivemindTransport` (which sets these attributes and runs the loop)."""

    _node: Any
    op_timeout_s: float
    initial_peers: list[str]
    joined: bool
    join_attempts: int
    reached: int
    """Peers that answered the latest join attempt."""
    last_join_error: str
    last_cache_error: str
    peers_cache: PeersCache | None
    _notices: list[str]
    _settler: asyncio.Future[None] | None

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        raise NotImplementedError

    def connect(self, maddr: str) -> None:
        """Reach one more peer now (for example across a healed partition); TransportError if it does not answer."""
        if not self._run(self._join_once([maddr]), self.op_timeout_s * 3):
            raise TransportError(f"could not reach {maddr}: {self.last_join_error}")

    async def _join_once(self, peers: Sequence[str] | None = None, wait: bool = True) -> bool:
        """Reach `peers` (the initial ones) all at once; True as soon as one answers. With `wait`, returns
        once the others answered or timed out and the routing table is filled (`_settle`); else that goes
        on in the background."""
        from hivemind.p2p import PeerID
        from hivemind.utils.multiaddr import Multiaddr

        async def reach(text: str) -> bool:
            try:
                maddr = Multiaddr(text)
                peer = PeerID.from_base58(maddr["p2p"])
                transport_part = maddr.decapsulate(Multiaddr(f"/p2p/{maddr['p2p']}"))
                await asyncio.wait_for(self._node.p2p._client.connect(peer, [transport_part]), self.op_timeout_s)
                return await asyncio.wait_for(self._node.protocol.call_ping(peer), self.op_timeout_s) is not None
            except Exception as exc:  # a bad address or a dead peer: the others count, and it is tried again later
                self.last_join_error = f"{text}: {type(exc).__name__} {str(exc)[:300]}"
                return False

        # all at once, and joined at the first answer: a dead peer (the bootstrap node gone, a stale cached
        # address) costs a whole operation timeout, and the node must not wait for it before its first round
        pending = {asyncio.ensure_future(reach(t)) for t in (self.initial_peers if peers is None else peers)}
        self.reached = 0
        while pending and not self.reached:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            self.reached += sum(task.result() for task in done)
        if not self.reached:
            return False
        if pending:  # those that answer within a moment are counted; the others go on in the background
            done, pending = await asyncio.wait(pending, timeout=ANSWER_GRACE_S)
            self.reached += sum(task.result() for task in done)
        settle = self._settle(pending)
        if wait:
            await settle
        else:
            self._settler = asyncio.ensure_future(settle)
        return True

    async def _settle(self, pending: set[asyncio.Task[bool]]) -> None:
        """After the join: a lookup of this node's own id, which fills its routing table (the first peer that
        answered is in it already, so the node shares meanwhile), and the other peers' answers."""
        try:
            await asyncio.wait_for(self._node.find_nearest_nodes([self._node.node_id]), self.op_timeout_s)
        except Exception as exc:  # the node is in the swarm already; its routing table fills as it works
            self.last_join_error = f"looking up its neighbours: {type(exc).__name__} {str(exc)[:300]}"
        if pending:
            await asyncio.wait(pending)

    async def _keep_joining(self, cached: int = 0) -> None:
        delay = 2.0
        tried = len(self.initial_peers)
        cache = self.peers_cache
        source = f" ({cached} of them from the peers cache {cache.path})" if cache is not None and cached else ""
        while not self.joined:
            self.join_attempts += 1
            self.reached = 0
            try:
                self.joined = await self._join_once(wait=False)
            except Exception as exc:  # never let the retry loop die
                self.last_join_error = f"{type(exc).__name__}: {exc}"
            if self.joined:
                self._notices.append(f"joined the swarm through {self.reached} of {tried} peers{source}")
            elif self.join_attempts == 1:
                self._notices.append(
                    f"none of {tried} peers answered{source}: training alone, retrying "
                    f"(last error: {self.last_join_error})"
                )
            if not self.joined:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 300.0)

    def wait_joined(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self.joined and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.joined

    def take_notices(self) -> list[str]:
        notices, self._notices = self._notices, []
        return notices

    def peer_maddrs(self) -> list[str]:
        """Multiaddrs of the peers this node is connected to now (`TransportError` if the daemon does not answer)."""
        return self._run(self._peer_maddrs(), self.op_timeout_s)

    async def _peer_maddrs(self) -> list[str]:
        peers = await asyncio.wait_for(self._node.p2p.list_peers(), self.op_timeout_s)
        return [f"{addr}/p2p/{info.peer_id}" for info in peers for addr in info.addrs]

    async def _keep_cache(self, cache: PeersCache, every_s: float) -> None:
        """Remember the peers connected now in the peers cache: soon after the start, then every `every_s`."""
        await asyncio.sleep(min(every_s, 5.0))
        while True:
            try:
                reached = await self._peer_maddrs()
                if reached:
                    cache.remember(reached)  # a small file, replaced whole
            except Exception as exc:  # a hint only: never let this loop die
                self.last_cache_error = f"{type(exc).__name__}: {exc}"
            await asyncio.sleep(every_s)
