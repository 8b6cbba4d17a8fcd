"""Three real node processes sharing over GossipSub (py-libp2p hosts, each in its own child process) on
127.0.0.1: every node trains on external groups from each of the others for several rounds."""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path

import pytest

from swarmnode.swarm.transports.libp2p import libp2p_available
from swarmnode.swarm.trust.reasons import DEFENSES
from tests.helpers import join_command, logged_address, metrics_rows, swarm_report, wait_for

pytestmark = pytest.mark.skipif(not libp2p_available(), reason="needs the libp2p extra")


def test_three_nodes_share_over_gossipsub(tmp_path: Path, procs: list[subprocess.Popen[str]]) -> None:
    sets = ("swarm.transport=libp2p", "generation.questions_per_round=8", "status.port=0")
    logs = [tmp_path / f"n{i}.log" for i in range(3)]

    def start(i: int, *extra: str) -> None:
        with logs[i].open("w") as log:
            flags = ("--minutes", "5", "--seed", str(i), *extra)
            command = join_command("t", tmp_path / f"n{i}", tmp_path / f"k{i}.pem", *flags, sets=sets)
            procs.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, text=True))

    start(0)
    addr = logged_address(logs[0])
    assert addr.startswith("/ip4/127.0.0.1/")
    start(1, "--peers", addr)
    start(2, "--peers", addr)
    ids = [
        wait_for(lambda i=i: re.search(r"peer id (\w+)", logs[i].read_text()), "ids", 120).group(1) for i in range(3)
    ]

    def sharing(i: int) -> bool:
        rows = [r for r in metrics_rows(tmp_path / f"n{i}") if "external_by_peer" in r]
        used = {p for r in rows for p in r["external_by_peer"]}
        return sum(1 for r in rows if r["external_groups"] > 0) >= 3 and used >= set(ids) - {ids[i]}

    wait_for(
        lambda: all(sharing(i) for i in range(3)),
        "every node to train on each other's groups",
        240,
        explain=lambda: swarm_report(logs, [tmp_path / f"n{i}" for i in range(3)]),
    )
    for i in range(3):
        last = [r for r in metrics_rows(tmp_path / f"n{i}") if "rejected" in r][-1]
        assert not set(last["rejected"]) - DEFENSES - {"quota"}, last["rejected"]  # honest peers only
    for p in procs:
        p.send_signal(signal.SIGINT)
    for p in procs:
        assert p.wait(timeout=120) == 0
