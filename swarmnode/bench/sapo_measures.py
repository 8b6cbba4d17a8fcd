"""`bench sapo`'s measures over the runs (pure: hand-made run dicts test them).

A run (one configuration, one seed; `sapo.run_one`) keeps, per round, the measured nodes' mean own reward
(`reward_per_round`), their mean cumulative node-seconds (`node_s_per_round`) and generated tokens per node
(`tokens_per_round`), and held-out evaluations (`curve`: points with `round`, `node_s`, `tokens`, `accuracy`,
and in the specialists world `weak` and `strong`, the nodes' mean accuracy on their weak and strong families).

- floor: a seed's starting level of own reward, the mean round-1 reward over every configuration of that seed
  (the same starting weights, so one floor for all of them);
- above floor: the sum over rounds of reward - floor;
- at equal node-seconds: per seed, each configuration against each silo control (J = 0) pair by pair, up to
  T = the smaller of the two totals, the round that crosses T counted pro rata; against the best silo control:
  the one it fares worst against (`equal_node_seconds`);
- time to a target: node-seconds (rounds, tokens) at which an accuracy first reaches it, linear between the
  evaluation points.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

Run = dict[str, Any]


def crossing(xs: Sequence[float], ys: Sequence[float], target: float) -> float | None:
    """The x at which y first reaches `target`, linear between the points; xs[0] when the first point is
    already there; None when no point gets there."""
    for i, y in enumerate(ys):
        if y >= target - 1e-12:
            if i == 0:
                return xs[0]
            x0, y0 = xs[i - 1], ys[i - 1]
            return x0 + (target - y0) / (y - y0) * (xs[i] - x0)
    return None


def time_to(run: Run, target: float, x: str = "node_s", y: str = "accuracy") -> float | None:
    """Node-seconds (x = "node_s"), rounds ("round") or generated tokens per node ("tokens") at which the
    run's held-out `y` first reaches `target`, interpolated between its evaluations."""
    curve = run["curve"]
    return crossing([p[x] for p in curve], [p[y] for p in curve], target)


def floors(runs: list[Run]) -> dict[int, float]:
    """Per seed: the mean round-1 own reward over every configuration run with that seed."""
    by_seed: dict[int, list[float]] = {}
    for r in runs:
        by_seed.setdefault(r["seed"], []).append(r["reward_per_round"][0])
    return {seed: statistics.fmean(v) for seed, v in by_seed.items()}


def above_floor(run: Run, floor: float, budget: float | None = None) -> float:
    """The sum over rounds of (reward - floor); with `budget`, over the rounds up to that many cumulative
    node-seconds only, the round that crosses it counted pro rata."""
    total, before = 0.0, 0.0
    for reward, spent in zip(run["reward_per_round"], run["node_s_per_round"], strict=True):
        if budget is not None and spent > budget:
            if before < budget:
                total += (reward - floor) * (budget - before) / (spent - before)
            break
        total += reward - floor
        before = spent
    return total


def best_silo(runs: list[Run], value: dict[str, float]) -> str | None:
    """The silo control (a configuration with J = 0) among `runs` (one seed's) with the highest `value`
    (config -> measure); None when no silo ran."""
    silos = [r["config"] for r in runs if r["external"] == 0 and value.get(r["config"]) is not None]
    return max(silos, key=lambda c: value[c]) if silos else None


def equal_node_seconds(runs: list[Run]) -> dict[int, dict[str, Any]]:
    """Per seed: its floor; each configuration against every silo control (J = 0) at equal node-seconds, pair by
    pair: T = the smaller of the two runs' totals, both runs' above-floor reward up to T, their ratio; the best
    silo for a configuration is the control it fares worst against (`best_silo`, `vs_best_silo`, at `horizon`
    node-seconds; a silo control is also against itself, 1.0). A control that is not above the floor at T is no
    yardstick there (none left: None). So a cheap control (silo-4) shortens only its own comparisons.
    `node_s` and `above_floor`: the seed's smallest total and every run's above-floor reward up to it."""
    fl = floors(runs)
    out: dict[int, dict[str, Any]] = {}
    for seed in sorted(fl):
        mine = [r for r in runs if r["seed"] == seed]
        total = {r["config"]: r["node_s_per_round"][-1] for r in mine}
        silos = [r for r in mine if r["external"] == 0]
        best: dict[str, str | None] = {}
        ratio: dict[str, float | None] = {}
        horizon: dict[str, float | None] = {}
        for r in mine:
            c = r["config"]
            pairs = []
            for s in silos:
                t = min(total[c], total[s["config"]])
                base = above_floor(s, fl[seed], t)
                if s["config"] != c and base > 0:
                    pairs.append((above_floor(r, fl[seed], t) / base, s["config"], t))
            if r["external"] == 0:
                pairs.append((1.0, c, total[c]))
            worst = min(pairs) if pairs else None
            ratio[c], best[c], horizon[c] = worst if worst else (None, None, None)
        budget = min(total.values())
        out[seed] = {
            "floor": fl[seed],
            "node_s": budget,
            "above_floor": {r["config"]: above_floor(r, fl[seed], budget) for r in mine},
            "best_silo": best,
            "vs_best_silo": ratio,
            "horizon": horizon,
        }
    return out


def default_targets(runs: list[Run]) -> tuple[float, ...]:
    """Start accuracy + 5 and + 10 points, rounded to whole points (the start: the mean over runs)."""
    start = statistics.fmean(r["curve"][0]["accuracy"] for r in runs)
    return (round(start + 0.05, 2), round(start + 0.10, 2))


def spread(values: Sequence[float | None]) -> dict[str, float | None] | None:
    """min, median and max of per-seed values (None when there are none; a None in them makes all None)."""
    if not values:
        return None
    if any(v is None for v in values):
        return {"min": None, "median": None, "max": None}
    known = [v for v in values if v is not None]
    return {"min": min(known), "median": statistics.median(known), "max": max(known)}


def seconds_to(curve: list[dict[str, Any]], target: float) -> float | None:
    """The old `to-target`: node-seconds at the first evaluation after training began whose accuracy
    reaches `target` (None: never), not interpolated. The starting evaluation does not count: the silo's
    own time to its final accuracy is then never zero."""
    return next((p["node_s"] for p in curve if p["round"] > 0 and p["accuracy"] >= target - 1e-9), None)


def _mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


def _median(values: list[float | None]) -> float | None:
    """The median over seeds; None unless every seed has a value."""
    known = [v for v in values if v is not None]
    return statistics.median(known) if known and len(known) == len(values) else None


def summarize(runs: list[Run], configs: list[str], targets: Sequence[float] = ()) -> list[dict[str, Any]]:
    """Per configuration, means over seeds, and the per-seed measures against the silo (`silo`) and, on the
    cost axis, against the best silo control; `targets`: held-out accuracies to time."""
    silo = {r["seed"]: r for r in runs if r["config"] == "silo"}
    silo_reward = statistics.fmean(r["cumulative_reward"] for r in silo.values()) if silo else None
    cost = all("node_s_per_round" in r for r in runs)  # runs of before the cost axis: the old columns only
    summary = [_old(runs, c, silo, silo_reward) for c in configs]
    if not cost:
        return summary
    fl = floors(runs)
    equal = equal_node_seconds(runs)
    for s in summary:
        c = s["config"]
        mine = [r for r in runs if r["config"] == c]
        vs_best = [equal[r["seed"]]["vs_best_silo"][c] for r in mine]
        to_targets = []
        for t in targets:
            each = {x: [time_to(r, t, x) for r in mine] for x in ("node_s", "round", "tokens")}
            reached = sum(v is not None for v in each["node_s"])
            medians = {x: _median(v) for x, v in each.items()}
            to_targets.append({"target": t, "reached": reached, "by_seed": each, **medians})
        s |= {
            "above_floor": statistics.fmean(above_floor(r, fl[r["seed"]]) for r in mine),
            "above_floor_at_equal_node_s": statistics.fmean(equal[r["seed"]]["above_floor"][c] for r in mine),
            "vs_best_silo_at_equal_node_s_by_seed": vs_best,
            "vs_best_silo_at_equal_node_s": spread(vs_best)
            if any(equal[r["seed"]]["best_silo"][c] for r in mine)
            else None,
            "best_silo_by_seed": [equal[r["seed"]]["best_silo"][c] for r in mine],
            "horizon_by_seed": [equal[r["seed"]]["horizon"][c] for r in mine],
            "to_targets": to_targets,
            "tokens_per_node": statistics.fmean(r["tokens_per_round"][-1] for r in mine),
            "questions_per_round": statistics.fmean(_mean(r["questions_per_round"]) for r in mine),
        }
    return summary


def _old(runs: list[Run], c: str, silo: dict[int, Run], silo_reward: float | None) -> dict[str, Any]:
    """The columns of before the cost axis: against the silo of the same seed."""
    mine = [r for r in runs if r["config"] == c]
    reward = statistics.fmean(r["cumulative_reward"] for r in mine)
    ratios = []
    per_seed = []
    for r in mine:
        base = silo.get(r["seed"])
        if base is None:
            continue
        per_seed.append(r["cumulative_reward"] / base["cumulative_reward"] - 1.0)
        target = base["held_out_accuracy"]
        theirs, ours = seconds_to(base["curve"], target), seconds_to(r["curve"], target)
        ratios.append(None if ours is None or not theirs else ours / theirs)
    hit = [x for x in ratios if x is not None]
    families = mine[0]["curve"][-1]["by_task"]
    return {
        "config": c,
        "local": mine[0]["local"],
        "external": mine[0]["external"],
        "reward_vs_silo_by_seed": per_seed,
        "cumulative_reward": reward,
        "reward_sd": statistics.stdev(r["cumulative_reward"] for r in mine) if len(mine) > 1 else 0.0,
        "vs_silo": (reward / silo_reward - 1.0) if silo_reward else None,
        "held_out_accuracy": statistics.fmean(r["held_out_accuracy"] for r in mine),
        "held_out_by_task": {f: statistics.fmean(r["curve"][-1]["by_task"][f] for r in mine) for f in families},
        "node_s": statistics.fmean(r["node_s"] for r in mine),
        "to_target_ratios": ratios,
        "to_target_median": statistics.median(hit) if len(hit) == len(ratios) and ratios else None,
        "generated_tokens_per_node_round": statistics.fmean(r["generated_tokens_per_node_round"] for r in mine),
        "seconds_per_node_round": {
            part: statistics.fmean(r["seconds_per_node_round"][part] for r in mine)
            for part in mine[0]["seconds_per_node_round"]
        },
        "external_groups_per_node_round": statistics.fmean(r["external_groups_per_node_round"] for r in mine),
    }


def weak_strong(runs: list[Run], configs: list[str]) -> list[dict[str, Any]]:
    """The specialists world, per configuration: the nodes' weak families' mean held-out accuracy and their
    strong families' at the start and at the end, each node's (means over seeds), and the means over nodes
    and seeds."""
    rows = []
    for c in configs:
        mine = [r for r in runs if r["config"] == c and "weak" in r["curve"][0]]
        if not mine:
            continue
        nodes = len(mine[0]["curve"][-1]["weak_by_node"])
        rows.append(
            {
                "config": c,
                "weak_start": statistics.fmean(r["curve"][0]["weak"] for r in mine),
                "weak": statistics.fmean(r["curve"][-1]["weak"] for r in mine),
                "strong_start": statistics.fmean(r["curve"][0]["strong"] for r in mine),
                "strong": statistics.fmean(r["curve"][-1]["strong"] for r in mine),
                "weak_by_node": [
                    statistics.fmean(r["curve"][-1]["weak_by_node"][k] for r in mine) for k in range(nodes)
                ],
                "strong_by_node": [
                    statistics.fmean(r["curve"][-1]["strong_by_node"][k] for r in mine) for k in range(nodes)
                ],
            }
        )
    return rows


def _against(run: Run, silo: Run) -> dict[str, Any]:
    """(a) and (b) of `run` against `silo`; no (a) where the silo ended no higher than the run started (there
    is nothing to reach: the run would be there at 0 node-seconds), `flat` says so."""
    target = silo["curve"][-1]["weak"]
    flat = target <= run["curve"][0]["weak"] + 1e-12
    seconds = None if flat else time_to(run, target, "node_s", "weak")
    return {
        "silo": silo["config"],
        "silo_weak_start": silo["curve"][0]["weak"],
        "silo_weak": target,
        "silo_node_s": silo["node_s"],
        "flat": flat,
        "node_s_to_silo_weak": seconds,
        "rounds_to_silo_weak": None if flat else time_to(run, target, "round", "weak"),
        "time_ratio": None if seconds is None else seconds / silo["node_s"],
        "points": 100 * (run["curve"][-1]["weak"] - target),
    }


def specialists(runs: list[Run], matched: str = "silo") -> list[dict[str, Any]]:
    """The issue's done-when measures for the specialists world, per seed and swarm configuration (J > 0):
    (a) node-seconds for the swarm to reach the matched silo's final weak-family held-out accuracy (linear
    between evaluations), over the silo's total node-seconds (bar <= 0.5; none where the silo's weak families
    ended no higher than the swarm's started); (b) the swarm's final weak-family
    accuracy minus the silo's, in points (bar >= 15). Against `matched` and against the best silo control
    (the silo configuration with the highest final weak-family accuracy of that seed)."""
    rows = []
    for seed in sorted({r["seed"] for r in runs}):
        mine = [r for r in runs if r["seed"] == seed and "weak" in r["curve"][0]]
        silos = [r for r in mine if r["external"] == 0]
        base = next((r for r in silos if r["config"] == matched), None)
        best = max(silos, key=lambda r: r["curve"][-1]["weak"], default=None)
        for r in mine:
            if r["external"] == 0:
                continue
            rows.append(
                {
                    "config": r["config"],
                    "seed": seed,
                    "weak": r["curve"][-1]["weak"],
                    "matched": _against(r, base) if base is not None else None,
                    "best": _against(r, best) if best is not None else None,
                }
            )
    return rows
