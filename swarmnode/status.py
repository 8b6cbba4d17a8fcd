"""The node's local status API: what `swarmnode tui` reads, and what Prometheus scrapes.

`NodeStatus` is the node's thread-safe record of itself (identity, round, phase, recent rounds, evals,
peers, rejections, events). `StatusServer` serves it with aiohttp on its own thread and event loop:

- `GET /status`   JSON snapshot (see `NodeStatus.snapshot`);
- `GET /metrics`  Prometheus text (prometheus-client);
- `GET /events`   server-sent events: round results, evals, phase changes and peer events, as JSON lines
                  (`?since=SEQ` replays what is still buffered);
- `POST /pause`, `POST /resume`  hold training between rounds, and let it go on.

Bound to 127.0.0.1 by default; any other address requires a token, sent as `Authorization: Bearer TOKEN`.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import os
import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

from aiohttp import web

from swarmnode.errors import UserError

PHASES = ("starting", "generating", "sharing", "training", "evaluating", "checkpointing", "paused", "stopped")
RECENT_ROUNDS = 300
EVENTS = 500


class NodeStatus:
    def __init__(self, info: dict[str, Any]) -> None:
        self._lock = threading.Lock()
        self.info = dict(info)
        """Fixed facts: version, peer_id, swarm, model, backend, tasks, run_dir, silo."""
        self.started = time.time()
        self.round = 0
        self.phase = "starting"
        self.pause_requested = threading.Event()
        self.rounds: deque[dict[str, Any]] = deque(maxlen=RECENT_ROUNDS)
        self.evals: deque[dict[str, Any]] = deque(maxlen=RECENT_ROUNDS)
        self.swarm: dict[str, Any] = {}
        self.peers: list[dict[str, Any]] = []
        self.events: deque[dict[str, Any]] = deque(maxlen=EVENTS)
        self._seq = 0
        self._known_peers: set[str] = set()
        self._banned: set[str] = set()
        self.listeners: list[tuple[asyncio.AbstractEventLoop, asyncio.Queue[dict[str, Any]]]] = []

    # ------------------------------------------------------------------ written by the node

    def set_info(self, **fields: Any) -> None:
        with self._lock:
            self.info.update(fields)

    def set_phase(self, phase: str) -> None:
        with self._lock:
            changed = phase != self.phase
            self.phase = phase
        if changed:
            self.event("phase", phase)

    def event(self, kind: str, text: str, **data: Any) -> None:
        with self._lock:
            self._seq += 1
            item = {"seq": self._seq, "time": time.time(), "kind": kind, "text": text, **data}
            self.events.append(item)
            listeners = list(self.listeners)
        for loop, queue in listeners:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # that listener's loop is closed
                pass

    def round_done(self, row: dict[str, Any], peers: list[dict[str, Any]] | None = None) -> None:
        joined: list[str] = []
        banned: list[str] = []
        with self._lock:
            self.round = int(row.get("round", self.round))
            self.rounds.append(dict(row))
            if peers is not None:
                self.peers = [dict(p) for p in peers]
                self.swarm = {k: row[k] for k in _SWARM_KEYS if k in row}
                for p in peers:
                    if p["peer_id"] not in self._known_peers:
                        self._known_peers.add(p["peer_id"])
                        joined.append(p["peer_id"])
                    if p.get("banned") and p["peer_id"] not in self._banned:
                        self._banned.add(p["peer_id"])
                        banned.append(p["peer_id"])
                    elif not p.get("banned"):
                        self._banned.discard(p["peer_id"])
        self.event(
            "round",
            f"round {row.get('round')}: reward {row.get('mean_reward', 0.0):.3f}, "
            f"{row.get('external_groups', 0)} external groups",
            round=row.get("round"),
        )
        for peer in joined:
            self.event("peer", f"new peer {peer[:8]}", peer_id=peer)
        for peer in banned:
            self.event("peer", f"peer {peer[:8]} is ignored for a while (invalid data)", peer_id=peer)

    def eval_done(self, row: dict[str, Any]) -> None:
        with self._lock:
            self.evals.append(dict(row))
        self.event("eval", f"held-out accuracy {row.get('eval_greedy_accuracy', 0.0):.1%} at round {row.get('round')}")

    # ------------------------------------------------------------------ read by the server

    def listen(self, entry: tuple[asyncio.AbstractEventLoop, asyncio.Queue[dict[str, Any]]]) -> None:
        with self._lock:
            self.listeners.append(entry)

    def unlisten(self, entry: tuple[asyncio.AbstractEventLoop, asyncio.Queue[dict[str, Any]]]) -> None:
        with self._lock:
            self.listeners.remove(entry)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                **self.info,
                "now": time.time(),
                "started": self.started,
                "round": self.round,
                "phase": self.phase,
                "paused": self.pause_requested.is_set(),
                "recent_rounds": list(self.rounds)[-120:],
                "evals": list(self.evals),
                "peers": list(self.peers),
                "swarm_counters": dict(self.swarm),
                "rejected": dict(self.swarm.get("rejected", {})),
                "events": list(self.events)[-100:],
            }

    def events_since(self, seq: int) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self.events if e["seq"] > seq]


_SWARM_KEYS = ("rejected", "peers", "banned_peers", "misreported_rewards", "fetch_misses", "io_errors")


def prometheus_text(status: NodeStatus) -> bytes:
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    snap = status.snapshot()
    last = snap["recent_rounds"][-1] if snap["recent_rounds"] else {}

    class Collector:
        def collect(self) -> Iterator[Any]:
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
                sum(1 for p in snap["peers"] if p.get("banned")),
            )
            if snap["evals"]:
                yield gauge(
                    "eval_accuracy",
                    "Held-out greedy accuracy, last evaluation.",
                    snap["evals"][-1].get("eval_greedy_accuracy", 0),
                )
            rejected = CounterMetricFamily("swarmnode_rejections", "Rejected peer data by reason.", labels=["reason"])
            for reason, count in sorted(snap["rejected"].items()):
                rejected.add_metric([reason], float(count))
            yield rejected
            external = CounterMetricFamily(
                "swarmnode_external_groups", "Peers' groups trained on, in the recent rounds held.", labels=["peer"]
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
        self.fallback = False
        self._streams: set[asyncio.Task[Any]] = set()
        try:
            self.port = self._call(self._start(host, port))
        except OSError:
            if port == 0:
                raise
            self.fallback = True  # taken (another node on this machine?): any free port
            self.port = self._call(self._start(host, 0))
        self.url = f"http://{host if ':' not in host else f'[{host}]'}:{self.port}"

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(30)

    async def _start(self, host: str, port: int) -> int:
        app = web.Application(middlewares=[self._auth])
        app.router.add_get("/status", self._status)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/events", self._events)
        app.router.add_post("/pause", self._pause)
        app.router.add_post("/resume", self._resume)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, reuse_address=False)
        try:
            await site.start()
        except OSError:
            await self._runner.cleanup()
            raise
        server: Any = site._server
        return int(server.sockets[0].getsockname()[1])

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> Any:
        expected = f"Bearer {self.token}".encode()
        if self.token and not hmac.compare_digest(request.headers.get("Authorization", "").encode(), expected):
            return web.json_response({"error": "missing or wrong token"}, status=401)
        return await handler(request)

    async def _status(self, request: Any) -> Any:
        return web.json_response(self.status.snapshot())

    async def _metrics(self, request: Any) -> Any:
        from prometheus_client import CONTENT_TYPE_LATEST

        return web.Response(body=prometheus_text(self.status), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _pause(self, request: Any) -> Any:
        self.status.pause_requested.set()
        self.status.event("control", "pause requested: training holds after this round")
        return web.json_response({"paused": True})

    async def _resume(self, request: Any) -> Any:
        self.status.pause_requested.clear()
        self.status.event("control", "resumed")
        return web.json_response({"paused": False})

    async def _events(self, request: Any) -> Any:
        try:
            since = int(request.query.get("since", "0"))
        except ValueError:
            return web.json_response({"error": "since must be an integer"}, status=400)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=1000)
        entry = (asyncio.get_running_loop(), queue)
        self.status.listen(entry)
        task = asyncio.current_task()
        if task is not None:
            self._streams.add(task)
        try:
            for item in self.status.events_since(since):
                await response.write(f"id: {item['seq']}\ndata: {json.dumps(item)}\n\n".encode())
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), 15.0)
                    if item["seq"] <= since:
                        continue
                    await response.write(f"id: {item['seq']}\ndata: {json.dumps(item)}\n\n".encode())
                except TimeoutError:
                    await response.write(b": keep-alive\n\n")
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.status.unlisten(entry)
            self._streams.discard(task)
        return response

    def close(self) -> None:
        for task in list(self._streams):  # open event streams would hold the shutdown up
            self._loop.call_soon_threadsafe(task.cancel)
        runner = getattr(self, "_runner", None)
        if runner is not None:
            try:
                self._call(runner.cleanup())
            except (OSError, RuntimeError, TimeoutError):
                self.status.set_phase("stopped")  # closing anyway
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)


def write_url(run_dir: Any, url: str) -> None:
    path = run_dir / "status.url"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(url + "\n")
    os.replace(tmp, path)
