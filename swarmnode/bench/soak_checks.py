"""What `swarmnode bench soak` measures and checks, from what it recorded (pure functions, no processes):
memory of each node's process tree over time, slow rounds, the share of rounds with peers' groups, how many
rounds a restarted node needs to train on every other live node's groups again, and tracebacks in logs."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REJOIN_BAR = 5
"""A restarted node trains on every other live node's groups again within this many of its rounds."""
SLACK_S = 1.0
"""What a round may take beyond round_timeout_s + generate_s + train_s: picking groups, counters, the row."""
MIN_SHARING = 0.5
"""Every node's rounds after the bootstrap node is gone: at least this share with peers' groups."""
TRACEBACK = "Traceback (most recent call last)"
ERROR_LINE = re.compile(r"\b[A-Za-z_][\w.]*(Error|Exception)\b")


@dataclass
class Life:
    """One incarnation of a node's process: from its start to its end (None: still running)."""

    start: float
    end: float | None = None
    killed: bool = False
    """Ended by the soak's SIGKILL (not by the final SIGINT, nor on its own)."""


@dataclass
class NodeRecord:
    index: int
    peer_id: str = ""
    lives: list[Life] = field(default_factory=list)
    rss: list[tuple[float, int, int]] = field(default_factory=list)
    """(time, KiB of the node's process and its children, index of the life) per sample."""

    def life_at(self, t: float) -> int | None:
        for k, life in enumerate(self.lives):
            if life.start <= t and (life.end is None or t < life.end):
                return k
        return None


def proc_children() -> dict[int, list[int]]:
    """Every process's children, from /proc (Linux)."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(name))
    return children


def tree_rss_kib(pid: int, children: dict[int, list[int]] | None = None) -> int:
    """Resident memory of `pid` and all its descendants (a node's p2p daemon, say), in KiB; 0 when gone."""
    children = proc_children() if children is None else children
    total, todo, seen = 0, [pid], set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except (OSError, ValueError, IndexError):
            continue
        todo += children.get(p, [])
    return total


def growth(node: NodeRecord, warmup_s: float, rows: Sequence[dict[str, Any]] = ()) -> tuple[float, float] | None:
    """(growth %, seconds measured) of the node's longest-measured life: its RSS from `warmup_s` after that
    life's first round (after its start, without `rows`) to its last sample; None when no life has two
    samples after its warm-up. A node still loading its model is not growing."""
    best: tuple[float, float] | None = None
    for k, life in enumerate(node.lives):
        first = min((r["time"] for r in rows if "round_s" in r and node.life_at(r.get("time", 0.0)) == k), default=None)
        if rows and first is None:
            continue
        begin = (life.start if first is None else first) + warmup_s
        samples = [(t, kib) for t, kib, life_k in node.rss if life_k == k and t >= begin and kib]
        if len(samples) < 2:
            continue
        span = samples[-1][0] - samples[0][0]
        pct = 100.0 * (samples[-1][1] - samples[0][1]) / samples[0][1]
        if best is None or span > best[1]:
            best = (pct, span)
    return best


def rss_at(node: NodeRecord, t: float) -> int | None:
    """The node's first RSS sample at or after `t` (KiB)."""
    return next((kib for st, kib, _ in node.rss if st >= t and kib), None)


def slow_rounds(rows: Sequence[dict[str, Any]], round_timeout_s: float, slack_s: float = SLACK_S) -> list[int]:
    """Rounds longer than round_timeout_s + their own generate_s + train_s (+ `slack_s`)."""
    return [
        int(r["round"])
        for r in rows
        if "round_s" in r and r["round_s"] > round_timeout_s + r["generate_s"] + r["train_s"] + slack_s
    ]


def sharing(rows: Sequence[dict[str, Any]], after: float = 0.0) -> float | None:
    """The share of round rows (after time `after`) that trained on peers' groups; None without rows."""
    rounds = [r for r in rows if "round_s" in r and r.get("time", 0.0) > after]
    return sum(1 for r in rounds if r.get("external_groups", 0) > 0) / len(rounds) if rounds else None


def settled(node: NodeRecord, rows: Sequence[dict[str, Any]], skip: int = REJOIN_BAR) -> list[dict[str, Any]]:
    """Round rows that are not among the first `skip` of their life (while a restarted node is rejoining)."""
    kept, per_life = [], [0] * len(node.lives)
    for row in (r for r in rows if "round_s" in r):
        k = node.life_at(row.get("time", 0.0))
        if k is not None:
            per_life[k] += 1
            if per_life[k] > skip:
                kept.append(row)
    return kept


def lives_with_rounds(node: NodeRecord, rows: Sequence[dict[str, Any]]) -> int:
    return len({node.life_at(r.get("time", 0.0)) for r in rows if "round_s" in r} - {None})


def live_at(node: NodeRecord, rows: Sequence[dict[str, Any]], t: float, min_rounds: int = 1) -> bool:
    """Whether the node was running at `t` and had already finished `min_rounds` rounds in that life."""
    k = node.life_at(t)
    if k is None:
        return False
    start = node.lives[k].start
    return sum(1 for r in rows if "round_s" in r and start < r.get("time", 0.0) <= t) >= min_rounds


def killed_between(node: NodeRecord, a: float, b: float) -> bool:
    return any(life.killed and life.end is not None and a < life.end <= b for life in node.lives)


def life_rounds(node: NodeRecord, restart_t: float, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The node's round rows after `restart_t`, in the life that began then."""
    k = node.life_at(restart_t)
    end = node.lives[k].end if k is not None else None
    return [r for r in rows if "round_s" in r and restart_t < r.get("time", 0.0) and (end is None or r["time"] < end)]


def rounds_to_rejoin(
    restarted: NodeRecord, restart_t: float, nodes: Sequence[NodeRecord], rows: dict[int, list[dict[str, Any]]]
) -> tuple[int | None, int]:
    """(rounds the restarted node took until it had trained on groups of every other node live at its
    restart and not killed since, or None; its rounds in the life that restart began)."""
    mine = life_rounds(restarted, restart_t, rows[restarted.index])
    others = [n for n in nodes if n.index != restarted.index and live_at(n, rows[n.index], restart_t)]
    seen: set[str] = set()
    for count, row in enumerate(mine, 1):
        seen |= {peer for peer, n in (row.get("external_by_peer") or {}).items() if n > 0}
        needed = {n.peer_id for n in others if not killed_between(n, restart_t, row["time"])}
        if needed <= seen:
            return count, len(mine)
    return None, len(mine)


def rounds_to_be_used(
    restarted: NodeRecord, restart_t: float, nodes: Sequence[NodeRecord], rows: dict[int, list[dict[str, Any]]]
) -> int | None:
    """The other direction: how many of the restarted node's rounds (in the life that restart began) passed
    until every other node live at its restart, and not killed since, had trained on its groups; None if
    that never happened in the rows. Peers' rounds count from the start of the restarted node's first round:
    before it, what they took of it was published by its previous life."""
    rounds = life_rounds(restarted, restart_t, rows[restarted.index])
    if not rounds:
        return None
    mine, first_start = [r["time"] for r in rounds], rounds[0]["time"] - rounds[0]["round_s"]
    others = [n for n in nodes if n.index != restarted.index and live_at(n, rows[n.index], restart_t)]
    used_at = {
        n.index: min(
            (
                r["time"]
                for r in rows[n.index]
                if "round_s" in r and r.get("time", 0.0) > first_start
                if (r.get("external_by_peer") or {}).get(restarted.peer_id, 0) > 0
            ),
            default=None,
        )
        for n in others
    }
    for count, t in enumerate(mine, 1):
        needed = [n.index for n in others if not killed_between(n, restart_t, t)]
        if all(used_at[i] is not None and used_at[i] <= t for i in needed):
            return count
    return None


def count_tracebacks(texts: Iterable[str]) -> tuple[int, int, list[str]]:
    """(tracebacks, lines naming an exception type, up to 5 distinct such lines) in log texts."""
    tracebacks = errors = 0
    samples: list[str] = []
    for text in texts:
        tracebacks += text.count(TRACEBACK)
        for line in text.splitlines():
            if ERROR_LINE.search(line):
                errors += 1
                short = line.strip()[:200]
                if short not in samples and len(samples) < 5:
                    samples.append(short)
    return tracebacks, errors, samples
