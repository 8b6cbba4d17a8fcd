"""`swarmnode bench share`: how much of a round sharing takes, in line and off the critical path.

A bootstrap node, `--peers` sharing-only peers (one process on the hivemind DHT publishing a signed batch of
8 informative groups per identity every `--every-s` seconds: `bench/flood.py` without junk) and two real
training nodes of the embedded default, side by side in one swarm on 127.0.0.1: one shares in line
(`swarm.background_sharing=false`: each round publishes, then collects), one off the round's critical path
(the I/O thread). Each runs `--rounds` rounds; from each node's own metrics.jsonl it reports the share of
round time spent in `share_s` (what the round waited for the swarm), per round (min / median / max) and in
all, the I/O thread's own seconds, and the external groups per round. The first rounds, while peers join,
are not counted.
"""

from __future__ import annotations

import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from swarmnode.bench.report import format_table, write_json
from swarmnode.run_dir import read_metrics

SWARM = "bench-share"
MODES = {"in line": "false", "background": "true"}
WARMUP_ROUNDS = 3


def _spawn(command: list[str], log: Path) -> subprocess.Popen[str]:
    with log.open("a") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, text=True)  # noqa: S603 - our own commands


def _wait_line(log: Path, pattern: str, proc: subprocess.Popen[str], limit: float = 180.0) -> re.Match[str]:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        found = re.search(pattern, log.read_text()) if log.exists() else None
        if found:
            return found
        if proc.poll() is not None:
            break
        time.sleep(0.5)
    raise RuntimeError(f"no line matching {pattern!r} in {log} (exit {proc.poll()})")


def summarize(mode: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    counted = [r for r in rows if "round_s" in r and r["round"] > WARMUP_ROUNDS]
    shares = [r["share_s"] / r["round_s"] for r in counted if r["round_s"] > 0]
    total = sum(r["round_s"] for r in counted)
    return {
        "mode": mode,
        "rounds": len(counted),
        "share_pct_min": 100 * min(shares, default=0.0),
        "share_pct_median": 100 * statistics.median(shares) if shares else 0.0,
        "share_pct_max": 100 * max(shares, default=0.0),
        "share_pct_total": 100 * sum(r["share_s"] for r in counted) / total if total else 0.0,
        "round_s_median": statistics.median(r["round_s"] for r in counted) if counted else 0.0,
        "io_thread_s_per_round": statistics.fmean(r.get("share_io_s", 0.0) for r in counted) if counted else 0.0,
        "external_groups_per_round": statistics.fmean(r["external_groups"] for r in counted) if counted else 0.0,
        "peers_used": len({p for r in counted for p in r.get("external_by_peer", {})}),
    }


def run(peers: int, rounds: int, every_s: float, folder: Path, json_path: Path) -> list[dict[str, Any]]:
    folder.mkdir(parents=True, exist_ok=True)
    exe = str(Path(sys.executable).with_name("swarmnode"))
    procs: list[subprocess.Popen[str]] = []
    try:
        boot = _spawn([exe, "bootstrap", "--swarm", SWARM], folder / "bootstrap.log")
        procs.append(boot)
        maddr = _wait_line(folder / "bootstrap.log", r"--peers (\S+)", boot).group(1)
        flood = [sys.executable, "-m", "swarmnode.bench.flood", "--swarm", SWARM, "--peers", maddr]
        flood += ["--dir", str(folder / "peers"), "--identities", str(peers), "--junk", "0", "--every-s", str(every_s)]
        procs.append(_spawn(flood, folder / "peers.log"))
        nodes = {}
        for k, (mode, background) in enumerate(MODES.items()):
            run_dir = folder / f"node-{background}"
            command = [exe, "join", "--swarm", SWARM, "--peers", maddr, "--run-dir", str(run_dir), "--threads", "1"]
            command += ["--backend", "hf", "--rounds", str(rounds), "--seed", str(k), "--set", "eval.every=0"]
            command += ["--set", f"swarm.key_path={folder / f'key-{background}.pem'}", "--set", "status.enabled=false"]
            command += ["--set", f"swarm.background_sharing={background}", "--set", "checkpoint.every=1000"]
            nodes[mode] = (_spawn(command, folder / f"node-{background}.log"), run_dir)
            procs.append(nodes[mode][0])
        for proc, _ in nodes.values():
            proc.wait(timeout=60 * 60)
        rows = [
            summarize(mode, [r for r in read_metrics(run_dir) if "round_s" in r])
            for mode, (_, run_dir) in nodes.items()
        ]
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=30)
    print(
        f"share bench: two training nodes (embedded default) side by side with {peers} sharing-only peers publishing "
        f"every {every_s:g} s, over hivemind on 127.0.0.1; {rounds} rounds each, the first {WARMUP_ROUNDS} not counted"
    )
    print(
        format_table(
            (
                "sharing",
                "rounds",
                "share % min",
                "median",
                "max",
                "of all round time",
                "round s",
                "I/O thread s/round",
                "external/round",
            ),
            [
                (
                    r["mode"],
                    r["rounds"],
                    r["share_pct_min"],
                    r["share_pct_median"],
                    r["share_pct_max"],
                    r["share_pct_total"],
                    r["round_s_median"],
                    r["io_thread_s_per_round"],
                    r["external_groups_per_round"],
                )
                for r in rows
            ],
        )
    )
    write_json(json_path, "share", {"peers": peers, "rounds": rounds, "every_s": every_s}, rows)
    print(f"wrote {json_path}")
    return rows
