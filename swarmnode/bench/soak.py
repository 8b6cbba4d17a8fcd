"""`swarmnode bench soak --minutes M`: endurance of a real swarm on 127.0.0.1. A bootstrap node and
`nodes` real `swarmnode join` processes (hivemind, the tiny embedded default model, status API off) train
for M minutes while a flooding peer (`bench/flood.py`) floods valid signed batches under one identity and
junk records throughout; every few minutes one random node (never node 0, whose memory is then measured
over the whole soak) is SIGKILLed and restarted with the same command and run directory, so it resumes
from its checkpoint and rejoins through its peers cache; at half time the bootstrap node is killed for good.

It samples every process tree's RSS (the node with its p2p daemon) and, at the end, checks and prints per
node (`soak_checks.py`): RSS after the warm-up and at the end and its growth, slow rounds, the share of
rounds with peers' groups, the rounds each restarted node took to train on every other live node's groups
again, and tracebacks in any log. Writes JSON; the failed checks are returned (the command exits 1).
"""

from __future__ import annotations

import json
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, TextIO

from swarmnode.bench import soak_checks as sc
from swarmnode.run_dir import read_metrics

SWARM = "soak"
ROUND_TIMEOUT_S = 5.0
NODE_SETTINGS = (
    "eval.every=0",
    "status.enabled=false",
    "checkpoint.every=2",
    "generation.questions_per_round=8",
    f"swarm.round_timeout_s={ROUND_TIMEOUT_S}",
    # J = 8 over 4 other peers (3 nodes and the flooder): at most 2 groups from one peer, so a round can take
    # every peer and the rejoin check measures rejoining. With the default 0.5 a round takes 2 peers, and a
    # restarted node keeps taking the same two (its earliest cohort)
    "swarm.max_share_per_peer=0.25",
)


def schedule(minutes: float) -> dict[str, Any]:
    """When things happen, in seconds from the start: the warm-up before memory growth is measured, RSS
    samples, the kills (one every `kill_every_s`, the last leaving at least that long and 2 minutes to restart
    and rejoin) and the bootstrap node's death at half time (a kill that would fall on it moves a third of an
    interval on)."""
    total = minutes * 60.0
    every = min(300.0, max(60.0, total / 4))
    death = total / 2
    kills = []
    t = every
    while t <= total - max(every, 120.0):
        kills.append(t + every / 3 if abs(t - death) < 10 else t)
        t += every
    return {
        "total_s": total,
        "warmup_s": min(600.0, total / 3),
        "sample_every_s": min(60.0, total / 15),
        "kill_every_s": every,
        "kills_s": kills,
        "bootstrap_death_s": death,
    }


class Soak:
    def __init__(self, root: Path, nodes: int, seed: int, minutes: float) -> None:
        self.root = root
        self.rng = random.Random(seed)
        self.minutes = minutes
        self.records = [sc.NodeRecord(i) for i in range(nodes)]
        self.procs: list[subprocess.Popen[str] | None] = [None] * nodes
        self.restarts: list[dict[str, Any]] = []
        self.crashes: list[str] = []
        self.others: dict[str, subprocess.Popen[str]] = {}
        self.other_rss: dict[str, list[tuple[float, int]]] = {"bootstrap": [], "flood": []}
        self.boot_maddr = ""

    def _spawn(self, command: list[str], log_name: str) -> subprocess.Popen[str]:
        log: TextIO = (self.root / log_name).open("a")
        log.write(f"=== soak: started at {time.time():.3f}: {' '.join(command)}\n")
        log.flush()
        try:
            return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, text=True)  # noqa: S603
        finally:
            log.close()

    def start_bootstrap(self) -> None:
        addr_file = self.root / "bootstrap.addr"
        cmd = [sys.executable, "-m", "swarmnode", "bootstrap", "--swarm", SWARM, "--addr-file", str(addr_file)]
        self.others["bootstrap"] = self._spawn(cmd, "bootstrap.log")
        deadline = time.monotonic() + 120
        while not addr_file.exists():
            if time.monotonic() > deadline or self.others["bootstrap"].poll() is not None:
                raise RuntimeError(f"the bootstrap node gave no address; see {self.root / 'bootstrap.log'}")
            time.sleep(0.2)
        self.boot_maddr = addr_file.read_text().split()[0]

    def start_flood(self) -> None:
        cmd = [sys.executable, "-m", "swarmnode.bench.flood", "--swarm", SWARM, "--peers", self.boot_maddr]
        self.others["flood"] = self._spawn([*cmd, "--dir", str(self.root / "flood")], "flood.log")

    def node_command(self, i: int) -> list[str]:
        command = [sys.executable, "-m", "swarmnode", "join", "--swarm", SWARM, "--run-dir", str(self.root / f"n{i}")]
        command += ["--threads", "1", "--backend", "hf", "--seed", str(i), "--peers", self.boot_maddr]
        command += ["--minutes", f"{self.minutes + 5:g}", "--set", f"swarm.key_path={self.root / f'key{i}.pem'}"]
        for setting in NODE_SETTINGS:
            command += ["--set", setting]
        return command

    def start_node(self, i: int) -> None:
        self.procs[i] = self._spawn(self.node_command(i), f"n{i}.log")
        self.records[i].lives.append(sc.Life(time.time()))

    def rows(self, i: int) -> list[dict[str, Any]]:
        try:
            return read_metrics(self.root / f"n{i}")
        except (ValueError, OSError):  # a line being written right now
            return []

    def kill_and_restart(self) -> bool:
        """SIGKILL a random node (not node 0) whose current life has had time to rejoin (REJOIN_BAR rounds and
        one more) and to write a checkpoint; restart it."""
        now, enough = time.time(), sc.REJOIN_BAR + 1
        ready = [i for i in range(1, len(self.procs)) if sc.live_at(self.records[i], self.rows(i), now, enough)]
        if not ready:
            return False
        i = self.rng.choice(ready)
        proc = self.procs[i]
        assert proc is not None
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        self.records[i].lives[-1].end, self.records[i].lives[-1].killed = time.time(), True
        self.start_node(i)
        self.restarts.append({"node": i, "time": self.records[i].lives[-1].start})
        print(f"soak: {self._clock()} node {i} SIGKILLed and restarted", flush=True)
        return True

    def kill_bootstrap(self) -> None:
        boot = self.others["bootstrap"]
        boot.send_signal(signal.SIGKILL)
        boot.wait(timeout=30)
        print(f"soak: {self._clock()} bootstrap node SIGKILLed for good", flush=True)

    def sample(self) -> None:
        children, now = sc.proc_children(), time.time()
        for i, proc in enumerate(self.procs):
            if proc is not None and proc.poll() is None:
                self.records[i].rss.append((now, sc.tree_rss_kib(proc.pid, children), len(self.records[i].lives) - 1))
        for name, proc in self.others.items():
            if proc.poll() is None:
                self.other_rss[name].append((now, sc.tree_rss_kib(proc.pid, children)))

    def check_alive(self) -> None:
        """A node that ended on its own is a crash: noted, and restarted so the soak goes on."""
        for i, proc in enumerate(self.procs):
            if proc is not None and proc.poll() is not None:
                self.crashes.append(f"node {i} exited on its own with code {proc.returncode} at {self._clock()}")
                print(f"soak: {self.crashes[-1]}", flush=True)
                self.records[i].lives[-1].end = time.time()
                self.start_node(i)

    def _clock(self) -> str:
        return f"{(time.time() - self.t0) / 60:5.1f} min"

    def run(self) -> dict[str, Any]:
        plan = schedule(self.minutes)
        self.t0 = time.time()
        self.start_bootstrap()
        self.start_flood()
        for i in range(len(self.procs)):
            self.start_node(i)
        self.wait_ready()
        kills, next_sample, boot_alive = list(plan["kills_s"]), 0.0, True
        try:
            while (elapsed := time.time() - self.t0) < plan["total_s"]:
                if elapsed >= next_sample:
                    self.sample()
                    next_sample += plan["sample_every_s"]
                if boot_alive and elapsed >= plan["bootstrap_death_s"]:
                    self.kill_bootstrap()
                    boot_alive = False
                if kills and elapsed >= kills[0] and self.kill_and_restart():
                    kills.pop(0)
                self.check_alive()
                time.sleep(1.0)
            self.sample()
        finally:
            self.stop_all()
        return plan

    def wait_ready(self, limit_s: float = 600.0) -> None:
        """The soak's clock starts once every node has finished a round (loading a model takes a while)."""
        deadline = time.monotonic() + limit_s
        while not all(sc.live_at(r, self.rows(r.index), time.time()) for r in self.records):
            self.check_alive()
            if time.monotonic() > deadline:
                self.stop_all()
                raise RuntimeError(f"not every node finished a round within {limit_s:.0f} s; see {self.root}")
            time.sleep(1.0)
        print(f"soak: every node finished a round after {self._clock()}; the clock starts now", flush=True)
        self.t0 = time.time()

    def stop_all(self) -> None:
        """SIGINT the nodes (they checkpoint and stop), SIGTERM the flooder; SIGKILL whatever is left."""
        for proc in self.procs:
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        if "flood" in self.others and self.others["flood"].poll() is None:
            self.others["flood"].send_signal(signal.SIGTERM)
        for i, proc in enumerate([*self.procs, *self.others.values()]):
            if proc is None:
                continue
            try:
                proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=30)
            if i < len(self.procs) and self.records[i].lives and self.records[i].lives[-1].end is None:
                self.records[i].lives[-1].end = time.time()

    def peer_ids(self) -> None:
        for i, record in enumerate(self.records):
            found = re.search(r"peer id (\w+)", (self.root / f"n{i}.log").read_text())
            record.peer_id = found.group(1) if found else ""


def evaluate(soak: Soak, plan: dict[str, Any], max_growth_pct: float) -> tuple[dict[str, Any], list[str]]:
    """The per-node results and the failed checks."""
    soak.peer_ids()
    rows = {r.index: soak.rows(r.index) for r in soak.records}
    t0, warmup = soak.t0, plan["warmup_s"]
    death = t0 + plan["bootstrap_death_s"]
    failures = list(soak.crashes)
    nodes = []
    for record in soak.records:
        mine = rows[record.index]
        grown = sc.growth(record, warmup, mine)
        slow = sc.slow_rounds(mine, ROUND_TIMEOUT_S)
        after = sc.sharing(sc.settled(record, mine), death)  # not counting a restarted node's first rounds
        nodes.append(
            {
                "node": record.index,
                "peer_id": record.peer_id,
                "rounds": sum(1 for r in mine if "round_s" in r),
                "rss_warm_mib": (sc.rss_at(record, t0 + warmup) or 0) / 1024,
                "rss_end_mib": (record.rss[-1][1] if record.rss else 0) / 1024,
                "growth_pct": None if grown is None else grown[0],
                "growth_over_s": None if grown is None else grown[1],
                "slow_rounds": slow,
                "sharing": sc.sharing(mine),
                "sharing_after_bootstrap": after,
                "restarts": sum(1 for life in record.lives if life.killed),
                "rss_samples": record.rss,
            }
        )
        if grown is not None and grown[1] >= warmup and grown[0] > max_growth_pct:
            failures.append(f"node {record.index}: RSS grew {grown[0]:.1f}% after the warm-up (bar {max_growth_pct}%)")
        resumed = len(re.findall(r"resumed from \S+", (soak.root / f"n{record.index}.log").read_text()))
        restarted = sc.lives_with_rounds(record, mine) - 1  # restarts that got as far as a round
        if resumed < restarted:
            failures.append(f"node {record.index}: {restarted} restarts trained, {resumed} resumed a checkpoint")
        nodes[-1]["resumed"] = resumed
        if slow:
            failures.append(f"node {record.index}: {len(slow)} rounds over the round timeout (rounds {slow[:10]})")
        if after is not None and after < sc.MIN_SHARING:
            failures.append(f"node {record.index}: rounds with peers' groups after the bootstrap died: {after}")
    for restart in soak.restarts:
        record = soak.records[restart["node"]]
        took, had = sc.rounds_to_rejoin(record, restart["time"], soak.records, rows)
        used = sc.rounds_to_be_used(record, restart["time"], soak.records, rows)
        restart |= {"rounds_to_rejoin": took, "rounds_to_be_used": used, "rounds_after": had}
        restart["before_bootstrap_died"] = restart["time"] < death
        when = (restart["time"] - t0) / 60
        checks = ((took, "it trained on every live peer"), (used, "every live peer trained on it"))
        for rounds, what in checks:
            if rounds is None and had >= sc.REJOIN_BAR:
                failures.append(f"node {restart['node']} restarted at {when:.1f} min: {had} rounds, never {what}")
            elif rounds is not None and rounds > sc.REJOIN_BAR:
                failures.append(f"node {restart['node']} restarted at {when:.1f} min: {rounds} rounds until {what}")
    logs = sorted(soak.root.glob("*.log")) + sorted(soak.root.glob("*/*.log"))
    tracebacks, error_lines, samples = sc.count_tracebacks(p.read_text(errors="replace") for p in logs)
    if tracebacks:
        failures.append(f"{tracebacks} tracebacks in the logs of {soak.root}")
    return {
        "nodes": nodes,
        "restarts": soak.restarts,
        "tracebacks": tracebacks,
        "error_lines": error_lines,
        "error_samples": samples,
        "other_rss": soak.other_rss,
        "lives": {r.index: [asdict(life) for life in r.lives] for r in soak.records},
    }, failures


def _mib(x: float | None) -> str:
    return "-" if not x else f"{x:.0f}"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:+.1f}%"


def _rejoin(restart: dict[str, Any]) -> str:
    """'uses/used': rounds until the restarted node trained on every live peer / every live peer on it."""
    both = (restart["rounds_to_rejoin"], restart["rounds_to_be_used"])
    if restart["rounds_after"] < sc.REJOIN_BAR and None in both:
        return f"n/a ({restart['rounds_after']} rounds before the end)"
    return "/".join("never" if n is None else str(n) for n in both)


def table(result: dict[str, Any], plan: dict[str, Any]) -> str:
    warm = plan["warmup_s"] / 60
    lines = [
        f"{'node':>4} {'rounds':>6} {f'RSS@{warm:.1f}min':>11} {'RSS end':>8} {'growth':>8} {'over':>6} {'slow':>4} "
        f"{'shared':>6} {'after boot':>10} {'restarts':>8}  rounds to rejoin (it uses all / all use it)"
    ]
    for n in result["nodes"]:
        rejoin = [_rejoin(r) for r in result["restarts"] if r["node"] == n["node"]]
        share, after = n["sharing"], n["sharing_after_bootstrap"]
        lines.append(
            f"{n['node']:>4} {n['rounds']:>6} {_mib(n['rss_warm_mib']):>11} {_mib(n['rss_end_mib']):>8} "
            f"{_pct(n['growth_pct']):>8} {(n['growth_over_s'] or 0) / 60:>5.1f}m {len(n['slow_rounds']):>4} "
            f"{'-' if share is None else f'{share:.0%}':>6} {'-' if after is None else f'{after:.0%}':>10} "
            f"{n['restarts']:>8}  {', '.join(rejoin) or '-'}"
        )
    for name, samples in result["other_rss"].items():
        if samples:
            lines.append(f"{name}: RSS {samples[0][1] / 1024:.0f} MiB at start, {samples[-1][1] / 1024:.0f} MiB last")
    lines.append(
        f"logs: {result['tracebacks']} tracebacks, {result['error_lines']} lines naming an exception type"
        + (f" (e.g. {result['error_samples'][0]!r})" if result["error_samples"] else "")
    )
    return "\n".join(lines)


def run(
    minutes: float, json_path: Path, root: Path, nodes: int = 4, seed: int = 0, max_growth_pct: float = 10.0
) -> list[str]:
    """Run the soak; print its table; write JSON; the failed checks (none: it passed)."""
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    plan = schedule(minutes)
    print(
        f"soak: {nodes} nodes + bootstrap + flooder for {minutes:g} min in {root}; a kill every "
        f"{plan['kill_every_s'] / 60:.1f} min ({len(plan['kills_s'])} in all), the bootstrap dies at "
        f"{plan['bootstrap_death_s'] / 60:.1f} min; memory growth measured after {plan['warmup_s'] / 60:.1f} min",
        flush=True,
    )
    soak = Soak(root, nodes, seed, minutes)
    soak.run()
    result, failures = evaluate(soak, plan, max_growth_pct)
    print(table(result, plan))
    json_path.parent.mkdir(parents=True, exist_ok=True)
    report = {"minutes": minutes, "nodes": nodes, "seed": seed, "plan": plan, **result, "failures": failures}
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {json_path}")
    for line in failures:
        print(f"soak: FAILED: {line}")
    if not failures:
        print("soak: every check passed")
    return failures
