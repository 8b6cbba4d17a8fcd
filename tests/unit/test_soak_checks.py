"""What `swarmnode bench soak` measures, on made-up records: the schedule, memory growth per life, slow
rounds, the rounds a restarted node takes to rejoin, tracebacks in logs, and a process tree's RSS."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

from swarmnode.bench import soak_checks as sc
from swarmnode.bench.soak import schedule


def row(t: float, round_: int, by_peer: dict[str, int] | None = None, round_s: float = 3.0) -> dict[str, Any]:
    by_peer = by_peer or {}
    return {
        "round": round_,
        "time": t,
        "round_s": round_s,
        "generate_s": 1.0,
        "train_s": 1.0,
        "external_groups": sum(by_peer.values()),
        "external_by_peer": by_peer,
    }


def four_nodes() -> tuple[sc.NodeRecord, ...]:
    """A, C up throughout; B restarted at 100 s; D restarted at 95 s (not live yet at 100 s: no round in this
    life)."""
    a = sc.NodeRecord(0, "A", [sc.Life(0.0)])
    b = sc.NodeRecord(1, "B", [sc.Life(0.0, 100.0, killed=True), sc.Life(100.0)])
    c = sc.NodeRecord(2, "C", [sc.Life(0.0)])
    d = sc.NodeRecord(3, "D", [sc.Life(95.0)])
    return a, b, c, d


def test_schedule_kills_leave_time_to_rejoin_and_avoid_the_bootstrap_death() -> None:
    long = schedule(60)
    assert long["warmup_s"] == 600 and long["sample_every_s"] == 60 and long["kill_every_s"] == 300
    assert long["bootstrap_death_s"] == 1800 and 1800 not in long["kills_s"]
    assert max(long["kills_s"]) <= 3600 - 300 and len(long["kills_s"]) == 11
    short = schedule(5)
    assert short["warmup_s"] == 100 and len(short["kills_s"]) == 2 and max(short["kills_s"]) <= 300 - 120


def test_growth_is_measured_per_life_after_its_warm_up() -> None:
    node = sc.NodeRecord(0, lives=[sc.Life(0.0, 100.0, killed=True), sc.Life(100.0)])
    node.rss = [(10.0, 100, 0), (50.0, 120, 0), (90.0, 150, 0), (110.0, 80, 1), (160.0, 100, 1), (300.0, 110, 1)]
    pct, span = sc.growth(node, warmup_s=40.0) or (0.0, 0.0)
    assert span == 140.0 and round(pct, 1) == 10.0  # the second life, from 160 s (100 KiB) to 300 s (110 KiB)
    assert sc.growth(node, warmup_s=1000.0) is None
    # with the rows: a life is measured from its first round, not while it loads its model
    rows = [row(20.0, 1), row(150.0, 5)]
    pct, span = sc.growth(node, warmup_s=10.0, rows=rows) or (0.0, 0.0)
    assert span == 140.0 and round(pct, 1) == 10.0  # the second life from its sample at 160 s (first round 150 s)
    assert sc.growth(node, warmup_s=10.0, rows=rows[:1]) == (25.0, 40.0)  # the second life had no round
    assert sc.rss_at(node, 100.0) == 80


def test_slow_rounds_and_sharing() -> None:
    rows = [row(1, 1, {"a": 2}), row(2, 2, round_s=7.9), row(3, 3, round_s=8.1), {"round": 3, "eval_s": 1.0}]
    assert sc.slow_rounds(rows, round_timeout_s=5.0, slack_s=1.0) == [3]
    assert sc.sharing(rows) == 1 / 3
    assert sc.sharing(rows, after=5) is None


def test_rounds_to_rejoin_counts_the_restarted_nodes_rounds_until_it_used_every_live_peer() -> None:
    a, b, c, d = four_nodes()
    rows = {
        0: [row(50, 5), row(99, 6)],
        1: [row(50, 5), row(110, 6), row(120, 7, {"A": 1}), row(130, 8, {"D": 2}), row(140, 9, {"C": 1})],
        2: [row(60, 5)],
        3: [row(120, 4)],
    }
    assert sc.rounds_to_rejoin(b, 100.0, [a, b, c, d], rows) == (4, 4)
    rows[1] = rows[1][:3]
    assert sc.rounds_to_rejoin(b, 100.0, [a, b, c, d], rows) == (None, 2)
    c.lives = [sc.Life(0.0, 115.0, killed=True)]  # C killed meanwhile: no longer needed
    assert sc.rounds_to_rejoin(b, 100.0, [a, b, c, d], rows) == (2, 2)
    b.lives[1].end, b.lives[1].killed = 115.0, True  # B killed again: only that life's rounds count
    b.lives.append(sc.Life(116.0))
    assert sc.rounds_to_rejoin(b, 100.0, [a, b, c, d], rows) == (None, 1)


def test_rounds_to_be_used_counts_the_restarted_nodes_rounds_until_every_live_peer_trained_on_it() -> None:
    a, b, c, d = four_nodes()
    rows = {
        0: [row(50, 5, {"B": 1}), row(108, 6, {"B": 1})],  # the 50 s row took B's earlier life's groups
        1: [row(50, 5), row(110, 6), row(120, 7), row(130, 8), row(140, 9)],
        2: [row(60, 5), row(125, 6, {"B": 2})],
        3: [row(120, 4)],
    }
    assert sc.rounds_to_be_used(b, 100.0, [a, b, c, d], rows) == 3  # C used B at 125 s, during B's 3rd round
    rows[2] = [row(60, 5), row(125, 6, {"A": 2})]
    assert sc.rounds_to_be_used(b, 100.0, [a, b, c, d], rows) is None  # C never trained on B
    c.lives = [sc.Life(0.0, 115.0, killed=True)]  # C killed meanwhile: no longer needed
    assert sc.rounds_to_be_used(b, 100.0, [a, b, c, d], rows) == 2
    rows[0] = [row(50, 5, {"B": 1}), row(106, 6, {"B": 1})]  # before B's first round began (107 s): old data
    assert sc.rounds_to_be_used(b, 100.0, [a, b, c, d], rows) is None


def test_settled_rows_skip_the_first_rounds_of_each_life() -> None:
    node = sc.NodeRecord(0, lives=[sc.Life(0.0, 100.0, killed=True), sc.Life(100.0)])
    rows = [row(t, i) for i, t in enumerate([10, 20, 30, 110, 120, 130], 1)]
    assert [r["round"] for r in sc.settled(node, rows, skip=2)] == [3, 6]
    assert sc.lives_with_rounds(node, rows) == 2


def test_tracebacks_and_exception_lines_are_counted() -> None:
    logs = [
        "round 1 | ok\nTraceback (most recent call last):\n  File x\nValueError: bad\n",
        "round 2 | swarm I/O failed (1 so far): TimeoutError: \n" * 3,
    ]
    tracebacks, lines, samples = sc.count_tracebacks(logs)
    assert (tracebacks, lines) == (1, 4) and len(samples) == 2


def test_tree_rss_includes_children() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; x = bytearray(64 << 20); time.sleep(30)"], stdout=subprocess.PIPE
    )
    try:
        for _ in range(100):  # until the child holds its 64 MiB
            if sc.tree_rss_kib(child.pid) > 60 * 1024:
                break
            time.sleep(0.1)
        own = sc.tree_rss_kib(os.getpid(), {})
        assert sc.tree_rss_kib(os.getpid()) >= own + 60 * 1024
        assert sc.tree_rss_kib(2**22 + 7) == 0  # no such process
    finally:
        child.kill()
        child.wait(timeout=30)
