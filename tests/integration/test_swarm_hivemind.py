"""A bootstrap node and three training nodes as real processes on 127.0.0.1, sharing over the hivemind
DHT: every node trains on groups from each of the others; a node killed with SIGKILL does not hold the
others up for more than the round timeout, and restarted, it resumes and rejoins."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.helpers import SWARMNODE, join_command, metrics_rows, read_line_matching, swarm_report, wait_for

ROUND_TIMEOUT_S = 5.0


def _node_command(tmp_path: Path, i: int, bootstrap: str) -> list[str]:
    return join_command(
        "t",
        tmp_path / f"n{i}",
        tmp_path / f"key{i}.pem",
        *("--peers", bootstrap, "--minutes", "10", "--seed", str(i)),
        sets=("checkpoint.every=5", "generation.questions_per_round=8", f"swarm.round_timeout_s={ROUND_TIMEOUT_S}"),
    )


def _start(tmp_path: Path, i: int, bootstrap: str, procs: list[subprocess.Popen[str]]) -> subprocess.Popen[str]:
    log = (tmp_path / f"n{i}.log").open("a")  # a file, not a pipe: nobody has to keep reading it
    p = subprocess.Popen(_node_command(tmp_path, i, bootstrap), stdout=log, stderr=subprocess.STDOUT, text=True)
    log.close()
    procs.append(p)
    return p


def _log_match(tmp_path: Path, i: int, pattern: str, limit: float = 180.0) -> re.Match[str]:
    return wait_for(lambda: re.search(pattern, (tmp_path / f"n{i}.log").read_text()), f"{pattern!r} in n{i}.log", limit)


def _wait_round(run: Path, target: int) -> None:
    wait_for(lambda: metrics_rows(run)[-1]["round"] >= target, f"{run.name} to reach round {target}", 180)


def _used(rows: list[dict[str, Any]], peer: str, after: float = 0.0) -> int:
    """Rounds after `after` in which the node trained on groups from `peer`."""
    return sum(1 for r in rows if r.get("time", 0) > after and r.get("external_by_peer", {}).get(peer, 0) > 0)


def test_three_nodes_share_survive_a_sigkill_and_a_rejoin(tmp_path: Path, procs: list[subprocess.Popen[str]]) -> None:
    boot = subprocess.Popen(
        [SWARMNODE, "bootstrap", "--swarm", "t"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    procs.append(boot)
    maddr = read_line_matching(boot, r"--peers (\S+)").group(1)
    assert maddr.startswith("/ip4/127.0.0.1/")
    nodes = [_start(tmp_path, i, maddr, procs) for i in range(3)]
    ids = [_log_match(tmp_path, i, r"peer id (\w+)").group(1) for i in range(3)]
    runs = [tmp_path / f"n{i}" for i in range(3)]
    report = lambda: swarm_report([tmp_path / f"n{i}.log" for i in range(3)], runs)  # noqa: E731

    # 1. every node trains on groups from each of the others, over at least 5 rounds
    def all_sharing() -> bool:
        for i in range(3):
            rows = metrics_rows(runs[i])
            if sum(1 for r in rows if r.get("external_groups", 0) > 0) < 5:
                return False
            if any(_used(rows, ids[j]) == 0 for j in range(3) if j != i):
                return False
        return True

    wait_for(all_sharing, "every node to train on each other node's groups over 5 rounds", 300, explain=report)
    wait_for(lambda: metrics_rows(runs[2])[-1]["round"] >= 12, "node 2 to write a checkpoint or two", 180)

    # 2. SIGKILL node 2 mid-round: the others keep going, no round slower than the round timeout allows
    before_kill = [metrics_rows(runs[i]) for i in range(2)]
    slowest_before = max(r["round_s"] for rows in before_kill for r in rows[-10:] if "round_s" in r)
    killed_at = time.time()
    nodes[2].send_signal(signal.SIGKILL)
    nodes[2].wait(timeout=30)
    for run, rows in zip(runs[:2], before_kill, strict=True):
        _wait_round(run, rows[-1]["round"] + 15)
    after = [r for i in range(2) for r in metrics_rows(runs[i]) if r.get("time", 0) > killed_at and "round_s" in r]
    assert max(r["round_s"] for r in after) <= slowest_before + ROUND_TIMEOUT_S, (slowest_before, after)

    # 3. restarted with the same command, node 2 resumes from its checkpoint and rejoins
    restarted_at = time.time()
    nodes[2] = _start(tmp_path, 2, maddr, procs)
    resumed = int(_log_match(tmp_path, 2, r"resumed from \S+ \(round (\d+)\)").group(1))
    assert resumed >= 5

    def rejoined() -> bool:
        mine = metrics_rows(runs[2])
        return all(_used(mine, ids[j], restarted_at) > 0 for j in range(2)) and all(
            _used(metrics_rows(runs[j]), ids[2], restarted_at) > 0 for j in range(2)
        )

    wait_for(rejoined, "node 2 and the others to use each other's groups again", 300, explain=report)
    assert metrics_rows(runs[2])[0]["round"] == 1 and metrics_rows(runs[2])[-1]["round"] > resumed

    for p in nodes:
        p.send_signal(signal.SIGINT)
    for p in nodes:
        assert p.wait(timeout=120) == 0


def test_unreachable_bootstrap_peers_do_not_stop_training(tmp_path: Path) -> None:
    dead = "/ip4/127.0.0.1/tcp/9/p2p/12D3KooWMz7ZLsS3F6D8B5UQr7gwLPnpHTbXTAR886r9oy7Capoc"
    out = subprocess.run(
        join_command("t", tmp_path / "n", tmp_path / "k.pem", "--peers", dead, "--rounds", "3"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "stopped after round 3" in out.stdout
