"""`swarmnode join --tui`: the node in a child process (its output in RUN_DIR/node.log), the dashboard in
this one, attached to the child's status API; quitting the dashboard stops the node with a checkpoint."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from swarmnode.errors import UserError
from swarmnode.run_dir import RunDir

if TYPE_CHECKING:
    from swarmnode.config import NodeConfig

START_S = 300.0
"""How long the node may take to serve its status API (loading a big model, joining a swarm)."""
STOP_S = 300.0
"""How long the node may take to save its checkpoint and stop before it is killed."""


def join_with_dashboard(config: NodeConfig, argv: Sequence[str]) -> int:
    """Run `swarmnode <argv minus --tui>` as a child and the dashboard on its status API until `q`."""
    from swarmnode.tui import Dashboard, HttpFeed

    if not config.status.enabled:
        raise UserError("--tui needs the status API: drop status.enabled=false")
    run_dir = RunDir(config.run_dir)
    run_dir.create()
    run_dir.status_url.unlink(missing_ok=True)
    log_path = run_dir.node_log
    with log_path.open("a") as log:
        # the user's own command line, minus --tui, run again by this same interpreter
        command = [sys.executable, "-m", "swarmnode", *[a for a in argv if a != "--tui"]]
        child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
    try:
        deadline = time.monotonic() + START_S
        while not run_dir.status_url.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        url = run_dir.read_status_url()
        if url is None:
            tail = log_path.read_text()[-1500:].strip().splitlines()[-1:] or ["(no output)"]
            raise UserError(f"the node did not start its status API; last line of {log_path}: {tail[0]}")
        Dashboard(HttpFeed(url, config.status.token), url_file=run_dir.status_url).run()
    finally:
        if child.poll() is None:
            print("stopping the node (saving a checkpoint)…", flush=True)
            child.send_signal(signal.SIGINT)
            try:
                child.wait(timeout=STOP_S)
            except subprocess.TimeoutExpired:
                child.kill()
    print(f"node stopped; its output is in {log_path}", flush=True)
    return 0
