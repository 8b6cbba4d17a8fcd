"""The run directory, and the one record of a round: its one owner (metrics.jsonl, config.json, status.url,
logs, the checkpoint root) and the typed rows that metrics.jsonl, the status API and the dashboard share.

No torch here: `swarmnode report`, `tui` and `bootstrap` read and write it without the model stack.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, NotRequired, TypedDict

from swarmnode.drift import DriftRow
from swarmnode.errors import UserError, make_folder


class SwarmCounters(TypedDict, total=False):
    """Cumulative swarm counters, in every round row of a swarm node (a swarm sets all of them)."""

    rejected: dict[str, int]
    """Rejections by reason: of offers, of downloaded batches and of transport records."""
    peers: int
    banned_peers: int
    misreported_rewards: int
    fetch_misses: int
    io_errors: int


SWARM_COUNTER_KEYS: tuple[str, ...] = tuple(SwarmCounters.__annotations__)


class RoundRow(SwarmCounters, total=False):
    """One line of metrics.jsonl per round (the swarm counters only in swarm mode)."""

    round: int
    time: float
    mean_reward: float
    accuracy: float
    questions: int
    """Own questions generated this round (I, or fewer with generation.min_questions)."""
    groups: int
    completions: int
    generated_tokens: int
    tokens_per_s: float
    generate_s: float
    share_s: float
    share_io_s: float
    """Seconds the swarm's I/O thread worked since the previous round (off the critical path; `share_s` is
    what the round itself waited)."""
    clock_offset_s: float | None
    """Seconds the node's clock seems ahead of its peers' (negative: behind; None: no peer seen yet)."""
    train_s: float
    round_s: float
    stepped: bool
    loss: float
    grad_norm: float
    clip_fraction: float
    kl: float
    external_available: int
    external_groups: int
    external_slots: int
    """Slots the round offered peers' groups: J, or what train.budget_groups left of it."""
    external_by_peer: dict[str, int]
    external_skipped: dict[str, int]
    """Peers' groups received but not trained on, by why (`experience.select_groups`)."""
    offpolicy: dict[str, int]
    """`weighted_tokens` (tokens with a known behaviour log-prob), `masked_tokens` (by train.offpolicy_mask),
    `gated_completions` (peers', by train.peer_min_logprob)."""
    policy_version: int
    drift: DriftRow
    """The drift signal over the node's latest own completions (`swarmnode.drift`)."""


class EvalRow(TypedDict):
    """One line of metrics.jsonl per held-out evaluation."""

    round: int
    time: float
    eval_greedy_accuracy: float
    eval_mean_reward: float
    eval_questions: int
    eval_by_task: dict[str, float]
    """Greedy accuracy per task family (the families a node trains on, round-robin in the eval split)."""
    eval_s: float


class PeerRow(TypedDict):
    """One peer as the node's peer book sees it (the status API's `peers` list)."""

    peer_id: str
    model: str
    last_seen_s: float
    accepted_groups: int
    rejected: dict[str, int]
    mean_reward: float
    """The mean reward this node's own verifier gave the peer's accepted completions, since first seen (not
    comparable with a round's own `mean_reward`: other questions, a longer span)."""
    score: float
    banned: bool
    banned_for_s: NotRequired[float]
    """Seconds the peer is still ignored for (0: not banned); absent from nodes of older releases."""
    strikes: NotRequired[int]
    """Failed or lying offers not yet healed: with any, one download a round; at `swarm.offer_strikes`, a ban."""
    invalid: NotRequired[int]
    """Protocol-invalid messages since its last ban: at `swarm.ban_after`, a ban."""


def round_line(row: RoundRow, questions: int, swarm: bool) -> str:
    """The line printed for a round. `trained 11/16 own + 8 peers' of 9`: of the round's 16 own questions, 11
    groups had a reward signal and were trained on, and 8 of the 9 peers' groups received."""
    external = row.get("external_groups", 0) if swarm else 0
    line = (
        f"round {row['round']:5d} | reward {row['mean_reward']:.3f} | acc {row['accuracy']:6.1%} | "
        f"trained {row['groups'] - external:2d}/{questions} own"
    )
    if swarm:
        line += f" + {external} peers' of {row['external_available']}"
        skipped = row.get("external_skipped") or {}
        if skipped:
            line += " (not: " + ", ".join(f"{why} {n}" for why, n in skipped.items()) + ")"
    line += f" | {row['tokens_per_s']:7.0f} tok/s | gen {row['generate_s']:.2f}s train {row['train_s']:.2f}s"
    off = row.get("offpolicy") or {}
    if off.get("masked_tokens") or off.get("gated_completions"):
        line += f" | masked {off.get('masked_tokens', 0)} tokens, gated {off.get('gated_completions', 0)}"
    drift = row.get("drift")
    if drift and drift["peer_text_rate"]:
        line += f" | drift: peers' text in {drift['peer_text_rate']:.0%} of own samples"
    return line


def _row(line: str) -> dict[str, Any] | None:
    """One metrics.jsonl line as a row; None for a broken one (a node killed in the middle of a write)."""
    try:
        row = json.loads(line)
    except ValueError:
        return None
    return row if isinstance(row, dict) and isinstance(row.get("round", 0), int) else None


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """Every intact row of a run's metrics.jsonl (rounds and evaluations), oldest first; [] when there is none.
    Broken lines are skipped (`RunDir.truncate_after` moves them out of the file)."""
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    rows = (_row(line) for line in path.read_text(errors="replace").splitlines() if line.strip())
    return [row for row in rows if row is not None]


def replace_text(path: Path, text: str) -> None:
    """Write a small file whole or not at all (readers never see half of it)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class RunDir:
    """A node's run directory."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def status_url(self) -> Path:
        return self.path / "status.url"

    @property
    def node_log(self) -> Path:
        return self.path / "node.log"

    @property
    def libp2p_log(self) -> Path:
        return self.path / "libp2p-host.log"

    @property
    def broken_metrics(self) -> Path:
        return self.path / "metrics.broken.jsonl"

    def create(self) -> None:
        """Make the folder and check that the node can write in it (a UserError saying so if not)."""
        make_folder(self.path, "--run-dir")
        try:
            probe = self.path / f".write-check-{os.getpid()}"
            probe.write_text("")
            probe.unlink()
        except OSError as exc:
            raise UserError(
                f"cannot write in the run directory {self.path} ({exc.strerror or exc}); choose another --run-dir"
            ) from exc

    def append(self, row: RoundRow | EvalRow) -> None:
        with self.metrics.open("a") as f:
            f.write(json.dumps(row) + "\n")

    def rows(self) -> list[dict[str, Any]]:
        return read_metrics(self.path)

    def truncate_after(self, last_round: int) -> int:
        """Drop the rows of rounds after `last_round`: they are about to be run again (resume). Broken lines
        are moved to metrics.broken.jsonl (kept, not lost); returns how many there were."""
        if not self.metrics.exists():
            return 0
        lines = [line for line in self.metrics.read_text(errors="replace").splitlines() if line.strip()]
        parsed = [(line, _row(line)) for line in lines]
        broken = [line for line, row in parsed if row is None]
        kept = [line for line, row in parsed if row is not None and row.get("round", 0) <= last_round]
        if broken:
            with self.broken_metrics.open("a") as f:
                f.write("".join(line + "\n" for line in broken))
        replace_text(self.metrics, "".join(line + "\n" for line in kept))
        return len(broken)

    def write_config(self, config_json: str) -> None:
        (self.path / "config.json").write_text(config_json + "\n")

    def write_status_url(self, url: str) -> None:
        replace_text(self.status_url, url + "\n")

    def read_status_url(self) -> str | None:
        return self.status_url.read_text().strip() if self.status_url.exists() else None
