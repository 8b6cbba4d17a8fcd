"""`bench sapo`'s figure: own reward (10-round mean) and held-out accuracy against rounds, node-seconds and
generated tokens per node; in the specialists world also the weak and strong families' held-out accuracy."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

XS = (("round", "round"), ("node_s", "node-seconds"), ("tokens", "generated tokens per node"))


def plot(runs: list[dict[str, Any]], configs: list[str], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    specialists = "weak" in runs[0]["curve"][0]
    rows = 3 if specialists else 2
    fig, axes = plt.subplots(rows, 3, figsize=(15, 4 * rows))
    for c in configs:
        mine = [r for r in runs if r["config"] == c]
        rounds = len(mine[0]["reward_per_round"])
        reward = [statistics.fmean(r["reward_per_round"][i] for r in mine) for i in range(rounds)]
        smooth = [statistics.fmean(reward[max(0, i - 9) : i + 1]) for i in range(rounds)]
        per_round = {
            "round": list(range(1, rounds + 1)),
            "node_s": [statistics.fmean(r["node_s_per_round"][i] for r in mine) for i in range(rounds)],
            "tokens": [statistics.fmean(r["tokens_per_round"][i] for r in mine) for i in range(rounds)],
        }
        points = len(mine[0]["curve"])

        def at(key: str, mine: list[dict[str, Any]] = mine, points: int = points) -> list[float]:
            return [statistics.fmean(r["curve"][i][key] for r in mine) for i in range(points)]

        for j, (x, _) in enumerate(XS):
            axes[0][j].plot(per_round[x], smooth, label=c)
            axes[1][j].plot(at(x), at("accuracy"), marker="o", label=c)
        if specialists:
            axes[2][0].plot(at("node_s"), at("weak"), marker="o", label=c)
            axes[2][1].plot(at("node_s"), at("strong"), marker="o", label=c)
            axes[2][2].plot(at("round"), at("weak"), marker="o", label=c)
    labels = [[(x, "own reward (10-round mean)") for _, x in XS], [(x, "held-out greedy accuracy") for _, x in XS]]
    if specialists:
        labels.append(
            [
                ("node-seconds", "weak families' held-out accuracy"),
                ("node-seconds", "strong families' held-out accuracy"),
                ("round", "weak families' held-out accuracy"),
            ]
        )
    for row, names in zip(axes, labels, strict=True):
        for ax, (x, y) in zip(row, names, strict=True):
            ax.set_xlabel(x)
            ax.set_ylabel(y)
            ax.grid(alpha=0.3)
            ax.legend(fontsize="small")
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
