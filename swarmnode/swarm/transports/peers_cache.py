"""The peers cache: the multiaddrs of peers a node has reached, kept in its run directory (`peers.txt`, one
per line, newest first, written whole or not at all), so that a restarted node joins through them as well as
through `swarm.peers`, and rejoins its swarm even when every bootstrap node is gone.

What is read back is only a hint: lines that are not a multiaddr with a peer id are skipped, at most `limit`
are kept, and the transport tries them all at once within its operation timeout (a dead one costs nothing
but that). No torch here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from swarmnode.run_dir import replace_text

FILE_NAME = "peers.txt"
DEFAULT_LIMIT = 32
MAX_LINE = 512
"""Longer lines are not multiaddrs anyone wrote here: skipped."""


def plausible(maddr: str) -> bool:
    """A multiaddr that names the peer it reaches (`.../p2p/<peer id>`), of sane length, printable ASCII."""
    return (
        0 < len(maddr) <= MAX_LINE
        and maddr.startswith("/")
        and "/p2p/" in maddr
        and maddr.isascii()
        and maddr.isprintable()
        and " " not in maddr
    )


def peer_of(maddr: str) -> str:
    return maddr.rsplit("/p2p/", 1)[-1]


class PeersCache:
    """`<run_dir>/peers.txt`: at most `limit` multiaddrs of peers this node reached, newest first."""

    def __init__(self, path: Path, limit: int = DEFAULT_LIMIT) -> None:
        self.path = path
        self.limit = limit
        self.problem = ""
        """Why the file could not be read or written last time ('' when it could)."""

    @classmethod
    def of_run_dir(cls, run_dir: Path, limit: int = DEFAULT_LIMIT) -> PeersCache:
        return cls(run_dir / FILE_NAME, limit)

    def load(self) -> list[str]:
        """The cached multiaddrs (none when the file is missing or unreadable: it is only a hint)."""
        try:
            text = self.path.read_text(encoding="ascii", errors="replace")[: self.limit * (MAX_LINE + 1) * 2]
        except OSError as exc:
            if not isinstance(exc, FileNotFoundError):
                self.problem = f"{self.path}: {type(exc).__name__}"
            return []
        return _bounded((line.strip() for line in text.splitlines()), self.limit)

    def remember(self, reached: Sequence[str]) -> bool:
        """Put `reached` (peers connected now) first, the older entries after them, cut to `limit`; rewrite the
        file only when that changes it. Whether it was written."""
        old = self.load()
        new = _bounded([*reached, *old], self.limit)
        if new == old:
            return False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            replace_text(self.path, "".join(m + "\n" for m in new))
        except OSError as exc:  # a full disk or a read-only run dir must not stop the node
            self.problem = f"{self.path}: {type(exc).__name__}"
            return False
        self.problem = ""
        return True


def _bounded(maddrs: Iterable[str], limit: int) -> list[str]:
    """Plausible multiaddrs in order, one per peer id (its first), at most `limit`."""
    kept: list[str] = []
    peers: set[str] = set()
    for maddr in maddrs:
        if len(kept) >= limit:
            break
        if plausible(maddr) and peer_of(maddr) not in peers:
            peers.add(peer_of(maddr))
            kept.append(maddr)
    return kept


def join_through(configured: Sequence[str], cached: Sequence[str]) -> list[str]:
    """The peers to join through: the configured ones first, then cached ones not among them."""
    return [*configured, *(m for m in cached if m not in configured)]
