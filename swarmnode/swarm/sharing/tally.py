"""What the sharing pipeline counts, and the one way it charges a peer: every refusal names a `Refusal`, is
counted here and, when charged to a peer, written in the peer book. The parts of the pipeline and the I/O
thread report through it; nothing else writes these counters."""

from __future__ import annotations

import time
from collections import Counter

from swarmnode.swarm.trust.book import PeerBook
from swarmnode.swarm.trust.reasons import Refusal


class Tally:
    def __init__(self, book: PeerBook) -> None:
        self.book = book
        self.counts: Counter[str] = Counter()
        """Refusals the pipeline made itself (offers before download, the round's budgets, the likelihood gate's
        charges), by code, since start. The validator counts what it refuses in a downloaded batch."""
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
        """I/O errors already reported by `io_lines`: (count, last message, when)."""

    def charge(self, peer_id: str, reason: Refusal, n: int = 1) -> None:
        """Count `n` refusals and charge them to the peer (the book applies the reason's category)."""
        self.counts[reason] += n
        self.book.rejected(peer_id, Counter({reason: n}))

    def count(self, reason: Refusal, n: int = 1) -> None:
        """Count `n` refusals charged to nobody."""
        self.counts[reason] += n

    def io_error(self, text: str) -> None:
        self.io_errors += 1
        self.last_io_error = text

    def io_lines(self) -> list[str]:
        """A line for the user about the latest I/O error since the last call: each new kind at once, a repeat
        at most once a minute, with how many there were."""
        said_errors, said_text, said_at = self._io_said
        if self.io_errors > said_errors and (self.last_io_error != said_text or time.monotonic() - said_at >= 60):
            self._io_said = (self.io_errors, self.last_io_error, time.monotonic())
            return [f"swarm I/O failed ({self.io_errors} so far): {self.last_io_error}"]
        return []
