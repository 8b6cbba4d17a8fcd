"""Publishing this node's rollouts and collecting peers' through any `Transport`.

Publish: one signed batch per round, stored under its content id, and one signed announcement for the
current time window that lists it. Collect: read the announcements of the current and previous window,
drop our own, banned peers' and invalid ones, fetch the most informative batches first (at most
`max_batches` per pass, and at most `batches_per_peer_per_round` from any one announcer in a round: the
only per-peer quota), and run each through the `BatchValidator`.

Before anything is downloaded, offers are checked and their rejections counted here (`counts`) and in the
peer book: an announcement that does not verify (`announcement_invalid`), a batch claimed bigger than the
limit (`oversize`), a batch already processed that a peer other than its signer offers again — a replay
(`duplicate_message`), and offers beyond the announcer's quota (`quota`). Everything after download is
counted by the validator. All I/O of one round shares one deadline, so dead peers cannot stall a round.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Sequence

import protocol
from swarmnode.groups import Group, has_signal
from swarmnode.identity import Identity
from swarmnode.swarm.peers import PeerBook
from swarmnode.swarm.transport import Transport, TransportError
from swarmnode.swarm.validate import SEEN_CAPACITY, BatchValidator, Seen

MAX_MISSES = 3
"""Rounds an offered batch may fail to download before this node stops trying it."""


class RolloutExchange:
    def __init__(
        self,
        transport: Transport,
        identity: Identity,
        swarm: str,
        validator: BatchValidator,
        book: PeerBook,
        limits: protocol.Limits,
        *,
        model: str,
        window_s: float = 60.0,
        max_batches: int = 8,
        round_timeout_s: float = 15.0,
        announce_batches: int = 4,
        batches_per_peer_per_round: int = 2,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.transport = transport
        self.identity = identity
        self.swarm = swarm
        self.validator = validator
        self.book = book
        self.limits = limits
        self.model = model[: limits.max_name_chars]
        self.window_s = window_s
        self.max_batches = max_batches
        self.round_timeout_s = round_timeout_s
        self.announce_batches = announce_batches
        """How many of its latest batches a node's announcement lists."""
        self.batches_per_peer_per_round = batches_per_peer_per_round
        """Batches downloaded from one announcer in one of our rounds; offers beyond it are counted as `quota`."""
        self._rng = random.Random(identity.peer_id)
        self.clock = clock
        self._published: list[protocol.BatchSummary] = []
        self.counts: Counter[str] = Counter()
        """Rejections of offers (before download), by reason, since start."""
        self.validated = 0
        """Downloaded batches run through the validation chain (accepted or not)."""
        self.validate_s = 0.0
        """Seconds the validation chain took for them (the swarm benchmark's validated messages per second)."""
        self.misses = 0
        """Offered batches that could not be fetched (expired, or their holder is gone)."""
        self.io_errors = 0
        """Transport operations that failed or ran out of the round's time (collect keeps what it has)."""
        self.last_io_error = ""
        self._io_said: tuple[int, str, float] = (0, "", 0.0)
        """I/O errors already reported by `trouble()`: (count, last message, when)."""
        self._done = Seen()
        """Batches already processed, noted with their signer (announcements list a peer's batches again and
        again); "" for batches given up on."""
        self._missed: Counter[bytes] = Counter()
        self._taken: Counter[str] = Counter()
        """Batches downloaded from each announcer in `_taken_round`."""
        self._taken_round = -1
        self._deadline = float("inf")

    def start_round(self) -> None:
        """Start the I/O budget of one round: publish and collect together take at most `round_timeout_s`."""
        self._deadline = time.monotonic() + self.round_timeout_s

    def _left(self) -> float:
        """Seconds of this round's I/O budget left (a transport op gets at most that)."""
        return max(0.0, self._deadline - time.monotonic())

    def rejections(self) -> Counter[str]:
        """Every rejection counted so far: of offers here, of downloaded batches by the validator, and of
        records by the transport itself."""
        return self.counts + self.validator.counts + Counter(self.transport.rejections())

    def _io_error(self, exc: TransportError) -> None:
        self.io_errors += 1
        self.last_io_error = str(exc)

    def trouble(self) -> list[str]:
        """Lines for the user about swarm I/O since the last call: the transport's own notices (a restarted
        host process, say), and the latest I/O error: each new kind at once, a repeat at most once a minute,
        with how many there were."""
        lines = self.transport.take_notices()
        said_errors, said_text, said_at = self._io_said
        if self.io_errors > said_errors and (self.last_io_error != said_text or time.monotonic() - said_at >= 60):
            lines.append(f"swarm I/O failed ({self.io_errors} so far): {self.last_io_error}")
            self._io_said = (self.io_errors, self.last_io_error, time.monotonic())
        return lines

    def _reject(self, author: str, reason: str) -> None:
        self.counts[reason] += 1
        self.book.rejected(author, Counter({reason: 1}))

    def window(self) -> int:
        return int(self.clock() // self.window_s)

    def publish(self, round_: int, policy_version: int, groups: Sequence[Group]) -> bytes | None:
        """Share `groups` (their text and this node's rewards, never token ids); returns the batch id (None
        when there is nothing worth sharing, or the transport failed: counted in `io_errors`)."""
        shared = [g for g in groups if g.completions][: self.limits.max_groups_per_batch]
        if not shared:
            return None
        now_ms = int(self.clock() * 1000)
        batch = protocol.RolloutBatch(
            self.swarm,
            round_,
            policy_version,
            now_ms,
            self.model,
            tuple(
                protocol.RolloutGroup(
                    g.question.ref,
                    g.question.text,
                    tuple(c[: self.limits.max_completion_chars] for c in g.completions),
                    tuple(float(r) for r in g.rewards),
                )
                for g in shared
            ),
        )
        envelope = protocol.seal_payload(batch, self.identity.key, self.limits)
        batch_id = protocol.message_id(envelope)
        rewards = [r for g in shared for r in g.rewards]
        summary = protocol.BatchSummary(
            batch_id,
            len(envelope),
            round_,
            len(shared),
            sum(1 for g in shared if has_signal(g.rewards)),
            sum(rewards) / len(rewards),
        )
        listed = [summary, *self._published][: min(self.announce_batches, self.limits.max_batches_per_announcement)]
        announcement = protocol.Announcement(self.swarm, round_, now_ms, self.model, tuple(listed))
        try:
            self.transport.store_batch(batch_id, envelope, timeout=self._left())
            self._published = listed  # stored: announced from now on, even if this announcement fails
            self.transport.announce(
                self.window(), protocol.seal_payload(announcement, self.identity.key, self.limits), timeout=self._left()
            )
        except TransportError as exc:
            self._io_error(exc)
            return None
        return batch_id

    def collect(
        self, local_round: int, want_groups: int | None = None, per_peer_groups: int | None = None
    ) -> list[Group]:
        """Peers' validated, re-scored groups available now (`source`: the author's peer id).

        With `want_groups`, reading stops once enough is found: announcement buckets are read in a random
        order until their new offers promise twice that many informative groups (counting at most
        `per_peer_groups` per peer), and downloads stop once the accepted groups cover `want_groups`. So
        what a node reads per round depends on what it wants, not on how many peers there are."""
        cap = per_peer_groups or want_groups or 0
        own = self.identity.peer_id
        offers: list[tuple[int, str, protocol.BatchSummary]] = []
        window = self.window()
        order = list(range(self.transport.buckets))
        self._rng.shuffle(order)
        promised: Counter[str] = Counter()

        def covered(counts: Counter[str], target: int) -> bool:
            return want_groups is not None and sum(min(n, cap) for n in counts.values()) >= target

        reads = [(w, b) for w in (window, window - 1) for b in order]
        for w, b in reads:
            if covered(promised, 2 * (want_groups or 0)):
                break
            try:
                envelopes = self.transport.announcements(w, b, timeout=self._left())
            except TransportError as exc:
                self._io_error(exc)
                break
            for envelope in envelopes:
                verdict = protocol.verify_and_decode(envelope, self.limits)
                if not isinstance(verdict, protocol.Accepted) or not isinstance(verdict.payload, protocol.Announcement):
                    self.counts["announcement_invalid"] += 1
                    continue
                author = verdict.peer_id
                if author == own or verdict.payload.swarm != self.swarm or self.book.is_banned(author):
                    continue
                offers += [(s.informative_groups, author, s) for s in verdict.payload.batches]
                promised[author] += sum(
                    s.informative_groups for s in verdict.payload.batches if s.batch_id not in self._done
                )
        offers.sort(key=lambda o: -o[0])
        accepted: list[Group] = []
        got: Counter[str] = Counter()  # informative groups accepted, by signer
        if local_round != self._taken_round:  # the quota is per round
            self._taken.clear()
            self._taken_round = local_round
        downloads = 0
        seen_here: set[tuple[str, bytes]] = set()
        for _, author, summary in offers:
            if (author, summary.batch_id) in seen_here:
                continue  # the same peer's announcement read in both windows
            seen_here.add((author, summary.batch_id))
            signer = self._done.get(summary.batch_id)
            if signer is not None:
                if signer and signer != author:
                    self._reject(author, "duplicate_message")  # someone else's batch offered again: a replay
                continue
            if summary.size > self.limits.max_envelope_bytes:
                self._reject(author, "oversize")
                continue
            if downloads >= self.max_batches or self._left() <= 0 or covered(got, want_groups or 0):
                continue  # nothing more to download this round; the cheap checks above still run for every offer
            if want_groups is not None and got[author] >= cap:
                continue  # this peer's share of the round is covered: its other batches wait for later rounds
            if self._taken[author] >= self.batches_per_peer_per_round:
                self._reject(author, "quota")
                continue
            self._taken[author] += 1
            downloads += 1
            try:
                raw = self.transport.fetch_batch(summary.batch_id, timeout=self._left())
            except TransportError as exc:
                self._io_error(exc)
                break
            if raw is None:
                self.misses += 1
                self._missed[summary.batch_id] += 1
                if self._missed[summary.batch_id] >= MAX_MISSES:  # gone, or refused by the DHT: stop asking
                    del self._missed[summary.batch_id]
                    self._done.add(summary.batch_id)
                if len(self._missed) > SEEN_CAPACITY:
                    self._missed.clear()
                continue
            if protocol.message_id(raw) != summary.batch_id:
                self._reject(author, "batch_id_mismatch")
                continue
            started = time.perf_counter()
            outcome = self.validator.check(raw)
            self.validate_s += time.perf_counter() - started
            self.validated += 1
            self._done.add(summary.batch_id, outcome.author or "")
            if outcome.rejected:  # bytes that name no valid signer are blamed on the peer that offered them
                self.book.rejected(outcome.author or author, outcome.rejected)
            if outcome.accepted:
                signer = outcome.accepted[0].source
                self.book.accepted(
                    signer,
                    outcome.accepted[0].model,
                    len(outcome.accepted),
                    [r for g in outcome.accepted for r in g.rewards],
                )
                accepted += outcome.accepted
                got[signer] += sum(1 for g in outcome.accepted if g.informative)
        return accepted
