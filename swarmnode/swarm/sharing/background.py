"""Sharing off the round's critical path: one thread does all of a node's swarm I/O (`swarm.background_sharing`).

In one call (`share`) the round hands its scored groups over (stored and announced by the thread while the
node trains and generates) and takes what the thread has already fetched and validated (it never waits on the
network). Between two takes the thread reads peers' announcements and downloads their batches for the
node's next round, until it holds the wanted informative groups (`swarm.external_groups`); each pass keeps
the round's I/O deadline (`swarm.round_timeout_s`), and when a pass finds nothing new it waits longer before
the next (from `POLL_S` up to `MAX_POLL_S`), so a quiet swarm is not read over and over.

The thread alone touches the exchange (its peer book, counters, transport). The round reads copies it makes
after every pass (`view`): the peers and the counters (each group it takes carries its author's seniority);
the likelihood gate's charges go to the thread as notes (`note_gated`). So nothing the round does waits on I/O.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence

from swarmnode.groups import Group
from swarmnode.swarm.membership import Swarm, View, view_of
from swarmnode.swarm.sharing.exchange import RolloutExchange

POLL_S = 0.5
"""Wait between two reading passes while they find new groups (and after a publish or a take)."""
MAX_POLL_S = 8.0
"""The longest wait between reading passes: each pass that finds nothing doubles the wait up to this."""


class BackgroundSwarm(Swarm):
    """A node's swarm membership with the I/O thread of its exchange (see the module)."""

    def __init__(
        self, exchange: RolloutExchange, *, want_groups: int, per_peer_groups: int, owns_transport: bool = False
    ) -> None:
        super().__init__(
            exchange, want_groups=want_groups, per_peer_groups=per_peer_groups, owns_transport=owns_transport
        )
        self._ex = exchange
        self._cv = threading.Condition()
        self._job: tuple[int, int, list[Group]] | None = None
        self._buffer: list[Group] = []
        self._target = 1
        """The node's round the buffer is for (the round after the latest take)."""
        self._gated: list[Mapping[str, int]] = []
        self._lines: list[str] = []
        self._stop = False
        self._wake = False
        self._view = View()
        self.passes = 0
        """Reading passes made (a test's and the benchmark's handle on the thread's progress)."""
        self.busy_s = 0.0
        """Seconds the thread spent on I/O and validation (off the round's critical path)."""
        self._thread = threading.Thread(target=self._run, name="swarmnode-sharing", daemon=True)
        self._thread.start()

    # ---------------------------------------------------------------- the round's side (never waits on I/O)

    def share(self, round_: int, policy_version: int, groups: Sequence[Group]) -> list[Group]:
        """Hand over one round's groups to store and announce (an older hand-over not yet stored is replaced:
        announcements list a node's latest batches), and take the groups fetched and validated for the node's
        rounds up to `round_`; from now on the thread fetches for round `round_ + 1`. Never waits on I/O."""
        with self._cv:
            if any(g.completions for g in groups):
                self._job = (round_, policy_version, list(groups))
            taken, self._buffer = self._buffer, []
            self._target = round_ + 1
            self._wake = True
            self._cv.notify()
        return taken

    def note_gated(self, by_source: Mapping[str, int]) -> None:
        with self._cv:
            self._gated.append(dict(by_source))
            self._wake = True
            self._cv.notify()

    def waiting(self) -> int:
        with self._cv:
            return len(self._buffer)

    def view(self) -> View:
        return self._view

    def io_seconds(self) -> float:
        return self.busy_s

    def trouble(self) -> list[str]:
        with self._cv:
            lines, self._lines = self._lines, []
        return lines

    def close(self, timeout: float | None = None) -> None:
        """Stop the thread once it has stored the latest hand-over (at most `timeout` seconds: the round's
        I/O deadline and a little more), then leave the swarm. Idempotent."""
        if not self._closed:
            with self._cv:
                self._stop = True
                self._cv.notify()
            self._thread.join(self._ex.round_timeout_s + 5.0 if timeout is None else timeout)
        super().close()

    # ---------------------------------------------------------------- the thread

    def _run(self) -> None:
        wait = POLL_S
        while True:
            with self._cv:
                job, self._job = self._job, None
                gated, self._gated = self._gated, []
                target, stop = self._target, self._stop
                have = sum(1 for g in self._buffer if g.informative)
                self._wake = False
            found = False
            started = time.perf_counter()
            try:
                for by_source in gated:
                    self._ex.charge_gated(by_source)
                if job is not None:
                    self._ex.start_round()
                    self._ex.publish(*job)
                if stop:
                    break
                if have < self._want:
                    self._ex.start_round()
                    got = self._ex.collect(target, want_groups=self._want - have, per_peer_groups=self._per_peer)
                    found = bool(got)
                    with self._cv:
                        self._buffer += got
                    self.passes += 1
                self._view = view_of(self._ex)
            except Exception as exc:  # never let the thread die: count it, say it once, carry on
                self._ex.tally.io_error(f"sharing thread: {type(exc).__name__}: {exc}")
            finally:
                self.busy_s += time.perf_counter() - started
            with self._cv:
                self._lines += self._ex.trouble()
                full = sum(1 for g in self._buffer if g.informative) >= self._want
                wait = POLL_S if found or job is not None else min(MAX_POLL_S, 2 * wait)
                if not (self._wake or self._stop):
                    # a full buffer waits for the round's take; otherwise read again after `wait`
                    self._cv.wait(None if full and not self._gated else wait)
                if self._wake:
                    wait = POLL_S
