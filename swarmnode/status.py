"""The node's local status API: what `swarmnode tui` reads, and what Prometheus scrapes.

`NodeStatus` is the node's thread-safe record of itself (identity, round, phase, recent rounds, evals,
peers, rejections, events). `StatusServer` serves it with aiohttp on its own thread and event loop:

- `GET /status`   JSON snapshot, a `StatusSnapshot` (the last 100 events in it, numbered by `seq`);
- `GET /metrics`  Prometheus text (prometheus-client);
- `POST /pause`, `POST /resume`  hold training between rounds, and let it go on.

Bound to 127.0.0.1 by default; any other address requires a token, sent as `Authorization: Bearer TOKEN`.
The types below are the API's contract: the dashboard reads `StatusSnapshot` and nothing else.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import threading
import time
from collections import deque
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict, TypeVar, cast

from aiohttp import web
from aiohttp.typedefs import Handler

from swarmnode.errors import UserError
from swarmnode.run_dir import SWARM_COUNTER_KEYS, EvalRow, PeerRow, RoundRow, RunDir, SwarmCounters

if TYPE_CHECKING:
    from swarmnode.config import StatusConfig

PHASES = ("starting", "generating", "sharing", "training", "evaluating", "checkpointing", "paused", "stopped")
RECENT_ROUNDS = 300
EVENTS = 500
SNAPSHOT_ROUNDS = 120
SNAPSHOT_EVENTS = 100
T = TypeVar("T")


class NodeInfo(TypedDict):
    """Fixed facts about the node (`peer_id` and `backend` filled in once known)."""

    version: str
    swarm: str | None
    """The swarm's name; None for a silo node."""
    silo: bool
    model: str
    tasks: list[str]
    run_dir: str
    questions_per_round: int
    external_groups: int
    """Peers' groups wanted per round (0 for a silo node)."""
    backend: str
    peer_id: str | None


class StatusEvent(TypedDict):
    """Something the user should hear about: a log line, a phase change, a round, an eval, a peer."""

    seq: int
    """Numbered from 1, in order: a reader shows each event once by remembering the last it saw."""
    time: float
    kind: str
    """log, phase, round, eval, peer or control."""
    text: str
    round: NotRequired[int]
    peer_id: NotRequired[str]


class StatusSnapshot(NodeInfo):
    """`GET /status`."""

    now: float
    started: float
    round: int
    phase: str
    """One of PHASES."""
    paused: bool
    recent_rounds: list[RoundRow]
    evals: list[EvalRow]
    peers: list[PeerRow]
    swarm_counters: SwarmCounters
    """The last round's swarm counters but `rejected`, which is given once, at the top level."""
    rejected: dict[str, int]
    """Cumulative rejections by reason ({} in silo mode); each round row holds the counts as they stood then."""
    reason_effects: dict[str, str]
    """What each reason in `rejected` and in the peers' rows does to the peer charged with it: "ban",
    "strike" or "neither" (`swarm.trust.reasons.counts_against`; {} in silo mode)."""
    events: list[StatusEvent]


class NodeStatus:
    def __init__(self, info: NodeInfo) -> None:
        self._lock = threading.Lock()
        self.info = info.copy()
        self.started = time.time()
        self.round = 0
        self.phase = "starting"
        self.pause_requested = threading.Event()
        self.rounds: deque[RoundRow] = deque(maxlen=RECENT_ROUNDS)
        self.evals: deque[EvalRow] = deque(maxlen=RECENT_ROUNDS)
        self.swarm_counters = SwarmCounters()
        self.rejected: dict[str, int] = {}
        self.reason_effects: dict[str, str] = {}
        self.peers: list[PeerRow] = []
        self.events: deque[StatusEvent] = deque(maxlen=EVENTS)
        self._seq = 0
        self._known_peers: set[str] = set()
        self._banned: set[str] = set()

    # ------------------------------------------------------------------ written by the node

    def set_info(self, *, peer_id: str | None, backend: str) -> None:
        with self._lock:
            self.info["peer_id"] = peer_id
            self.info["backend"] = backend

    def set_phase(self, phase: str) -> None:
        with self._lock:
            changed = phase != self.phase
            self.phase = phase
        if changed:
            self.event("phase", phase)

    def event(self, kind: str, text: str, *, round: int | None = None, peer_id: str | None = None) -> None:
        with self._lock:
            self._seq += 1
            item = StatusEvent(seq=self._seq, time=time.time(), kind=kind, text=text)
            if round is not None:
                item["round"] = round
            if peer_id is not None:
                item["peer_id"] = peer_id
            self.events.append(item)

    def round_done(self, row: RoundRow, peers: list[PeerRow] | None = None) -> None:
        """A round's row (with the swarm counters in swarm mode), and the peer book as it stands."""
        joined: list[str] = []
        banned: list[str] = []
        with self._lock:
            self.round = row.get("round", self.round)
            self.rounds.append(row.copy())
            if peers is not None:
                self.peers = [p.copy() for p in peers]
                counters = {k: v for k, v in row.items() if k in SWARM_COUNTER_KEYS and k != "rejected"}
                self.swarm_counters = cast(SwarmCounters, counters)
                self.rejected = dict(row.get("rejected", {}))
                self._note_effects(self.rejected, peers)
                for p in peers:
                    if p["peer_id"] not in self._known_peers:
                        joined.append(p["peer_id"])
                    if p["banned"] and p["peer_id"] not in self._banned:
                        banned.append(p["peer_id"])
                # what the peer book holds (at most `PeerBook.max_peers`), not every peer ever met: a peer
                # it forgot is new again when it comes back
                self._known_peers = {p["peer_id"] for p in peers}
                self._banned = {p["peer_id"] for p in peers if p["banned"]}
            number = self.round
        reward, external = row.get("mean_reward", 0.0), row.get("external_groups", 0)
        self.event("round", f"round {number}: reward {reward:.3f}, {external} external groups", round=number)
        for peer in joined:
            self.event("peer", f"new peer {peer[:8]}", peer_id=peer)
        for peer in banned:
            self.event("peer", f"peer {peer[:8]} is ignored for a while (invalid data)", peer_id=peer)

    def _note_effects(self, rejected: dict[str, int], peers: list[PeerRow]) -> None:
        reasons = set(rejected).union(*(p["rejected"] for p in peers)) - set(self.reason_effects)
        if reasons:  # swarm mode only: a silo node never loads the swarm stack
            from swarmnode.swarm.trust.reasons import counts_against

            self.reason_effects.update({r: counts_against(r) for r in reasons})

    def eval_done(self, row: EvalRow) -> None:
        with self._lock:
            self.evals.append(row.copy())
        self.event("eval", f"held-out accuracy {row['eval_greedy_accuracy']:.1%} at round {row['round']}")

    # ------------------------------------------------------------------ read by the server

    def snapshot(self) -> StatusSnapshot:
        with self._lock:
            return StatusSnapshot(
                **self.info,
                now=time.time(),
                started=self.started,
                round=self.round,
                phase=self.phase,
                paused=self.pause_requested.is_set(),
                recent_rounds=list(self.rounds)[-SNAPSHOT_ROUNDS:],
                evals=list(self.evals),
                peers=list(self.peers),
                swarm_counters=self.swarm_counters.copy(),
                rejected=dict(self.rejected),
                reason_effects=dict(self.reason_effects),
                events=list(self.events)[-SNAPSHOT_EVENTS:],
            )


def prometheus_text(status: NodeStatus) -> bytes:
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

    snap = status.snapshot()
    last = snap["recent_rounds"][-1] if snap["recent_rounds"] else RoundRow()

    class Collector:
        def collect(self) -> Iterator[Metric]:
            def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
                return GaugeMetricFamily(f"swarmnode_{name}", doc, value=float(value))

            yield gauge("round", "Last completed round.", snap["round"])
            yield gauge("uptime_seconds", "Seconds since the node started.", snap["now"] - snap["started"])
            yield gauge("paused", "1 while training is paused.", 1.0 if snap["paused"] else 0.0)
            yield gauge(
                "mean_reward", "Mean reward of the node's own completions, last round.", last.get("mean_reward", 0)
            )
            yield gauge("tokens_per_second", "Generation throughput, last round.", last.get("tokens_per_s", 0))
            yield gauge("round_seconds", "Wall time of the last round.", last.get("round_s", 0))
            yield gauge("policy_version", "Optimizer updates so far.", last.get("policy_version", 0))
            yield gauge("peers", "Peers this node has heard from.", len(snap["peers"]))
            yield gauge(
                "banned_peers",
                "Peers ignored for sending invalid data.",
                sum(1 for p in snap["peers"] if p["banned"]),
            )
            drift = last.get("drift")
            if drift:
                yield gauge(
                    "drift_peer_text_rate",
                    "Share of the node's latest own completions carrying text it refused in peers'.",
                    drift["peer_text_rate"],
                )
                yield gauge(
                    "drift_stray_rate",
                    "Share of the node's latest own completions with text outside the answer.",
                    drift["stray_rate"],
                )
            if snap["evals"]:
                yield gauge(
                    "eval_accuracy",
                    "Held-out greedy accuracy, last evaluation.",
                    snap["evals"][-1]["eval_greedy_accuracy"],
                )
            rejected = CounterMetricFamily("swarmnode_rejections", "Rejected peer data by reason.", labels=["reason"])
            for reason, count in sorted(snap["rejected"].items()):
                rejected.add_metric([reason], float(count))
            yield rejected
            # a gauge: a sum over a window of rounds, which goes down as rounds leave it
            external = GaugeMetricFamily(
                "swarmnode_recent_external_groups",
                f"Peers' groups trained on in the last {SNAPSHOT_ROUNDS} rounds, by peer.",
                labels=["peer"],
            )
            used: dict[str, int] = {}
            for row in snap["recent_rounds"]:
                for peer, n in row.get("external_by_peer", {}).items():
                    used[peer] = used.get(peer, 0) + int(n)
            for peer, n in sorted(used.items()):
                external.add_metric([peer], float(n))
            yield external

    registry = CollectorRegistry()
    registry.register(Collector())
    return bytes(generate_latest(registry))


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class StatusServer:
    """The status API on its own thread; `url` is where it listens."""

    def __init__(self, status: NodeStatus, host: str = "127.0.0.1", port: int = 0, token: str = "") -> None:
        if not is_loopback(host) and not token:
            raise UserError(f"status.host {host} is not a loopback address: set status.token to protect it")
        self.status = status
        self.token = token
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="swarmnode-status", daemon=True)
        self._thread.start()
        self._runner: web.AppRunner | None = None
        self._closed = False
        self.url_file: Path | None = None
        """Where `serve` wrote `url` (RUN_DIR/status.url): removed on `close` if it still holds it."""
        self.fallback = False
        try:
            try:
                self.port = self._call(self._start(host, port))
            except OSError:
                if port == 0:
                    raise
                self.fallback = True  # taken (another node on this machine?): any free port
                self.port = self._call(self._start(host, 0))
        except OSError as exc:  # not even a free port: the host is not an address of this machine
            self._loop.call_soon_threadsafe(self._loop.stop)
            raise UserError(
                f"status.host {host}: cannot listen there ({exc.strerror or exc}); use 127.0.0.1 or an address of "
                "this machine, or set status.enabled = false"
            ) from exc
        self.url = f"http://{host if ':' not in host else f'[{host}]'}:{self.port}"

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(30)

    async def _start(self, host: str, port: int) -> int:
        app = web.Application(middlewares=[self._auth])
        app.router.add_get("/status", self._status)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_post("/pause", self._pause)
        app.router.add_post("/resume", self._resume)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port, reuse_address=False).start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        return int(runner.addresses[0][1])

    @web.middleware
    async def _auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        expected = f"Bearer {self.token}".encode()
        if self.token and not hmac.compare_digest(request.headers.get("Authorization", "").encode(), expected):
            return web.json_response({"error": "missing or wrong token"}, status=401)
        return await handler(request)

    async def _status(self, request: web.Request) -> web.Response:
        return web.json_response(self.status.snapshot())

    async def _metrics(self, request: web.Request) -> web.Response:
        from prometheus_client import CONTENT_TYPE_LATEST

        return web.Response(body=prometheus_text(self.status), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _pause(self, request: web.Request) -> web.Response:
        self.status.pause_requested.set()
        self.status.event("control", "pause requested: training holds after this round")
        return web.json_response({"paused": True})

    async def _resume(self, request: web.Request) -> web.Response:
        self.status.pause_requested.clear()
        self.status.event("control", "resumed")
        return web.json_response({"paused": False})

    def close(self) -> None:
        """Stop serving; remove `url_file` unless another server (a node started since in the same run
        directory) wrote its own URL there: a dashboard that finds it gone knows the node stopped. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self.url_file is not None:
            try:
                if self.url_file.read_text().strip() == self.url:
                    self.url_file.unlink()
            except OSError:  # gone already
                pass
            self.url_file = None
        if self._runner is not None:
            try:
                self._call(self._runner.cleanup())
            except (OSError, RuntimeError, TimeoutError):
                self.status.set_phase("stopped")  # closing anyway
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)


def serve(status: NodeStatus, config: StatusConfig, run_dir: RunDir) -> tuple[StatusServer, str]:
    """Start the status API as `status.*` configures it, write its URL to RUN_DIR/status.url (for
    `swarmnode tui --run-dir` and `join --tui`), and return it with the line that tells the user."""
    server = StatusServer(status, config.host, config.port, config.token)
    run_dir.write_status_url(server.url)
    server.url_file = run_dir.status_url
    taken = f" (port {config.port} was taken)" if server.fallback else ""
    return server, f"status API: {server.url}/status{taken}; dashboard: swarmnode tui --url {server.url}"
