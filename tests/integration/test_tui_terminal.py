"""End to end: a real 2-node swarm on 127.0.0.1 and `swarmnode join --tui` in a real terminal (tmux):
the dashboard shows the other node in its peer table and a round count that moves; `q` stops the node
with a checkpoint."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.helpers import join_command, wait_for

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux (apt-get install tmux)")


def test_dashboard_in_a_real_terminal(tmp_path: Path, procs: list[subprocess.Popen[str]]) -> None:
    log = (tmp_path / "a.log").open("w")
    node_a = subprocess.Popen(
        join_command("e2e", tmp_path / "a", tmp_path / "a.pem", "--minutes", "5"),
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    procs.append(node_a)
    addr = wait_for(lambda: re.search(r"--peers ADDR\): (\S+)", (tmp_path / "a.log").read_text()), "node a", 180)
    peer_a = wait_for(lambda: re.search(r"peer id (\w+)", (tmp_path / "a.log").read_text()), "a's id", 60).group(1)
    socket = f"swarmnode-{uuid.uuid4().hex[:8]}"
    tmux = ["tmux", "-u", "-L", socket]  # -u: UTF-8 even when the test's locale is not
    node_b = join_command("e2e", tmp_path / "b", tmp_path / "b.pem", "--minutes", "5", "--peers", addr.group(1))
    command = " ".join([*node_b, "--tui", "; echo DASHBOARD-EXITED-$?; sleep 60"])
    subprocess.run([*tmux, "new-session", "-d", "-s", "e2e", "-x", "150", "-y", "45", command], check=True)
    subprocess.run([*tmux, "resize-window", "-t", "e2e", "-x", "150", "-y", "45"], capture_output=True)
    try:

        def screen() -> str:
            return subprocess.run([*tmux, "capture-pane", "-t", "e2e", "-p"], capture_output=True, text=True).stdout

        def round_shown() -> int | None:
            found = re.search(r"round (\d+) \S+ (?:starting|generating|sharing|training|evaluating|check)", screen())
            return int(found.group(1)) if found and int(found.group(1)) > 0 else None

        try:
            wait_for(lambda: peer_a[:8] in screen(), "node a in the peer table", 180)
        except AssertionError:
            raise AssertionError(f"screen:\n{screen()}") from None
        try:
            first = wait_for(round_shown, "a round count", 60)
        except AssertionError:
            raise AssertionError(f"screen:\n{screen()}") from None
        wait_for(lambda: (round_shown() or 0) > first, "the round count to move", 60)
        subprocess.run([*tmux, "send-keys", "-t", "e2e", "q"], check=True)
        wait_for(lambda: "DASHBOARD-EXITED-0" in screen(), "the dashboard and node to stop", 180)
        assert (tmp_path / "b" / "checkpoints").is_dir() and any((tmp_path / "b" / "checkpoints").iterdir())
        assert "stopped after round" in (tmp_path / "b" / "node.log").read_text()
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True)
        time.sleep(0.5)
        log.close()
