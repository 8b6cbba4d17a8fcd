"""The bootstrap node (`swarmnode bootstrap`): a transport and nothing else (no model, no round loop) that
other nodes join through; and the file of its addresses that containers hand each other (`bootstrap
--addr-file` writes it, `join --peers-file` waits for it and reads it).

Nothing here imports the node or the model stack, and the process never loads torch: hivemind's package
imports torch at its own import, so the bootstrap imports only hivemind's DHT (`hivemind_light.py`; it falls
back to the ordinary import where that cannot be done).
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from swarmnode.errors import UserError, file_in_the_way
from swarmnode.run_dir import replace_text

if TYPE_CHECKING:
    from swarmnode.config import NodeConfig


def write_addr_file(path: Path, addresses: Sequence[str]) -> None:
    """The node's multiaddrs, one per line, written whole or not at all (a reader may be polling)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    replace_text(path, "".join(a + "\n" for a in addresses))


def read_peers_file(path: Path, wait_s: float = 300.0) -> list[str]:
    """Multiaddrs, one per line, from a file another node writes (bootstrap --addr-file); waits for it."""
    deadline = time.monotonic() + wait_s
    blocker = file_in_the_way(path.parent)
    if blocker is not None:  # nothing can ever write it there: no use waiting
        raise UserError(f"--peers-file {path}: {blocker} is a file, not a folder")
    if path.is_dir():
        raise UserError(f"--peers-file {path} is a folder: give the file bootstrap --addr-file writes")
    while not path.exists():
        if time.monotonic() > deadline:
            raise UserError(f"--peers-file {path} did not appear within {wait_s:.0f} s")
        time.sleep(0.5)
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        raise UserError(f"--peers-file {path}: cannot read it ({exc.strerror or exc})") from exc
    peers = [line.strip() for line in text.splitlines() if line.strip().startswith("/")]
    if not peers:
        raise UserError(f"--peers-file {path} holds no multiaddr (one per line, starting with /)")
    return peers


def serve(config: NodeConfig, addr_file: Path | None, say: Callable[[str], None]) -> None:
    """Run the transport `config` names until SIGINT or SIGTERM, then close it; `say` tells the user."""
    from swarmnode.swarm import open_transport

    if config.swarm.transport.type == "memory":
        raise UserError("a bootstrap node on the memory transport would reach nobody: use hivemind or libp2p")
    if config.swarm.transport.type == "hivemind":
        from swarmnode.swarm.transports.hivemind_light import import_dht_without_torch

        import_dht_without_torch()  # a bootstrap with hivemind's package would hold torch (~250 MiB) for nothing
    # nat_port_map, auto_nat and relays stay off unless swarm.transport.nat_traversal
    transport = open_transport(config, remember_peers=False)  # it has no run directory of its own
    try:
        stop = threading.Event()  # set up before the address is out: whoever reads it may stop us at once
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        addresses = transport.visible_maddrs()
        say("bootstrap node (DHT only, no model); peers join with: --peers " + " ".join(addresses))
        if addr_file is not None:  # for containers: the others wait for this file (join --peers-file)
            write_addr_file(addr_file, addresses)
        stop.wait()
    finally:
        transport.close()
    say("bootstrap node stopped")
