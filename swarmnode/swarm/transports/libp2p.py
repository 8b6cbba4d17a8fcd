"""The GossipSub transport: a py-libp2p host in a child process (`libp2p_host.py`; py-libp2p and hivemind
cannot share a process), driven over its stdin/stdout with bounded frames. Announcements and batches are
pushed over one GossipSub topic per swarm and kept by every node that validates them; big batches are
fetched on demand from the peers that hold them. Needs the `libp2p` extra. The host listens only on
`host_maddrs` (127.0.0.1 by default) with mDNS and UPnP off: nothing like hivemind's nat_port_map, AutoNAT
or relays runs."""

from __future__ import annotations

import importlib.util
import itertools
import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path

import msgpack

from swarmnode.errors import UserError, install_hint
from swarmnode.swarm.transports.base import SETTINGS, TransportError
from swarmnode.swarm.transports.libp2p_pipe import KEY_ENV, MAX_FRAME, frame
from swarmnode.swarm.transports.storage_budget import AUTHOR_BYTES, TOTAL_BYTES

Reply = dict[str, object]
"""One answer frame of the host: {"id", "ok", "value" | "error"}."""


def _count(value: object) -> int:
    if not isinstance(value, int):
        raise TransportError(f"the libp2p host answered {type(value).__name__} for a count")
    return value


def libp2p_available() -> bool:
    return importlib.util.find_spec("libp2p") is not None and importlib.util.find_spec("trio") is not None


class Libp2pTransport:
    def __init__(
        self,
        swarm: str,
        *,
        initial_peers: Sequence[str] = (),
        host_maddrs: Sequence[str] = ("/ip4/127.0.0.1/tcp/0",),
        window_s: float = 60.0,
        op_timeout_s: float = 20.0,
        startup_timeout_s: float = 60.0,
        level: int = SETTINGS.base_level,
        log_path: Path | None = None,
        restart_every_s: float = 10.0,
        store_bytes: int = TOTAL_BYTES,
        author_bytes: int = AUTHOR_BYTES,
    ) -> None:
        if not libp2p_available():
            raise UserError(f"the libp2p transport needs its extra: {install_hint('libp2p')}")
        self.swarm = swarm
        self.level = level
        """The level this node reads at (a host keeps every announcement it receives, filed at every level)."""
        self.op_timeout_s = op_timeout_s
        self.startup_timeout_s = startup_timeout_s
        self.window_s = window_s
        self.restart_every_s = restart_every_s
        """A host that ended is restarted at most this often (one that cannot stay up does not spin)."""
        self.log_path = log_path
        """Where the host process writes its warnings and, if it dies, its traceback."""
        self.store_bytes, self.author_bytes = store_bytes, author_bytes
        """The host's budgets for peers' batches, in total and per signer."""
        self.bytes_downloaded = 0
        self.restarts = 0
        self._peers = list(initial_peers)
        self._host_maddrs = list(host_maddrs)
        self._key_seed = os.urandom(32)  # the host's libp2p identity, kept across restarts
        self._ids = itertools.count(1)
        self._pending: dict[int, Future[Reply]] = {}
        self._lock = threading.Lock()
        self._write = threading.Lock()
        self._restart_lock = threading.Lock()
        self._notices: list[str] = []
        self._closed = False
        self._last_start = time.monotonic()
        try:
            self.addrs = self._start(self._host_maddrs)
        except TransportError as exc:
            raise UserError(str(exc)) from exc

    @property
    def buckets(self) -> int:
        return 1 << self.level

    def _start(self, listen: Sequence[str]) -> list[str]:
        """Start a host process listening on `listen`; its addresses once it is ready."""
        command = [sys.executable, "-m", "swarmnode.swarm.transports.libp2p_host"]
        command += ["--swarm", self.swarm, "--listen", *listen]
        command += ["--window-s", str(self.window_s)]
        command += ["--op-timeout-s", str(self.op_timeout_s)]
        command += ["--store-bytes", str(self.store_bytes), "--author-bytes", str(self.author_bytes)]
        if self._peers:
            command += ["--peers", *self._peers]
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab") if self.log_path is not None else subprocess.DEVNULL
        try:
            self._proc = subprocess.Popen(  # noqa: S603 - this interpreter running our own module
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                env={**os.environ, KEY_ENV: self._key_seed.hex()},
            )
        finally:
            if not isinstance(log, int):
                log.close()
        ready: Future[list[str]] = Future()
        self._pending = {}
        self._reader = threading.Thread(
            target=self._read_loop, args=(self._proc, ready, self._pending), name="swarmnode-libp2p", daemon=True
        )
        self._reader.start()
        try:
            addrs = ready.result(self.startup_timeout_s)
        except Exception as exc:
            self._stop_process()
            raise TransportError(f"the libp2p host did not start: {exc or type(exc).__name__}") from exc
        if listen and not addrs:  # py-libp2p logs a listener it could not open and goes on with none
            self._stop_process()
            raise TransportError(
                f"swarm.host_maddrs {' '.join(listen)}: the libp2p host could not listen there (the port is taken?); "
                "stop what uses it or choose another port"
            )
        return addrs

    def _restart(self) -> None:
        """Start a new host in place of one that ended, on the same address and with the same peer id."""
        with self._restart_lock:
            if self._closed or self._proc.poll() is None:
                return
            code = self._proc.returncode
            wait = self._last_start + self.restart_every_s - time.monotonic()
            if wait > 0:
                raise TransportError(f"the libp2p host ended (exit code {code}); restarting it in {wait:.0f} s")
            self._last_start = time.monotonic()
            self.restarts += 1
            where = f" (its log: {self.log_path})" if self.log_path is not None else ""
            same = [a.split("/p2p/")[0] for a in self.addrs]
            try:
                self.addrs = self._start(same)
            except TransportError:  # its port was taken meanwhile: a new one
                self.addrs = self._start(self._host_maddrs)
            self._notices.append(f"the libp2p host ended (exit code {code}){where}; restarted: {' '.join(self.addrs)}")

    def take_notices(self) -> list[str]:
        with self._lock:
            notices, self._notices = self._notices, []
        return notices

    def _read_loop(
        self, proc: subprocess.Popen[bytes], ready: Future[list[str]], pending: dict[int, Future[Reply]]
    ) -> None:
        stream = proc.stdout
        assert stream is not None
        while True:
            header = stream.read(4)
            if len(header) < 4:
                break
            length = int.from_bytes(header, "big")
            if length > MAX_FRAME:
                break
            body = stream.read(length)
            if len(body) < length:
                break
            reply = msgpack.unpackb(body, raw=False)
            if not isinstance(reply, dict):
                break
            if reply.get("op") == "ready":
                addrs = reply.get("addrs")
                ready.set_result([str(a) for a in addrs] if isinstance(addrs, list) else [])
                continue
            request_id = reply.get("id")
            with self._lock:
                future = pending.pop(request_id, None) if isinstance(request_id, int) else None
            if future is not None:
                future.set_result(reply)
        error = TransportError("the libp2p host process ended")
        if not ready.done():
            ready.set_exception(error)
        with self._lock:
            left = list(pending.values())
            pending.clear()
        for future in left:
            future.set_exception(error)

    def _call(self, op: str, timeout: float | None = None, **fields: object) -> object:
        """Send one request to the host and wait for its answer (`value`: any msgpack value, checked by the
        caller); a refusal of the host's record rules raises ValueError, anything else TransportError."""
        limit = self.op_timeout_s if timeout is None else min(self.op_timeout_s, timeout)
        if limit <= 0:
            raise TransportError("no time left in this round for swarm I/O")
        if self._proc.poll() is not None:
            self._restart()
        request_id = next(self._ids)
        future: Future[Reply] = Future()
        with self._lock:
            pending = self._pending
            pending[request_id] = future
        try:
            with self._write:
                assert self._proc.stdin is not None
                self._proc.stdin.write(frame({"id": request_id, "op": op, **fields}))
                self._proc.stdin.flush()
            reply = future.result(limit + 1.0)
        except (OSError, TimeoutError, TransportError) as exc:
            raise TransportError(f"libp2p {op}: {type(exc).__name__} {exc}"[:300]) from exc
        finally:
            with self._lock:
                pending.pop(request_id, None)
        if not reply.get("ok"):
            error = str(reply.get("error", ""))
            if error.startswith("ValueError"):
                raise ValueError(error)
            raise TransportError(f"libp2p {op}: {error}")
        return reply.get("value")

    def visible_maddrs(self) -> list[str]:
        return list(self.addrs)

    @property
    def host_pid(self) -> int:
        """The process id of the host now running (a new one after a restart)."""
        return self._proc.pid

    def host_alive(self) -> bool:
        """Whether the host process still runs (one that ended is restarted by the next operation)."""
        return self._proc.poll() is None

    def connect(self, maddr: str) -> None:
        self._call("connect", maddr=maddr)
        if maddr not in self._peers:
            self._peers.append(maddr)  # a restarted host dials it too

    def peer_count(self) -> int:
        return _count(self._call("peers"))

    def store_batch(self, batch_id: bytes, envelope: bytes, timeout: float | None = None) -> None:
        self._call("store_batch", timeout, batch_id=batch_id, data=envelope)

    def announce(self, window: int, envelope: bytes, timeout: float | None = None) -> None:
        self._call("announce", timeout, window=window, data=envelope)

    def announcements(self, window: int, bucket: int | None = None, timeout: float | None = None) -> list[bytes]:
        value = self._call("announcements", timeout, window=window, bucket=bucket, level=self.level)
        found = [e for e in value if isinstance(e, bytes)] if isinstance(value, list) else []
        self.bytes_downloaded += sum(len(e) for e in found)
        return found

    def fetch_batch(self, batch_id: bytes, timeout: float | None = None) -> bytes | None:
        found = self._call("fetch_batch", timeout, batch_id=batch_id)
        if isinstance(found, bytes):
            self.bytes_downloaded += len(found)
            return found
        return None

    def wire_bytes(self) -> int:
        """What the host really received from other peers (pushed messages and fetched batches): with push,
        every node takes in every peer's messages whether it reads them or not."""
        return _count(self._call("received_bytes", 5.0))

    def rejections(self) -> dict[str, int]:
        try:
            value = self._call("rejections", 5.0)
        except TransportError:
            return {}
        return {str(k): v for k, v in value.items() if isinstance(v, int)} if isinstance(value, dict) else {}

    def close(self) -> None:
        self._closed = True
        self._stop_process()

    def _stop_process(self) -> None:
        if self._proc.poll() is None:
            try:
                if self._proc.stdin is not None:
                    self._proc.stdin.close()  # the host stops when its input ends
                self._proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self._proc.kill()
                self._proc.wait(timeout=10)
        self._reader.join(timeout=5)
