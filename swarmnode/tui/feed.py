"""Where the dashboard's snapshots come from: a node's status API over HTTP, or snapshots played back (tests,
demos), or a node that never answers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, cast

if TYPE_CHECKING:  # the types only: the dashboard runs without the node's side of the API
    import aiohttp

    from swarmnode.status import StatusSnapshot


class Feed(Protocol):
    url: str

    async def fetch(self) -> StatusSnapshot:
        """The node's /status snapshot; raises when the node cannot be reached."""
        ...

    async def control(self, action: str) -> None:
        """POST /pause or /resume."""
        ...

    async def close(self) -> None: ...


class HttpFeed:
    def __init__(self, url: str, token: str = "", timeout_s: float = 3.0) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    async def _client(self) -> aiohttp.ClientSession:
        import aiohttp

        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s))
        return self._session

    async def fetch(self) -> StatusSnapshot:
        session = await self._client()
        async with session.get(self.url + "/status", headers=self._headers()) as response:
            if response.status != 200:
                raise ConnectionError(f"HTTP {response.status} from {self.url}/status")
            data = await response.json()
        if not isinstance(data, dict):
            raise ConnectionError("the status API answered with something that is not an object")
        return cast("StatusSnapshot", data)

    async def control(self, action: str) -> None:
        session = await self._client()
        async with session.post(f"{self.url}/{action}", headers=self._headers()) as response:
            if response.status != 200:
                raise ConnectionError(f"HTTP {response.status} from {self.url}/{action}")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


class RecordedFeed:
    """Snapshots played back in order; then the last one repeats, or (`ends`) the node is gone."""

    def __init__(self, snapshots: Sequence[StatusSnapshot], url: str = "recorded", ends: bool = False) -> None:
        self.snapshots = list(snapshots)
        self.url = url
        self.ends = ends
        self.calls = 0
        self.actions: list[str] = []

    async def fetch(self) -> StatusSnapshot:
        if self.ends and self.calls >= len(self.snapshots):
            raise ConnectionRefusedError(f"cannot connect to {self.url}")
        snap = self.snapshots[min(self.calls, len(self.snapshots) - 1)]
        self.calls += 1
        return snap

    async def control(self, action: str) -> None:
        self.actions.append(action)

    async def close(self) -> None:
        return None


class DeadFeed:
    """A node that never answers."""

    def __init__(self, url: str = "http://127.0.0.1:7391") -> None:
        self.url = url

    async def fetch(self) -> StatusSnapshot:
        raise ConnectionRefusedError(f"cannot connect to {self.url}")

    async def control(self, action: str) -> None:
        raise ConnectionRefusedError(f"cannot connect to {self.url}")

    async def close(self) -> None:
        return None
