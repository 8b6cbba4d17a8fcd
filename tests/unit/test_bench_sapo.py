"""`bench sapo`'s measures on hand-made runs: node-seconds to the silo's final accuracy, ratios per seed."""

from __future__ import annotations

from typing import Any

from swarmnode.bench import sapo


def fake_run(config: str, seed: int, curve: list[tuple[int, float, float]], reward: float) -> dict[str, Any]:
    points = [{"round": r, "node_s": s, "accuracy": a, "by_task": {"add": a, "rev": a / 2}} for r, s, a in curve]
    return {
        "config": config,
        "seed": seed,
        "cumulative_reward": reward,
        "curve": points,
        "held_out_accuracy": points[-1]["accuracy"],
        "node_s": points[-1]["node_s"],
        "generated_tokens_per_node_round": 100.0 if config == "4/4" else 200.0,
        "external_groups_per_node_round": 0.0 if config == "silo" else 4.0,
        "seconds_per_node_round": {"generate_s": 0.5 if config == "4/4" else 1.0, "share_s": 0.0, "train_s": 1.0},
    }


def test_seconds_to_target_skips_the_starting_model() -> None:
    curve = [{"round": 0, "node_s": 0.0, "accuracy": 0.5}, {"round": 10, "node_s": 4.0, "accuracy": 0.4}]
    curve.append({"round": 20, "node_s": 9.0, "accuracy": 0.5})
    assert sapo.seconds_to(curve, 0.5) == 9.0  # not 0: the start does not count
    assert sapo.seconds_to(curve, 0.45) == 9.0 and sapo.seconds_to(curve, 0.4) == 4.0
    assert sapo.seconds_to(curve, 0.6) is None


def test_summary_ratios_are_per_seed_against_that_seeds_silo() -> None:
    runs = [
        # seed 0: silo reaches its final 0.4 at 20 s; 4/4 reaches 0.4 at 10 s (0.5x); 8/8 at 30 s (1.5x)
        fake_run("silo", 0, [(0, 0, 0.2), (10, 10, 0.3), (20, 20, 0.4)], 10.0),
        fake_run("4/4", 0, [(0, 0, 0.2), (10, 5, 0.3), (20, 10, 0.45)], 16.0),
        fake_run("8/8", 0, [(0, 0, 0.2), (10, 15, 0.3), (20, 30, 0.4)], 12.0),
        # seed 1: silo's final 0.5 first at 10 s (then 0.45); 4/4 at 8 s (0.8x); 8/8 never (so no median)
        fake_run("silo", 1, [(0, 0, 0.2), (10, 10, 0.5), (20, 20, 0.5)], 14.0),
        fake_run("4/4", 1, [(0, 0, 0.2), (10, 4, 0.3), (20, 8, 0.55)], 20.0),
        fake_run("8/8", 1, [(0, 0, 0.2), (10, 15, 0.3), (20, 30, 0.35)], 13.0),
    ]
    silo, split, additive = sapo.summarize(runs, ["silo", "4/4", "8/8"])
    assert silo["to_target_ratios"] == [1.0, 1.0] and silo["to_target_median"] == 1.0
    assert split["to_target_ratios"] == [0.5, 0.8] and split["to_target_median"] == 0.65
    assert additive["to_target_ratios"] == [1.5, None] and additive["to_target_median"] is None
    assert split["vs_silo"] == (18.0 / 12.0 - 1.0)  # mean cumulative reward 18 against the silo's 12
    assert split["reward_vs_silo_by_seed"] == [16.0 / 10.0 - 1.0, 20.0 / 14.0 - 1.0]  # the worst seed shows
    assert split["held_out_by_task"] == {"add": 0.5, "rev": 0.25}  # final points, mean over seeds
    assert split["generated_tokens_per_node_round"] == 100.0
    assert split["seconds_per_node_round"] == {"generate_s": 0.5, "share_s": 0.0, "train_s": 1.0}


def test_named_configurations_carry_their_settings() -> None:
    assert sapo.CONFIGS["silo"] == (8, 0, ())
    assert sapo.CONFIGS["8/8"] == (8, 8, ())  # the node's own defaults
    assert sapo.CONFIGS["8/8-plain"] == (8, 8, ("train.offpolicy_cap=0", "swarm.sampler=uniform"))
    assert sapo.CONFIGS["4/4-fam-tis"][2] == ("swarm.sampler=family-aware", "train.offpolicy_cap=2.0")
    assert "silo-fam" not in sapo.CONFIGS
