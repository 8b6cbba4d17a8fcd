"""What each pane of the dashboard says, as pure functions of one status snapshot (tested without a
terminal). A node of another version may send less or other, so every field is read defensively; text that
peers chose (their model names) is shown as plain printable ASCII only."""

from __future__ import annotations

import statistics
import time
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from swarmnode.tui.reasons import label

if TYPE_CHECKING:
    from swarmnode.status import StatusSnapshot

RECENT = 10
"""Rounds that "recent" covers on the dashboard: refusal rates, groups trained on per peer, mean reward."""
BAR = 24
TICKS = "▁▂▃▄▅▆▇█"


# ---------------------------------------------------------------------- reading a snapshot defensively


def num(value: object, default: float = 0.0) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else default


def counts(value: object) -> dict[str, int]:
    """A {name: count} mapping, whatever arrived."""
    if not isinstance(value, dict):
        return {}
    return {str(k): int(num(v)) for k, v in value.items()}


def dicts(value: object) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def rounds(snap: StatusSnapshot) -> list[dict[str, Any]]:
    return dicts(snap.get("recent_rounds"))


def in_swarm(snap: StatusSnapshot) -> bool:
    return bool(snap.get("swarm")) and not snap.get("silo")


def safe(value: object, limit: int = 40) -> str:
    """Text that peers may have chosen (their model names, refused text the node's own samples repeat),
    made harmless: at most `limit` characters, each one a terminal draws one cell wide. Control, wide and
    combining characters, and the replacement character of bytes that were not UTF-8 (a byte-level model
    writes them), become "?": a terminal may draw them at another width than counted, which leaves
    leftovers on the screen."""
    text = "".join(c if _one_cell(c) else "?" for c in str(value))
    return text if len(text) <= limit else text[: limit - 1] + "~"


def _one_cell(c: str) -> bool:
    if c.isascii():
        return c.isprintable()
    return (
        c.isprintable()
        and c != "\ufffd"
        and unicodedata.east_asian_width(c) not in ("W", "F")
        and unicodedata.category(c) not in ("Mn", "Me", "Cf", "Co", "Cs", "Cn")
    )


def duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


def ago(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds}s"
    return f"{seconds // 60}m" if seconds < 7200 else f"{seconds // 3600}h"


def short(peer_id: object) -> str:
    return safe(peer_id, 64)[:8] if peer_id else "-"


def spark(values: list[float], width: int) -> str:
    """The last `width` values as one line of ticks, from 0 (rewards and accuracies; lower if a value is) to
    the highest shown."""
    shown = values[-width:] if width > 0 else []
    if not shown:
        return ""
    low = min(0.0, *shown)
    high = max(shown) if max(shown) > low else low + 1.0
    return "".join(TICKS[round((v - low) / (high - low) * (len(TICKS) - 1))] for v in shown)


# ---------------------------------------------------------------------- header: is my node healthy?


def identity_line(snap: StatusSnapshot) -> str:
    mode = f"swarm {safe(snap['swarm'], 40)}" if in_swarm(snap) else "silo: training alone"
    parts = [f"swarmnode {safe(snap.get('version', ''), 20)}", mode]
    if in_swarm(snap):
        parts.append(f"peer {short(snap.get('peer_id'))}")
    parts.append(f"{safe(snap.get('model', '?'), 60)} ({safe(snap.get('backend', '?'), 12)})")
    return " │ ".join(parts)


def phase(snap: StatusSnapshot) -> str:
    said = safe(snap.get("phase", "?"), 20)
    return "PAUSED" if snap.get("paused") and said != "stopped" else said


def health_line(snap: StatusSnapshot) -> str:
    """Round, phase, uptime, how long ago the last round ended and how fast, and any trouble."""
    now = num(snap.get("now"), time.time())
    parts = [
        f"round {int(num(snap.get('round')))} · {phase(snap)}",
        f"up {duration(now - num(snap.get('started'), now))}",
    ]
    rows = rounds(snap)
    if rows:
        last = rows[-1]
        parts.append(f"last round {ago(now - num(last.get('time'), now))} ago ({num(last.get('round_s')):.1f}s)")
        parts.append(f"{num(last.get('tokens_per_s')):,.0f} tok/s")
        before = rows[max(0, len(rows) - 1 - RECENT)]
        failed = int(num(last.get("io_errors")) - num(before.get("io_errors"))) if len(rows) > 1 else 0
        if failed > 0:
            parts.append(f"! swarm I/O failed {failed}x in {min(RECENT, len(rows) - 1)} rounds")
        offset = last.get("clock_offset_s")
        if isinstance(offset, int | float) and abs(offset) >= 10:
            parts.append(f"! clock {offset:+.0f}s off peers'")
    else:
        parts.append("no round yet")
    return " │ ".join(parts)


# ---------------------------------------------------------------------- is it learning?


def reward_label(snap: StatusSnapshot) -> str:
    rewards = [num(r.get("mean_reward")) for r in rounds(snap)]
    if not rewards:
        return "own reward: no round yet"
    recent = rewards[-RECENT:]
    return f"own reward {rewards[-1]:.3f} (mean of last {len(recent)}: {statistics.fmean(recent):.3f})"


def rewards(snap: StatusSnapshot) -> list[float]:
    return [num(r.get("mean_reward")) for r in rounds(snap)]


def accuracy_label(snap: StatusSnapshot) -> str:
    evals = dicts(snap.get("evals"))
    if not evals:
        return "held-out accuracy: not evaluated yet"
    last, first = evals[-1], evals[0]
    text = f"held-out accuracy {num(last.get('eval_greedy_accuracy')):.1%} at round {int(num(last.get('round')))}"
    if len(evals) > 1:
        text += f" (round {int(num(first.get('round')))}: {num(first.get('eval_greedy_accuracy')):.1%})"
    return text


def accuracies(snap: StatusSnapshot) -> list[float]:
    return [num(e.get("eval_greedy_accuracy")) for e in dicts(snap.get("evals"))]


def _split(row: dict[str, Any]) -> tuple[int, int]:
    """(own, peers') groups a round trained on: the round row's `groups` counts both (those with reward
    variance), `external_groups` the peers' (all chosen with variance)."""
    trained, external = int(num(row.get("groups"))), int(num(row.get("external_groups")))
    return max(0, trained - external), external


def trained_line(snap: StatusSnapshot) -> str:
    """What the last round trained on, in words: the round line's `groups 19/16` means 19 groups trained on
    (own and peers') for 16 own questions."""
    rows = rounds(snap)
    if not rows:
        return "trained on: no round yet"
    last = rows[-1]
    questions = int(num(snap.get("questions_per_round")))
    own, external = _split(last)
    if own + external == 0:
        return f"round {int(num(last.get('round')))}: no update (no group had reward variance)"
    text = f"round {int(num(last.get('round')))} trained on {own} of {questions} own groups"
    if in_swarm(snap):
        text += f" + {external} peers' (of {int(num(last.get('external_available')))} received)"
    return text


def mix_title(snap: StatusSnapshot) -> str:
    peers = "  ▒ peers'" if in_swarm(snap) else ""
    return f"Trained on per round: █ own{peers}  ░ own without reward variance"


def mix_lines(snap: StatusSnapshot, last: int = 6) -> list[str]:
    """Per round: own groups trained on (█), peers' (▒), own without reward variance (░)."""
    questions = int(num(snap.get("questions_per_round")))
    wanted = int(num(snap.get("external_groups"))) if in_swarm(snap) else 0
    lines = []
    for row in rounds(snap)[-last:]:
        own, external = _split(row)
        whole = max(1, questions + max(wanted, external))
        cells = [round(BAR * n / whole) for n in (own, external, max(0, questions - own))]
        bar = "█" * cells[0] + "▒" * cells[1] + "░" * cells[2]
        peers = f" + {external:2d} peers'" if in_swarm(snap) else ""
        lines.append(f"r{int(num(row.get('round'))):<5d} {bar:<{BAR}} {own:2d} own{peers}")
    return lines


def drift_line(snap: StatusSnapshot) -> str:
    """The drift signal: whether the node starts to write what it refused in peers' completions (swarm mode only)."""
    rows = rounds(snap)
    drift = rows[-1].get("drift") if rows else None
    if not in_swarm(snap) or not isinstance(drift, dict):
        return ""
    return (
        f"drift: refused peers' text in {num(drift.get('peer_text_rate')):.0%} of own samples, "
        f"text outside the answer in {num(drift.get('stray_rate')):.0%}"
    )


def speed_text(snap: StatusSnapshot) -> str:
    rows = rounds(snap)
    if not rows:
        return "waiting for the first round…"
    last = rows[-1]
    parts = [("generate", num(last.get("generate_s")))]
    parts += [("share", num(last.get("share_s")))] if in_swarm(snap) else []
    parts.append(("train", num(last.get("train_s"))))
    total = num(last.get("round_s")) or sum(p for _, p in parts)
    lines = [f"{num(last.get('tokens_per_s')):,.0f} tokens/s   round {total:.2f}s"]
    for name, seconds in parts:
        filled = round(BAR * seconds / total) if total > 0 else 0
        lines.append(f"{name:8s} {'█' * filled}{'░' * (BAR - filled)} {seconds:5.2f}s")
    return "\n".join(lines)


# ---------------------------------------------------------------------- who am I learning from, who attacks me


@dataclass(frozen=True)
class PeerView:
    peer_id: str
    model: str
    status: str
    """What the node does about the peer: "banned 9m" (ignored that much longer), "struck 2" (one download a
    round), "invalid 3" (toward a ban), or "ok"."""
    concern: int
    """0 banned, 1 struck or invalid now, 2 held against before, 3 none: the table's order."""
    seen: str
    accepted: int
    trained: int
    """Its groups trained on in the last `RECENT` rounds."""
    against: int | None
    """Its refusals that count toward a ban or a strike (None: a node too old to say which)."""
    dropped: int
    """Its refusals never held against it (likelihood gate, answer format, stale, duplicates, quota...)."""
    scored: float
    """The mean reward this node's verifier gave its accepted completions."""


def reason_effects(snap: StatusSnapshot) -> dict[str, str]:
    effects = snap.get("reason_effects")
    return {str(k): str(v) for k, v in effects.items()} if isinstance(effects, dict) else {}


def peer_views(snap: StatusSnapshot) -> list[PeerView]:
    """The peers, those the node acts against first (banned, then struck), then by groups trained on."""
    effects = reason_effects(snap)
    used: dict[str, int] = {}
    for row in rounds(snap)[-RECENT:]:
        for author, n in counts(row.get("external_by_peer")).items():
            used[author] = used.get(author, 0) + n
    views = []
    for peer in dicts(snap.get("peers")):
        rejected = counts(peer.get("rejected"))
        known = all(reason in effects for reason in rejected)
        against = sum(n for r, n in rejected.items() if effects.get(r) in ("ban", "strike"))
        strikes, invalid = int(num(peer.get("strikes"))), int(num(peer.get("invalid")))
        if peer.get("banned"):
            left = peer.get("banned_for_s")
            status, concern = ("banned " + ago(num(left))) if isinstance(left, int | float) else "banned", 0
        elif strikes or invalid:
            status, concern = (f"struck {strikes}" if strikes else f"invalid {invalid}"), 1
        else:
            status, concern = "ok", 2 if against else 3
        views.append(
            PeerView(
                peer_id=safe(peer.get("peer_id", "?"), 64),
                model=safe(peer.get("model", "?"), 32),
                status=status,
                concern=concern,
                seen=ago(num(peer.get("last_seen_s"))),
                accepted=int(num(peer.get("accepted_groups"))),
                trained=used.get(str(peer.get("peer_id")), 0),
                against=against if known else None,
                dropped=sum(n for r, n in rejected.items() if effects.get(r) == "neither"),
                scored=num(peer.get("mean_reward")),
            )
        )
    return sorted(views, key=lambda v: (v.concern, -v.trained, -v.accepted))


def peers_title(views: list[PeerView]) -> str:
    banned = sum(v.concern == 0 for v in views)
    struck = sum(v.concern == 1 for v in views)
    learning = sum(v.trained > 0 for v in views)
    if not views:
        return "Peers: none yet, looking for the swarm…"
    parts = [f"Peers: {len(views)}", f"learning from {learning}"]
    parts += [f"{banned} banned"] if banned else []
    parts += [f"{struck} struck"] if struck else []
    return " · ".join(parts)


PEERS_LEGEND = (
    "against: counts toward a ban or strike · dropped: refused, never held against · trained: its groups "
    f"used, last {RECENT} rounds · scored: mean reward this node's verifier gave its completions"
)
PEERS_LEGEND_SHORT = "against: counts toward a ban or strike · dropped: never held against"


@dataclass(frozen=True)
class RefusalView:
    code: str
    label: str
    effect: str
    """"ban", "strike" or "no" (never held against a peer); "?" from a node too old to say."""
    recent: int | None
    """In the last `RECENT` rounds (None: no round rows with counts)."""
    total: int


def refusal_views(snap: StatusSnapshot) -> list[RefusalView]:
    """Every reason refused since start, the busiest lately first."""
    effects = reason_effects(snap)
    total = counts(snap.get("rejected"))
    rows = [r for r in rounds(snap) if isinstance(r.get("rejected"), dict)]
    # the counts are cumulative: those as the round before the last RECENT ended (none: since start)
    before = counts(rows[-RECENT - 1].get("rejected")) if len(rows) > RECENT else {}
    after = counts(rows[-1].get("rejected")) if rows else None
    views = [
        RefusalView(
            code=safe(reason, 40),
            label=label(reason),
            effect={"neither": "no"}.get(effects.get(reason, "?"), effects.get(reason, "?")),
            recent=None if after is None else after.get(reason, 0) - before.get(reason, 0),
            total=n,
        )
        for reason, n in total.items()
        if n > 0
    ]
    return sorted(views, key=lambda v: (-(v.recent or 0), -v.total, v.code))


REFUSALS_TITLE = f"Refused peers' data, by reason: in the last {RECENT} rounds, and since start"


def refusals_title(views: list[RefusalView]) -> str:
    return REFUSALS_TITLE if views else "Refused peers' data: nothing so far"
