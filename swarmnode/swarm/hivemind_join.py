"""How a hivemind node joins its swarm and stays findable (`HivemindTransport` is a `Joining`): reaching its
initial peers (the ones given and those of its peers cache) all at once, retrying with backoff while none
answers (the node trains alone meanwhile), and remembering the peers it is connected to in the peers cache
(`swarm.peers_cache`), so a restarted node rejoins through them when its bootstrap peers are gone."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

from swarmnode.swarm.peers_cache import PeersCache
from swarmnode.swarm.transport import TransportError

T = TypeVar("T")


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

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        raise NotImplementedError

    def connect(self, maddr: str) -> None:
        """Reach one more peer now (for example across a healed partition); TransportError if it does not answer."""
        if not self._run(self._join_once([maddr]), self.op_timeout_s * 3):
            raise TransportError(f"could not reach {maddr}: {self.last_join_error}")

    async def _join_once(self, peers: Sequence[str] | None = None) -> bool:
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

        # all at once: dead peers (stale cached ones, say) cost one operation timeout together, not each
        answers = await asyncio.gather(*(reach(t) for t in (self.initial_peers if peers is None else peers)))
        self.reached = sum(answers)
        reached = self.reached
        if reached:
            await asyncio.wait_for(self._node.find_nearest_nodes([self._node.node_id]), self.op_timeout_s)
        return reached > 0

    async def _keep_joining(self, cached: int = 0) -> None:
        delay = 2.0
        tried = len(self.initial_peers)
        cache = self.peers_cache
        source = f" ({cached} of them from the peers cache {cache.path})" if cache is not None and cached else ""
        while not self.joined:
            self.join_attempts += 1
            self.reached = 0
            try:
                self.joined = await self._join_once()
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
