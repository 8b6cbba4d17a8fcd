"""The peers cache (`swarmnode.swarm.transports.peers_cache`): bounded, newest first, one entry per peer, garbage
skipped, written whole, and never a reason for the node to stop."""

from __future__ import annotations

from pathlib import Path

import pytest

from swarmnode.swarm.transports.peers_cache import FILE_NAME, PeersCache, join_through

PEER = "12D3KooWQaW6T9hptF7mtMX6HTzWS2dyP2K5j1f8ZDzYadcaeKi"


def maddr(i: int, port: int = 4000) -> str:
    return f"/ip4/127.0.0.1/tcp/{port + i}/p2p/{PEER}{chr(ord('A') + i)}"


def test_remembers_newest_first_bounded_and_one_entry_per_peer(tmp_path: Path) -> None:
    cache = PeersCache.of_run_dir(tmp_path, limit=4)
    assert cache.path == tmp_path / FILE_NAME
    assert cache.load() == []  # no file yet: nothing, no error
    assert cache.remember([maddr(0), maddr(1)])
    assert cache.load() == [maddr(0), maddr(1)]
    assert cache.remember([maddr(1)])  # reached again: to the front
    assert cache.load() == [maddr(1), maddr(0)]
    cache.remember([maddr(2), maddr(3), maddr(4)])
    assert cache.load() == [maddr(2), maddr(3), maddr(4), maddr(1)]  # bounded: the oldest fell off
    cache.remember([maddr(3, port=5000)])  # the same peer on a new address: one entry, the newest address
    loaded = cache.load()
    assert loaded[0] == maddr(3, port=5000) and maddr(3) not in loaded and len(loaded) == 4
    assert not list(tmp_path.glob("*.tmp"))  # written whole, through a temporary file


def test_unchanged_cache_is_not_rewritten(tmp_path: Path) -> None:
    cache = PeersCache.of_run_dir(tmp_path)
    assert cache.remember([maddr(0), maddr(1)])
    assert not cache.remember([maddr(0)])
    assert not cache.remember([])


def test_garbage_lines_are_skipped_and_the_file_size_is_bounded(tmp_path: Path) -> None:
    lines = [
        "garbage",
        "/ip4/127.0.0.1/tcp/1",  # no peer id: cannot be dialled as a peer
        "/ip4/127.0.0.1/tcp/1/p2p/" + "x" * 600,  # too long
        "/ip4/1.2.3.4/tcp/1/p2p/\u00e9t\u00e9",
        "/ip4/1.2.3.4/tcp/1/p2p/a b",
        "",
        maddr(0),
        "\x00\xff" * 10,
        maddr(1),
    ]
    path = tmp_path / FILE_NAME
    path.write_text("\n".join(lines) + "\n" + (maddr(2) + "\n") * 100_000)
    cache = PeersCache(path, limit=8)
    assert cache.load() == [maddr(0), maddr(1), maddr(2)]


def test_an_unwritable_run_dir_is_noted_not_raised(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    cache = PeersCache.of_run_dir(blocker / "run")
    assert not cache.remember([maddr(0)])
    assert cache.problem and "run" in cache.problem
    assert cache.load() == []


@pytest.mark.parametrize(
    ("configured", "cached", "expected"),
    [
        ([], [], []),
        (["/a/p2p/X"], ["/b/p2p/Y", "/a/p2p/X"], ["/a/p2p/X", "/b/p2p/Y"]),
        ([], ["/b/p2p/Y"], ["/b/p2p/Y"]),
    ],
)
def test_configured_peers_come_first(configured: list[str], cached: list[str], expected: list[str]) -> None:
    assert join_through(configured, cached) == expected
