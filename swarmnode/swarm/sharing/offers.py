"""Reading peers' offers and planning what to download: which windows and announcement buckets a node lists,
in which order, and when it stops; the checks an announcement passes before its offers count (signed for this
swarm, not this node's own nor an ignored peer's, dated within its window); and the order the offers are
considered in (`plan`). Reading also feeds the node's estimate of the swarm's size (its announcement level,
`BucketLevel`) and of its clock offset (`ClockWatch`)."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable

import protocol
from swarmnode.identity import Identity
from swarmnode.swarm.sharing.clock import ClockWatch
from swarmnode.swarm.sharing.tally import Tally
from swarmnode.swarm.sharing.validate import FreshnessPolicy, Seen
from swarmnode.swarm.transports.base import BucketLevel, Transport, TransportError, announcement_bucket, size_sample
from swarmnode.swarm.transports.envelope_head import envelope_head
from swarmnode.swarm.trust.book import NO_COHORT, ON_PROBATION, PROVEN
from swarmnode.swarm.trust.reasons import Refusal
from swarmnode.swarm.trust.standing import Standing

Offer = tuple[str, protocol.BatchSummary]
"""An announcer and one batch it offers."""


class OfferReader:
    """The reading part of the exchange: what it needs is given, what it counts goes to the `Tally`."""

    def __init__(
        self,
        transport: Transport,
        identity: Identity,
        swarm: str,
        limits: protocol.Limits,
        policy: FreshnessPolicy,
        tally: Tally,
        rng: random.Random,
        window_s: float,
        clock: Callable[[], float],
    ) -> None:
        self.transport = transport
        self.identity = identity
        self.swarm = swarm
        self.limits = limits
        self.policy = policy
        self.tally = tally
        self.rng = rng
        self.window_s = window_s
        self.clock = clock
        self.clock_watch = ClockWatch()
        """How far this node's clock is off its peers' (from their announcements' signing times)."""
        self.levels = BucketLevel()
        """This node's estimate of the swarm's size and its announcement level (`read` updates both and sets the
        transport's level)."""

    def read_windows(self) -> tuple[int, ...]:
        """The windows a reader lists, in order: the current one, the one before, and the next one once this
        node's clock is within the tolerated skew of it (a peer whose clock is that much ahead files there)."""
        now = self.clock()
        w = int(now // self.window_s)
        near = now + self.policy.max_future_s >= (w + 1) * self.window_s
        return (w, w - 1, w + 1) if near else (w, w - 1)

    def read(
        self, want_groups: int | None, cap: int, standing: Standing, done: Seen, left: Callable[[], float]
    ) -> list[Offer]:
        """The offers of live, validly signed announcements of this swarm (not ours, not ignored peers'),
        read bucket by bucket until peers not on probation promise twice the wanted informative groups (of
        batches not in `done`), of which juniors' (`standing`) count for at most the wanted groups (in a new
        swarm there are none, so that limit does not delay the stop). The buckets of proven peers are read first,
        elders' and earlier cohorts' before others, so claims of new peers (however many identities make them)
        cannot keep them unread, and this order does not delay the stop either. The first
        bucket read (always read, so its count is a fair sample: reading stops early after a full one) gives
        one estimate of the swarm's size, from which the node picks its level (`BucketLevel`): a bucket holds
        a few announcements at any size, so what a node reads stays flat as the swarm grows."""
        own = self.identity.peer_id
        book = standing.book
        offers: list[Offer] = []
        promised: Counter[str] = Counter()
        juniors: set[str] = set()
        n = self.transport.buckets
        last = (True, NO_COHORT + 1)  # after every proven peer's rank
        rank: dict[int, tuple[bool, int]] = {}
        known: set[str] = set()  # the peers that rank buckets: the rest of the swarm is spread at random
        for p in list(book.peers):
            if book.tier(p) == PROVEN:
                known.add(p)
                b = announcement_bucket(p, n)
                rank[b] = min(rank.get(b, last), standing.rank(p))
        counts: list[tuple[int, int]] = []  # the first bucket read: its authors (not this node), of them known ones
        order = list(range(n))
        self.rng.shuffle(order)
        order.sort(key=lambda b: rank.get(b, last))  # stable: proven peers' buckets first, oldest first
        windows = self.read_windows()
        failed = False
        for b in order:
            if failed or (want_groups is not None and _promise(promised, juniors, want_groups, cap)):
                break
            authors: set[str] = set()
            # the first bucket in every window listed (a node announces each round, not each window: a fair
            # sample of the swarm); the others in the further windows only while those read so far look thin
            enough = self.levels.estimate / n / 2 if counts else float("inf")
            listed, failed = self._listed(windows, b, enough, left)
            for w, envelope in listed:
                claimed = _claimed_author(envelope)
                if claimed is not None and claimed != own and book.is_banned(claimed):
                    authors.add(claimed)  # present (the swarm's size counts it), but ignored: not worth verifying
                    continue
                verdict = protocol.verify_and_decode(envelope, self.limits)
                if not isinstance(verdict, protocol.Accepted) or not isinstance(verdict.payload, protocol.Announcement):
                    self.tally.count(Refusal.ANNOUNCEMENT_INVALID)
                    continue
                author, announcement = verdict.peer_id, verdict.payload
                if author != own and announcement.swarm == self.swarm:
                    authors.add(author)
                if author == own or announcement.swarm != self.swarm or book.is_banned(author):
                    continue
                self.clock_watch.note(author, announcement.created_ms / 1000.0, self.clock())
                late = self._announcement_time(announcement.created_ms / 1000.0, w)
                if late is not None:
                    self.tally.charge(author, late)
                    continue
                offers += [(author, s) for s in announcement.batches]
                book.present(author, standing.round)
                if standing.junior(author):
                    juniors.add(author)
                if book.tier(author) != ON_PROBATION:  # claims of peers with strikes do not stop the reading
                    promised[author] += sum(
                        s.informative_groups for s in announcement.batches if s.batch_id not in done
                    )
            if not failed and not counts:  # the first bucket only: whether more are read depends on what it held
                counts.append((len(authors), len(authors & known)))
        if counts:
            self.transport.level = self.levels.observe(size_sample(n.bit_length() - 1, counts, len(known)))
        return offers

    def _listed(
        self, windows: tuple[int, ...], bucket: int, enough: float, left: Callable[[], float]
    ) -> tuple[list[tuple[int, bytes]], bool]:
        """A bucket's announcements in `windows`, in order until `enough` of peers' are found, with the window
        each is filed under, and whether the transport failed (what was read before stays)."""
        found: list[tuple[int, bytes]] = []
        others = 0  # of them, peers' (this node's own says nothing of whether its peers have filed yet)
        for w in windows:
            if others and others >= enough:
                break
            try:
                listed = self.transport.announcements(w, bucket, timeout=left())
            except TransportError as exc:
                self.tally.io_error(str(exc))
                return found, True
            found += [(w, e) for e in listed]
            others += sum(1 for e in listed if _claimed_author(e) != self.identity.peer_id)
        return found, False

    def _announcement_time(self, created_s: float, window: int) -> Refusal | None:
        """An announcement is dated within the window it is filed under and not in this node's future, give
        or take the tolerated clock skew (like a batch's time)."""
        skew = self.policy.max_future_s
        if created_s - self.clock() > skew or created_s > (window + 1) * self.window_s + skew:
            return Refusal.FUTURE_ANNOUNCEMENT
        if created_s < window * self.window_s - skew or self.clock() - created_s > self.policy.max_age_s:
            return Refusal.STALE_ANNOUNCEMENT
        return None


def _claimed_author(envelope: bytes) -> str | None:
    """The peer an announcement says signed it, read from its first bytes (not verified)."""
    head = envelope_head(envelope)
    return protocol.peer_id(head[1]) if head is not None else None


def _promise(promised: Counter[str], juniors: set[str], want: int, cap: int) -> bool:
    """Offers read so far promise twice the wanted informative groups, juniors' counting for at most the
    wanted groups (so identities without a record can never end the reading alone)."""
    from_juniors = min(want, sum(min(n, cap) for p, n in promised.items() if p in juniors))
    return from_juniors + sum(min(n, cap) for p, n in promised.items() if p not in juniors) >= 2 * want


def plan(offers: list[Offer], cap: int, rng: random.Random, standing: Standing) -> list[Offer]:
    """The order to consider offers in: by tier, then elders before newcomers and earlier cohorts first, and
    within that every announcer's best offer before anyone's second (claims capped at `cap`, the per-peer
    share; ties in random order), so no set of announcers, lying or not, takes a round. Repeats of one
    announcer's offer are dropped."""
    ranked = []
    rank: Counter[str] = Counter()
    seen: set[tuple[str, bytes]] = set()
    for author, summary in sorted(offers, key=lambda o: -o[1].informative_groups):
        if (author, summary.batch_id) in seen:
            continue  # the same peer's announcement read in more than one window
        seen.add((author, summary.batch_id))
        claim = min(summary.informative_groups, cap)
        newcomer, cohort = standing.rank(author)
        tier = standing.book.tier(author)
        ranked.append((tier, newcomer, cohort, rank[author], -claim, rng.random(), author, summary))
        rank[author] += 1
    ranked.sort(key=lambda r: r[:6])
    return [(author, summary) for *_, author, summary in ranked]
