"""Sharing off the round's critical path: one thread does all of a node's swarm I/O (`swarm.background_sharing`).

The round hands its scored groups over (`publish`: stored and announced by the thread while the node trains
and generates) and takes what the thread has already fetched and validated (`take`: it never waits on the
network). Between two takes the thread reads peers' announcements and downloads their batches for the
node's next round, until it holds the wanted informative groups (`swarm.external_groups`); each pass keeps
the round's I/O deadline (`swarm.round_timeout_s`), and when a pass finds nothing new it waits longer before
the next (from `POLL_S` up to `MAX_POLL_S`), so a quiet swarm is not read over and over.

The thread alone touches the exchange (its peer book, counters, transport). The round reads copies it makes
after every pass (`view`): the peers, the counters, and the standing of the peers whose groups it took; the
likelihood gate's charges go to the thread as notes (`note_gated`). So nothing the round does waits on I/O.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from swarmnode.groups import Group
from swarmnode.run_dir import PeerRow
from swarmnode.swarm.sharing.exchange import RolloutExchange

POLL_S = 0.5
"""Wait between two reading passes while they find new groups (and after a publish or a take)."""
MAX_POLL_S = 8.0
"""The longest wait between reading passes: each pass that finds nothing doubles the wait up to this."""


@dataclass(frozen=True)
class View:
    """What the round reads of the swarm: copies made by the I/O thread after its latest pass."""

    peers: list[PeerRow] = field(default_factory=list)
    rejected: dict[str, int] = field(default_factory=dict)
    misreported_rewards: int = 0
    fetch_misses: int = 0
    io_errors: int = 0
    clock_offset: tuple[float, int] | None = None


class BackgroundSharer:
    """The I/O thread of one node's exchange (see the module). `want` informative groups a round, at most
    `per_peer` of them from one peer."""

    def __init__(self, exchange: RolloutExchange, want: int, per_peer: int) -> None:
        self._ex = exchange
        self._want = want
        self._per_peer = per_peer
        self._cv = threading.Condition()
        self._job: tuple[int, int, list[Group]] | None = None
        self._buffer: list[Group] = []
        self._standing: dict[str, tuple[int, bool]] = {}
        """(cohort, junior) of the buffered groups' authors, in the round they were fetched for."""
        self.standing: dict[str, tuple[int, bool]] = {}
        """... of the groups of the latest take (the sampler's `standing`)."""
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

    def publish(self, round_: int, policy_version: int, groups: Sequence[Group]) -> None:
        """Hand over one round's groups to store and announce; an older hand-over not yet stored is replaced
        (announcements list a node's latest batches: a newer one supersedes it). Nothing to share: no job."""
        if not any(g.completions for g in groups):
            return
        with self._cv:
            self._job = (round_, policy_version, list(groups))
            self._wake = True
            self._cv.notify()

    def take(self, round_: int) -> list[Group]:
        """The groups fetched and validated for the node's rounds up to `round_`; from now on the thread
        fetches for round `round_ + 1`."""
        with self._cv:
            taken, self._buffer = self._buffer, []
            self.standing, self._standing = self._standing, {}
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

    def trouble(self) -> list[str]:
        with self._cv:
            lines, self._lines = self._lines, []
        return lines

    def close(self, timeout: float | None = None) -> None:
        """Stop the thread once it has stored the latest hand-over (at most `timeout` seconds: the round's
        I/O deadline and a little more)."""
        with self._cv:
            self._stop = True
            self._cv.notify()
        self._thread.join(self._ex.round_timeout_s + 5.0 if timeout is None else timeout)

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
                    self._charge_gated(by_source)
                if job is not None:
                    self._ex.start_round()
                    self._ex.publish(*job)
                if stop:
                    break
                if have < self._want:
                    self._ex.start_round()
                    got = self._ex.collect(target, want_groups=self._want - have, per_peer_groups=self._per_peer)
                    found = bool(got)
                    standing = self._ex.book.for_sampling((g.source for g in got), target)
                    with self._cv:
                        self._buffer += got
                        self._standing |= standing
                    self.passes += 1
                self._refresh()
            except Exception as exc:  # never let the thread die: count it, say it once, carry on
                self._ex.io_errors += 1
                self._ex.last_io_error = f"sharing thread: {type(exc).__name__}: {exc}"
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

    def _charge_gated(self, by_source: Mapping[str, int]) -> None:
        for peer, n in by_source.items():
            self._ex.counts["improbable"] += n
            self._ex.book.rejected(peer, Counter({"improbable": n}))

    def _refresh(self) -> None:
        self._view = view_of(self._ex)


def view_of(ex: RolloutExchange) -> View:
    """What the round reads of the swarm, copied from the exchange (by its I/O thread, or in line)."""
    return View(
        peers=ex.book.snapshot(),
        rejected=dict(sorted(ex.rejections().items())),
        misreported_rewards=ex.validator.misreported,
        fetch_misses=ex.misses,
        io_errors=ex.io_errors,
        clock_offset=ex.clock_watch.offset(),
    )
