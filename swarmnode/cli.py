"""The `swarmnode` command: parses arguments and calls library code, nothing else."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from swarmnode import __version__
from swarmnode.bench import commands as bench_commands
from swarmnode.config import NodeConfig, load_config, parse_override
from swarmnode.errors import UserError
from swarmnode.identity import DEFAULT_KEY_PATH


def _keygen(args: argparse.Namespace) -> int:
    from swarmnode.identity import create_key_file

    identity = create_key_file(Path(args.out))
    print(f"wrote {identity.path} (mode 0600)")
    print(f"peer id: {identity.peer_id}")
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
    bench_commands.add_commands(bench, _add_node_flags, _node_config)
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
