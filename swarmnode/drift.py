"""The drift signal: is this node starting to write text that peers introduced?

A payload that rides on correct answers shows first in the node's own samples, not in any
reward or accuracy: the verifier reads only the answer span. So the node watches its latest own
completions for two things:

- `stray_rate`: the share that carries any text outside the answer span (before or after it; all of a
  completion without one: `tasks.base.outside_text`);
- `peer_text_rate`: the share whose outside text contains a fragment (`FRAGMENT` characters) of text the
  node refused in peers' completions: the part the answer format forbids, and the outside text of
  completions the likelihood gate dropped.

`line()` tells the user when either rises (a peer-text share of `ALERT_RATE`, or a stray share
`ALERT_RATE` above what the node's first window showed) and when it is gone again.
"""

from __future__ import annotations

from collections import Counter, OrderedDict, deque
from collections.abc import Iterable
from typing import TypedDict

from swarmnode.tasks.base import outside_text

WINDOW = 256
"""Own completions the rates are over."""
FRAGMENT = 6
"""Characters per fragment of refused peers' text (shorter text counts whole)."""
CAPACITY = 8192
"""Fragments remembered (the least recently seen are forgotten first)."""
ALERT_RATE = 0.02
REPEAT_ROUNDS = 50
"""A standing alert is said again at most this often."""
GONE = "drift: gone (this node's own samples are back to its start: no refused peers' text, no more stray text)"


class DriftRow(TypedDict):
    stray_rate: float
    peer_text_rate: float
    top: str
    """The most common outside text of the window (at most 40 characters; "" when none)."""
    refused_fragments: int


def fragments(text: str) -> set[str]:
    """`text`'s runs of `FRAGMENT` characters (the whole text when it is shorter and not empty)."""
    if len(text) <= FRAGMENT:
        return {text} if text else set()
    return {text[i : i + FRAGMENT] for i in range(len(text) - FRAGMENT + 1)}


def pieces(text: str) -> set[str]:
    """Every run of `text` of 3 to `FRAGMENT` characters: what a remembered fragment (a whole short refused
    text among them) is looked up by."""
    return {text[i : i + n] for n in range(3, FRAGMENT + 1) for i in range(len(text) - n + 1)}


class Drift:
    def __init__(self) -> None:
        self._refused: OrderedDict[str, None] = OrderedDict()
        self._own: deque[tuple[str, bool]] = deque(maxlen=WINDOW)
        """(outside text, whether it carries refused peers' text) per own completion, newest last."""
        self._baseline: float | None = None
        self._alert = ""
        self._said_round = -REPEAT_ROUNDS

    def note_refused(self, texts: Iterable[str]) -> None:
        """Text the node refused in peers' completions (not whole completions: the refused part)."""
        for text in texts:
            for piece in fragments(text.strip()) if len(text.strip()) >= 3 else ():
                self._refused[piece] = None
                self._refused.move_to_end(piece)
        while len(self._refused) > CAPACITY:
            self._refused.popitem(last=False)

    def note_round(self, round_: int, refused: Iterable[str], gated: Iterable[str], own: Iterable[str]) -> str | None:
        """One round: the text refused in peers' completions (outside the answer format), the completions the
        learner's likelihood gate dropped (their text outside the answer is refused), and the node's own
        completions. Returns the line to say, if any (`line`)."""
        self.note_refused(refused)
        self.note_refused(outside_text(t) for t in gated)
        self.note_own(own)
        return self.line(round_)

    def note_own(self, completions: Iterable[str]) -> None:
        for completion in completions:
            outside = outside_text(completion)
            self._own.append((outside, bool(outside) and not pieces(outside).isdisjoint(self._refused)))
        if self._baseline is None and len(self._own) == WINDOW:
            self._baseline = self.row()["stray_rate"]

    def row(self) -> DriftRow:
        n = len(self._own) or 1
        texts = Counter(text for text, _ in self._own if text)
        return {
            "stray_rate": sum(1 for text, _ in self._own if text) / n,
            "peer_text_rate": sum(1 for _, peer in self._own if peer) / n,
            "top": texts.most_common(1)[0][0][:40] if texts else "",
            "refused_fragments": len(self._refused),
        }

    def line(self, round_: int) -> str | None:
        """A line for the user when the signal rises, again every `REPEAT_ROUNDS` while it stands, and once
        when it is gone; None otherwise."""
        row = self.row()
        alerts = []
        if row["peer_text_rate"] >= ALERT_RATE:
            share = f"{row['peer_text_rate']:.0%} of its last {len(self._own)} completions"
            alerts.append(f"{share} carry text it refused in peers'")
        base = self._baseline
        if base is not None and row["stray_rate"] >= base + ALERT_RATE:
            alerts.append(f"{row['stray_rate']:.0%} carry text outside the answer (its first {WINDOW}: {base:.0%})")
        if alerts:
            text = "drift: this node's own samples changed: " + "; ".join(alerts) + f" (most common: {row['top']!r})"
            if not self._alert or round_ - self._said_round >= REPEAT_ROUNDS:
                self._alert, self._said_round = text, round_
                return text
            return None
        if self._alert:
            self._alert = ""
            return GONE
        return None
