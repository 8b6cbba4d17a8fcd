"""`swarmnode bench learn`: does the silo node learn, how fast, and where does the time go?

Trains the configured node (by default the embedded model on `add`) from scratch for a fixed time or
number of rounds with several seeds, one after another, and reports held-out greedy accuracy at the
start and the end, the rounds done, and the seconds spent generating, training and evaluating.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from swarmnode.bench.report import format_table, write_json
from swarmnode.config import NodeConfig
from swarmnode.node import Node
from swarmnode.run_dir import read_metrics


def run_seed(base: NodeConfig, seed: int, run_dir: Path) -> dict[str, Any]:
    config = base.model_copy(update={"seed": seed, "run_dir": run_dir})
    config.checkpoint = config.checkpoint.model_copy(update={"resume": False, "every": 10**9})
    if not config.eval.every:
        config.eval = config.eval.model_copy(update={"every": 10**9})  # still evaluate at start and end
    start = time.perf_counter()
    Node(config, say=lambda line: None).run()
    wall = time.perf_counter() - start
    rows = read_metrics(run_dir)
    train = [r for r in rows if "mean_reward" in r]
    evals = [r for r in rows if "eval_greedy_accuracy" in r]
    return {
        "seed": seed,
        "rounds": len(train),
        "start_accuracy": evals[0]["eval_greedy_accuracy"],
        "end_accuracy": evals[-1]["eval_greedy_accuracy"],
        "gain_points": 100 * (evals[-1]["eval_greedy_accuracy"] - evals[0]["eval_greedy_accuracy"]),
        "wall_s": wall,
        "generate_s": sum(r["generate_s"] for r in train),
        "train_s": sum(r["train_s"] for r in train),
        "eval_s": sum(r.get("eval_s", 0.0) for r in evals),
        "mean_reward_first_10": statistics.fmean(r["mean_reward"] for r in train[:10]) if train else 0.0,
        "mean_reward_last_10": statistics.fmean(r["mean_reward"] for r in train[-10:]) if train else 0.0,
    }


def run(base: NodeConfig, seeds: list[int], json_path: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="swarmnode-bench-learn-") as tmp:
        for seed in seeds:
            row = run_seed(base, seed, Path(tmp) / f"seed-{seed}")
            rows.append(row)
            print(
                f"seed {seed}: {row['rounds']} rounds, held-out {row['start_accuracy']:.1%} -> "
                f"{row['end_accuracy']:.1%}",
                flush=True,
            )
    limit = f"{base.minutes:g} min" if base.minutes else f"{base.rounds} rounds"
    print(
        f"learn bench: model {base.model.name}, tasks {', '.join(base.task.names)}, {limit} per seed, "
        f"{base.threads} thread(s)"
    )
    print(
        format_table(
            ("seed", "rounds", "start", "end", "gain (pts)", "wall s", "generate s", "train s", "eval s"),
            [
                (
                    r["seed"],
                    r["rounds"],
                    f"{r['start_accuracy']:.1%}",
                    f"{r['end_accuracy']:.1%}",
                    f"{r['gain_points']:+.1f}",
                    r["wall_s"],
                    r["generate_s"],
                    r["train_s"],
                    r["eval_s"],
                )
                for r in rows
            ],
        )
    )
    write_json(json_path, "learn", {"config": base.model_dump(mode="json"), "seeds": seeds}, rows)
    print(f"wrote {json_path}")
    return rows
