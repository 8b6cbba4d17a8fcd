"""The `swarmnode bench ...` commands: their flags, their checks and the calls into each benchmark."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable
from pathlib import Path

from swarmnode.config import NodeConfig
from swarmnode.errors import UserError, install_hint

NodeConfigOf = Callable[[argparse.Namespace], NodeConfig]
MODEL_HELP = (
    "this model alone (smollm2-135m, say), as `join --model` runs it: its settings, prompt and tasks "
    "(default: the bench's own models)"
)


def _bench_protocol(args: argparse.Namespace) -> int:
    from swarmnode.bench import protocol as bench

    if args.seconds <= 0:
        raise UserError(f"--seconds must be positive, got {args.seconds}")
    bench.run(args.seconds, Path(args.json))
    return 0


def _bench_learn(args: argparse.Namespace) -> int:
    from swarmnode.bench import learn

    config: NodeConfig = args.node_config(args)
    if not config.rounds and not config.minutes:
        config = config.model_copy(update={"minutes": 3.0})
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    if not seeds:
        raise UserError("--seeds needs at least one seed, e.g. --seeds 0,1,2")
    learn.run(config, seeds, Path(args.json))
    return 0


def _bench_generate(args: argparse.Namespace) -> int:
    from swarmnode.bench import generate

    if min(args.questions, args.completions, args.max_new_tokens, args.repeats, args.threads) < 1:
        raise UserError("--questions, --completions, --max-new-tokens, --repeats and --threads must be >= 1")
    generate.run(
        args.questions, args.completions, args.max_new_tokens, args.repeats, args.threads, Path(args.json), args.model
    )
    return 0


def _bench_round(args: argparse.Namespace) -> int:
    from swarmnode.bench import round as round_bench

    if args.threads < 1:
        raise UserError("--threads must be >= 1")
    round_bench.run(args.threads, Path(args.json), args.model)
    return 0


def _sizes(text: str, flag: str, minimum: int) -> list[int]:
    try:
        sizes = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"{flag} takes comma-separated whole numbers, e.g. 2,4,8; got {text!r}") from None
    if any(n < minimum for n in sizes):
        raise UserError(f"{flag}: every number must be at least {minimum}")
    return sizes


def _bench_swarm(args: argparse.Namespace) -> int:
    from swarmnode.bench import swarm

    if args.rounds < 2:
        raise UserError("--rounds must be at least 2 (the first round is not counted)")
    sizes = _sizes(args.sizes, "--sizes", 2)
    dht_sizes = _sizes(args.dht_sizes, "--dht-sizes", 2)
    from swarmnode.swarm.transports.libp2p import libp2p_available

    transports = ["hivemind", "libp2p"] if args.transport == "all" else [args.transport]
    if "libp2p" in transports and not libp2p_available():
        if args.transport == "libp2p":
            raise UserError(f"--transport libp2p needs the libp2p extra: {install_hint('libp2p')}")
        transports.remove("libp2p")
        print("(no libp2p rows: the libp2p extra is not installed)")
    if args.readers < 0:
        raise UserError("--readers must be 0 (every node) or more")
    swarm.run(sizes, dht_sizes, args.rounds, Path(args.json), transports, args.readers)
    return 0


def _bench_share(args: argparse.Namespace) -> int:
    from swarmnode.bench import share

    if not 1 <= args.peers <= 64 or args.rounds <= share.WARMUP_ROUNDS or args.every_s <= 0:
        raise UserError(f"--peers must be 1-64, --rounds more than {share.WARMUP_ROUNDS}, --every-s positive")
    share.run(args.peers, args.rounds, args.every_s, Path(args.dir), Path(args.json))
    return 0


def _names(text: str, flag: str, known: Iterable[str]) -> list[str]:
    """A comma-separated list of names, each one of `known` (else a one-line UserError naming `flag`)."""
    names = [c.strip() for c in text.split(",") if c.strip()]
    if not names or set(names) - set(known):
        raise UserError(f"{flag} takes some of {', '.join(known)}; got {text!r}")
    return names


def _bench_sapo(args: argparse.Namespace) -> int:
    from swarmnode.bench import sapo

    configs = _names(args.configs, "--configs", sapo.CONFIGS)
    seeds = _sizes(args.seeds, "--seeds", 0)
    if not seeds or min(args.nodes, args.rounds, args.eval_questions, args.eval_every, args.jobs) < 1:
        raise UserError(
            "--seeds needs a seed; --nodes, --rounds, --eval-questions, --eval-every and --jobs must be >= 1"
        )
    from swarmnode.config import load_config, parse_override

    load_config(None, [parse_override(s) for s in args.set])  # a bad setting fails here, in one line
    counts = (args.nodes, args.rounds, args.eval_questions, args.eval_every, args.jobs)
    if args.hetero and (args.nodes < 4 or args.world != "mix"):
        raise UserError("--hetero needs --world mix and --nodes 4 or more")
    try:
        targets = tuple(float(t) for t in args.targets.split(",") if t.strip())
    except ValueError:
        raise UserError(f"--targets takes comma-separated accuracies, e.g. 0.40,0.45; got {args.targets!r}") from None
    if any(not 0 < t <= 1 for t in targets):
        raise UserError(f"--targets: accuracies between 0 and 1, e.g. 0.40,0.45; got {args.targets!r}")
    if args.from_json:
        saved = Path(args.from_json)
        if not saved.is_file():
            raise UserError(f"--from-json: no file {saved}")
        sapo.from_json(saved, Path(args.json), targets)
        return 0
    sapo.run(args.world, configs, seeds, *counts, Path(args.json), tuple(args.set), args.hetero, targets)
    return 0


def _bench_poison(args: argparse.Namespace) -> int:
    from swarmnode.bench import poison
    from swarmnode.config import load_config, parse_override

    scenarios = _names(args.scenarios, "--scenarios", poison.SCENARIOS)
    seeds = _sizes(args.seeds, "--seeds", 0)
    if not seeds or min(args.nodes, args.rounds, args.sybils, args.attack_from, args.jobs) < 1:
        raise UserError("--seeds needs a seed; --nodes, --rounds, --sybils, --attack-from and --jobs must be >= 1")
    if args.attack_from > args.rounds:
        raise UserError(f"--attack-from {args.attack_from} is after the last round ({args.rounds})")
    load_config(None, [parse_override(s) for s in args.set])  # a bad setting fails here, in one line
    counts = (args.nodes, args.rounds, args.sybils, args.attack_from)
    poison.run(scenarios, seeds, *counts, args.world, args.jobs, Path(args.json), tuple(args.set))
    return 0


def _bench_soak(args: argparse.Namespace) -> int:
    from swarmnode.bench import soak

    if not 2 <= args.minutes <= 24 * 60 or not 2 <= args.nodes <= 16:
        raise UserError("--minutes must be between 2 and 1440, --nodes between 2 and 16")
    failures = soak.run(args.minutes, Path(args.json), Path(args.dir), args.nodes, args.seed, args.max_growth)
    return 1 if failures else 0


def add_commands(
    bench: argparse.ArgumentParser, add_node_flags: Callable[[argparse.ArgumentParser], None], node_config: NodeConfigOf
) -> None:
    """`bench`'s subcommands (`learn` takes the node's flags and resolves them with `node_config`)."""
    benches = bench.add_subparsers(dest="bench", required=True, metavar="BENCH")
    proto = benches.add_parser("protocol", help="sign+encode and verify+decode rates beside plain msgpack")
    proto.add_argument("--seconds", type=float, default=1.0, help="time per operation (default: %(default)s)")
    proto.add_argument("--json", default="runs/bench/protocol.json", help="JSON output (default: %(default)s)")
    proto.set_defaults(run=_bench_protocol)
    learn = benches.add_parser("learn", help="train from scratch with several seeds: start/end accuracy, time split")
    add_node_flags(learn)
    learn.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default: %(default)s)")
    learn.add_argument("--json", default="runs/bench/learn.json", help="JSON output (default: %(default)s)")
    learn.set_defaults(run=_bench_learn, node_config=node_config)
    gen = benches.add_parser("generate", help="tokens/s of vLLM beside transformers, and the weight-sync time")
    gen.add_argument("--questions", type=int, default=16, help="prompts (default: %(default)s)")
    gen.add_argument("--completions", type=int, default=8, help="samples per prompt (default: %(default)s)")
    gen.add_argument("--max-new-tokens", type=int, default=64, help="(default: %(default)s)")
    gen.add_argument("--repeats", type=int, default=2, help="timed repetitions (default: %(default)s)")
    gen.add_argument("--threads", type=int, default=2, help="torch threads for transformers (default: %(default)s)")
    gen.add_argument("--json", default="runs/bench/generate.json", help="JSON output (default: %(default)s)")
    gen.add_argument("--model", help=MODEL_HELP)
    gen.set_defaults(run=_bench_generate)
    rnd = benches.add_parser("round", help="one RL round of fixed work: swarmnode (each backend) beside TRL")
    rnd.add_argument("--threads", type=int, default=1, help="torch threads (default: %(default)s)")
    rnd.add_argument("--json", default="runs/bench/round.json", help="JSON output (default: %(default)s)")
    rnd.add_argument("--model", help=MODEL_HELP)
    rnd.set_defaults(run=_bench_round)
    poi = benches.add_parser("poison", help="poisoning peers and sybils vs the defenses, off and on side by side")
    poi.add_argument("--scenarios", default="poison,sybils,sybil-poison", help="(default: %(default)s)")
    poi.add_argument("--seeds", default="0,1,2", help="seeds (default: %(default)s)")
    poi.add_argument("--nodes", type=int, default=4, help="honest nodes (default: 4)")
    poi.add_argument("--rounds", type=int, default=300, help="rounds per node (default: 300)")
    poi.add_argument("--sybils", type=int, default=20, help="identities of the sybil scenarios (default: 20)")
    poi.add_argument("--attack-from", type=int, default=25, help="the attackers' first round (default: 25)")
    poi.add_argument("--world", choices=["add", "mix"], default="add", help="model and tasks (default: add)")
    poi.add_argument("--jobs", type=int, default=2, help="runs in parallel, one thread each (default: 2)")
    poi.add_argument("--json", default="runs/bench/poison.json", help="JSON output (default: %(default)s)")
    poi.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="a setting for every honest node (repeatable)"
    )
    poi.set_defaults(run=_bench_poison)
    sw = benches.add_parser("swarm", help="bytes per node per round, visibility latency, validation rate vs swarm size")
    sw.add_argument("--sizes", default="2,4,8,16,32,64", help="in-memory swarm sizes (default: %(default)s)")
    sw.add_argument("--dht-sizes", default="2,4,8", help="network swarm sizes on 127.0.0.1 (default: %(default)s)")
    sw.add_argument(
        "--transport", choices=["hivemind", "libp2p", "all"], default="all", help="network rows (default: all)"
    )
    sw.add_argument("--rounds", type=int, default=6, help="rounds per size, the first not counted (default: 6)")
    sw.add_argument(
        "--readers", type=int, default=0, help="in-memory readers measured per size (default: 0, every node)"
    )
    sw.add_argument("--json", default="runs/bench/swarm.json", help="JSON output (default: %(default)s)")
    sw.set_defaults(run=_bench_swarm)
    sha = benches.add_parser("share", help="share of round time on swarm I/O: in line vs the I/O thread, 8 peers")
    sha.add_argument("--peers", type=int, default=8, help="sharing-only peers (default: %(default)s)")
    sha.add_argument("--rounds", type=int, default=40, help="rounds per training node (default: %(default)s)")
    sha.add_argument("--every-s", type=float, default=2.0, help="how often each peer publishes (default: %(default)s)")
    sha.add_argument("--dir", default="runs/bench-share", help="run dirs and logs (default: %(default)s)")
    sha.add_argument("--json", default="runs/bench/share.json", help="JSON output (default: %(default)s)")
    sha.set_defaults(run=_bench_share)
    soak = benches.add_parser("soak", help="endurance: real nodes on 127.0.0.1, kills, a flooder, no bootstrap")
    soak.add_argument("--minutes", type=float, default=60.0, help="(default: %(default)s)")
    soak.add_argument("--nodes", type=int, default=4, help="training nodes (default: %(default)s)")
    soak.add_argument("--seed", type=int, default=0, help="which node each kill picks (default: %(default)s)")
    soak.add_argument("--max-growth", type=float, default=10.0, help="RSS growth bar in %% (default: %(default)s)")
    soak.add_argument("--dir", default="runs/soak", help="run dirs and logs, emptied first (default: %(default)s)")
    soak.add_argument("--json", default="runs/bench/soak.json", help="JSON output (default: %(default)s)")
    soak.set_defaults(run=_bench_soak)
    sapo = benches.add_parser("sapo", help="N nodes sharing vs silo: cumulative reward and held-out accuracy")
    sapo.add_argument("--configs", default="silo,4/4,8/8", help="sampling configurations (default: %(default)s)")
    sapo.add_argument("--seeds", default="0,1,2", help="seeds (default: %(default)s)")
    sapo.add_argument("--nodes", type=int, default=4, help="nodes per swarm (default: 4)")
    sapo.add_argument("--rounds", type=int, default=120, help="rounds per node (default: 120)")
    sapo.add_argument(
        "--world",
        choices=["add", "mix", "specialists"],
        default="mix",
        help="model and tasks; specialists: two checkpoints strong on different families (default: mix)",
    )
    sapo.add_argument("--eval-questions", type=int, default=120, help="held-out questions (default: 120)")
    sapo.add_argument("--eval-every", type=int, default=20, help="rounds between evaluations (default: 20)")
    sapo.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="a setting for every node (repeatable)"
    )
    sapo.add_argument(
        "--hetero", action="store_true", help="a swarm of different nodes: another model size, one at half speed"
    )
    sapo.add_argument(
        "--targets",
        default="",
        metavar="ACC,ACC",
        help="held-out accuracies to time, e.g. 0.40,0.45 (default: the start + 5 and + 10 points)",
    )
    sapo.add_argument("--jobs", type=int, default=2, help="runs in parallel, one thread each (default: 2)")
    sapo.add_argument("--json", default="runs/bench/sapo.json", help="JSON output (default: %(default)s)")
    sapo.add_argument(
        "--from-json", metavar="PATH", help="no runs: the tables, JSON and plot of a saved run, with today's measures"
    )
    sapo.set_defaults(run=_bench_sapo)
