"""The `swarmnode` command: parses arguments and calls library code, nothing else."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from swarmnode import __version__
from swarmnode.bench import commands as bench_commands
from swarmnode.config import EMBEDDED_MODELS, NodeConfig, load_config, parse_override
from swarmnode.config_sections import FETCHED_MODELS
from swarmnode.errors import UserError, describe_os_error, output_file
from swarmnode.identity import DEFAULT_KEY_PATH
from swarmnode.run_dir import RunDir


def _keygen(args: argparse.Namespace) -> int:
    from swarmnode.identity import create_key_file

    identity = create_key_file(Path(args.out))
    print(f"wrote {identity.path} (mode 0600)")
    print(f"peer id: {identity.peer_id}")
    return 0


def _node_config(args: argparse.Namespace, under: list[tuple[list[str], Any]] | None = None) -> NodeConfig:
    """The config file, then `under` (a checkpoint's recorded settings), then --set overrides, then the dedicated
    flags (which win)."""
    overrides = [*(under or []), *(parse_override(text) for text in args.set or [])]
    flags: list[tuple[str, object]] = [
        ("model.name", getattr(args, "model", None)),
        ("rounds", getattr(args, "rounds", None)),
        ("run_dir", getattr(args, "run_dir", None)),
        ("seed", getattr(args, "seed", None)),
        ("threads", getattr(args, "threads", None)),
        ("minutes", getattr(args, "minutes", None)),
        ("generation.backend", getattr(args, "backend", None)),
        ("task.names", getattr(args, "task", None)),
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


LOG_LEVELS = ("info", "warning", "error")


def _teller(args: argparse.Namespace) -> Callable[[str], None]:
    """Where a node's lines go: warnings and errors to stderr, the rest (rounds, checkpoints) to stdout unless
    --quiet or --log-level says to show only warnings or errors."""
    level = "warning" if getattr(args, "quiet", False) else getattr(args, "log_level", None) or "info"
    least = LOG_LEVELS.index(level)

    def say(line: str) -> None:
        kind = "error" if "error:" in line[:40] else "warning" if "warning:" in line[:40] else "info"
        if LOG_LEVELS.index(kind) >= least:
            print(line, file=sys.stdout if kind == "info" else sys.stderr, flush=True)

    return say


def _join(args: argparse.Namespace) -> int:
    config = _node_config(args)
    if args.tui:  # this process only shows the dashboard: no model here
        from swarmnode.tui.supervise import join_with_dashboard

        return join_with_dashboard(config, args.argv)
    from swarmnode.node import Node

    RunDir(config.run_dir).create()  # a run directory the node cannot write is said before anything starts
    mode = "silo" if config.silo else f"swarm {config.swarm.name}"
    say = _teller(args)
    say(
        f"swarmnode {__version__}: {mode} node, model {config.model.name}, tasks {', '.join(config.task.names)}, "
        f"run dir {config.run_dir} (Ctrl-C saves a checkpoint and stops; run again to resume)"
    )
    Node(config, say=say).run()
    return 0


def _doctor(args: argparse.Namespace) -> int:
    from swarmnode import doctor

    if not 0 < args.timeout <= 120:
        raise UserError("--timeout must be between 0 and 120 seconds")
    return doctor.run(_node_config(args), args.timeout)


def _tui(args: argparse.Namespace) -> int:
    from swarmnode.tui import Dashboard, HttpFeed

    url, url_file = args.url, None
    if url is None and args.run_dir:
        run_dir = RunDir(Path(args.run_dir))
        url, url_file = run_dir.read_status_url(), run_dir.status_url  # gone when the node stops
        if url is None:
            raise UserError(f"{run_dir.status_url} does not exist: is a node running with --run-dir {args.run_dir}?")
    url = url or "http://127.0.0.1:7391"
    if not url.startswith(("http://", "https://")):
        raise UserError(f"--url must start with http:// or https://, got {url!r}")
    Dashboard(HttpFeed(url, args.token), url_file=url_file).run()
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

    if args.questions < 1 or args.k < 0:
        raise UserError("--questions must be at least 1 and --k at least 0 (0 skips pass@k)")
    config = _node_config(args)
    source = None
    if args.checkpoint_of:
        found, warnings = checkpoint.latest(Path(args.checkpoint_of))
        for line in warnings:
            print(f"warning: {line}", file=sys.stderr)
        if found is None:
            raise UserError(f"no complete checkpoint in {args.checkpoint_of}")
        source = str(found.path)
        recorded = found.meta.get("training_settings")
        if isinstance(recorded, dict) and not args.config:
            # the run's model, tasks and prompt (a SmolLM2 run's worked example), under the flags given here
            try:
                config = _node_config(args, [(key.split("."), value) for key, value in recorded.items()])
            except UserError as exc:
                print(f"warning: the checkpoint's settings do not load ({exc}); using the flags", file=sys.stderr)
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
        record = {"model": rt.source, "tasks": config.task.names, **dataclasses.asdict(result)}
        Path(args.json).write_text(json.dumps(record, indent=2) + "\n")
    return 0


def _models_get(args: argparse.Namespace) -> int:
    from swarmnode.models import fetch

    models_dir = Path(args.dir) if args.dir else fetch.models_home()
    folder = fetch.get(args.name, models_dir)
    # by name, the model brings its own settings (MODEL_SETTINGS); by folder, its weights alone
    where = f" and {fetch.MODELS_DIR_VARIABLE}={args.dir} set" if args.dir else ""
    alone = f", or --model {folder} (its weights alone, without the settings the name brings)" if args.dir else ""
    print(f"use it with --model {args.name}{where} (join, eval, bench){alone}")
    return 0


def _bootstrap(args: argparse.Namespace) -> int:
    from swarmnode.bootstrap import serve

    if args.addr_file:
        output_file(Path(args.addr_file), "--addr-file")
    serve(_node_config(args), Path(args.addr_file) if args.addr_file else None, say=_teller(args))
    return 0


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="TOML config file (see `swarmnode config show` for every field)")
    parser.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override one config field, e.g. --set train.lr=5e-5 (repeatable)",
    )


def _add_node_flags(parser: argparse.ArgumentParser) -> None:
    """The flags of everything that runs a model; each help names the config default the flag overrides."""
    from swarmnode.tasks.builtin import FAMILIES

    d = NodeConfig()
    _add_config_flags(parser)
    parser.add_argument(
        "--model",
        help=f"embedded model ({', '.join(EMBEDDED_MODELS)}), fetched model ({', '.join(FETCHED_MODELS)}) or "
        "GGUF file (after `swarmnode models get`), local model folder, or Hugging Face id "
        f"(default: {d.model.name})",
    )
    parser.add_argument(
        "--task",
        action="append",
        help=f"task family (repeatable): built in: {', '.join(FAMILIES)}; or a reasoning-gym dataset such as "
        f"basic_arithmetic (default: {', '.join(d.task.names)})",
    )
    parser.add_argument(
        "--rounds", type=int, help=f"stop after this many rounds in total (default: {d.rounds} = never)"
    )
    parser.add_argument("--run-dir", help=f"run directory for checkpoints and metrics (default: {d.run_dir})")
    parser.add_argument(
        "--seed",
        type=int,
        help=f"seed of question order and sampling; a silo run on a CPU with the same seed and --threads repeats "
        f"exactly (default: {d.seed})",
    )
    parser.add_argument("--threads", type=int, help=f"torch CPU threads (default: {d.threads})")
    parser.add_argument(
        "--minutes", type=float, help=f"stop after this many minutes (default: {d.minutes:g} = no limit)"
    )
    parser.add_argument(
        "--backend", choices=["auto", "hf", "vllm"], help=f"generation engine (default: {d.generation.backend})"
    )


def _add_log_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-level", choices=LOG_LEVELS, help="show lines from this level up; warnings go to stderr (default: info)"
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="show only warnings and errors (--log-level warning)"
    )


def _add_transport_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--transport",
        choices=["hivemind", "libp2p", "memory"],
        help="how nodes reach each other: swarm.transport (turns silo off; default: hivemind)",
    )


class _Parser(argparse.ArgumentParser):
    """argparse, but a mistake is one line (what is wrong and where the help is), like every other error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"swarmnode: error: {message} (see: {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="swarmnode",
        description="A node for decentralized peer-to-peer RL post-training of language models.",
    )
    parser.add_argument("--version", action="version", version=f"swarmnode {__version__}")
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
    _add_log_flags(join)
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
    _add_config_flags(boot)  # no model flags: a bootstrap node runs no model
    boot.add_argument("--swarm", help="swarm name (default: the config's)")
    boot.add_argument("--peers", nargs="+", metavar="MULTIADDR", help="other bootstrap nodes")
    _add_transport_flag(boot)
    boot.add_argument("--addr-file", metavar="FILE", help="also write this node's addresses to FILE, one per line")
    _add_log_flags(boot)
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

    models = commands.add_parser("models", help="pretrained models fetched without the Hugging Face hub")
    models_commands = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    get = models_commands.add_parser(
        "get", help="fetch a model (or take a GGUF file) and convert it once into a local model folder"
    )
    get.add_argument("name", metavar="NAME", help=f"{', '.join(FETCHED_MODELS)}, or a local FILE.gguf")
    get.add_argument(
        "--dir",
        help="models folder (default: $SWARMNODE_MODELS_DIR, else ~/.cache/swarmnode/models; with another, --model "
        "takes the folder, or set SWARMNODE_MODELS_DIR)",
    )
    get.set_defaults(run=_models_get)

    bench = commands.add_parser("bench", help="benchmarks that print a table and write JSON")
    bench_commands.add_commands(bench, _add_node_flags, _node_config)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args, extra = build_parser().parse_known_args(argv)
    if extra:
        action = next(
            (getattr(args, a) for a in ("config_command", "models_command", "bench") if getattr(args, a, None)), None
        )
        command = " ".join(filter(None, (args.command, action)))
        why = " (a bootstrap node runs no model)" if args.command == "bootstrap" else ""
        print(
            f"swarmnode: error: swarmnode {command} does not take {' '.join(extra)}{why} "
            f"(see: swarmnode {command} --help)",
            file=sys.stderr,
        )
        return 2
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if getattr(args, "json", None):  # every command that writes JSON checks where, before any work
            output_file(Path(args.json), "--json")
        code: int = args.run(args)
        return code
    except UserError as exc:
        print(f"swarmnode: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a path the checks did not foresee: still one line, never a traceback
        print(f"swarmnode: error: {describe_os_error(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("swarmnode: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
