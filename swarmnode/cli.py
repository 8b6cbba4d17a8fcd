"""The `swarmnode` command: parses arguments and calls library code, nothing else."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from swarmnode.errors import UserError
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="swarmnode",
        description="A node for decentralized peer-to-peer RL post-training of language models.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    keygen = commands.add_parser("keygen", help="create a new Ed25519 identity key file (mode 0600)")
    keygen.add_argument(
        "--out", default=str(DEFAULT_KEY_PATH), help="where to write it (default: %(default)s)"
    )
    keygen.set_defaults(run=_keygen)

    bench = commands.add_parser("bench", help="benchmarks that print a table and write JSON")
    benches = bench.add_subparsers(dest="bench", required=True, metavar="BENCH")
    proto = benches.add_parser("protocol", help="sign+encode and verify+decode rates beside plain msgpack")
    proto.add_argument("--seconds", type=float, default=1.0, help="time per operation (default: %(default)s)")
    proto.add_argument(
        "--json", default="runs/bench/protocol.json", help="JSON output (default: %(default)s)"
    )
    proto.set_defaults(run=_bench_protocol)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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
