"""The pipe between the node and its py-libp2p host process (`libp2p.py` and `libp2p_host.py`): frames over
the host's stdin/stdout, each a 4-byte big-endian length and a msgpack map of at most `MAX_FRAME` bytes, and
the host's key handed over in the environment (`KEY_ENV`). Plain Python: the node imports it without
py-libp2p."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgpack

MAX_FRAME = 8 * 1024 * 1024
KEY_ENV = "SWARMNODE_LIBP2P_KEY"
"""The environment variable the node hands its host's key seed in (hex; in the environment, not argv)."""


def frame(value: dict[str, Any]) -> bytes:
    body: bytes = msgpack.packb(value, use_bin_type=True)
    return len(body).to_bytes(4, "big") + body


async def read_frame(stream: Any) -> dict[str, Any] | None:
    """One frame from the parent (a trio stream)."""
    header = await read_exactly(stream.receive_some, 4)
    if header is None:
        return None
    length = int.from_bytes(header, "big")
    if length > MAX_FRAME:
        raise ValueError(f"frame of {length} bytes from the parent")
    body = await read_exactly(stream.receive_some, length)
    if body is None:
        return None
    value = msgpack.unpackb(body, raw=False)
    return value if isinstance(value, dict) else None


async def read_exactly(read: Callable[[int], Awaitable[bytes]], n: int) -> bytes | None:
    """`n` bytes from `read` (a trio stream's receive_some, a libp2p stream's read: either may return
    fewer bytes than asked), or None if the stream ends first."""
    chunks = b""
    while len(chunks) < n:
        chunk = await read(n - len(chunks))
        if not chunk:
            return None
        chunks += chunk
    return chunks
