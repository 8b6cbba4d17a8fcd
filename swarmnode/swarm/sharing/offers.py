"""Reading peers' offers (`RolloutExchange` is an `OfferReading`): which windows and announcement buckets a
node lists, in which order, and when it stops, and the checks an announcement passes before its offers
count (signed for this swarm, not this node's own nor an ignored peer's, dated within its window). Reading
also feeds the node's estimate of the swarm's size (its announcement level, `BucketLevel`) and of its clock
offset (`ClockWatch`)."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable

import protocol
from swarmnode.identity import Identity
from swarmnode.swarm.sharing.clock import ClockWatch
from swarmnode.swarm.trust.book import ON_PROBATION, PROVEN, PeerBook
from swarmnode.swarm.transports.envelope_head import envelope_head
from swarmnode.swarm.transports.base import BucketLevel, Transport, TransportError, announcement_bucket, size_sample
from swarmnode.swarm.sharing.validate import BatchValidator, Seen


class OfferReading:
    """The reading half of `RolloutExchange` (which sets these attributes)."""

    identity: Identity
    swarm: str
    transport: Transport
    validator: BatchValidator
    book: PeerBook
    limits: protocol.Limits
    window_s: float
    clock: Callable[[], float]
    counts: Counter[str]
    clock_watch: ClockWatch
    levels: BucketLevel
    _rng: random.Random
    _done: Seen

    def _reject(self, author: str, reason: str) -> None:
        raise NotImplementedError

    def _io_error(self, exc: TransportError) -> None:
        raise NotImplementedError

    def _left(self) -> float:
        raise NotImplementedError

    def read_windows(self) -> tuple[int, ...]:
        """The windows a reader lists, in order: the current one, the one before, and the next one once this
        node's clock is within the tolerated skew of it (a peer whose clock is that much ahead files there)."""
        now = self.clock()
        w = int(now // self.window_s)
        near = now + self.validator.policy.max_future_s >= (w + 1) * self.window_s
        return (w, w - 1, w + 1) if near else (w, w - 1)

    def _read_offers(
        self, want_groups: int | None, cap: int, round_: int = 0
    ) -> list[tuple[str, protocol.BatchSummary]]:
        """The offers of live, validly signed announcements of this swarm (not ours, not ignored peers'),
        read bucket by bucket until peers not on probation promise twice the wanted informative groups, of
        which juniors (young peers and later cohorts: `PeerBook.junior`) count for at most the wanted groups
        (in a new swarm there are none, and reading stops as early as ever). The buckets of proven
        peers are read first, older peers' and earlier cohorts' before others, so claims of new peers (however
        many identities make them) cannot keep them unread, and reading stops as early as before. The first
        bucket read (always read, so its count is a fair sample: reading stops early after a full one) gives
        one estimate of the swarm's size, from which the node picks its level (`BucketLevel`): a bucket holds
        a few announcements at any size, so what a node reads stays flat as the swarm grows."""
        own = self.identity.peer_id
        offers: list[tuple[str, protocol.BatchSummary]] = []
        promised: Counter[str] = Counter()
        young: set[str] = set()
        n = self.transport.buckets
        rank: dict[int, tuple[bool, int]] = {}
        known: set[str] = set()  # the peers that rank buckets: the rest of the swarm is spread at random
        for p in list(self.book.peers):
            if self.book.tier(p) == PROVEN:
                known.add(p)
                cohort, is_young = self.book.standing(p, round_)
                b = announcement_bucket(p, n)
                rank[b] = min(rank.get(b, (True, 1 << 31)), (is_young, cohort))
        counts: list[tuple[int, int]] = []  # the first bucket read: its authors (not this node), of them known ones
        order = list(range(n))
        self._rng.shuffle(order)
        order.sort(key=lambda b: rank.get(b, (True, 1 << 31)))  # stable: proven peers' buckets first, oldest first
        first = self.book.first_cohort(round_)
        windows = self.read_windows()
        failed = False
        for b in order:
            if failed or (want_groups is not None and _promise(promised, young, want_groups, cap)):
                break
            authors: set[str] = set()
            # the first bucket in every window read (a node announces each round, not each window: a fair
            # sample of the swarm); the others in the next window too only while the current one looks thin
            listed, failed = self._listed(windows, b, self.levels.estimate / n / 2 if counts else float("inf"))
            for w, envelope in listed:
                claimed = _claimed_author(envelope)
                if claimed is not None and claimed != own and self.book.is_banned(claimed):
                    authors.add(claimed)  # present (the swarm's size counts it), but ignored: not worth verifying
                    continue
                verdict = protocol.verify_and_decode(envelope, self.limits)
                if not isinstance(verdict, protocol.Accepted) or not isinstance(verdict.payload, protocol.Announcement):
                    self.counts["announcement_invalid"] += 1
                    continue
                author, announcement = verdict.peer_id, verdict.payload
                if author != own and announcement.swarm == self.swarm:
                    authors.add(author)
                if author == own or announcement.swarm != self.swarm or self.book.is_banned(author):
                    continue
                self.clock_watch.note(author, announcement.created_ms / 1000.0, self.clock())
                late = self._announcement_time(announcement.created_ms / 1000.0, w)
                if late is not None:
                    self._reject(author, late)
                    continue
                offers += [(author, s) for s in announcement.batches]
                self.book.present(author, round_)
                if self.book.junior(author, round_, first):
                    young.add(author)
                if self.book.tier(author) != ON_PROBATION:  # claims of peers with strikes do not stop the reading
                    promised[author] += sum(
                        s.informative_groups for s in announcement.batches if s.batch_id not in self._done
                    )
            if not failed and not counts:  # the first bucket only: whether more are read depends on what it held
                counts.append((len(authors), len(authors & known)))
        if counts:
            self.transport.level = self.levels.observe(size_sample(n.bit_length() - 1, counts, len(known)))
        return offers

    def _listed(self, windows: tuple[int, ...], bucket: int, enough: float) -> tuple[list[tuple[int, bytes]], bool]:
        """A bucket's announcements in `windows`, in order until `enough` of peers' are found, with the window
        each is filed under, and whether the transport failed (what was read before stays)."""
        found: list[tuple[int, bytes]] = []
        others = 0  # of them, peers' (this node's own says nothing of whether its peers have filed yet)
        for w in windows:
            if others and others >= enough:
                break
            try:
                listed = self.transport.announcements(w, bucket, timeout=self._left())
            except TransportError as exc:
                self._io_error(exc)
                return found, True
            found += [(w, e) for e in listed]
            others += sum(1 for e in listed if _claimed_author(e) != self.identity.peer_id)
        return found, False

    def _announcement_time(self, created_s: float, window: int) -> str | None:
        """An announcement is dated within the window it is filed under and not in this node's future, give
        or take the tolerated clock skew (like a batch's time)."""
        skew = self.validator.policy.max_future_s
        if created_s - self.clock() > skew or created_s > (window + 1) * self.window_s + skew:
            return "future_announcement"
        if created_s < window * self.window_s - skew or self.clock() - created_s > self.validator.policy.max_age_s:
            return "stale_announcement"
        return None


def _claimed_author(envelope: bytes) -> str | None:
    """The peer an announcement says signed it, read from its first bytes (not verified)."""
    head = envelope_head(envelope)
    return protocol.peer_id(head[1]) if head is not None else None


def _promise(promised: Counter[str], young: set[str], want: int, cap: int) -> bool:
    """Offers read so far promise twice the wanted informative groups, young peers' counting for at most the
    wanted groups (so identities without a record can never end the reading alone)."""
    from_young = min(want, sum(min(n, cap) for p, n in promised.items() if p in young))
    return from_young + sum(min(n, cap) for p, n in promised.items() if p not in young) >= 2 * want
