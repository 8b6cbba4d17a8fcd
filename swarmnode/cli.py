"""The `swarmnode` command: parses arguments and calls library code, nothing else."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from swarmnode import __version__
from swarmnode.config import NodeConfig, load_config, parse_override
from swarmnode.errors import UserError, install_hint
from swarmnode.identity import DEFAULT_KEY_PATH


def _keygen(args: argparse.Namespace) -> int:
    from swarmnode.identity import create_key_file

    identity = create_key_file(Path(args.out))
    print(f"wrote {identity.path} (mode 0600)")
    print(f"peer id: {identity.peer_id}")
    return 0


def _bench_protocol(args: argparse.Namespace) -> int:
    from swarmnode.bench import protocol as bench

    if args.seconds <= 0:
        raise UserError(f"--seconds must be positive, got {args.seconds}")
    bench.run(args.seconds, Path(args.json))
    return 0


def _node_config(args: argparse.Namespace) -> NodeConfig:
    """The config file, then --set overrides, then the dedicated flags (which win)."""
    overrides = [parse_override(text) for text in args.set or []]
    flags: list[tuple[str, object]] = [
        ("model.name", args.model),
        ("rounds", args.rounds),
        ("run_dir", args.run_dir),
        ("seed", args.seed),
        ("threads", args.threads),
        ("minutes", args.minutes),
        ("generation.backend", args.backend),
        ("task.names", args.task),
        ("swarm.transport", getattr(args, "transport", None)),
    ]
    for swarm_flag in ("swarm", "transport"):
        if getattr(args, "silo", False) and getattr(args, swarm_flag, None):
            raise UserError(f"--silo and --{swarm_flag} contradict each other; pick one")
    if getattr(args, "silo", False):
        flags.append(("silo", True))
    if getattr(args, "swarm", None):
        flags += [("silo", False), ("swarm.name", args.swarm)]
    if getattr(args, "transport", None):
        flags.append(("silo", False))
    peers = list(getattr(args, "peers", None) or [])
    if getattr(args, "peers_file", None):
        from swarmnode.bootstrap import read_peers_file

        peers += read_peers_file(Path(args.peers_file))
    if peers:
        flags.append(("swarm.peers", peers))
    overrides += [(key.split("."), value) for key, value in flags if value is not None]
    return load_config(Path(args.config) if args.config else None, overrides)


def _say(line: str) -> None:
    print(line, flush=True)


def _join(args: argparse.Namespace) -> int:
    config = _node_config(args)
    if args.tui:  # this process only shows the dashboard: no model here
        from swarmnode.tui.supervise import join_with_dashboard

        return join_with_dashboard(config, args.argv)
    from swarmnode.node import Node

    mode = "silo" if config.silo else f"swarm {config.swarm.name}"
    print(
        f"swarmnode {__version__}: {mode} node, model {config.model.name}, tasks {', '.join(config.task.names)}, "
        f"run dir {config.run_dir} (Ctrl-C saves a checkpoint and stops; run again to resume)",
        flush=True,
    )
    Node(config, say=_say).run()
    return 0


def _doctor(args: argparse.Namespace) -> int:
    from swarmnode import doctor

    if not 0 < args.timeout <= 120:
        raise UserError("--timeout must be between 0 and 120 seconds")
    return doctor.run(_node_config(args), args.timeout)


def _tui(args: argparse.Namespace) -> int:
    from swarmnode.run_dir import RunDir
    from swarmnode.tui import Dashboard, HttpFeed

    url = args.url
    if url is None and args.run_dir:
        run_dir = RunDir(Path(args.run_dir))
        url = run_dir.read_status_url()
        if url is None:
            raise UserError(f"{run_dir.status_url} does not exist: is a node running with --run-dir {args.run_dir}?")
    url = url or "http://127.0.0.1:7391"
    if not url.startswith(("http://", "https://")):
        raise UserError(f"--url must start with http:// or https://, got {url!r}")
    Dashboard(HttpFeed(url, args.token)).run()
    return 0


def _report(args: argparse.Namespace) -> int:
    from swarmnode.report import plot_runs

    out = plot_runs([Path(d) for d in args.run_dirs], Path(args.out))
    print(f"wrote {out}")
    return 0


def _config_reference(args: argparse.Namespace) -> int:
    from swarmnode.config_reference import reference

    print(reference(), end="")
    return 0


def _config_show(args: argparse.Namespace) -> int:
    print(_node_config(args).model_dump_json(indent=2))
    return 0


def _eval(args: argparse.Namespace) -> int:
    from swarmnode import checkpoint, runtime
    from swarmnode.evaluation import evaluate

    config = _node_config(args)
    source = None
    if args.checkpoint_of:
        found, warnings = checkpoint.latest(Path(args.checkpoint_of))
        for line in warnings:
            print(f"warning: {line}", file=sys.stderr)
        if found is None:
            raise UserError(f"no complete checkpoint in {args.checkpoint_of}")
        source = str(found.path)
    rt = runtime.build(config, source)
    result = evaluate(
        rt.backend,
        rt.prompter,
        rt.tasks,
        questions=args.questions,
        seed=config.eval.seed,
        max_new_tokens=config.generation.max_new_tokens,
        k=args.k,
        temperature=config.generation.temperature,
    )
    line = f"{rt.source}: {result.questions} held-out questions, greedy accuracy {result.greedy_accuracy:.1%}"
    if result.pass_at_k is not None:
        line += f", pass@{args.k} {result.pass_at_k:.1%}"
    print(line)
    if args.json:
        Path(args.json).write_text(json.dumps({"model": rt.source, **dataclasses.asdict(result)}, indent=2) + "\n")
    return 0


def _bench_learn(args: argparse.Namespace) -> int:
    from swarmnode.bench import learn

    config = _node_config(args)
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
    generate.run(args.questions, args.completions, args.max_new_tokens, args.repeats, args.threads, Path(args.json))
    return 0


def _bench_round(args: argparse.Namespace) -> int:
    from swarmnode.bench import round as round_bench

    if args.threads < 1:
        raise UserError("--threads must be >= 1")
    round_bench.run(args.threads, Path(args.json))
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
    from swarmnode.swarm.libp2p import libp2p_available

    transports = ["hivemind", "libp2p"] if args.transport == "all" else [args.transport]
    if "libp2p" in transports and not libp2p_available():
        if args.transport == "libp2p":
            raise UserError(f"--transport libp2p needs the libp2p extra: {install_hint('libp2p')}")
        transports.remove("libp2p")
        print("(no libp2p rows: the libp2p extra is not installed)")
    swarm.run(sizes, dht_sizes, args.rounds, Path(args.json), transports)
    return 0


def _bench_sapo(args: argparse.Namespace) -> int:
    from swarmnode.bench import sapo

    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = sorted(set(configs) - set(sapo.CONFIGS))
    if unknown or not configs:
        raise UserError(f"--configs takes some of {', '.join(sapo.CONFIGS)}; got {args.configs!r}")
    seeds = _sizes(args.seeds, "--seeds", 0)
    if not seeds or min(args.nodes, args.rounds, args.eval_questions, args.jobs) < 1:
        raise UserError("--seeds needs a seed; --nodes, --rounds, --eval-questions and --jobs must be >= 1")
    sapo.run(configs, seeds, args.nodes, args.rounds, args.eval_questions, args.jobs, Path(args.json))
    return 0


def _bootstrap(args: argparse.Namespace) -> int:
    from swarmnode.bootstrap import serve

    serve(_node_config(args), Path(args.addr_file) if args.addr_file else None, say=_say)
    return 0


def _add_node_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="TOML config file (see `swarmnode config show` for every field)")
    parser.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override one config field, e.g. --set train.lr=5e-5 (repeatable)",
    )
    parser.add_argument("--model", help="embedded default, local model directory, or Hugging Face id")
    parser.add_argument("--task", action="append", help="task name (repeatable): add, or a reasoning-gym dataset")
    parser.add_argument("--rounds", type=int, help="stop after this many rounds in total (0 = never)")
    parser.add_argument("--run-dir", help="run directory for checkpoints and metrics")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--minutes", type=float, help="stop after this many minutes (0 = no limit)")
    parser.add_argument("--backend", choices=["auto", "hf", "vllm"], help="generation engine (default: auto)")


def _add_transport_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--transport",
        choices=["hivemind", "libp2p", "memory"],
        help="how nodes reach each other: swarm.transport (turns silo off; default: hivemind)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="swarmnode",
        description="A node for decentralized peer-to-peer RL post-training of language models.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    keygen = commands.add_parser("keygen", help="create a new Ed25519 identity key file (mode 0600)")
    keygen.add_argument("--out", default=str(DEFAULT_KEY_PATH), help="where to write it (default: %(default)s)")
    keygen.set_defaults(run=_keygen)

    join = commands.add_parser("join", help="run a node: --silo alone, or --swarm NAME --peers ADDR ...")
    _add_node_flags(join)
    join.add_argument("--silo", action="store_true", help="train alone, no network")
    join.add_argument("--swarm", help="join this swarm over the hivemind DHT (turns silo off)")
    join.add_argument("--peers", nargs="+", metavar="MULTIADDR", help="peers or bootstrap nodes to join through")
    join.add_argument(
        "--peers-file", metavar="FILE", help="read peers from FILE (waits for it; see bootstrap --addr-file)"
    )
    _add_transport_flag(join)
    join.add_argument("--tui", action="store_true", help="run with the dashboard attached (q stops the node)")
    join.set_defaults(run=_join)

    doc = commands.add_parser("doctor", help="check this machine and configuration; one line per check")
    _add_node_flags(doc)
    doc.add_argument("--swarm", help="check as for joining this swarm (peers, key, DHT ports)")
    doc.add_argument("--peers", nargs="+", metavar="MULTIADDR", help="peers or bootstrap nodes to try")
    _add_transport_flag(doc)
    doc.add_argument("--timeout", type=float, default=5.0, help="seconds per peer (default: %(default)s)")
    doc.set_defaults(run=_doctor)

    tui = commands.add_parser("tui", help="the dashboard of a running node (reads its status API)")
    tui.add_argument("--url", help="the node's status API (default: from --run-dir, else http://127.0.0.1:7391)")
    tui.add_argument("--run-dir", help="read the node's status URL from RUN_DIR/status.url")
    tui.add_argument("--token", default="", help="the node's status.token, if it set one")
    tui.set_defaults(run=_tui)

    rep = commands.add_parser("report", help="PNG plots of reward and held-out accuracy of one or more runs")
    rep.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories (several: compared)")
    rep.add_argument("--out", default="report.png", help="PNG output (default: %(default)s)")
    rep.set_defaults(run=_report)

    boot = commands.add_parser("bootstrap", help="run a DHT-only node (no model) that others join through")
    _add_node_flags(boot)
    boot.add_argument("--swarm", help="swarm name (default: the config's)")
    boot.add_argument("--peers", nargs="+", metavar="MULTIADDR", help="other bootstrap nodes")
    _add_transport_flag(boot)
    boot.add_argument("--addr-file", metavar="FILE", help="also write this node's addresses to FILE, one per line")
    boot.set_defaults(run=_bootstrap)

    config = commands.add_parser("config", help="configuration tools")
    config_commands = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    show = config_commands.add_parser("show", help="print the resolved configuration as JSON")
    _add_node_flags(show)
    show.set_defaults(run=_config_show)
    ref = config_commands.add_parser("reference", help="print the configuration reference (Markdown)")
    ref.set_defaults(run=_config_reference)

    ev = commands.add_parser("eval", help="held-out accuracy (greedy, pass@k) of a model or a run's checkpoint")
    _add_node_flags(ev)
    ev.add_argument("--checkpoint-of", metavar="RUN_DIR", help="evaluate the newest checkpoint of this run")
    ev.add_argument("--questions", type=int, default=200, help="held-out questions (default: %(default)s)")
    ev.add_argument("--k", type=int, default=8, help="samples per question for pass@k, 0 = skip (default: %(default)s)")
    ev.add_argument("--json", help="also write the result as JSON here")
    ev.set_defaults(run=_eval)

    bench = commands.add_parser("bench", help="benchmarks that print a table and write JSON")
    benches = bench.add_subparsers(dest="bench", required=True, metavar="BENCH")
    proto = benches.add_parser("protocol", help="sign+encode and verify+decode rates beside plain msgpack")
    proto.add_argument("--seconds", type=float, default=1.0, help="time per operation (default: %(default)s)")
    proto.add_argument("--json", default="runs/bench/protocol.json", help="JSON output (default: %(default)s)")
    proto.set_defaults(run=_bench_protocol)
    learn = benches.add_parser("learn", help="train from scratch with several seeds: start/end accuracy, time split")
    _add_node_flags(learn)
    learn.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default: %(default)s)")
    learn.add_argument("--json", default="runs/bench/learn.json", help="JSON output (default: %(default)s)")
    learn.set_defaults(run=_bench_learn)
    gen = benches.add_parser("generate", help="tokens/s of vLLM beside transformers, and the weight-sync time")
    gen.add_argument("--questions", type=int, default=16, help="prompts (default: %(default)s)")
    gen.add_argument("--completions", type=int, default=8, help="samples per prompt (default: %(default)s)")
    gen.add_argument("--max-new-tokens", type=int, default=64, help="(default: %(default)s)")
    gen.add_argument("--repeats", type=int, default=2, help="timed repetitions (default: %(default)s)")
    gen.add_argument("--threads", type=int, default=2, help="torch threads for transformers (default: %(default)s)")
    gen.add_argument("--json", default="runs/bench/generate.json", help="JSON output (default: %(default)s)")
    gen.set_defaults(run=_bench_generate)
    rnd = benches.add_parser("round", help="one RL round of fixed work: swarmnode (each backend) beside TRL")
    rnd.add_argument("--threads", type=int, default=1, help="torch threads (default: %(default)s)")
    rnd.add_argument("--json", default="runs/bench/round.json", help="JSON output (default: %(default)s)")
    rnd.set_defaults(run=_bench_round)
    sw = benches.add_parser("swarm", help="bytes per node per round, visibility latency, validation rate vs swarm size")
    sw.add_argument("--sizes", default="2,4,8,16,32,64", help="in-memory swarm sizes (default: %(default)s)")
    sw.add_argument("--dht-sizes", default="2,4,8", help="network swarm sizes on 127.0.0.1 (default: %(default)s)")
    sw.add_argument(
        "--transport", choices=["hivemind", "libp2p", "all"], default="all", help="network rows (default: all)"
    )
    sw.add_argument("--rounds", type=int, default=6, help="rounds per size, the first not counted (default: 6)")
    sw.add_argument("--json", default="runs/bench/swarm.json", help="JSON output (default: %(default)s)")
    sw.set_defaults(run=_bench_swarm)
    sapo = benches.add_parser("sapo", help="N nodes sharing vs silo: cumulative reward and held-out accuracy")
    sapo.add_argument("--configs", default="silo,4/4,8/8", help="sampling configurations (default: %(default)s)")
    sapo.add_argument("--seeds", default="0,1,2", help="seeds (default: %(default)s)")
    sapo.add_argument("--nodes", type=int, default=4, help="nodes per swarm (default: 4)")
    sapo.add_argument("--rounds", type=int, default=120, help="rounds per node (default: 120)")
    sapo.add_argument("--eval-questions", type=int, default=200, help="held-out questions at the end (default: 200)")
    sapo.add_argument("--jobs", type=int, default=2, help="runs in parallel, one thread each (default: 2)")
    sapo.add_argument("--json", default="runs/bench/sapo.json", help="JSON output (default: %(default)s)")
    sapo.set_defaults(run=_bench_sapo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        code: int = args.run(args)
        return code
    except UserError as exc:
        print(f"swarmnode: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("swarmnode: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
