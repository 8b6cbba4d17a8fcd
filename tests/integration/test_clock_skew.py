"""A node whose clock is 25 s ahead (`swarm.clock_offset_s`), as a real process beside a node with a good
clock, over a bootstrap node and the hivemind DHT on 127.0.0.1: the two still train on each other's groups,
and each tells its user about how far its clock is off the other's."""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path

from tests.helpers import SWARMNODE, join_command, metrics_rows, read_line_matching, swarm_report, wait_for

OFFSETS = (0.0, 25.0)


def test_a_node_25_s_ahead_still_shares_and_both_are_told(tmp_path: Path, procs: list[subprocess.Popen[str]]) -> None:
    boot = subprocess.Popen(
        [SWARMNODE, "bootstrap", "--swarm", "skew"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    procs.append(boot)
    maddr = read_line_matching(boot, r"--peers (\S+)").group(1)
    runs = [tmp_path / f"n{i}" for i in range(2)]
    logs = [tmp_path / f"n{i}.log" for i in range(2)]
    nodes = []
    for i, offset in enumerate(OFFSETS):
        command = join_command(
            "skew",
            runs[i],
            tmp_path / f"key{i}.pem",
            *("--peers", maddr, "--minutes", "8", "--seed", str(i)),
            sets=("generation.questions_per_round=8", "swarm.round_timeout_s=5", f"swarm.clock_offset_s={offset}"),
        )
        with logs[i].open("a") as log:
            nodes.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, text=True))
        procs.append(nodes[-1])
    ids = [
        wait_for(lambda i=i: re.search(r"peer id (\w+)", logs[i].read_text()), "a peer id", 180).group(1)
        for i in range(2)
    ]
    report = lambda: swarm_report(logs, runs)  # noqa: E731

    def used(i: int) -> int:
        return sum(1 for r in metrics_rows(runs[i]) if r.get("external_by_peer", {}).get(ids[1 - i], 0) > 0)

    wait_for(
        lambda: used(0) >= 3 and used(1) >= 3,
        "each node to train on the other's groups in 3 rounds",
        300,
        explain=report,
    )
    ahead = wait_for(
        lambda: re.search(r"clock is about (\d+) s ahead of its peers'", logs[1].read_text()),
        "n1 to say its clock is ahead",
        120,
    )
    behind = wait_for(
        lambda: re.search(r"clock is about (\d+) s behind its peers'", logs[0].read_text()),
        "n0 to say its clock is behind",
        120,
    )
    # about 25 s, give or take the delay between a peer's signing and this node's first reading
    assert 15 <= int(ahead.group(1)) <= 35 and 15 <= int(behind.group(1)) <= 35, (ahead.group(0), behind.group(0))
    offsets = [r["clock_offset_s"] for r in metrics_rows(runs[1]) if r.get("clock_offset_s") is not None]
    assert offsets and 15 <= offsets[-1] <= 35, offsets[-5:]
    for i in range(2):  # nothing refused for its time: within the tolerated 30 s
        rejected = metrics_rows(runs[i])[-1].get("rejected", {})
        assert not {k for k in rejected if "future" in k or "stale" in k or "window" in k}, rejected
    for p in nodes:
        p.send_signal(signal.SIGINT)
    for p in nodes:
        assert p.wait(timeout=120) == 0
