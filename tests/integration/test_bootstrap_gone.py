"""The bootstrap node gone for good: three nodes that joined through it keep sharing through each
other, and a node SIGKILLed and restarted with the same command (whose --peers now names a dead node)
rejoins through its peers cache and trains on the others' groups again within a few rounds."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.helpers import SWARMNODE, join_command, metrics_rows, read_line_matching, swarm_report, wait_for

REJOIN_ROUNDS = 5
SETS = ("checkpoint.every=2", "generation.questions_per_round=4", "swarm.round_timeout_s=5", "status.enabled=false")
JOINED = r"joined the swarm through (\d+) of (\d+) peers \((\d+) of them from the peers cache"


def _start(tmp_path: Path, i: int, bootstrap: str, procs: list[subprocess.Popen[str]]) -> subprocess.Popen[str]:
    command = join_command(
        "gone",
        tmp_path / f"n{i}",
        tmp_path / f"key{i}.pem",
        *("--peers", bootstrap, "--minutes", "12", "--seed", str(i)),
        sets=SETS,
    )
    log = (tmp_path / f"n{i}.log").open("a")
    p = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, text=True)
    log.close()
    procs.append(p)
    return p


def _rounds_after(run: Path, t: float) -> list[dict[str, Any]]:
    return [r for r in metrics_rows(run) if "round_s" in r and r["time"] > t]


def _used_all(rows: list[dict[str, Any]], peers: set[str]) -> int | None:
    """The number of rows until the node had trained on groups of every one of `peers`, or None."""
    seen: set[str] = set()
    for n, row in enumerate(rows, 1):
        seen |= {p for p, k in row.get("external_by_peer", {}).items() if k > 0}
        if peers <= seen:
            return n
    return None


def test_nodes_share_without_the_bootstrap_and_a_restarted_node_rejoins_from_its_peers_cache(
    tmp_path: Path, procs: list[subprocess.Popen[str]]
) -> None:
    boot = subprocess.Popen(
        [SWARMNODE, "bootstrap", "--swarm", "gone"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    procs.append(boot)
    maddr = read_line_matching(boot, r"--peers (\S+)").group(1)
    nodes = [_start(tmp_path, i, maddr, procs) for i in range(3)]
    runs = [tmp_path / f"n{i}" for i in range(3)]
    logs = [tmp_path / f"n{i}.log" for i in range(3)]
    ids = [wait_for(lambda i=i: re.search(r"peer id (\w+)", logs[i].read_text()), "peer id", 180)[1] for i in range(3)]
    report = lambda: swarm_report(logs, runs)  # noqa: E731
    others = [{ids[j] for j in range(3) if j != i} for i in range(3)]

    # 1. everyone shares through the bootstrap, and has the others in its peers cache
    def sharing_since(t: float) -> bool:
        return all(_used_all(_rounds_after(runs[i], t), others[i]) for i in range(3))

    wait_for(lambda: sharing_since(0.0), "every node to train on each other node's groups", 300, explain=report)
    wait_for(
        lambda: all((r / "peers.txt").exists() and len((r / "peers.txt").read_text().splitlines()) >= 3 for r in runs),
        "every node's peers cache to list the bootstrap and the two others",
        120,
    )

    # 2. the bootstrap node dies for good: the nodes go on sharing through each other
    boot.send_signal(signal.SIGKILL)
    boot.wait(timeout=30)
    gone_at = time.time()
    wait_for(lambda: sharing_since(gone_at), "sharing after the bootstrap died", 300, explain=report)

    # 3. node 2 is SIGKILLed and restarted with the same command (its --peers is the dead bootstrap)
    nodes[2].send_signal(signal.SIGKILL)
    nodes[2].wait(timeout=30)
    restarted_at = time.time()
    nodes[2] = _start(tmp_path, 2, maddr, procs)
    joined = wait_for(
        lambda: re.search(JOINED, logs[2].read_text()),
        "node 2 to rejoin through its peers cache",
        240,
        explain=report,
    )
    assert int(joined.group(1)) >= 1 and int(joined.group(3)) >= 2  # the dead bootstrap is the one configured

    def rejoined() -> bool:
        mine = _rounds_after(runs[2], restarted_at)
        return _used_all(mine, others[2]) is not None and all(
            _used_all(_rounds_after(runs[j], restarted_at), {ids[2]}) for j in range(2)
        )

    wait_for(rejoined, "node 2 and the others to train on each other's groups again", 300, explain=report)
    took = _used_all(_rounds_after(runs[2], restarted_at), others[2])
    assert took is not None and took <= REJOIN_ROUNDS, took

    for p in nodes:
        p.send_signal(signal.SIGINT)
    for p in nodes:
        assert p.wait(timeout=120) == 0
