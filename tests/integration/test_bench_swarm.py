"""The sharing layer's cost stays flat as the swarm grows (in-memory nodes, the real exchange and
validation chain), and `swarmnode bench swarm` prints its table and writes JSON."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from swarmnode.bench.swarm import run_memory
from swarmnode.swarm.transports.libp2p import libp2p_available
from tests.helpers import SWARMNODE


def test_bytes_per_node_per_round_stay_flat_from_8_to_128_nodes() -> None:
    small, large = run_memory(8, 4), run_memory(128, 4)
    # honest peers are never rejected; offers over a peer's per-round download cap wait (counted as quota)
    assert set(small["rejections"]) <= {"quota"} and set(large["rejections"]) <= {"quota"}
    assert small["batches_per_node_round"] >= 1
    assert large["bytes_per_node_round"] <= 1.5 * small["bytes_per_node_round"], (small, large)
    assert small["j_met"] == large["j_met"] == 1.0  # every reader got the groups it wanted, every round
    assert small["level_median"] == 3 and large["level_median"] >= 5  # the buckets grew with the swarm


def test_bench_swarm_command(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            SWARMNODE,
            "bench",
            "swarm",
            "--sizes",
            "2,4",
            "--dht-sizes",
            "2",
            "--rounds",
            "2",
            "--json",
            str(tmp_path / "s.json"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "visible p50 ms" in out.stdout and "J met %" in out.stdout
    rows = json.loads((tmp_path / "s.json").read_text())["rows"]
    expected = [("memory", 2), ("memory", 4), ("hivemind", 2)] + ([("libp2p", 2)] if libp2p_available() else [])
    assert [(r["backend"], r["nodes"]) for r in rows] == expected
    assert all(r["bytes_per_node_round"] > 0 and r["validated_msgs_per_s"] > 0 for r in rows)
    assert all(0 <= r["j_met"] <= 1 and r["rss_mib"] > 0 and r["level_min"] == 3 for r in rows)
    bad = subprocess.run([SWARMNODE, "bench", "swarm", "--sizes", "1,x"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--sizes" in bad.stderr
