"""`swarmnode bench poison`: valid-but-poisoned data and sybils against a real swarm.

N honest nodes (real learner, real validation chain, the embedded model) in one process over the in-memory
transport, in lockstep round by round, with attackers (`bench.attacks.Crowd`) that join from round
`--attack-from` on and publish one batch per identity per round:

- `poison`:       one identity, there from the first round (as senior as the honest nodes: an insider); its
                  groups carry a payload on every right answer (after it or before it);
- `sybils`:       `--sybils` identities flooding valid, clean groups;
- `sybil-poison`: as many identities, each poisoning.

Each scenario runs with the defenses off (`task.answer_format=anywhere`, `train.peer_min_logprob=0`,
`swarm.trust_rounds=0`) and on (the defaults), same seed, side by side. Reported over all honest nodes
(every one is a victim): the payload rate in their own completions per round (and over each node's latest
256 completions at the end), the share of rounds from the attack on where honest peers' groups fill at least
80% of J (of the slots the round offered peers: J, or what `train.budget_groups` left of it), honest and
attackers' groups trained on per round, and the defenses' counts (completions re-scored 0 for text outside
the answer: `off_format`; dropped by the likelihood gate: `improbable`; newcomers' groups left over:
`newcomer_share`).
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

SCENARIOS = ("poison", "sybils", "sybil-poison")
FILL = 0.8
"""Honest peers' groups should fill at least this share of J."""
LATEST = 256
COLUMNS = (
    "scenario defenses payload(end) payload(max) honest>=80%J honest/round attacker/round "
    "off_format improbable newcomer_share reward"
).split()


def run_one(
    scenario: str,
    defenses: bool,
    seed: int,
    nodes: int,
    rounds: int,
    sybils: int,
    attack_from: int,
    world_name: str,
    root: str,
    extra: tuple[str, ...] = (),
) -> dict[str, Any]:
    """One (scenario, defenses, seed) run; `extra`: KEY=VALUE settings for every honest node."""
    from swarmnode.bench.attacks import Crowd, payload_rate
    from swarmnode.swarm.transports.memory import MemoryHub, MemoryTransport
    from swarmnode.tasks.base import stray_text

    hub = MemoryHub()
    members = []
    for k in range(nodes):
        sets = [
            f"run_dir={Path(root) / f'{scenario}-{int(defenses)}-s{seed}-n{k}'}",
            f"seed={1000 * seed + k}",
            "silo=false",
            "eval.every=0",
            "status.enabled=false",
            "generation.questions_per_round=8",
            "swarm.external_groups=8",
            "generation.backend=hf",
            "checkpoint.every=1000000",
            "threads=1",
            *world_overrides(WORLDS[world_name]),
            *(() if defenses else DEFENSES_OFF),
            *extra,
        ]
        members.append(quiet_node(sets, MemoryTransport(hub)))
    swarm = members[0].config.swarm.name
    size = 1 if scenario == "poison" else sybils
    crowd = Crowd(MemoryTransport(hub), swarm, members[0].runtime.tasks, size, poison=scenario != "sybils", seed=seed)
    attackers = crowd.peer_ids
    J = members[0].config.swarm.external_groups
    start = time.perf_counter()
    payload = [0.0] * rounds
    reward = [0.0] * rounds
    honest_series = [0] * rounds
    attacker_series = [0] * rounds
    tail = [0.0] * rounds
    honest_used = attacker_used = 0
    filled = attacked_rounds = skipped = 0
    latest: list[list[str]] = [[] for _ in members]
    samples: dict[int, list[str]] = {}
    """Node 0's first 12 completions every 25 rounds (what the payload looks like, in the JSON)."""
    for r in range(rounds):
        if r + 1 >= (1 if scenario == "poison" else attack_from):
            crowd.publish(r + 1)
        for k, node in enumerate(members):
            row = node.step()
            assert row is not None
            own = [c for g in node.own_groups for c in g.completions]
            latest[k] = (latest[k] + own)[-LATEST:]
            if k == 0 and (r + 1) % 25 == 0:
                samples[r + 1] = own[:12]
            payload[r] += payload_rate(own) / nodes
            tail[r] += sum(1 for c in own if stray_text(c, "end")) / len(own) / nodes
            reward[r] += row["mean_reward"] / nodes
            bad = sum(n for p, n in row["external_by_peer"].items() if p in attackers)
            good = row["external_groups"] - bad
            honest_series[r] += good
            attacker_series[r] += bad
            skipped += row["external_skipped"].get("newcomer_share", 0)
            if r + 1 >= attack_from:  # the lone poisoner too: after the first rounds, when all peers are young
                attacked_rounds += 1
                filled += good >= FILL * row.get("external_slots", J)  # the slots the round offered peers
                honest_used += good
                attacker_used += bad
    counts: dict[str, int] = {}
    for node in members:
        assert node.swarm is not None
        for reason, n in node.swarm.counters()["rejected"].items():
            counts[reason] = counts.get(reason, 0) + n
        node.close()
    attacked = max(1, attacked_rounds)
    return {
        "scenario": scenario,
        "defenses": defenses,
        "seed": seed,
        "payload_per_round": payload,
        "tail_per_round": tail,
        "honest_groups_per_round": honest_series,
        "attacker_groups_per_round": attacker_series,
        "payload_latest": statistics.fmean(payload_rate(c) for c in latest),
        "payload_max_25": max(statistics.fmean(payload[i : i + 25]) for i in range(0, max(1, rounds - 24), 5)),
        "honest_fill_share": filled / attacked,
        "honest_per_round": honest_used / attacked,
        "attacker_per_round": attacker_used / attacked,
        "off_format": counts.get("off_format", 0),
        "improbable": counts.get("improbable", 0),
        "newcomer_share": skipped,
        "rejected": counts,
        "cumulative_reward": sum(reward),
        "published": crowd.published,
        "samples": samples,
        "wall_s": time.perf_counter() - start,
    }


def summarize(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for scenario in SCENARIOS:
        for defenses in (False, True):
            mine = [r for r in runs if r["scenario"] == scenario and r["defenses"] == defenses]
            if not mine:
                continue
            fields = ("payload_latest", "payload_max_25", "honest_fill_share", "honest_per_round", "attacker_per_round")
            row: dict[str, Any] = {"scenario": scenario, "defenses": defenses, "seeds": [r["seed"] for r in mine]}
            for f in fields:
                row[f] = statistics.fmean(r[f] for r in mine)
                row[f + "_worst"] = (min if f == "honest_fill_share" else max)(r[f] for r in mine)
            for f in ("off_format", "improbable", "newcomer_share", "cumulative_reward"):
                row[f] = statistics.fmean(r[f] for r in mine)
            out.append(row)
    return out


def plot(runs: list[dict[str, Any]], path: Path) -> None:
    """Payload rate in the victims' own completions per round (10-round mean), one panel per scenario."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = [s for s in SCENARIOS if any(r["scenario"] == s for r in runs)]
    fig, axes = plt.subplots(1, len(scenarios), figsize=(5 * len(scenarios), 3.8), squeeze=False)
    for ax, scenario in zip(axes[0], scenarios, strict=True):
        for r in (r for r in runs if r["scenario"] == scenario):
            rate = r["payload_per_round"]
            smooth = [statistics.fmean(rate[max(0, i - 9) : i + 1]) for i in range(len(rate))]
            style = "-" if r["defenses"] else "--"
            ax.plot(
                range(1, len(rate) + 1),
                smooth,
                style,
                label=f"defenses {'on' if r['defenses'] else 'off'}, seed {r['seed']}",
            )
        ax.set_title(scenario)
        ax.set_xlabel("round")
        ax.set_ylabel("payload in own completions")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def run(
    scenarios: list[str],
    seeds: list[int],
    nodes: int,
    rounds: int,
    sybils: int,
    attack_from: int,
    world: str,
    jobs: int,
    json_path: Path,
    extra: tuple[str, ...] = (),
) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="swarmnode-bench-poison-") as root:
        with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
            args = (nodes, rounds, sybils, attack_from, world, root, extra)
            futures = [
                pool.submit(run_one, scenario, defenses, seed, *args)
                for seed in seeds
                for scenario in scenarios
                for defenses in (False, True)
            ]
            for future in futures:
                runs.append(r := future.result())
                print(
                    f"  {r['scenario']:12s} defenses {'on ' if r['defenses'] else 'off'} seed {r['seed']}: payload "
                    f"{r['payload_latest']:.1%} (latest {LATEST}), honest fill {r['honest_fill_share']:.0%} of rounds "
                    f"({r['wall_s']:.0f} s)",
                    flush=True,
                )
    summary = summarize(runs)
    print(
        f"poison bench, world {world}: {nodes} honest nodes, {rounds} rounds, attackers from round {attack_from} "
        f"(poison: 1 identity; sybils: {sybils}), seeds {seeds}; means over seeds (worst seed in brackets). "
        f"payload(end): share of each victim's latest {LATEST} own completions carrying a payload; payload(max): "
        f"the highest 25-round mean; honest>=80%J: share of rounds from the attack on where honest peers' groups "
        "fill at least 80% of J; per round: groups trained on per node; counts: totals over the victims"
    )
    print(
        format_table(
            COLUMNS,
            [
                (
                    s["scenario"],
                    "on" if s["defenses"] else "off",
                    f"{s['payload_latest']:.1%} ({s['payload_latest_worst']:.1%})",
                    f"{s['payload_max_25']:.1%} ({s['payload_max_25_worst']:.1%})",
                    f"{s['honest_fill_share']:.0%} ({s['honest_fill_share_worst']:.0%})",
                    s["honest_per_round"],
                    s["attacker_per_round"],
                    s["off_format"],
                    s["improbable"],
                    s["newcomer_share"],
                    s["cumulative_reward"],
                )
                for s in summary
            ],
        )
    )
    params = {
        "scenarios": scenarios,
        "seeds": seeds,
        "nodes": nodes,
        "rounds": rounds,
        "sybils": sybils,
        "attack_from": attack_from,
        "world": world,
        "settings": list(extra),
    }
    write_json(json_path, "poison", params, summary + [{"run": r} for r in runs])
    png = json_path.with_suffix(".png")
    plot(runs, png)
    print(f"wrote {json_path} and {png}")
    return summary
