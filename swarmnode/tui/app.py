"""The dashboard app. It only reads a node's status API (through a `Feed`), so it can attach to a node in
another process or container. It answers a volunteer's four questions: is my node healthy (the header), is
it learning (the learning pane), who am I learning from and who is attacking me, and what is done about it
(the swarm pane: peers, those acted against first, and refusals by reason with what each does to a peer).
An unreachable node is shown as such and retried; a node that stopped is said to have stopped."""

from __future__ import annotations

import asyncio
import re
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import events, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.css.query import NoMatches
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import DataTable, Footer, Static

from swarmnode.tui import panes
from swarmnode.tui.feed import Feed

if TYPE_CHECKING:
    from swarmnode.status import StatusSnapshot

POLL_S = 1.0
WIDE = 120
"""Columns from which the panes sit side by side."""
FULL_TABLES = 170
"""Columns from which the tables add the peer's model and the reason code."""
LOG_LINES = 200
QUIET_EVENTS = {"round", "phase", "eval"}
"""Event kinds the log pane leaves out (the header and panes show them)."""
ROUND_LINE = re.compile(r"round\s+\d+ \| reward ")
"""The node's per-round log line (`run_dir.round_line`): the panes show what it says."""


class Trend(Widget):
    """A label, then values as one line of ticks filling the rest of the width."""

    DEFAULT_CSS = "Trend { height: 1; padding: 0 1; }"
    COMPONENT_CLASSES: ClassVar[set[str]] = {"trend--ticks"}

    def __init__(self, id: str) -> None:
        super().__init__(id=id)
        self.label = ""
        self.values: list[float] = []

    def show(self, label: str, values: list[float]) -> None:
        self.label, self.values = label, values
        self.refresh()

    def render(self) -> Text:
        """The ticks at the right, a third of the width (so the trends of a pane line up) if the label
        leaves that much."""
        width = self.content_size.width
        ticks = min(60, width // 3, width - len(self.label) - 2)
        text = Text(self.label, no_wrap=True, overflow="ellipsis")
        spark = panes.spark(self.values, ticks) if ticks >= 4 else ""
        if spark:
            text.append(" " * (width - len(self.label) - len(spark)))
            text.append(spark, style=self.get_component_rich_style("trend--ticks"))
        return text


class Table(DataTable[Text], inherit_bindings=False):
    """A read-only table: no cursor, the keys only scroll it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "scroll_up", "scroll up", show=False),
        Binding("down", "scroll_down", "scroll down", show=False),
        Binding("pageup", "page_up", "a page up", show=False),
        Binding("pagedown", "page_down", "a page down", show=False),
        Binding("home", "scroll_top", "to the top", show=False),
        Binding("end", "scroll_bottom", "to the bottom", show=False),
    ]


class KeyHelp(ModalScreen[None]):
    """Every key the dashboard binds, on `?`."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss", "close"),
        Binding("question_mark", "dismiss", "close"),
    ]

    def __init__(self, lines: list[str]) -> None:
        super().__init__()
        self.lines = lines

    def compose(self) -> ComposeResult:
        yield Static("\n".join(["Keys", "", *self.lines, "", "escape or ? closes this"]), id="keys")


KEY_WORDS = {
    "quit": "quit",
    "help_quit": "says how to quit",
    "app.focus_next": "focus the next table",
    "app.focus_previous": "focus the previous table",
    "screen.copy_text": "copy selected text",
}
"""How the key help says what Textual's own bindings do."""
PEER_COLUMNS = ("peer", "status", "seen", "accepted", "trained", "against", "dropped", "scored")
REFUSAL_COLUMNS = ("refused", "against", f"{panes.RECENT} rounds", "total")
NUMBERS = {"seen", "accepted", "trained", "dropped", "scored", f"{panes.RECENT} rounds", "total"}


class Dashboard(App[None]):
    CSS_PATH = Path(__file__).with_name("dashboard.tcss")
    TITLE = "swarmnode"
    ENABLE_COMMAND_PALETTE = False
    # class attributes as Textual declares them (mypy refuses a ClassVar annotation over its declaration)
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (WIDE, "-wide")]  # noqa: RUF012
    VERTICAL_BREAKPOINTS = [(0, "-short"), (36, "-tall")]  # noqa: RUF012
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("p", "pause", "pause training"),
        Binding("r", "resume", "resume training"),
        Binding("q", "quit", "quit"),
        Binding("question_mark", "keys", "keys"),
    ]

    def __init__(self, feed: Feed, poll_s: float = POLL_S, url_file: Path | None = None) -> None:
        """`url_file`: the node's RUN_DIR/status.url, when known; the node removes it when it stops."""
        super().__init__()
        self.feed = feed
        self.poll_s = poll_s
        self.url_file = url_file
        self.snapshot: StatusSnapshot | None = None
        self.reachable: bool | None = None
        self.stopped = False
        self.last_event = 0
        self.log_lines: deque[str] = deque(maxlen=LOG_LINES)
        self.full_tables: bool | None = None

    def compose(self) -> ComposeResult:
        yield Static(f"swarmnode  │  connecting to {self.feed.url} …", id="identity")
        yield Static("no answer from the node yet", id="health")
        yield Static("", id="banner")
        with Horizontal(id="body"):
            with Vertical(id="learning"):
                yield Static("Learning", classes="section wide")
                yield Trend(id="reward")
                yield Trend(id="accuracy")
                yield Static("", id="trained")
                yield Static("", id="drift")
                yield Static("silo mode: no peers, nothing to refuse", id="silo")
                yield Static("Trained on per round", id="mix-title", classes="section wide")
                yield Static("", id="mix", classes="wide")
                yield Static("Speed", classes="section wide")
                yield Static("", id="speed", classes="wide")
            with VerticalScroll(id="swarm"):
                yield Static("Peers", id="peers-title", classes="section")
                yield Table(id="peers", cursor_type="none", zebra_stripes=True)
                yield Static(panes.PEERS_LEGEND, id="peers-legend", classes="wide")
                yield Static(panes.PEERS_LEGEND_SHORT, id="peers-legend-short", classes="narrow")
                yield Static(panes.REFUSALS_TITLE, id="refusals-title", classes="section")
                yield Table(id="refusals", cursor_type="none")
        with VerticalScroll(id="log"):
            yield Static("", id="log-text")
        yield Footer()

    def on_mount(self) -> None:
        self.screen.add_class("-waiting")  # nothing to show before the node's first answer
        self._columns()
        self._follow()

    def on_resize(self, event: events.Resize) -> None:
        self._columns()
        if self.snapshot is not None:
            self._show_tables(self.snapshot)

    def _columns(self) -> None:
        """The tables' columns for the width: narrower ones leave out the peer's model and the reason code."""
        full = self.size.width >= FULL_TABLES
        if full == self.full_tables:
            return
        self.full_tables = full
        peers, refusals = self.query_one("#peers", Table), self.query_one("#refusals", Table)
        peers.clear(columns=True)
        columns = [*PEER_COLUMNS[:1], "model", *PEER_COLUMNS[1:]] if full else list(PEER_COLUMNS)
        peers.add_columns(*(Text(c, justify="right" if c in NUMBERS | {"against"} else "left") for c in columns))
        refusals.clear(columns=True)
        columns = ["code", "meaning", *REFUSAL_COLUMNS[1:]] if full else list(REFUSAL_COLUMNS)
        refusals.add_columns(*(Text(c, justify="right" if c in NUMBERS else "left") for c in columns))

    # ------------------------------------------------------------------ following the node

    @work(exclusive=True)
    async def _follow(self) -> None:
        """Poll the node every `poll_s` seconds, one request at a time however slow it answers, until it
        has stopped."""
        while await self.poll():
            await asyncio.sleep(self.poll_s)

    async def poll(self) -> bool:
        """Read the node once and show what came; False once the node has stopped."""
        try:
            try:
                snap = await self.feed.fetch()
            except Exception as exc:  # any failure to reach or read the node: say so
                if self.node_stopped():
                    self._show_stopped()
                    return False
                self._unreachable(exc)
            else:
                self._show(snap)
        except NoMatches:  # the app is closing and its widgets are gone
            return False
        return True

    def node_stopped(self) -> bool:
        """Whether a node that does not answer has stopped: it said so last time, or it removed its
        status.url (a node that crashed leaves it: then it may come back, and it is retried)."""
        said = self.snapshot is not None and self.snapshot.get("phase") == "stopped"
        return said or (self.url_file is not None and not self.url_file.exists())

    def _banner(self, text: str) -> None:
        banner = self.query_one("#banner", Static)
        banner.update(Text(text))
        banner.add_class("shown")

    def _unreachable(self, exc: Exception) -> None:
        why = panes.safe(f"{type(exc).__name__}: {exc}", 100)
        self._banner(f"node unreachable at {self.feed.url} ({why}); retrying every {self.poll_s:g} s")
        if self.reachable is not False:
            self._log_line(f"lost contact with {self.feed.url}")
        self.reachable = False

    def _show_stopped(self) -> None:
        last = f" after round {int(panes.num(self.snapshot.get('round')))}" if self.snapshot else ""
        self._banner(f"the node has stopped{last}; start it again to resume. q quits the dashboard")
        self._log_line(f"the node at {self.feed.url} has stopped")
        self.stopped, self.reachable = True, False

    def _show(self, snap: StatusSnapshot) -> None:
        if self.reachable is False:
            self._log_line(f"reconnected to {self.feed.url}")
        self.reachable = True
        self.snapshot = snap
        self.query_one("#banner", Static).remove_class("shown")
        self.screen.remove_class("-waiting")
        self.query_one("#identity", Static).update(Text(panes.identity_line(snap)))
        self.query_one("#health", Static).update(Text(panes.health_line(snap)))
        self.screen.set_class(not panes.in_swarm(snap), "-silo")
        self.query_one("#reward", Trend).show(panes.reward_label(snap), panes.rewards(snap))
        self.query_one("#accuracy", Trend).show(panes.accuracy_label(snap), panes.accuracies(snap))
        self.query_one("#trained", Static).update(Text(panes.trained_line(snap)))
        drift = self.query_one("#drift", Static)
        drift.update(Text(panes.drift_line(snap)))
        drift.display = bool(panes.drift_line(snap))
        self.query_one("#mix-title", Static).update(Text(panes.mix_title(snap)))
        self.query_one("#mix", Static).update(Text("\n".join(panes.mix_lines(snap)) or "no rounds yet"))
        self.query_one("#speed", Static).update(Text(panes.speed_text(snap)))
        self._show_tables(snap)
        for event in panes.dicts(snap.get("events")):
            seq = int(panes.num(event.get("seq")))
            if seq <= self.last_event:
                continue
            self.last_event = seq
            text = str(event.get("text", ""))
            if event.get("kind") not in QUIET_EVENTS and not ROUND_LINE.match(text):
                self._log_line(panes.safe(text, 300))

    def _log_line(self, line: str) -> None:
        """A line at the end of the log pane (wrapped to its width, however wide it becomes)."""
        self.log_lines.append(line)
        self.query_one("#log-text", Static).update(Text("\n".join(self.log_lines)))
        self.query_one("#log", VerticalScroll).scroll_end(animate=False, immediate=False)

    def _show_tables(self, snap: StatusSnapshot) -> None:
        views = panes.peer_views(snap)
        self.query_one("#peers-title", Static).update(Text(panes.peers_title(views)))
        peers = self.query_one("#peers", Table)
        peers.display = bool(views)
        peers.clear()
        for v in views:
            status = {0: "bold red", 1: "yellow"}.get(v.concern, "")
            against = "?" if v.against is None else str(v.against)
            cells = [
                Text(v.peer_id[:8], style=status),
                *([Text(v.model)] if self.full_tables else []),
                Text(v.status, style=status),
                Text(v.seen, justify="right"),
                Text(str(v.accepted), justify="right"),
                Text(str(v.trained), justify="right"),
                Text(against, style="bold red" if v.against else "", justify="right"),
                Text(str(v.dropped), justify="right"),
                Text(f"{v.scored:.2f}", justify="right"),
            ]
            peers.add_row(*cells, key=v.peer_id)
        refused = panes.refusal_views(snap)
        self.query_one("#refusals-title", Static).update(Text(panes.refusals_title(refused)))
        refusals = self.query_one("#refusals", Table)
        refusals.display = bool(refused)
        refusals.clear()
        for r in refused:
            style = "bold red" if r.effect in ("ban", "strike") else ""
            cells = [
                *([Text(r.code)] if self.full_tables else []),
                Text(r.label),
                Text(r.effect, style=style),
                Text("-" if r.recent is None else str(r.recent), justify="right"),
                Text(str(r.total), justify="right"),
            ]
            refusals.add_row(*cells)

    # ------------------------------------------------------------------ keys

    def key_lines(self) -> list[str]:
        """Every key bound: the app's own, the screen's and the tables' (a key bound twice: both meanings)."""
        table = self.query_one("#peers", Table)
        said: dict[str, str] = {}
        for where, owner in (("", self), ("", self.screen_stack[0]), ("in a table: ", table)):
            for _key, binding in owner._bindings:
                what = where + KEY_WORDS.get(binding.action, binding.description or binding.action)
                key = self.get_key_display(binding)
                said[key] = f"{said[key]}; {what}" if key in said else what
        return [f"{key:>10}  {what}" for key, what in said.items()]

    def action_keys(self) -> None:
        self.push_screen(KeyHelp(self.key_lines()))

    async def _control(self, action: str) -> None:
        try:
            await self.feed.control(action)
        except Exception as exc:  # the node is gone: the banner already says so
            self.notify(f"could not {action}: {exc}", severity="error")
        else:
            self.notify("training paused after this round" if action == "pause" else "training resumed")
        if not self.stopped:
            await self.poll()

    async def action_pause(self) -> None:
        await self._control("pause")

    async def action_resume(self) -> None:
        await self._control("resume")

    async def on_unmount(self) -> None:
        await self.feed.close()
