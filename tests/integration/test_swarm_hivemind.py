"""A bootstrap node and three training nodes as real processes on 127.0.0.1, sharing over the hivemind
DHT: every node trains on groups from each of the others."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.helpers import SWARMNODE, read_line_matching


def test_three_nodes_and_a_bootstrap_share_rollouts(tmp_path: Path, procs: list[subprocess.Popen[str]]) -> None:
    boot = subprocess.Popen(
        [SWARMNODE, "bootstrap", "--swarm", "t"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    procs.append(boot)
    maddr = read_line_matching(boot, r"--peers (\S+)").group(1)
    assert maddr.startswith("/ip4/127.0.0.1/")
    nodes = []
    for i in range(3):
        p = subprocess.Popen(
            [
                SWARMNODE,
                "join",
                "--swarm",
                "t",
                "--peers",
                maddr,
                "--rounds",
                "40",
                "--run-dir",
                str(tmp_path / f"n{i}"),
                "--seed",
                str(i),
                "--threads",
                "1",
                "--backend",
                "hf",
                "--set",
                "eval.every=0",
                "--set",
                "generation.questions_per_round=8",
                "--set",
                f"swarm.key_path={tmp_path / f'key{i}.pem'}",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        procs.append(p)
        nodes.append(p)
    peer_ids = [read_line_matching(p, r"peer id (\w+)").group(1) for p in nodes]
    for p in nodes:
        p.wait(timeout=600)
        assert p.returncode == 0
    for i in range(3):
        used: set[str] = set()
        rows = [json.loads(x) for x in (tmp_path / f"n{i}" / "metrics.jsonl").read_text().splitlines()]
        for row in rows:
            used |= set(row.get("external_by_peer", {}))
        assert used == set(peer_ids) - {peer_ids[i]}, (i, used)


def test_unreachable_bootstrap_peers_do_not_stop_training(tmp_path: Path) -> None:
    dead = "/ip4/127.0.0.1/tcp/9/p2p/12D3KooWMz7ZLsS3F6D8B5UQr7gwLPnpHTbXTAR886r9oy7Capoc"
    out = subprocess.run(
        [
            SWARMNODE,
            "join",
            "--swarm",
            "t",
            "--peers",
            dead,
            "--rounds",
            "3",
            "--run-dir",
            str(tmp_path / "n"),
            "--threads",
            "1",
            "--backend",
            "hf",
            "--set",
            "eval.every=0",
            "--set",
            f"swarm.key_path={tmp_path / 'k.pem'}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "stopped after round 3" in out.stdout
