"""`swarmnode bench sapo`: does sharing pay? N real nodes (real learner, real validation chain) in one process
over the in-memory transport, in lockstep round by round, under sampling configurations with the same number
of rounds and several seeds:

- silo   I = 8, J = 0: each node trains on its own 8 question groups;
- 4/4    I = 4, J = 4: the SAPO paper's split, peers' groups replace half of the node's own;
- 8/8    I = 8, J = 8: peers' groups come on top of the node's own;
- 2/6, 4/12 (asked for by name): a node that generates a quarter or a half of the silo's and takes more;
- variants of these with the machinery for peers' rollouts: `-plain` (all of it off: no importance
  weights, uniform sampler), `-fam` (family-aware sampler), `-tis` (truncated importance weights from the
  authors' behaviour log-probs, cap 2: the node's default), `-mask` (tokens with
  pi / mu outside [1/2, 2] masked), `-gate` (peers' completions under a mean log-prob of -1.5 per token
  over their worst run of 6 tokens under the node's own policy dropped; the node's default is -5),
  `-nodef` (the defenses against poisoning and sybils off: any text around the answer, no likelihood gate,
  no seniority; the default has them on).

`--hetero`: a swarm of different nodes (N >= 4): node 2 runs a smaller model (another size: built once
by `build_tiny` into the bench's folder), the last node runs at half speed (a round every other lockstep
round, so its rollouts come from an older policy), the others run the embedded model; the measures are
over the full-speed embedded-model nodes (silo: the same nodes alone).

Two worlds: `add` (the embedded tiny-add model on one task: dense reward) and `mix` (the embedded tiny-mix
model on six families whose starting accuracies differ: add, sub, max, count at 30-50% held-out greedy,
sort and mul sparse at 13% and 5%: SAPO's conditions).

Reported per configuration (means over nodes, then over seeds): cumulative reward (the sum over rounds of
the mean reward of the node's own completions, as in the paper); held-out greedy accuracy, per family, at
fixed rounds; node-seconds (the node's own wall time in its rounds: generation, sharing, training) and
node-seconds to target (to reach the silo's final held-out accuracy of the same seed; swarm / silo is the
headline); a PNG of reward and accuracy against rounds and against node-seconds. Runs of different
(configuration, seed) pairs go to separate processes, one torch thread each.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from swarmnode.bench.report import format_table, write_json
from swarmnode.bench.world import DEFENSES_OFF, WORLDS, quiet_node, world_overrides

SPLITS: dict[str, tuple[int, int]] = {"silo": (8, 0), "4/4": (4, 4), "8/8": (8, 8), "2/6": (2, 6), "4/12": (4, 12)}
VARIANTS: dict[str, tuple[str, ...]] = {
    "": (),
    "-plain": ("train.offpolicy_cap=0", "swarm.sampler=uniform"),
    "-fam": ("swarm.sampler=family-aware",),
    "-tis": ("train.offpolicy_cap=2.0",),
    "-mask": ("train.offpolicy_mask=2.0",),
    "-gate": ("train.peer_min_logprob=-1.5",),
    "-fam-tis": ("swarm.sampler=family-aware", "train.offpolicy_cap=2.0"),
    "-nodef": DEFENSES_OFF,
    "-inline": ("swarm.background_sharing=false",),
}
CONFIGS: dict[str, tuple[int, int, tuple[str, ...]]] = {
    f"{split}{suffix}": (*SPLITS[split], settings)
    for split in SPLITS
    for suffix, settings in VARIANTS.items()
    if split != "silo" or not suffix
}
"""Name -> (I, J, settings): the splits, and each swarm split with each variant of the machinery."""
SMALL_MODEL = "tiny-mix-small"
"""The heterogeneous swarm's other model: the tiny-mix recipe at a smaller size (hidden 96, 3 layers)."""
COLUMNS = (
    "config I J cum.reward sd vs-silo worst-seed held-out node-s to-target gen-tok/round s/round(gen+share+train)"
).split()


def run_one(
    world_name: str,
    config: str,
    seed: int,
    nodes: int,
    rounds: int,
    eval_questions: int,
    eval_every: int,
    root: str,
    extra: tuple[str, ...] = (),
    small_model: str = "",
) -> dict[str, Any]:
    """One (configuration, seed) run. `small_model`: a path makes the swarm heterogeneous (see the module)."""
    from swarmnode.swarm.transports.memory import MemoryHub, MemoryTransport

    world = WORLDS[world_name]
    local, external, settings = CONFIGS[config]
    hub = MemoryHub()
    members = []
    hetero = bool(small_model)
    slow = nodes - 1 if hetero else -1
    measured = [k for k in range(nodes) if not hetero or k not in (2, slow)]
    for k in range(nodes):
        name = f"{world_name}-{config.replace('/', '-')}-s{seed}-n{k}"
        sets = [
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
            *world_overrides(world),
            *settings,
            *extra,
            *([f"model.name={small_model}"] if hetero and k == 2 else []),
        ]
        members.append(quiet_node(sets, None if external == 0 else MemoryTransport(hub)))
    start = time.perf_counter()
    reward = [0.0] * rounds
    node_s = [0.0] * nodes
    watched = [members[k] for k in measured]
    share = 1.0 / len(measured)
    generated = external_used = 0
    split = {"generate_s": 0.0, "share_s": 0.0, "train_s": 0.0}
    curve: list[dict[str, Any]] = []

    def evaluate(round_: int) -> None:
        rows = [node.evaluate() for node in watched]
        families = rows[0]["eval_by_task"]
        curve.append(
            {
                "round": round_,
                "node_s": statistics.fmean(node_s[k] for k in measured),
                "accuracy": statistics.fmean(r["eval_greedy_accuracy"] for r in rows),
                "by_task": {f: statistics.fmean(r["eval_by_task"][f] for r in rows) for f in families},
            }
        )

    evaluate(0)
    for r in range(rounds):
        for k, node in enumerate(members):  # in lockstep: every node's round r before anyone's r + 1
            if (k == slow and r % 2) or (external == 0 and k not in measured):
                continue  # the half-speed node; a silo's unmeasured nodes change nothing
            row = node.step()
            assert row is not None
            if k not in measured:
                continue
            reward[r] += row["mean_reward"] * share
            node_s[k] += row["round_s"]
            for part in split:
                split[part] += row[part] * share / rounds  # type: ignore[literal-required]
            generated += row["generated_tokens"]
            external_used += row["external_groups"]
        if (r + 1) % eval_every == 0 or r + 1 == rounds:
            evaluate(r + 1)
    for node in members:
        node.close()
    return {
        "world": world_name,
        "config": config,
        "seed": seed,
        "local": local,
        "external": external,
        "hetero": hetero,
        "cumulative_reward": sum(reward),
        "reward_per_round": reward,
        "curve": curve,
        "held_out_accuracy": curve[-1]["accuracy"],
        "node_s": statistics.fmean(node_s[k] for k in measured),
        "generated_tokens_per_node_round": generated * share / rounds,
        "seconds_per_node_round": split,
        "external_groups_per_node_round": external_used * share / rounds,
        "wall_s": time.perf_counter() - start,
    }


def seconds_to(curve: list[dict[str, Any]], target: float) -> float | None:
    """Node-seconds at the first evaluation after training began whose accuracy reaches `target` (None:
    never). The starting model's evaluation does not count: the silo's own time to its final accuracy is
    then never zero, even where training did not improve on the start."""
    return next((p["node_s"] for p in curve if p["round"] > 0 and p["accuracy"] >= target - 1e-9), None)


def summarize(runs: list[dict[str, Any]], configs: list[str]) -> list[dict[str, Any]]:
    silo = {r["seed"]: r for r in runs if r["config"] == "silo"}
    silo_reward = statistics.fmean(r["cumulative_reward"] for r in silo.values()) if silo else None
    summary = []
    for c in configs:
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
        reached = [x for x in ratios if x is not None]
        families = mine[0]["curve"][-1]["by_task"]
        summary.append(
            {
                "config": c,
                "local": CONFIGS[c][0],
                "external": CONFIGS[c][1],
                "reward_vs_silo_by_seed": per_seed,
                "cumulative_reward": reward,
                "reward_sd": statistics.stdev(r["cumulative_reward"] for r in mine) if len(mine) > 1 else 0.0,
                "vs_silo": (reward / silo_reward - 1.0) if silo_reward else None,
                "held_out_accuracy": statistics.fmean(r["held_out_accuracy"] for r in mine),
                "held_out_by_task": {f: statistics.fmean(r["curve"][-1]["by_task"][f] for r in mine) for f in families},
                "node_s": statistics.fmean(r["node_s"] for r in mine),
                "to_target_ratios": ratios,
                "to_target_median": statistics.median(reached) if len(reached) == len(ratios) and ratios else None,
                "generated_tokens_per_node_round": statistics.fmean(r["generated_tokens_per_node_round"] for r in mine),
                "seconds_per_node_round": {
                    part: statistics.fmean(r["seconds_per_node_round"][part] for r in mine)
                    for part in mine[0]["seconds_per_node_round"]
                },
                "external_groups_per_node_round": statistics.fmean(r["external_groups_per_node_round"] for r in mine),
            }
        )
    return summary


def plot(runs: list[dict[str, Any]], configs: list[str], path: Path, title: str) -> None:
    """Reward per round (10-round mean) and held-out accuracy, against rounds and against node-seconds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    for c in configs:
        mine = [r for r in runs if r["config"] == c]
        rounds = len(mine[0]["reward_per_round"])
        reward = [statistics.fmean(r["reward_per_round"][i] for r in mine) for i in range(rounds)]
        smooth = [statistics.fmean(reward[max(0, i - 9) : i + 1]) for i in range(rounds)]
        seconds = statistics.fmean(r["node_s"] for r in mine) / rounds  # node-seconds per round, on average
        points = len(mine[0]["curve"])
        acc = [statistics.fmean(r["curve"][i]["accuracy"] for r in mine) for i in range(points)]
        at = [mine[0]["curve"][i]["round"] for i in range(points)]
        at_s = [statistics.fmean(r["curve"][i]["node_s"] for r in mine) for i in range(points)]
        axes[0][0].plot(range(1, rounds + 1), smooth, label=c)
        axes[0][1].plot(at, acc, marker="o", label=c)
        axes[1][0].plot([seconds * (i + 1) for i in range(rounds)], smooth, label=c)
        axes[1][1].plot(at_s, acc, marker="o", label=c)
    for ax, (x, y) in zip(
        [a for row in axes for a in row],
        [("round", "own reward (10-round mean)"), ("round", "held-out greedy accuracy")] * 1
        + [("node-seconds", "own reward (10-round mean)"), ("node-seconds", "held-out greedy accuracy")],
        strict=True,
    ):
        ax.set_xlabel(x)
        ax.set_ylabel(y)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def small_model(folder: Path) -> Path:
    """The heterogeneous swarm's smaller model, built once into `folder` (about a minute on one core)."""
    if not (folder / "model.safetensors").exists():
        from swarmnode.models.build_tiny import MIX_FAMILIES, Recipe, build

        recipe = Recipe(families=MIX_FAMILIES, steps=900, hidden=96, layers=3, heads=4, intermediate=384, seed=4321)
        print(f"building the smaller model for --hetero into {folder}", flush=True)
        build(folder, recipe.steps, quiet=True, recipe=recipe)
    return folder


def run(
    world: str,
    configs: list[str],
    seeds: list[int],
    nodes: int,
    rounds: int,
    eval_questions: int,
    eval_every: int,
    jobs: int,
    json_path: Path,
    extra: tuple[str, ...] = (),
    hetero: bool = False,
) -> list[dict[str, Any]]:
    """`extra`: KEY=VALUE settings given to every node of every configuration."""
    runs: list[dict[str, Any]] = []
    small = str(small_model(json_path.parent / SMALL_MODEL)) if hetero else ""
    with tempfile.TemporaryDirectory(prefix="swarmnode-bench-sapo-") as root:
        with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
            args = (nodes, rounds, eval_questions, eval_every, root, extra, small)
            futures = [pool.submit(run_one, world, c, s, *args) for s in seeds for c in configs]
            for future in futures:
                runs.append(future.result())
                r = runs[-1]
                print(
                    f"  {r['config']:5s} seed {r['seed']}: cumulative reward {r['cumulative_reward']:.1f}, "
                    f"held-out {r['held_out_accuracy']:.1%}, {r['node_s']:.0f} node-s ({r['wall_s']:.0f} s)",
                    flush=True,
                )
    summary = summarize(runs, configs)
    print(
        f"sapo bench, world {world} ({WORLDS[world].about}): {nodes} nodes"
        + (" (heterogeneous: see --hetero; measured over the full-speed embedded-model nodes)" if hetero else "")
        + f", {rounds} rounds, seeds {seeds}, "
        f"held-out greedy accuracy on {eval_questions} questions every {eval_every} rounds; means over nodes "
        "and seeds; 'to target': node-seconds to the silo's final held-out accuracy, / silo's (median over seeds)"
    )
    print(
        format_table(
            COLUMNS,
            [
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
            ],
        )
    )
    families = list(summary[0]["held_out_by_task"])
    if len(families) > 1:
        print("held-out greedy accuracy per family at the end:")
        print(
            format_table(
                ("config", *families),
                [(s["config"], *(f"{s['held_out_by_task'][f]:.1%}" for f in families)) for s in summary],
            )
        )
    params = {
        "world": world,
        "settings": list(extra),
        "nodes": nodes,
        "rounds": rounds,
        "seeds": seeds,
        "eval_questions": eval_questions,
        "eval_every": eval_every,
        "hetero": hetero,
    }
    write_json(json_path, "sapo", params, summary + [{"run": r} for r in runs])
    png = json_path.with_suffix(".png")
    plot(runs, configs, png, f"bench sapo, world {world}: {nodes} nodes, seeds {seeds} (means)")
    print(f"wrote {json_path} and {png}")
    return summary
