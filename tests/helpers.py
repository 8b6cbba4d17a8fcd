"""Tiny models built on the spot for tests (nothing is downloaded)."""

from __future__ import annotations

import json
import re
import select
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from swarmnode.models.tiny import byte_tokenizer, save_tiny_llama, tiny_llama


def tiny_model(hidden: int = 32, layers: int = 2, heads: int = 2, seed: int = 0) -> tuple[Any, Any]:
    tokenizer = byte_tokenizer()
    return tiny_llama(
        tokenizer, hidden=hidden, layers=layers, heads=heads, intermediate=2 * hidden, seed=seed
    ), tokenizer


def save_tiny_model(path: Path, hidden: int = 32, layers: int = 2, heads: int = 2) -> Path:
    return Path(save_tiny_llama(path, hidden=hidden, layers=layers, heads=heads, intermediate=2 * hidden))


SWARMNODE = str(Path(sys.executable).with_name("swarmnode"))
"""The `swarmnode` command of the environment running the tests."""

T = TypeVar("T")


def join_command(swarm: str, run_dir: Path, key: Path, *extra: str, sets: tuple[str, ...] = ()) -> list[str]:
    """`swarmnode join --swarm SWARM` as the networked tests run it: one thread, transformers, no periodic
    eval, its own run directory and identity key; `extra` flags and `--set` overrides appended."""
    command = [SWARMNODE, "join", "--swarm", swarm, "--run-dir", str(run_dir), "--threads", "1"]
    command += ["--backend", "hf", "--set", "eval.every=0", "--set", f"swarm.key_path={key}", *extra]
    for setting in sets:
        command += ["--set", setting]
    return command


def read_line_matching(proc: subprocess.Popen[str], pattern: str, limit: float = 120.0) -> re.Match[str]:
    """Read `proc`'s output until a line matches `pattern` (bounded in time)."""
    assert proc.stdout is not None
    deadline = time.monotonic() + limit
    seen = []
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 1.0)
        if ready:
            line = proc.stdout.readline()
            seen.append(line)
            found = re.search(pattern, line)
            if found:
                return found
        if proc.poll() is not None:
            break
    raise AssertionError(f"no line matching {pattern!r}; got {seen[-10:]}")


def metrics_rows(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # a line being written right now
            pass
    return rows


def wait_for(
    check: Callable[[], T | None],
    what: str,
    limit: float = 90.0,
    every: float = 0.5,
    explain: Callable[[], str] | None = None,
) -> T:
    """Poll `check` until it returns something truthy (bounded in time); on a timeout, `explain()` says
    what the processes under test were doing."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(every)
    raise AssertionError(f"timed out after {limit:.0f} s waiting for {what}" + (f"\n{explain()}" if explain else ""))


def logged_address(log: Path, limit: float = 180.0) -> str:
    """The address a `swarmnode join` process logs for others to join it with (`--peers ADDR`, the first of
    them), waited for up to `limit` seconds."""
    return _logged(log, r"--peers ADDR\): (\S+)", "address", limit)


def logged_peer_id(log: Path, limit: float = 60.0) -> str:
    """The peer id a `swarmnode join` process logs when it joins its swarm, waited for up to `limit` seconds."""
    return _logged(log, r"peer id (\w+)", "peer id", limit)


def _logged(log: Path, pattern: str, what: str, limit: float) -> str:
    found = wait_for(lambda: re.search(pattern, log.read_text()), f"the node's {what} in {log.name}", limit)
    return found.group(1)


SWARM_COUNTERS = ("round", "peers", "external_groups", "rejected", "fetch_misses", "io_errors")


def swarm_report(logs: list[Path], run_dirs: list[Path]) -> str:
    """For a failed swarm test: each node's last swarm counters, its log lines that are not round lines, and
    the tail of its transport host's log."""
    parts = []
    for log, run_dir in zip(logs, run_dirs, strict=True):
        rows = metrics_rows(run_dir)
        last = {k: rows[-1].get(k) for k in SWARM_COUNTERS} if rows else "no rounds"
        said = [line for line in (log.read_text().splitlines() if log.exists() else []) if " | reward " not in line]
        host = run_dir / "libp2p-host.log"
        host_tail = host.read_text().splitlines()[-15:] if host.exists() else []
        parts.append(f"== {run_dir.name}: {last}\n" + "\n".join(said[-20:] + host_tail))
    return "\n".join(parts)
