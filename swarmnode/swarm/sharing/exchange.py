"""Publishing this node's rollouts and collecting peers' through any `Transport`.

Publish: one signed batch per round, stored under its content id, and one signed announcement for the
current time window that lists it. Collect: read the announcements of the current and previous window
(and of the next one near its start), drop our own, ignored peers' and invalid ones, and download in tiers
(peers with a clean record first, then new ones, then those with strikes: see `trust/book.py`), every
announcer's best offer before anyone's second; at most `max_batches` per round, at most `max_untrusted` of
them from peers without a clean record, and at most `batches_per_peer_per_round` from one announcer (one
while it has strikes). Each batch goes through the `BatchValidator`; the informative groups a round takes
are bounded in tokens, in total and per signer.

Offers are checked, and their rejections counted here (`counts`) and in the peer book: before download,
an announcement that does not verify (`announcement_invalid`) or is dated outside its window or in the
future (`stale_announcement`, `future_announcement`), a batch claimed bigger than the limit (`oversize`),
this node's own batch offered back (`own_batch`), a batch already processed that a peer other than its
signer offers again — a replay (`duplicate_message`), offers beyond the announcer's allowance (`quota`,
`probation`); after download, a batch that is not there (`offer_missing`), bytes that are not the offered
id (`batch_id_mismatch`) or size (`size_mismatch`), a summary the batch contradicts (`summary_mismatch`),
rewards the validator re-scored differently (`misreported_reward`, in the peer book only), groups over the
round's token budget (`token_budget`, charged to nobody). Every refusal names a `trust.reasons.Refusal`;
its category decides what it does to the peer. Everything else after download is counted by the validator.
All I/O of one round shares one deadline.

The exchange is composed of its parts: `publish.Publisher` (this node's batches), `offers.OfferReader` and
`offers.plan` (what to download, in which order, by the round's `Standing`), the transport (fetch), the
`BatchValidator`, and the `Tally` they all report to.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import protocol
from swarmnode.groups import Group, has_signal, wire_group
from swarmnode.identity import Identity
from swarmnode.swarm.sharing.clock import ClockWatch
from swarmnode.swarm.sharing.offers import OfferReader, plan
from swarmnode.swarm.sharing.publish import Publisher
from swarmnode.swarm.sharing.tally import Tally
from swarmnode.swarm.sharing.validate import SEEN_CAPACITY, BatchValidator, Seen
from swarmnode.swarm.transports.base import Transport, TransportError
from swarmnode.swarm.trust.book import PeerBook
from swarmnode.swarm.trust.reasons import Refusal
from swarmnode.swarm.trust.standing import Standing

MAX_MISSES = 3
"""Rounds an offered batch may fail to download before this node stops trying it."""


@dataclass(frozen=True)
class Budget:
    """What one round may take from peers."""

    max_batches: int = 8
    """Batches downloaded in a round."""
    batches_per_peer: int = 2
    """Batches downloaded from one announcer in a round; offers beyond it are counted as `quota`."""
    max_untrusted: int | None = None
    """Of a round's downloads, at most this many from peers that are not proven elders (None: half of
    `max_batches`, at least one)."""
    newcomer_groups: int = 1
    """Informative groups a round may still download from juniors once elders cover it (so a newcomer is
    taken from its first rounds: `swarm.newcomer_share`)."""
    max_external_tokens: int | None = None
    """Completion tokens of peers' informative groups one round takes in all (None: no bound)."""
    max_peer_tokens: int | None = None
    """... and from any one signer."""
    every_group: bool = False
    """Every group may train the receiver (its own baseline: an all-correct group is signal), so every group
    counts where informative ones do: the signer's share, the token budgets, what covers the round's want."""

    @property
    def untrusted(self) -> int:
        return max(1, self.max_batches // 2) if self.max_untrusted is None else self.max_untrusted


class RolloutExchange:
    """One node's exchange of rollouts with its peers (see the module): `publish` and `collect`, under one
    I/O deadline a round (`start_round`, `round_timeout_s`), within `budget`."""

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
        budget: Budget | None = None,
        round_timeout_s: float = 15.0,
        window_s: float = 60.0,
        announce_batches: int = 4,
        share_logprobs: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._transport = transport
        self.identity = identity
        self.swarm = swarm
        self.validator = validator
        validator.own_peer_id = identity.peer_id  # this node's own batches are never a peer's
        self.book = book
        self.limits = limits
        self.budget = budget or Budget()
        self.round_timeout_s = round_timeout_s
        self.share_logprobs = share_logprobs
        """Publish behaviour log-probs with the completions (protocol v2) when generation recorded them."""
        self.clock = clock
        self.tally = Tally(book)
        rng = random.Random(identity.peer_id)
        self._rng = rng
        self.reader = OfferReader(
            transport, identity, swarm, limits, validator.policy, self.tally, rng, window_s, clock
        )
        self.publisher = Publisher(
            transport,
            identity,
            swarm,
            model[: limits.max_name_chars],
            limits,
            window_s,
            announce_batches,
            clock,
            timeout=self._left,
        )
        self._done = Seen()
        """Batches already processed, noted with their signer (announcements list a peer's batches again and
        again); "" for batches given up on."""
        self._missed: Counter[bytes] = Counter()
        self._taken: Counter[str] = Counter()
        """Batches downloaded from each announcer in `_taken_round`."""
        self._tokens: Counter[str] = Counter()
        self._informative: Counter[str] = Counter()
        """Tokens and informative groups taken from each signer in `_taken_round`."""
        self._taken_round = -1
        self._deadline = float("inf")
        self.announce_refused = 0
        """Announcements in a row that failed while the batch they list was stored (refused, not unreachable)."""
        self._refusal_said = False

    @property
    def transport(self) -> Transport:
        return self._transport

    @transport.setter
    def transport(self, transport: Transport) -> None:
        """The transport of every part (a test swaps in a failing one)."""
        self._transport = self.reader.transport = self.publisher.transport = transport

    # what the parts count, read where the exchange is read
    @property
    def counts(self) -> Counter[str]:
        return self.tally.counts

    @property
    def validated(self) -> int:
        return self.tally.validated

    @property
    def misses(self) -> int:
        return self.tally.misses

    @property
    def io_errors(self) -> int:
        return self.tally.io_errors

    @property
    def last_io_error(self) -> str:
        return self.tally.last_io_error

    @property
    def clock_watch(self) -> ClockWatch:
        return self.reader.clock_watch

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

    def trouble(self) -> list[str]:
        """Lines for the user about swarm I/O since the last call: the transport's own notices (a restarted
        host process, say), and the latest I/O error: each new kind at once, a repeat at most once a minute,
        with how many there were."""
        lines = self.transport.take_notices()
        clock_line = self.clock_watch.line(self.validator.policy.max_future_s)
        if clock_line:
            lines.append(clock_line)
        if self.announce_refused >= 2 and not self._refusal_said:
            lines.append(
                f"this node's announcements are refused ({self.last_io_error}) while its batches are stored: peers "
                "cannot see what it shares. Likely cause: another peer re-stored an old announcement of this "
                "node for the window (pinning it), or this node's clock is more than a window off"
            )
            self._refusal_said = True
        return lines + self.tally.io_lines()

    def charge_gated(self, by_source: Mapping[str, int]) -> None:
        """Peers' completions the learner's likelihood gate dropped, charged to their authors (`improbable`:
        counted, never a strike: another model's honest text can be unlikely here)."""
        for peer, n in by_source.items():
            self.tally.charge(peer, Refusal.IMPROBABLE, n)

    def window(self) -> int:
        return int(self.clock() // self.reader.window_s)

    def publish(self, round_: int, policy_version: int, groups: Sequence[Group]) -> bytes | None:
        """Share `groups` (their text and this node's rewards, never token ids); returns the batch id (None
        when there is nothing worth sharing, or the transport failed: counted in `io_errors`)."""
        shared = [g for g in groups if g.completions][: self.limits.max_groups_per_batch]
        if not shared:
            return None
        wire = [wire_group(g, self.limits, self.share_logprobs) for g in shared]
        envelope, summary = self.publisher.seal(round_, policy_version, wire)
        self.validator.note_own(shared, self.publisher.signed_ms / 1000.0)  # a copy of them is never taken as a peer's
        self._done.add(summary.batch_id, self.identity.peer_id)  # nor the batch itself, offered back
        try:
            self.publisher.store(envelope, summary)  # stored: announced from now on, even if this announcement fails
        except TransportError as exc:
            self.tally.io_error(str(exc))
            return None
        try:
            self.publisher.announce(round_)
        except TransportError as exc:
            self.tally.io_error(str(exc))
            self.announce_refused += 1
            return None
        self.announce_refused = 0
        self._refusal_said = False
        return summary.batch_id

    def collect(
        self, local_round: int, want_groups: int | None = None, per_peer_groups: int | None = None
    ) -> list[Group]:
        """Peers' validated, re-scored groups available now (`source`: the author's peer id).

        With `want_groups`, reading stops once enough is found: announcement buckets are read in a random
        order until the new offers of proven peers promise twice that many informative groups (counting at
        most `per_peer_groups` per peer), and downloads stop once the accepted groups cover `want_groups`.
        So what a node reads per round depends on what it wants, not on how many peers there are."""
        cap = per_peer_groups or want_groups or self.limits.max_groups_per_batch
        if local_round != self._taken_round:  # the quotas and budgets are per round
            self._taken.clear()
            self._tokens.clear()
            self._informative.clear()
            self._taken_round = local_round
        accepted: list[Group] = []
        got: Counter[str] = Counter()  # informative groups accepted, by signer
        downloads = untrusted = 0
        standing = Standing(self.book, local_round)
        offers = self.reader.read(want_groups, cap, standing, self._done, self._left)
        junior_got = 0  # informative groups accepted this round from juniors
        for author, summary in plan(offers, cap, self._rng, standing):
            if self.book.is_banned(author):
                continue  # ignored since its announcement was read (its lies this round reached the limit)
            signer = self._done.get(summary.batch_id)
            if signer == self.identity.peer_id:
                self.tally.charge(author, Refusal.OWN_BATCH)  # this node's own batch offered back to it
                continue
            if signer is not None:
                if signer and signer != author:
                    self.tally.charge(author, Refusal.DUPLICATE_MESSAGE)  # someone else's batch offered again
                continue
            if summary.size > self.limits.max_envelope_bytes:
                self.tally.charge(author, Refusal.OVERSIZE)
                continue
            trusted = standing.elder(author)
            junior = not trusted or standing.junior(author)
            if downloads >= self.budget.max_batches or self._left() <= 0:
                continue  # nothing more to download this round; the cheap checks above still run for every offer
            reserve_left = junior and standing.first is not None and junior_got < self.budget.newcomer_groups
            if _covered(got, want_groups, cap) and not reserve_left:
                continue  # covered, and the juniors' reserve of the round too (elders come first)
            if want_groups is not None and got[author] >= cap:
                continue  # this peer's share of the round is covered: its other batches wait for later rounds
            if not trusted and untrusted >= self.budget.untrusted:
                continue  # the rest of the round's downloads is kept for peers with a record
            allowance = self.book.allowance(author, self.budget.batches_per_peer)
            if self._taken[author] >= allowance:
                over = Refusal.QUOTA if allowance == self.budget.batches_per_peer else Refusal.PROBATION
                self.tally.charge(author, over)
                continue
            self._taken[author] += 1
            downloads += 1
            untrusted += not trusted
            try:
                raw = self.transport.fetch_batch(summary.batch_id, timeout=self._left())
            except TransportError as exc:
                self.tally.io_error(str(exc))
                break
            if raw is None:
                self._missing(author, summary.batch_id)
                continue
            if protocol.message_id(raw) != summary.batch_id:
                self.tally.charge(author, Refusal.BATCH_ID_MISMATCH)
                continue
            if len(raw) != summary.size:  # honest announcers state the exact size
                self.tally.charge(author, Refusal.SIZE_MISMATCH)
                continue
            signer, groups = self._validated(author, summary, raw, cap, standing)
            informative = sum(1 for g in groups if self._counts(g))
            got[signer] += informative
            junior_got += informative if junior else 0
            accepted += groups
        return accepted

    def _missing(self, author: str, batch_id: bytes) -> None:
        """An offered batch nobody has: counted against its announcer."""
        self.tally.misses += 1
        self.tally.charge(author, Refusal.OFFER_MISSING)
        self._missed[batch_id] += 1
        if self._missed[batch_id] >= MAX_MISSES:  # gone, or refused by the DHT: stop asking
            del self._missed[batch_id]
            self._done.add(batch_id)
        if len(self._missed) > SEEN_CAPACITY:
            self._missed.clear()

    def _validated(
        self, author: str, summary: protocol.BatchSummary, raw: bytes, cap: int, standing: Standing
    ) -> tuple[str, list[Group]]:
        """The groups of a downloaded batch that pass validation, with their signer; the lies found charged to
        whoever told them. Of its informative groups, at most the signer's share of the round (`cap`: the
        sampler takes no more from one author) within the round's token budget, each carrying the signer's
        seniority in the round (`standing`)."""
        started = time.perf_counter()
        outcome = self.validator.check(raw)
        self.tally.validate_s += time.perf_counter() - started
        self.tally.validated += 1
        signer = outcome.author or ""
        own = signer == self.identity.peer_id
        self._done.add(summary.batch_id, signer)  # this node's own batch: refused before download from now on
        self._missed.pop(summary.batch_id, None)  # fetched after a miss: done, no longer counted
        if outcome.rejected:  # bytes that name no valid signer, or name this node, are blamed on the announcer
            self.book.rejected(author if own or not signer else signer, outcome.rejected)
        batch = outcome.batch
        lied = False
        if batch is not None and not _summary_matches(summary, batch):
            self.tally.charge(author, Refusal.SUMMARY_MISMATCH)
            lied = True
        if outcome.misreported:
            # a strike in the signer's row, once per batch (the node counts `misreported_rewards` per completion)
            self.book.rejected(signer, Counter({Refusal.MISREPORTED_REWARD: 1}))
            lied = True
        if not outcome.accepted:
            return signer, []
        if not lied:
            self.book.delivered(author)
        taken = []
        seniority = standing.seniority(signer)
        for group, tokens in zip(outcome.accepted, outcome.tokens, strict=True):
            if self._counts(group):  # groups without signal are not trained on: they cost no tokens
                if self._informative[signer] >= cap:
                    continue  # beyond the signer's share of the round: never trained on
                if self._over_budget(signer, tokens):
                    self.tally.count(Refusal.TOKEN_BUDGET)
                    continue
                self._tokens[signer] += tokens
                self._informative[signer] += 1
            taken.append(dataclasses.replace(group, seniority=seniority))
        if taken:
            rewards = [r for g in taken for r in g.rewards]
            self.book.accepted(signer, taken[0].model, len(taken), rewards, self._taken_round)
        return signer, taken

    def _counts(self, group: Group) -> bool:
        """The group may be trained on, so it counts against the shares and budgets."""
        return self.budget.every_group or group.informative

    def _over_budget(self, signer: str, tokens: int) -> bool:
        total = sum(self._tokens.values()) + tokens
        most, per_peer = self.budget.max_external_tokens, self.budget.max_peer_tokens
        if most is not None and total > most:
            return True
        return per_peer is not None and self._tokens[signer] + tokens > per_peer


def _covered(counts: Counter[str], target: int | None, cap: int) -> bool:
    return target is not None and sum(min(n, cap) for n in counts.values()) >= target


def _summary_matches(summary: protocol.BatchSummary, batch: protocol.RolloutBatch) -> bool:
    """An offer's claims against the batch it names: the same round, and no more informative groups than
    the batch's own claimed rewards have (the claim that ranks offers; whether the rewards themselves are
    true is the re-scoring's `misreported_reward`)."""
    return summary.round == batch.round and summary.informative_groups <= sum(
        1 for g in batch.groups if has_signal(g.rewards)
    )
