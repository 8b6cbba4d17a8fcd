"""A 3-node swarm on this machine, needing nothing but the installed package: every node listens on
127.0.0.1 only, trains the embedded model for a few minutes, shares rollouts with the other two over the
hivemind DHT, and stops by itself. Then it prints what each node learned from the others.

    python examples/local_swarm.py                # 3 nodes, 3 minutes
    python examples/local_swarm.py --minutes 1 --dir runs/local-swarm
    swarmnode tui --run-dir runs/local-swarm/node0   # while it runs: the dashboard of node 0
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ADDRESS = re.compile(r"--peers ADDR\): (\S+)")


def node_command(i: int, root: Path, minutes: float, peers: list[str]) -> list[str]:
    command = [sys.executable, "-m", "swarmnode", "join", "--swarm", "local-demo", "--minutes", str(minutes)]
    command += ["--run-dir", str(root / f"node{i}"), "--seed", str(i), "--threads", "1", "--backend", "hf"]
    command += ["--set", f"swarm.key_path={root / f'node{i}' / 'identity.pem'}", "--set", "eval.every=50"]
    return command + (["--peers", *peers] if peers else [])


def wait_for_address(log: Path, proc: subprocess.Popen[bytes], limit: float = 180.0) -> str:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        found = ADDRESS.search(log.read_text()) if log.exists() else None
        if found:
            return found.group(1)
        if proc.poll() is not None:
            raise SystemExit(f"node 0 stopped before it was ready; see {log}")
        time.sleep(0.5)
    raise SystemExit(f"node 0 did not print its address within {limit:.0f} s; see {log}")


def summary(root: Path, nodes: int) -> None:
    ids = {}
    for i in range(nodes):
        found = re.search(r"peer id (\w+)", (root / f"node{i}.log").read_text())
        ids[found.group(1) if found else f"?{i}"] = f"node{i}"
    for i in range(nodes):
        rows = [json.loads(x) for x in (root / f"node{i}" / "metrics.jsonl").read_text().splitlines() if x.strip()]
        rounds = [r for r in rows if "mean_reward" in r]
        used: dict[str, int] = {}
        for r in rounds:
            for peer, n in r.get("external_by_peer", {}).items():
                used[ids.get(peer, peer[:8])] = used.get(ids.get(peer, peer[:8]), 0) + n
        evals = [r["eval_greedy_accuracy"] for r in rows if "eval_greedy_accuracy" in r]
        acc = f"held-out {evals[0]:.1%} -> {evals[-1]:.1%}" if len(evals) > 1 else "no evaluation yet"
        print(f"node{i}: {len(rounds)} rounds, {acc}, groups trained from peers: {used or 'none'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--dir", default="runs/local-swarm", help="where the nodes' runs and logs go")
    args = parser.parse_args()
    if args.nodes < 2 or args.minutes <= 0:
        parser.error("--nodes must be at least 2 and --minutes positive")
    root = Path(args.dir)
    if root.exists():
        shutil.rmtree(root)  # a fresh demo every time
    root.mkdir(parents=True)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        peers: list[str] = []
        for i in range(args.nodes):
            log = (root / f"node{i}.log").open("wb")
            command = node_command(i, root, args.minutes, peers)  # this interpreter's own swarmnode
            procs.append(subprocess.Popen(command, stdout=log, stderr=log))  # noqa: S603
            if i == 0:
                peers = [wait_for_address(root / "node0.log", procs[0])]
                print(f"node0 listens at {peers[0]}")
        print(f"{args.nodes} nodes running for {args.minutes:g} min; logs in {root}/node*.log")
        print(f"dashboard: swarmnode tui --run-dir {root}/node0")
        for p in procs:
            p.wait(timeout=args.minutes * 60 + 300)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    summary(root, args.nodes)
    return max(p.returncode or 0 for p in procs)


if __name__ == "__main__":
    sys.exit(main())
