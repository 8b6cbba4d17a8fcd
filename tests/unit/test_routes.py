"""The two routes through the node, counted by following the data through one real round (two tiny nodes over
the in-memory transport, with the interpreter's profiler on): a peer's batch from the transport to the learner,
and an own rollout from generation to the learner.

How it counts. A function *handles* the data when an argument or its return value holds it: the peer's
envelope bytes, its decoded batch or wire groups, a `Group` it authored, a mapping keyed by its peer id (its
standing, its gate charges), or (own route) a `Group` of this node's own; looked for in the arguments, in
sequences, mappings and dataclass fields two levels down. The route's *modules* are the project modules
(outside `protocol/`, `tasks/`, and `groups.py` where the data's own type lives) of the functions that handle
it. The data *enters* `node.py` each time a
function of another module returns it to a function of `node.py`.
"""

from __future__ import annotations

import dataclasses
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import protocol
from swarmnode.config import load_config, parse_override
from swarmnode.groups import Group
from swarmnode.identity import Identity
from swarmnode.node import Node
from swarmnode.swarm.transports.memory import MemoryHub, MemoryTransport

MAX_MODULES = 8
MAX_ENTRIES = 2


def _node(tmp: Path, name: str, seed: int, hub: MemoryHub, extra: tuple[str, ...] = ()) -> Node:
    sets = [
        *extra,
        f"run_dir={tmp / name}",
        f"seed={seed}",
        "silo=false",
        "eval.every=0",
        "generation.questions_per_round=8",
        "swarm.external_groups=8",
        "generation.backend=hf",
    ]
    config = load_config(None, [parse_override(s) for s in sets])
    identity = Identity(Ed25519PrivateKey.generate())
    return Node(config, say=lambda _: None, transport=MemoryTransport(hub), identity=identity)


def _module(frame: FrameType | None) -> str:
    return "" if frame is None else str(frame.f_globals.get("__name__", ""))


def _counted(module: str) -> bool:
    """Project modules, but `protocol/`, `tasks/` and `groups.py` (the module of the data itself: reading a
    group's property is no step of its route)."""
    return module.startswith("swarmnode") and not module.startswith(("swarmnode.tasks", "swarmnode.groups"))


class Route:
    """Follows what `holds` recognises through the calls made while it is on."""

    def __init__(self, holds: Callable[[Any], bool], key: str | None) -> None:
        self.holds = holds
        self.key = key
        """Mappings keyed by this (the peer's id) hold the data too (its standing, its gate charges)."""
        self.modules: dict[str, set[str]] = {}
        """Project modules outside protocol/ and tasks/ whose functions handled the data, with those functions."""
        self.entries: list[str] = []
        """Functions that returned the data into `node.py` (one per entry)."""

    def _carries(self, value: Any, depth: int = 0) -> bool:
        if self.holds(value):
            return True
        if depth >= 2 or isinstance(value, str | bytes):
            return False
        if isinstance(value, dict):
            items = list(value.items())[:64]
            keyed = depth == 0 and self.key is not None and self.key in value  # its standing, its gate charges
            return keyed or any(self._carries(v, depth + 1) for _, v in items)
        if isinstance(value, list | tuple | set | frozenset):
            return any(self._carries(v, depth + 1) for v in list(value)[:64])
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return any(self._carries(getattr(value, f.name, None), depth + 1) for f in dataclasses.fields(value))
        return False

    def profile(self, frame: FrameType, event: str, arg: Any) -> None:
        if event not in ("call", "return"):
            return
        module = _module(frame)
        if not _counted(module):
            return
        if event == "call":
            if any(self._carries(v) for v in list(frame.f_locals.values())):
                self.modules.setdefault(module, set()).add(frame.f_code.co_name)
            return
        if self._carries(arg):
            self.modules.setdefault(module, set()).add(frame.f_code.co_name)
            if module != "swarmnode.node" and _module(frame.f_back) == "swarmnode.node":
                self.entries.append(f"{module}.{frame.f_code.co_name}")


def _peer_round(tmp_path: Path, background: bool) -> tuple[Route, Route, int]:
    hub = MemoryHub()
    sets = (f"swarm.background_sharing={str(background).lower()}",)
    author = _node(tmp_path, "author", 1, hub, sets)
    receiver: Node | None = None
    try:
        assert author.step() is not None and author.swarm is not None
        peer = author.swarm.peer_id
        deadline = time.monotonic() + 30
        while not hub._batches and time.monotonic() < deadline:  # the author's I/O thread stores it
            time.sleep(0.05)
        envelopes = {e for _, e in hub._batches.values()}
        texts = {(g.question.text, c) for g in author.own_groups for c in g.completions}

        def peers_data(value: Any) -> bool:
            if isinstance(value, bytes):
                return value in envelopes
            if isinstance(value, Group):
                return getattr(value, "source", None) == peer
            if isinstance(value, protocol.RolloutGroup):
                return any((value.question, c) in texts for c in value.completions)
            if isinstance(value, protocol.RolloutBatch):
                return any(peers_data(g) for g in value.groups)
            return isinstance(value, protocol.Accepted) and peers_data(value.payload)

        def own_data(value: Any) -> bool:
            return isinstance(value, Group) and getattr(value, "source", None) == "local"

        theirs, ours = Route(peers_data, peer), Route(own_data, None)
        on = threading.Event()

        def both(frame: FrameType, event: str, arg: Any) -> None:
            if on.is_set():
                theirs.profile(frame, event, arg)
                ours.profile(frame, event, arg)

        on.set()
        threading.setprofile(both)  # the I/O thread, started with the receiver, is followed from its start
        try:
            receiver = _node(tmp_path, "receiver", 2, hub, sets)
        finally:
            threading.setprofile(None)  # type: ignore[arg-type]
        assert receiver.swarm is not None
        sys.setprofile(both)
        try:
            used = 0
            for _ in range(3):  # with the I/O thread, the first round takes what it fetched before: nothing
                row = receiver.step()
                assert row is not None
                used += row["external_by_peer"].get(peer, 0)
                if used:
                    break
                deadline = time.monotonic() + 30
                while background and not receiver.swarm.waiting() and time.monotonic() < deadline:
                    time.sleep(0.05)
        finally:
            sys.setprofile(None)
            on.clear()
        return theirs, ours, used
    finally:
        author.close()
        if receiver is not None:
            receiver.close()


@pytest.mark.parametrize("background", [False, True], ids=["in-line", "I/O-thread"])
def test_a_peers_batch_and_an_own_rollout_take_short_routes(tmp_path: Path, background: bool) -> None:
    theirs, ours, used = _peer_round(tmp_path, background)
    print("peer's batch:", len(theirs.modules), theirs.modules, "entries into node.py:", theirs.entries)
    print("own rollout: entries into node.py:", ours.entries)
    assert used > 0, "the receiver trained on none of the author's groups: nothing was followed"
    assert len(theirs.modules) <= MAX_MODULES, sorted(theirs.modules)
    assert len(theirs.entries) <= MAX_ENTRIES, theirs.entries
    assert len(ours.entries) <= MAX_ENTRIES, ours.entries
