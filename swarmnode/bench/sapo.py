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
  no seniority; the default has them on);
- silo controls: `silo-4`, `silo-16` (another I) and `silo-rt` (the short-run retune, RETUNE);
- taking what the receiver lacks: `8/8-rx` (peers' groups measured against the node's own recent reward on
  their family, ranked by use), `8/8-more` (24 candidates fetched for J = 8), `8/8-budget` (a fixed budget of
  8 groups trained a round, own questions adaptive down to 2, RETUNE), `pool` (all of them).

`--hetero`: a swarm of different nodes (N >= 4): node 2 runs a smaller model (another size: built once
by `build_tiny` into the bench's folder), the last node runs at half speed (a round every other lockstep
round, so its rollouts come from an older policy), the others run the embedded model; the measures are
over the full-speed embedded-model nodes (silo: the same nodes alone).

Three worlds: `add` (the embedded tiny-add model on one task: dense reward), `mix` (the embedded tiny-mix
model on six families whose starting accuracies differ: add, sub, max, count at 30-50% held-out greedy,
sort and mul sparse at 13% and 5%: SAPO's conditions) and `specialists` (volunteers bring different
checkpoints, built once into the bench's folder: even nodes strong on add and sub, odd nodes on max and count,
every node drawing all four; measured per node on its weak families and its strong ones, and against the
silo by the issue's bars: see `sapo_measures.specialists`).

Reported per configuration (means over nodes, then over seeds): cumulative reward (the sum over rounds of
the mean reward of the node's own completions, as in the paper); held-out greedy accuracy, per family, at
fixed rounds; node-seconds (the node's own wall time in its rounds: generation, sharing, training) and
node-seconds to target (to reach the silo's final held-out accuracy of the same seed; swarm / silo is the
headline); the cost axis (`sapo_measures`: own reward above each seed's floor at equal node-seconds against
the best silo control, interpolated node-seconds, rounds and tokens to fixed accuracies); a PNG of reward and
accuracy against rounds, node-seconds and generated tokens. Runs of different (configuration, seed) pairs go
to separate processes, one torch thread each.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from swarmnode.bench import sapo_measures as measures
from swarmnode.bench import sapo_report as report
from swarmnode.bench.report import format_table, write_json
from swarmnode.bench.sapo_plot import plot
from swarmnode.bench.world import DEFENSES_OFF, WORLDS, built, built_models, quiet_node, world_overrides

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
RETUNE = ("train.warmup_updates=10",)
"""Settings retuned for short runs: the learning rate's warm-up over 10 updates (the node's default is 50)."""
CONFIGS |= {
    "silo-4": (4, 0, ()),
    "silo-16": (16, 0, ()),
    "silo-rt": (8, 0, RETUNE),
    "8/8-rx": (8, 8, ("swarm.baseline=receiver", "swarm.sampler=useful")),
    "8/8-more": (8, 8, ("swarm.candidates=24",)),
    "8/8-budget": (8, 8, ("train.budget_groups=8", "generation.min_questions=2", *RETUNE)),
    "pool": (
        8,
        8,
        (
            "swarm.baseline=receiver",
            "swarm.sampler=useful",
            "swarm.candidates=24",
            "train.budget_groups=8",
            "generation.min_questions=2",
            *RETUNE,
        ),
    ),
}
"""Name -> (I, J, settings): the splits, each swarm split with each variant of the machinery, the silo
controls (another I; the retuned settings) and the configurations that take what the receiver lacks."""
SMALL_MODEL = "tiny-mix-small"
"""The heterogeneous swarm's other model: `build_tiny`'s recipe of that name (tiny-mix at hidden 96, 3 layers)."""


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
    models: tuple[str, ...] = (),
) -> dict[str, Any]:
    """One (configuration, seed) run. `small_model`: a path makes the swarm heterogeneous (see the module);
    `models`: the world's built checkpoints (`world.built_models`), where it has some."""
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
            *world_overrides(world, k, models),
            *settings,
            *extra,
            *([f"model.name={small_model}"] if hetero and k == 2 else []),
        ]
        members.append(quiet_node(sets, None if external == 0 else MemoryTransport(hub)))
    start = time.perf_counter()
    reward = [0.0] * rounds
    asked = [0.0] * rounds
    node_s = [0.0] * nodes
    tokens = [0] * nodes
    spent: list[float] = []  # per round: the measured nodes' mean cumulative node-seconds
    made: list[float] = []  # per round: their mean cumulative generated tokens
    watched = [members[k] for k in measured]
    weak = [world.weak_families(k) for k in measured]
    share = 1.0 / len(measured)
    generated = external_used = 0
    split = {"generate_s": 0.0, "share_s": 0.0, "train_s": 0.0}
    curve: list[dict[str, Any]] = []

    def evaluate(round_: int) -> None:
        rows = [node.evaluate() for node in watched]
        families = rows[0]["eval_by_task"]
        point = {
            "round": round_,
            "node_s": statistics.fmean(node_s[k] for k in measured),
            "tokens": statistics.fmean(tokens[k] for k in measured),
            "accuracy": statistics.fmean(r["eval_greedy_accuracy"] for r in rows),
            "by_task": {f: statistics.fmean(r["eval_by_task"][f] for r in rows) for f in families},
            "by_node": [r["eval_by_task"] for r in rows],
        }
        if world.weak:  # each node's weak families and strong ones (the rest)
            by = [
                (
                    statistics.fmean(r["eval_by_task"][f] for f in w),
                    statistics.fmean(v for f, v in r["eval_by_task"].items() if f not in w),
                )
                for r, w in zip(rows, weak, strict=True)
            ]
            point["weak_by_node"] = [w for w, _ in by]
            point["strong_by_node"] = [s for _, s in by]
            point["weak"] = statistics.fmean(w for w, _ in by)
            point["strong"] = statistics.fmean(s for _, s in by)
        curve.append(point)

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
            asked[r] += row.get("questions", local) * share
            node_s[k] += row["round_s"]
            tokens[k] += row["generated_tokens"]
            for part in split:
                split[part] += row[part] * share / rounds  # type: ignore[literal-required]
            generated += row["generated_tokens"]
            external_used += row["external_groups"]
        spent.append(statistics.fmean(node_s[k] for k in measured))
        made.append(statistics.fmean(tokens[k] for k in measured))
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
        "measured": measured,
        "weak_families": weak,
        "cumulative_reward": sum(reward),
        "reward_per_round": reward,
        "node_s_per_round": spent,
        "tokens_per_round": made,
        "questions_per_round": asked,
        "curve": curve,
        "held_out_accuracy": curve[-1]["accuracy"],
        "node_s": statistics.fmean(node_s[k] for k in measured),
        "generated_tokens_per_node_round": generated * share / rounds,
        "seconds_per_node_round": split,
        "external_groups_per_node_round": external_used * share / rounds,
        "wall_s": time.perf_counter() - start,
    }


seconds_to = measures.seconds_to


def summarize(runs: list[dict[str, Any]], configs: list[str], targets: tuple[float, ...] = ()) -> list[dict[str, Any]]:
    """`sapo_measures.summarize`, each run's I and J from its configuration's name where it does not say."""
    named = [{"local": CONFIGS[r["config"]][0], "external": CONFIGS[r["config"]][1], **r} for r in runs]
    return measures.summarize(named, configs, targets)


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
    targets: tuple[float, ...] = (),
) -> list[dict[str, Any]]:
    """`extra`: KEY=VALUE settings given to every node of every configuration; `targets`: absolute held-out
    accuracies to time (default: the start + 5 and + 10 points)."""
    runs: list[dict[str, Any]] = []
    small = str(built(SMALL_MODEL, json_path.parent)) if hetero else ""
    models = built_models(WORLDS[world], json_path.parent)
    with tempfile.TemporaryDirectory(prefix="swarmnode-bench-sapo-") as root:
        with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
            args = (nodes, rounds, eval_questions, eval_every, root, extra, small, models)
            futures = [pool.submit(run_one, world, c, s, *args) for s in seeds for c in configs]
            for future in futures:
                runs.append(future.result())
                r = runs[-1]
                print(
                    f"  {r['config']:5s} seed {r['seed']}: cumulative reward {r['cumulative_reward']:.1f}, "
                    f"held-out {r['held_out_accuracy']:.1%}, {r['node_s']:.0f} node-s ({r['wall_s']:.0f} s)",
                    flush=True,
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
        "models": list(models),
    }
    return report_runs(runs, configs, params, json_path, targets)


def from_json(path: Path, out: Path, targets: tuple[float, ...] = ()) -> list[dict[str, Any]]:
    """The tables, JSON and plot of a saved run (`path`, a `bench sapo` JSON), made again with the current
    measures into `out`: no run repeated."""
    import json

    saved = json.loads(path.read_text())
    runs = [row["run"] for row in saved["rows"] if "run" in row]
    configs = list(dict.fromkeys(r["config"] for r in runs))
    keys = ("world", "settings", "nodes", "rounds", "seeds", "eval_questions", "eval_every", "hetero", "models")
    params = {k: saved["params"].get(k) for k in keys}
    return report_runs(runs, configs, params, out, targets or tuple(saved["params"].get("targets") or ()))


def report_runs(
    runs: list[dict[str, Any]],
    configs: list[str],
    params: dict[str, Any],
    json_path: Path,
    targets: tuple[float, ...] = (),
) -> list[dict[str, Any]]:
    """Print the tables of `runs`, write their JSON (with `params`) and plot."""
    world, nodes, rounds, seeds = params["world"], params["nodes"], params["rounds"], params["seeds"]
    eval_questions, eval_every, hetero = params["eval_questions"], params["eval_every"], params["hetero"]
    targets = targets or measures.default_targets(runs)
    summary = summarize(runs, configs, targets)
    equal = measures.equal_node_seconds(runs)
    print(
        f"sapo bench, world {world} ({WORLDS[world].about}): {nodes} nodes"
        + (" (heterogeneous: see --hetero; measured over the full-speed embedded-model nodes)" if hetero else "")
        + f", {rounds} rounds, seeds {seeds}, "
        f"held-out greedy accuracy on {eval_questions} questions every {eval_every} rounds; means over nodes "
        "and seeds; 'to target': node-seconds to the silo's final held-out accuracy, / silo's (median over seeds)"
    )
    print(report.main_table(summary))
    families = list(summary[0]["held_out_by_task"])
    if len(families) > 1:
        print("held-out greedy accuracy per family at the end:")
        print(
            format_table(
                ("config", *families),
                [(s["config"], *(f"{s['held_out_by_task'][f]:.1%}" for f in families)) for s in summary],
            )
        )
    print(
        "cost axis: questions per round, node-seconds and generated tokens per node (totals); own reward above "
        "the floor (each seed's mean round-1 reward over all configurations), summed over all rounds and over "
        "the rounds up to the seed's cheapest total, and against the best silo control at equal node-seconds "
        "(pair by pair up to the smaller total, the crossing round pro rata; the control each configuration fares "
        "worst against; median [min-max] over seeds); time to fixed held-out accuracies "
        "(linear between evaluations, median over seeds):"
    )
    print(report.cost_table(summary, targets))
    print(report.equal_lines(equal))
    weak = measures.weak_strong(runs, configs)
    done: list[dict[str, Any]] = []
    if weak:
        print(
            "specialists: each node's weak families' mean held-out accuracy and its strong families' "
            "(means over seeds), and their means over nodes:"
        )
        print(report.weak_table(weak))
        done = measures.specialists(runs)
        if done:
            print(
                "per seed, each swarm configuration against the matched silo (`silo`) and the best silo control "
                "(highest final weak-family accuracy): (a) node-seconds to the silo's final weak-family accuracy "
                f"(linear between evaluations) / the silo's total, bar <= {report.TIME_BAR}; (b) final weak-family "
                f"accuracy minus the silo's, bar >= {report.POINTS_BAR:.0f} points:"
            )
            print(report.specialists_table(done))
    params = {**params, "targets": list(targets), "equal_node_s": {str(k): v for k, v in equal.items()}}
    rows = summary + [{"weak_strong": w} for w in weak] + [{"specialists": d} for d in done]
    write_json(json_path, "sapo", params, rows + [{"run": r} for r in runs])
    png = json_path.with_suffix(".png")
    plot(runs, configs, png, f"bench sapo, world {world}: {nodes} nodes, seeds {seeds} (means)")
    print(f"wrote {json_path} and {png}")
    return summary
