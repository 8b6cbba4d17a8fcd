"""`swarmnode report RUN_DIR ...`: reward and held-out accuracy per round as a PNG (matplotlib, no display).
Several run directories are drawn on the same axes, labelled by their directory name and mode (silo or
swarm), so a swarm run and a silo run can be compared at a glance."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from swarmnode.errors import UserError, output_file
from swarmnode.run_dir import read_metrics


def _label(run_dir: Path) -> str:
    mode = ""
    config = run_dir / "config.json"
    if config.exists():
        try:
            data: Any = json.loads(config.read_text())
            mode = " (silo)" if data.get("silo") else f" (swarm {data.get('swarm', {}).get('name', '?')})"
        except (ValueError, AttributeError, OSError):
            mode = ""
    return run_dir.name + mode


def _smooth(values: list[float], width: int = 10) -> list[float]:
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= width:
            total -= values[i - width]
        out.append(total / min(i + 1, width))
    return out


def plot_runs(run_dirs: list[Path], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.backend_bases import FigureCanvasBase

    output_file(out, "--out")
    if out.suffix.lower().lstrip(".") not in FigureCanvasBase.get_supported_filetypes():
        raise UserError(f"--out {out}: cannot draw a {out.suffix or 'file without a suffix'}; use .png, .svg or .pdf")
    runs = []
    for run_dir in run_dirs:
        if not (run_dir / "metrics.jsonl").exists():
            raise UserError(f"{run_dir} has no metrics.jsonl: not a run directory")
        rows = read_metrics(run_dir)
        train = [r for r in rows if "mean_reward" in r]
        evals = [r for r in rows if "eval_greedy_accuracy" in r]
        if not train and not evals:
            raise UserError(f"{run_dir}/metrics.jsonl holds no rounds yet")
        runs.append((_label(run_dir), train, evals))
    fig, (reward_ax, acc_ax) = plt.subplots(1, 2, figsize=(12, 4.5))
    for label, train, evals in runs:
        if train:
            rounds = [r["round"] for r in train]
            reward_ax.plot(rounds, _smooth([r["mean_reward"] for r in train]), label=label)
        if evals:
            acc_ax.plot(
                [r["round"] for r in evals], [100 * r["eval_greedy_accuracy"] for r in evals], "o-", label=label
            )
    reward_ax.set(title="Reward of own completions (10-round mean)", xlabel="round", ylabel="mean reward")
    acc_ax.set(title="Held-out greedy accuracy", xlabel="round", ylabel="accuracy (%)")
    for ax in (reward_ax, acc_ax):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
