"""End to end in a real terminal (tmux): a real 2-node swarm on 127.0.0.1 and `swarmnode join --tui`: the
dashboard shows the other node in its peer table and a round count that moves; `q` stops the node with a
checkpoint. And `swarmnode tui` at 80x24 on a real status server that serves the recorded attack scene:
everything fits, nothing is left over on the screen, the attackers are the first rows; when the node stops,
it says so."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any, cast

import pytest

from swarmnode.status import NodeStatus, StatusServer, StatusSnapshot
from tests.helpers import SWARMNODE, join_command, logged_address, wait_for

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
    addr = logged_address(tmp_path / "a.log")
    peer_a = wait_for(lambda: re.search(r"peer id (\w+)", (tmp_path / "a.log").read_text()), "a's id", 60).group(1)
    socket = f"swarmnode-{uuid.uuid4().hex[:8]}"
    tmux = ["tmux", "-u", "-L", socket]  # -u: UTF-8 even when the test's locale is not
    node_b = join_command("e2e", tmp_path / "b", tmp_path / "b.pem", "--minutes", "5", "--peers", addr)
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


class ReplayedStatus(NodeStatus):
    """A node's status that says what a recorded snapshot says (served by the real status server)."""

    def __init__(self, snap: StatusSnapshot) -> None:
        super().__init__(snap)
        self.recorded: Any = snap

    def snapshot(self) -> StatusSnapshot:
        return cast(StatusSnapshot, self.recorded)


def test_the_dashboard_at_80x24_under_attack_and_when_the_node_stops() -> None:
    scene = json.loads((Path(__file__).parents[1] / "data" / "status_scenes.json").read_text())["attack"]
    status = ReplayedStatus(scene)
    server = StatusServer(status, "127.0.0.1", 0)
    closed = False
    socket = f"swarmnode-{uuid.uuid4().hex[:8]}"
    tmux = ["tmux", "-u", "-L", socket]
    command = f"{SWARMNODE} tui --url {server.url}; sleep 60"
    subprocess.run([*tmux, "new-session", "-d", "-s", "s", "-x", "80", "-y", "24", command], check=True)
    subprocess.run([*tmux, "resize-window", "-t", "s", "-x", "80", "-y", "24"], capture_output=True)

    def screen() -> str:
        return subprocess.run([*tmux, "capture-pane", "-t", "s", "-p"], capture_output=True, text=True).stdout

    def fits(shown: str) -> None:
        lines = shown.splitlines()
        assert len(lines) <= 24 and all(len(line) <= 80 for line in lines), shown
        assert "\ufffd" not in shown and "▇▇" not in shown, shown  # no broken characters, no bar blocks left over

    def attack_shown() -> str | None:
        shown = screen()
        return shown if "Refused peers' data" in shown and "keys" in shown else None

    try:
        shown = wait_for(attack_shown, "the dashboard", 60, explain=screen)
        fits(shown)
        rows = [line.split()[0] for line in shown.splitlines() if line.split()[1:2] in (["banned"], ["struck"], ["ok"])]
        acted = [p["peer_id"][:8] for p in scene["peers"] if p["banned"] or p["strikes"]]
        assert sorted(rows[: len(acted)]) == sorted(acted) and len(rows) == len(scene["peers"]), shown
        assert "? keys" in shown and "dropped: never held against" in shown
        assert re.search(r"peer +status .* scored$", shown, re.MULTILINE), shown  # every column, the last one too
        status.recorded = {**scene, "phase": "stopped"}  # the node's last words, then it goes
        wait_for(lambda: "round 30 · stopped" in screen(), "the stopped phase", 30, explain=screen)
        server.close()
        closed = True
        wait_for(lambda: "the node has stopped" in screen(), "the stopped banner", 30, explain=screen)
        fits(screen())
        subprocess.run([*tmux, "send-keys", "-t", "s", "q"], check=True)
    finally:
        if not closed:
            server.close()
        subprocess.run([*tmux, "kill-server"], capture_output=True)
