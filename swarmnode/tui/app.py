"""The dashboard app. It only reads a node's status API (through a `Feed`), so it can attach to a node in
another process or container. Snapshots are typed (`swarmnode.status.StatusSnapshot`), but a node of
another version may send less or other: every field is read defensively, and an unreachable node is
shown as such and retried."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Protocol, cast

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.widgets import DataTable, Footer, Log, Sparkline, Static

if TYPE_CHECKING:  # the types only: the dashboard runs without the node's side of the API
    import aiohttp

    from swarmnode.status import StatusSnapshot

POLL_S = 1.0
BAR = 24
QUIET_EVENTS = {"round", "phase"}
"""Event kinds the log pane leaves out (the header and charts show them)."""


class Feed(Protocol):
    url: str

    async def fetch(self) -> StatusSnapshot:
        """The node's /status snapshot; raises when the node cannot be reached."""
        ...

    async def control(self, action: str) -> None:
        """POST /pause or /resume."""
        ...

    async def close(self) -> None: ...


class HttpFeed:
    def __init__(self, url: str, token: str = "", timeout_s: float = 3.0) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    async def _client(self) -> aiohttp.ClientSession:
        import aiohttp

        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s))
        return self._session

    async def fetch(self) -> StatusSnapshot:
        session = await self._client()
        async with session.get(self.url + "/status", headers=self._headers()) as response:
            if response.status != 200:
                raise ConnectionError(f"HTTP {response.status} from {self.url}/status")
            data = await response.json()
        if not isinstance(data, dict):
            raise ConnectionError("the status API answered with something that is not an object")
        return cast("StatusSnapshot", data)

    async def control(self, action: str) -> None:
        session = await self._client()
        async with session.post(f"{self.url}/{action}", headers=self._headers()) as response:
            if response.status != 200:
                raise ConnectionError(f"HTTP {response.status} from {self.url}/{action}")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


class RecordedFeed:
    """Snapshots played back in order (the last one repeats): tests and demos."""

    def __init__(self, snapshots: Sequence[StatusSnapshot], url: str = "recorded") -> None:
        self.snapshots = list(snapshots)
        self.url = url
        self.calls = 0
        self.actions: list[str] = []

    async def fetch(self) -> StatusSnapshot:
        snap = self.snapshots[min(self.calls, len(self.snapshots) - 1)]
        self.calls += 1
        return snap

    async def control(self, action: str) -> None:
        self.actions.append(action)

    async def close(self) -> None:
        return None


class DeadFeed:
    """A node that never answers."""

    def __init__(self, url: str = "http://127.0.0.1:7391") -> None:
        self.url = url

    async def fetch(self) -> StatusSnapshot:
        raise ConnectionRefusedError(f"cannot connect to {self.url}")

    async def control(self, action: str) -> None:
        raise ConnectionRefusedError(f"cannot connect to {self.url}")

    async def close(self) -> None:
        return None


# ---------------------------------------------------------------------- formatting (pure, tested)


def duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


def short(peer_id: object) -> str:
    return str(peer_id)[:8] if peer_id else "-"


def _num(value: object, default: float = 0.0) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else default


def title_line(snap: StatusSnapshot) -> str:
    mode = f"swarm {snap['swarm']}" if snap.get("swarm") else "silo"
    phase = "PAUSED" if snap.get("paused") else str(snap.get("phase", "?"))
    uptime = duration(_num(snap.get("now"), time.time()) - _num(snap.get("started"), time.time()))
    return (
        f"round {int(_num(snap.get('round')))} · {phase}  │  up {uptime}  │  {mode}  │  "
        f"peer {short(snap.get('peer_id'))}  │  model {snap.get('model', '?')}  │  "
        f"backend {snap.get('backend', '?')}  │  swarmnode {snap.get('version', '')}"
    )


def peer_rows(snap: StatusSnapshot) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for peer in snap.get("peers") or []:
        if not isinstance(peer, dict):
            continue
        rejected = peer["rejected"] if isinstance(peer.get("rejected"), dict) else {}
        state = " (ignored)" if peer.get("banned") else ""
        rows.append(
            (
                short(peer.get("peer_id")) + state,
                str(peer.get("model", "?"))[:24],
                f"{_num(peer.get('last_seen_s')):.0f}s ago",
                str(int(_num(peer.get("accepted_groups")))),
                str(int(sum([_num(v) for v in rejected.values()]))),
                f"{_num(peer.get('mean_reward')):.2f}",
            )
        )
    return rows


def _bar(part: float, whole: float, width: int = BAR) -> str:
    filled = round(width * part / whole) if whole > 0 else 0
    return "█" * filled + "░" * (width - filled)


def throughput_text(snap: StatusSnapshot) -> str:
    rounds = [r for r in snap.get("recent_rounds") or [] if isinstance(r, dict)]
    if not rounds:
        return "waiting for the first round…"
    last = rounds[-1]
    parts = [
        ("generate", _num(last.get("generate_s"))),
        ("share", _num(last.get("share_s"))),
        ("train", _num(last.get("train_s"))),
    ]
    total = _num(last.get("round_s")) or sum(p for _, p in parts)
    lines = [f"{_num(last.get('tokens_per_s')):,.0f} tokens/s   round {total:.2f}s"]
    lines += [f"{name:8s} {_bar(seconds, total)} {seconds:5.2f}s" for name, seconds in parts]
    return "\n".join(lines)


def mix_text(snap: StatusSnapshot, last: int = 6) -> str:
    rounds = [r for r in snap.get("recent_rounds") or [] if isinstance(r, dict)][-last:]
    if not rounds:
        return "no rounds yet"
    local_n = int(_num(snap.get("questions_per_round"), 8))
    lines = []
    for row in rounds:
        external = int(_num(row.get("external_groups")))
        whole = local_n + max(external, int(_num(snap.get("external_groups"))))
        local_bar = round(BAR * local_n / whole) if whole else 0
        ext_bar = round(BAR * external / whole) if whole else 0
        bar = "█" * local_bar + "▒" * ext_bar + " " * max(0, BAR - local_bar - ext_bar)
        lines.append(f"r{int(_num(row.get('round'))):<5d} {bar} {local_n} own + {external} ext")
    drift = rounds[-1].get("drift")
    if isinstance(drift, dict):  # issue 16: is the node starting to write what peers tried to teach it?
        lines.append(
            f"drift: {_num(drift.get('peer_text_rate')):.0%} of own samples carry refused peers' text, "
            f"{_num(drift.get('stray_rate')):.0%} text outside the answer"
        )
    return "\n".join(lines)


def rejection_rows(snap: StatusSnapshot) -> list[tuple[str, str]]:
    rejected = snap["rejected"] if isinstance(snap.get("rejected"), dict) else {}
    return [(str(k), str(int(_num(v)))) for k, v in sorted(rejected.items(), key=lambda kv: -_num(kv[1]))]


# ---------------------------------------------------------------------- the app


class Dashboard(App[None]):
    CSS_PATH = Path(__file__).with_name("dashboard.tcss")
    TITLE = "swarmnode"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("p", "pause", "pause training"),
        Binding("r", "resume", "resume training"),
        Binding("q", "quit", "quit"),
    ]

    def __init__(self, feed: Feed, poll_s: float = POLL_S) -> None:
        super().__init__()
        self.feed = feed
        self.poll_s = poll_s
        self.snapshot: StatusSnapshot | None = None
        self.reachable: bool | None = None
        self.last_event = 0

    def compose(self) -> ComposeResult:
        yield Static(f"swarmnode  │  connecting to {self.feed.url} …", id="title")
        yield Static("", id="banner")
        with Horizontal(id="body"):
            with Vertical(id="left"):
                yield Static("Peers", classes="section")
                yield DataTable(id="peers", zebra_stripes=True, cursor_type="row")
                yield Static("", id="peers-empty")
                yield Static("Rejections by reason", classes="section")
                yield DataTable(id="rejections", cursor_type="none")
            with Vertical(id="right"):
                yield Static("Reward per round", id="reward-label", classes="section")
                yield Sparkline([], id="reward")
                yield Static("Held-out accuracy", id="accuracy-label", classes="section")
                yield Sparkline([], id="accuracy")
                yield Static("Throughput", classes="section")
                yield Static("", id="throughput")
                yield Static("Local vs external groups", classes="section")
                yield Static("", id="mix")
        yield Log(id="log", max_lines=500)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#peers", DataTable).add_columns("peer", "model", "last seen", "accepted", "rejected", "reward")
        self.query_one("#rejections", DataTable).add_columns("reason", "count")
        self._follow()

    @work(exclusive=True)
    async def _follow(self) -> None:
        """Poll the node every `poll_s` seconds, one request at a time however slow it answers."""
        while True:
            await self.poll()
            await asyncio.sleep(self.poll_s)

    async def poll(self) -> None:
        try:
            try:
                snap = await self.feed.fetch()
            except Exception as exc:  # any failure to reach or read the node: say so, keep retrying
                self._unreachable(exc)
            else:
                self._show(snap)
        except NoMatches:  # the app is closing and its widgets are gone
            pass

    def _unreachable(self, exc: Exception) -> None:
        banner = self.query_one("#banner", Static)
        banner.update(
            f"node unreachable at {self.feed.url} ({type(exc).__name__}: {str(exc)[:120]}); "
            f"retrying every {self.poll_s:g} s"
        )
        banner.add_class("shown")
        if self.reachable is not False:
            self.query_one("#log", Log).write_line(f"lost contact with {self.feed.url}")
        self.reachable = False

    def _show(self, snap: StatusSnapshot) -> None:
        if self.reachable is False:
            self.query_one("#log", Log).write_line(f"reconnected to {self.feed.url}")
        self.reachable = True
        self.snapshot = snap
        self.query_one("#banner", Static).remove_class("shown")
        self.query_one("#title", Static).update(title_line(snap))
        peers = self.query_one("#peers", DataTable)
        peers.clear()
        rows = peer_rows(snap)
        for row in rows:
            peers.add_row(*row)
        empty = self.query_one("#peers-empty", Static)
        if rows:
            empty.update("")
        elif snap.get("swarm"):
            empty.update("no peers yet: looking for the swarm…")
        else:
            empty.update("silo mode: training alone, no peers")
        rejections = self.query_one("#rejections", DataTable)
        rejections.clear()
        for row in rejection_rows(snap) or [("none", "0")]:
            rejections.add_row(*row)
        rounds = [r for r in snap.get("recent_rounds") or [] if isinstance(r, dict)]
        rewards = [_num(r.get("mean_reward")) for r in rounds]
        self.query_one("#reward", Sparkline).data = rewards or [0.0]
        latest = f"{rewards[-1]:.3f}" if rewards else "-"
        self.query_one("#reward-label", Static).update(f"Reward per round (last {len(rewards)}): {latest}")
        evals = [e for e in snap.get("evals") or [] if isinstance(e, dict)]
        accuracy = [_num(e.get("eval_greedy_accuracy")) for e in evals]
        self.query_one("#accuracy", Sparkline).data = accuracy or [0.0]
        acc = f"{accuracy[-1]:.1%}" if accuracy else "not evaluated yet"
        self.query_one("#accuracy-label", Static).update(f"Held-out accuracy: {acc}")
        self.query_one("#throughput", Static).update(throughput_text(snap))
        self.query_one("#mix", Static).update(mix_text(snap))
        log = self.query_one("#log", Log)
        for event in snap.get("events") or []:
            if not isinstance(event, dict):
                continue
            seq = int(_num(event.get("seq")))
            if seq <= self.last_event:
                continue
            self.last_event = seq
            if event.get("kind") not in QUIET_EVENTS:
                log.write_line(str(event.get("text", ""))[:300])

    async def _control(self, action: str) -> None:
        try:
            await self.feed.control(action)
        except Exception as exc:  # the node is gone: the banner already says so
            self.notify(f"could not {action}: {exc}", severity="error")
        else:
            self.notify("training paused after this round" if action == "pause" else "training resumed")
        await self.poll()

    async def action_pause(self) -> None:
        await self._control("pause")

    async def action_resume(self) -> None:
        await self._control("resume")

    async def on_unmount(self) -> None:
        await self.feed.close()
