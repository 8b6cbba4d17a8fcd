"""`swarmnode bench sapo`: does sharing help? N real nodes (the embedded model, real learner, real
validation chain) in one process over the in-memory transport, taking turns round by round, under three
sampling configurations with the same number of rounds and several seeds:

- silo   I = 8, J = 0: each node trains on its own 8 question groups;
- 4/4    I = 4, J = 4: the SAPO paper's split, peers' groups replace half of the node's own;
- 8/8    I = 8, J = 8: peers' groups come on top of the node's own.

Reported per configuration (mean over nodes and seeds): cumulative reward (the sum over rounds of the mean
reward of the node's own completions, as in the paper) and held-out greedy accuracy at the end.
Runs of different (configuration, seed) pairs go to separate processes, one torch thread each.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from swarmnode.bench.report import format_table, write_json

CONFIGS: dict[str, tuple[int, int]] = {"silo": (8, 0), "4/4": (4, 4), "8/8": (8, 8)}


def run_one(config: str, seed: int, nodes: int, rounds: int, eval_questions: int, root: str) -> dict[str, Any]:
    from swarmnode.config import load_config, parse_override
    from swarmnode.identity import Identity
    from swarmnode.node import Node
    from swarmnode.swarm.memory import MemoryHub, MemoryTransport

    local, external = CONFIGS[config]
    hub = MemoryHub()
    members = []
    for k in range(nodes):
        name = f"{config.replace('/', '-')}-s{seed}-n{k}"
        overrides = [
            parse_override(s)
            for s in (
                f"run_dir={Path(root) / name}",
                f"seed={1000 * seed + k}",
                f"silo={'true' if external == 0 else 'false'}",
                "eval.every=0",
                f"eval.questions={eval_questions}",
                "status.enabled=false",
                f"generation.questions_per_round={local}",
                f"swarm.external_groups={external}",
                "generation.backend=hf",
                "checkpoint.every=1000000",
                "threads=1",
            )
        ]
        transport = None if external == 0 else MemoryTransport(hub)
        identity = Identity(Ed25519PrivateKey.generate())
        members.append(Node(load_config(None, overrides), say=lambda _: None, transport=transport, identity=identity))
    start = time.perf_counter()
    cumulative = [0.0] * nodes
    external_used = [0] * nodes
    for _ in range(rounds):
        for k, node in enumerate(members):  # in lockstep: every node's round r before anyone's r + 1
            row = node.step()
            assert row is not None
            cumulative[k] += row["mean_reward"]
            external_used[k] += row["external_groups"]
    accuracy = [node.evaluate()["eval_greedy_accuracy"] for node in members]
    for node in members:
        node.close()
    return {
        "config": config,
        "seed": seed,
        "local": local,
        "external": external,
        "cumulative_reward": statistics.fmean(cumulative),
        "held_out_accuracy": statistics.fmean(accuracy),
        "external_groups_per_node_round": statistics.fmean(external_used) / rounds,
        "wall_s": time.perf_counter() - start,
    }


def run(
    configs: list[str], seeds: list[int], nodes: int, rounds: int, eval_questions: int, jobs: int, json_path: Path
) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="swarmnode-bench-sapo-") as root:
        with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
            futures = [pool.submit(run_one, c, s, nodes, rounds, eval_questions, root) for s in seeds for c in configs]
            for future in futures:
                runs.append(future.result())
                r = runs[-1]
                print(
                    f"  {r['config']:5s} seed {r['seed']}: cumulative reward {r['cumulative_reward']:.1f}, "
                    f"held-out {r['held_out_accuracy']:.1%} ({r['wall_s']:.0f} s)",
                    flush=True,
                )
    summary = []
    silo = [r for r in runs if r["config"] == "silo"]
    silo_reward = statistics.fmean(r["cumulative_reward"] for r in silo) if silo else None
    for c in configs:
        mine = [r for r in runs if r["config"] == c]
        reward = statistics.fmean(r["cumulative_reward"] for r in mine)
        summary.append(
            {
                "config": c,
                "local": CONFIGS[c][0],
                "external": CONFIGS[c][1],
                "cumulative_reward": reward,
                "reward_sd": statistics.stdev(r["cumulative_reward"] for r in mine) if len(mine) > 1 else 0.0,
                "vs_silo": (reward / silo_reward - 1.0) if silo_reward else None,
                "held_out_accuracy": statistics.fmean(r["held_out_accuracy"] for r in mine),
                "external_groups_per_node_round": statistics.fmean(r["external_groups_per_node_round"] for r in mine),
            }
        )
    print(
        f"sapo bench: {nodes} nodes (embedded model, task add), {rounds} rounds, seeds {seeds}, "
        f"held-out greedy accuracy on {eval_questions} questions at the end; means over nodes and seeds"
    )
    print(
        format_table(
            ("config", "I", "J", "cumulative reward", "sd", "vs silo", "held-out acc", "ext groups/round"),
            [
                (
                    s["config"],
                    s["local"],
                    s["external"],
                    s["cumulative_reward"],
                    s["reward_sd"],
                    "" if s["vs_silo"] is None else f"{100 * s['vs_silo']:+.1f}%",
                    f"{s['held_out_accuracy']:.1%}",
                    s["external_groups_per_node_round"],
                )
                for s in summary
            ],
        )
    )
    write_json(
        json_path,
        "sapo",
        {"nodes": nodes, "rounds": rounds, "seeds": seeds, "eval_questions": eval_questions},
        summary + [{"run": r} for r in runs],
    )
    print(f"wrote {json_path}")
    return summary
