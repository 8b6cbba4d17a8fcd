"""`bench sapo`'s printed tables: the configurations (the old columns), the cost axis (above-floor reward at
equal node-seconds, time to fixed accuracy targets) and, in the specialists world, the weak and strong
families and the issue's done-when measures per seed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from swarmnode.bench.report import format_table

COLUMNS = (
    "config I J cum.reward sd vs-silo worst-seed held-out node-s to-target gen-tok/round s/round(gen+share+train)"
).split()
TIME_BAR = 0.5
"""Specialists world: the swarm's node-seconds to the matched silo's final weak-family accuracy, over the
silo's total node-seconds, at most this."""
POINTS_BAR = 15.0
"""Specialists world: the swarm's final weak-family accuracy above the silo's, at least this many points."""


def _pct(x: float | None) -> str:
    return "" if x is None else f"{x:.1%}"


def _num(x: float | None, unit: str = "") -> str:
    return "never" if x is None else f"{x:.3g}{unit}" if abs(x) < 100 else f"{x:,.0f}{unit}"


def main_table(summary: list[dict[str, Any]]) -> str:
    rows = [
        (
            s["config"],
            s["local"],
            s["external"],
            s["cumulative_reward"],
            s["reward_sd"],
            "" if s["vs_silo"] is None else f"{100 * s['vs_silo']:+.1f}%",
            f"{100 * min(s['reward_vs_silo_by_seed']):+.1f}%" if s["reward_vs_silo_by_seed"] else "",
            f"{s['held_out_accuracy']:.1%}",
            s["node_s"],
            (
                ""  # no silo to compare with
                if not s["to_target_ratios"]
                else "not reached"
                if s["to_target_median"] is None
                else f"{s['to_target_median']:.2f}x"
            ),
            s["generated_tokens_per_node_round"],
            "+".join(f"{v:.3f}" for v in s["seconds_per_node_round"].values()),
        )
        for s in summary
    ]
    return format_table(COLUMNS, rows)


def _vs_best(s: dict[str, Any]) -> str:
    v = s["vs_best_silo_at_equal_node_s"]
    if v is None:
        return ""
    if v["median"] is None:  # some seed had no silo, or its best silo was not above the floor
        return "no silo above floor"
    if v["min"] == v["max"]:
        return f"{v['median']:.2f}x"
    return f"{v['median']:.2f}x [{v['min']:.2f}-{v['max']:.2f}]"


def cost_table(summary: list[dict[str, Any]], targets: Sequence[float]) -> str:
    columns = [
        "config",
        "q/round",
        "node-s",
        "k-tok/node",
        "above-floor",
        "@equal-node-s",
        "vs best silo @ equal node-s",
    ]
    for t in targets:
        columns += [f"to {t:.0%}: node-s", "rounds", "k-tok"]
    rows = []
    for s in summary:
        row: list[object] = [
            s["config"],
            f"{s['questions_per_round']:.1f}",
            s["node_s"],
            f"{s['tokens_per_node'] / 1000:.1f}",
            s["above_floor"],
            s["above_floor_at_equal_node_s"],
            _vs_best(s),
        ]
        for t in s["to_targets"]:
            seeds = len(t["by_seed"]["node_s"])
            if t["node_s"] is None:
                row += [f"{t['reached']}/{seeds} seeds", "", ""]
            else:
                row += [_num(t["node_s"]), _num(t["round"]), _num(t["tokens"] / 1000)]
        rows.append(row)
    return format_table(columns, rows)


def equal_lines(equal: dict[int, dict[str, Any]]) -> str:
    """Per seed: the floor, and each configuration's best silo control with the node-seconds compared at."""
    lines = []
    for seed, e in equal.items():
        each = ", ".join(
            f"{c} vs {s} at {e['horizon'][c]:.1f} node-s: {e['vs_best_silo'][c]:.2f}x"
            for c, s in e["best_silo"].items()
            if s is not None and s != c
        )
        lines.append(f"seed {seed}: floor {e['floor']:.3f}; {each or 'no silo control above the floor'}")
    return "\n".join(lines)


def weak_table(rows: list[dict[str, Any]]) -> str:
    nodes = len(rows[0]["weak_by_node"]) if rows else 0
    columns = ["config", "weak start", "weak end", "strong start", "strong end"] + [
        f"n{k} weak/strong" for k in range(nodes)
    ]
    return format_table(
        columns,
        [
            (
                w["config"],
                _pct(w["weak_start"]),
                _pct(w["weak"]),
                _pct(w["strong_start"]),
                _pct(w["strong"]),
                *(f"{a:.0%}/{b:.0%}" for a, b in zip(w["weak_by_node"], w["strong_by_node"], strict=True)),
            )
            for w in rows
        ],
    )


def _against(a: dict[str, Any] | None) -> list[object]:
    if a is None:
        return ["", "", "", "", ""]
    ratio = a["time_ratio"]
    return [
        f"{a['silo']} {a['silo_weak_start']:.0%}->{a['silo_weak']:.1%}",
        "silo flat" if a["flat"] else _num(a["node_s_to_silo_weak"]),
        f"{a['silo_node_s']:.1f}",
        "n/a" if a["flat"] else "never" if ratio is None else f"{ratio:.2f}x {'ok' if ratio <= TIME_BAR else 'FAIL'}",
        f"{a['points']:+.1f} {'ok' if a['points'] >= POINTS_BAR else 'FAIL'}",
    ]


def specialists_table(rows: list[dict[str, Any]]) -> str:
    columns = [
        "config",
        "seed",
        "weak end",
        "silo: weak start->end",
        "node-s to it",
        "silo node-s",
        f"(a) ratio <={TIME_BAR}",
        f"(b) points >={POINTS_BAR:.0f}",
        "best silo",
        "node-s to it",
        "its node-s",
        "(a)",
        "(b)",
    ]
    out = [[r["config"], r["seed"], _pct(r["weak"]), *_against(r["matched"]), *_against(r["best"])] for r in rows]
    return format_table(columns, out)
