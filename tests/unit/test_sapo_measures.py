"""`bench sapo`'s measures on hand-made runs: linear interpolation to a target, the floor, above-floor reward
at equal node-seconds with the crossing round pro rata, the best silo control, and the specialists world's
weak / strong split and done-when measures."""

from __future__ import annotations

from typing import Any

import pytest

from swarmnode.bench import sapo_measures as m
from swarmnode.bench.world import WORLDS, world_overrides


def run(
    config: str,
    seed: int,
    rewards: list[float],
    seconds: list[float],
    external: int = 8,
    curve: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A run with cumulative node-seconds `seconds` per round (tokens: 100 a round)."""
    points = curve or [
        {"round": 0, "node_s": 0.0, "tokens": 0.0, "accuracy": 0.3, "by_task": {"add": 0.3}},
        {
            "round": len(rewards),
            "node_s": seconds[-1],
            "tokens": 100.0 * len(rewards),
            "accuracy": 0.4,
            "by_task": {"add": 0.4},
        },
    ]
    return {
        "config": config,
        "seed": seed,
        "local": 8,
        "external": external,
        "reward_per_round": rewards,
        "node_s_per_round": seconds,
        "tokens_per_round": [100.0 * (i + 1) for i in range(len(rewards))],
        "questions_per_round": [8.0] * len(rewards),
        "cumulative_reward": sum(rewards),
        "curve": points,
        "held_out_accuracy": points[-1]["accuracy"],
        "node_s": seconds[-1],
        "generated_tokens_per_node_round": 100.0,
        "seconds_per_node_round": {"generate_s": 0.1, "share_s": 0.0, "train_s": 0.1},
        "external_groups_per_node_round": 0.0,
    }


def test_crossing_is_linear_between_points_and_none_when_never_reached() -> None:
    xs, ys = [0.0, 10.0, 20.0, 30.0], [0.30, 0.34, 0.42, 0.50]
    assert m.crossing(xs, ys, 0.38) == pytest.approx(15.0)  # halfway from 0.34 to 0.42
    assert m.crossing(xs, ys, 0.42) == pytest.approx(20.0)
    assert m.crossing(xs, ys, 0.30) == 0.0  # already there at the start
    assert m.crossing(xs, ys, 0.51) is None
    # the first upward crossing, not a later one after a dip
    assert m.crossing([0, 10, 20, 30], [0.3, 0.5, 0.2, 0.6], 0.4) == pytest.approx(5.0)


def test_time_to_reads_the_curve_against_node_seconds_rounds_and_tokens() -> None:
    curve = [
        {"round": 0, "node_s": 0.0, "tokens": 0.0, "accuracy": 0.2},
        {"round": 10, "node_s": 40.0, "tokens": 4000.0, "accuracy": 0.3},
        {"round": 20, "node_s": 100.0, "tokens": 8000.0, "accuracy": 0.5},
    ]
    r = run("8/8", 0, [0.1] * 20, [5.0 * (i + 1) for i in range(20)], curve=curve)
    assert m.time_to(r, 0.4) == pytest.approx(70.0)
    assert m.time_to(r, 0.4, "round") == pytest.approx(15.0)
    assert m.time_to(r, 0.4, "tokens") == pytest.approx(6000.0)


def test_floor_is_the_mean_round_one_reward_over_the_configurations_of_a_seed() -> None:
    runs = [
        run("silo", 0, [0.2, 0.5], [1.0, 2.0], external=0),
        run("8/8", 0, [0.4, 0.9], [2.0, 4.0]),
        run("silo", 1, [0.1, 0.5], [1.0, 2.0], external=0),
    ]
    assert m.floors(runs) == pytest.approx({0: 0.3, 1: 0.1})
    assert m.above_floor(runs[1], 0.3) == pytest.approx(0.1 + 0.6)


def test_equal_node_seconds_counts_the_crossing_round_pro_rata() -> None:
    r = run("8/8", 0, [0.5, 0.7, 0.9], [2.0, 4.0, 6.0])
    # up to 5 node-seconds: rounds 1 and 2 whole, half of round 3
    assert m.above_floor(r, 0.5, 5.0) == pytest.approx(0.0 + 0.2 + 0.5 * 0.4)
    assert m.above_floor(r, 0.5, 6.0) == pytest.approx(0.0 + 0.2 + 0.4)
    assert m.above_floor(r, 0.5, 1.0) == pytest.approx(0.0)  # half of round 1, which is at the floor
    assert m.above_floor(r, 0.5) == pytest.approx(0.6)


def test_equal_node_seconds_compares_pair_by_pair_against_the_control_it_fares_worst_against() -> None:
    runs = [
        run("silo", 0, [0.2, 0.4, 0.6, 0.8], [1.0, 2.0, 3.0, 4.0], external=0),
        run("silo-16", 0, [0.2, 0.8], [2.0, 4.0], external=0),
        run("silo-4", 0, [0.2, 0.6], [0.5, 1.0], external=0),  # cheap: shortens only its own comparisons
        run("8/8", 0, [0.2, 0.6, 1.0], [2.0, 4.0, 6.0]),
    ]
    e = m.equal_node_seconds(runs)[0]
    assert e["floor"] == pytest.approx(0.2)
    assert e["node_s"] == 1.0 and e["above_floor"]["silo"] == pytest.approx(0.0)  # the seed's cheapest total
    # 8/8 against silo up to 4 node-seconds: 0.4 / 1.2; against silo-16 up to 4: 0.4 / 0.6; against silo-4 up
    # to 1 node-second (half of 8/8's first round, at the floor): 0 / 0.4
    assert e["best_silo"]["8/8"] == "silo-4" and e["horizon"]["8/8"] == 1.0
    assert e["vs_best_silo"]["8/8"] == pytest.approx(0.0)
    assert e["vs_best_silo"]["silo-4"] == pytest.approx(1.0)  # against itself: the others are below it at 1
    without_cheap = m.equal_node_seconds([r for r in runs if r["config"] != "silo-4"])[0]
    assert without_cheap["best_silo"]["8/8"] == "silo" and without_cheap["horizon"]["8/8"] == 4.0
    assert without_cheap["vs_best_silo"]["8/8"] == pytest.approx(0.4 / 1.2)
    assert without_cheap["vs_best_silo"]["silo"] == pytest.approx(1.0)  # itself; silo-16 (0.6 / 1.2) below it
    assert without_cheap["vs_best_silo"]["silo-16"] == pytest.approx(0.5)


def test_best_silo_is_among_the_silo_controls_only() -> None:
    runs = [
        run("silo", 0, [0.1], [1.0], external=0),
        run("silo-4", 0, [0.1], [1.0], external=0),
        run("8/8", 0, [0.1], [1.0]),
    ]
    assert m.best_silo(runs, {"silo": 1.0, "silo-4": 2.0, "8/8": 9.0}) == "silo-4"
    assert m.best_silo(runs[2:], {"8/8": 9.0}) is None


def test_no_ratio_where_the_best_silo_is_not_above_the_floor() -> None:
    runs = [run("silo", 0, [0.5, 0.4], [1.0, 2.0], external=0), run("8/8", 0, [0.5, 0.9], [1.0, 2.0])]
    assert m.equal_node_seconds(runs)[0]["vs_best_silo"]["8/8"] is None


def test_summary_reports_the_spread_over_seeds_and_the_targets() -> None:
    runs = []
    for seed, gain in ((0, 0.5), (1, 1.0), (2, 2.0)):
        runs.append(run("silo", seed, [0.2, 0.4], [1.0, 2.0], external=0))
        runs.append(run("8/8", seed, [0.2, 0.2 + 0.2 * gain], [1.0, 2.0]))
    summary = {s["config"]: s for s in m.summarize(runs, ["silo", "8/8"], (0.35, 0.45))}
    assert summary["8/8"]["vs_best_silo_at_equal_node_s"] == pytest.approx({"min": 0.5, "median": 1.0, "max": 2.0})
    near, far = summary["8/8"]["to_targets"]
    assert near["node_s"] == pytest.approx(1.0)  # 0.3 -> 0.4 over 2 node-seconds
    assert near["round"] == pytest.approx(1.0)
    assert near["tokens"] == pytest.approx(100.0)
    assert far["node_s"] is None and far["reached"] == 0
    assert m.default_targets(runs) == (0.35, 0.4)
    runs[0]["curve"][0]["accuracy"] = 0.3 + 6 * 0.0131  # the start is now 0.3131: whole points
    assert m.default_targets(runs) == (0.36, 0.41)


def specialist_curve(weak: list[float], strong: float, seconds: list[float]) -> list[dict[str, Any]]:
    return [
        {
            "round": 10 * i,
            "node_s": s,
            "tokens": 0.0,
            "accuracy": (w + strong) / 2,
            "by_task": {},
            "weak": w,
            "strong": strong,
            "weak_by_node": [w, w],
            "strong_by_node": [strong, strong],
        }
        for i, (w, s) in enumerate(zip(weak, seconds, strict=True))
    ]


def test_specialists_measures_against_the_matched_and_the_best_silo() -> None:
    silo = run(
        "silo", 0, [0.1] * 3, [10.0, 20.0, 40.0], external=0, curve=specialist_curve([0.1, 0.12, 0.2], 0.5, [0, 20, 40])
    )
    silo_16 = run(
        "silo-16",
        0,
        [0.1] * 3,
        [20.0, 40.0, 80.0],
        external=0,
        curve=specialist_curve([0.1, 0.2, 0.3], 0.5, [0, 40, 80]),
    )
    swarm = run("8/8", 0, [0.1] * 3, [20.0, 40.0, 80.0], curve=specialist_curve([0.1, 0.3, 0.5], 0.6, [0, 40, 80]))
    (row,) = m.specialists([silo, silo_16, swarm])
    a = row["matched"]
    assert a["silo"] == "silo" and a["silo_weak"] == pytest.approx(0.2)
    assert a["node_s_to_silo_weak"] == pytest.approx(20.0)  # 0.1 -> 0.3 over 0..40: 0.2 at 20
    assert a["time_ratio"] == pytest.approx(20.0 / 40.0)
    assert a["points"] == pytest.approx(30.0)
    b = row["best"]
    assert b["silo"] == "silo-16"  # the highest final weak-family accuracy among the silos
    assert b["node_s_to_silo_weak"] == pytest.approx(40.0)
    assert b["time_ratio"] == pytest.approx(40.0 / 80.0)
    assert b["points"] == pytest.approx(20.0)


def test_no_time_ratio_where_the_silo_ends_where_the_swarm_started() -> None:
    silo = run("silo", 0, [0.1] * 2, [10.0, 20.0], external=0, curve=specialist_curve([0.2, 0.15], 0.5, [0, 20]))
    swarm = run("8/8", 0, [0.1] * 2, [20.0, 40.0], curve=specialist_curve([0.2, 0.4], 0.6, [0, 40]))
    (row,) = m.specialists([silo, swarm])
    assert row["matched"]["flat"] and row["matched"]["time_ratio"] is None  # not 0 node-seconds
    assert row["matched"]["points"] == pytest.approx(25.0)


def test_weak_strong_split_means_over_seeds_per_node() -> None:
    runs = []
    for seed, w in ((0, 0.1), (1, 0.3)):
        curve = specialist_curve([0.05, w], 0.6, [0.0, 10.0])
        curve[-1]["weak_by_node"] = [w, 0.0]
        runs.append(run("8/8", seed, [0.1], [10.0], curve=curve))
    (row,) = m.weak_strong(runs, ["8/8"])
    assert row["weak"] == pytest.approx(0.2)
    assert row["weak_start"] == pytest.approx(0.05)
    assert row["weak_by_node"] == pytest.approx([0.2, 0.0])
    assert row["strong"] == pytest.approx(0.6)


def test_the_specialists_world_gives_even_and_odd_nodes_mirrored_checkpoints() -> None:
    world = WORLDS["specialists"]
    assert world.weak_families(0) == ("max", "count") and world.weak_families(3) == ("add", "sub")
    assert world.weak_families(2) == world.weak_families(0)
    assert "model.name=/b" in world_overrides(world, 1, ("/a", "/b"))
    assert "model.name=/a" in world_overrides(world, 2, ("/a", "/b"))
    assert "model.name=swarmnode/tiny-mix" in world_overrides(WORLDS["mix"])  # bench poison's call
    assert WORLDS["mix"].weak_families(1) == ()
    with pytest.raises(ValueError, match="build them"):
        world_overrides(world, 0)


def test_the_tables_show_the_headline_and_the_bars() -> None:
    from swarmnode.bench import sapo_report

    runs = [run("silo", 0, [0.2, 0.4], [1.0, 2.0], external=0), run("8/8", 0, [0.2, 0.6], [1.0, 2.0])]
    summary = m.summarize(runs, ["silo", "8/8"], (0.35,))
    table = sapo_report.cost_table(summary, (0.35,))
    assert "vs best silo @ equal node-s" in table and "2.00x" in table.splitlines()[-1]
    silo = run("silo", 0, [0.1] * 2, [10.0, 20.0], external=0, curve=specialist_curve([0.1, 0.2], 0.5, [0, 20]))
    swarm = run("8/8", 0, [0.1] * 2, [20.0, 40.0], curve=specialist_curve([0.1, 0.5], 0.6, [0, 40]))
    line = sapo_report.specialists_table(m.specialists([silo, swarm])).splitlines()[-1]
    assert "0.50x ok" in line and "+30.0 ok" in line  # the silo's 20% at 10 of its 20 node-seconds
