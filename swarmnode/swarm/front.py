"""This node's side of the swarm, behind one object: `Swarm.open(config, tasks)` wires identity, transport,
validation chain, peer book and exchange from the config, `share` does one round's I/O (or, with
`swarm.background_sharing`, hands it to the I/O thread of `background.py` and takes what has arrived), and
`counters`, `peers` and `trouble` say how it goes. Nothing outside `swarm/` needs the parts it is built from.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence

import protocol
from swarmnode.config import NodeConfig
from swarmnode.groups import Group
from swarmnode.identity import Identity, load_or_create
from swarmnode.run_dir import PeerRow, SwarmCounters
from swarmnode.swarm import open_transport
from swarmnode.swarm.sharing.background import BackgroundSharer, view_of
from swarmnode.swarm.sharing.exchange import RolloutExchange
from swarmnode.swarm.trust.book import PeerBook
from swarmnode.swarm.transports.base import Transport
from swarmnode.swarm.sharing.validate import BatchValidator, FreshnessPolicy
from swarmnode.tasks import Question, TaskSet


def held_out_check(tasks: TaskSet, config: NodeConfig) -> Callable[[Question], bool]:
    """True for this node's own evaluation questions (`eval.seed`, `eval.questions`, by text) and for any
    question whose reference names a task's eval split: peers may not train a node on its test set."""
    texts = {q.text for q in tasks.eval_questions(config.eval.seed, config.eval.questions)}
    return lambda q: q.text in texts or tasks.in_eval_split(q.ref)


def open_exchange(
    config: NodeConfig,
    tasks: TaskSet,
    transport: Transport,
    identity: Identity,
    count_tokens: Callable[[str], int] | None = None,
) -> RolloutExchange:
    """The exchange over `transport`, with its validation chain and peer book, as `swarm.*` configures them.
    `count_tokens` counts a completion's tokens as this node's learner will see them; without it (benches,
    tests) peers' completions are bounded by the protocol's character limit alone."""
    sw = config.swarm
    limits = protocol.Limits()
    policy = FreshnessPolicy(max_age_s=sw.max_age_s, max_future_s=sw.max_clock_skew_s)
    clock = offset_clock(sw.clock_offset_s)
    # twice: decoded text re-tokenised can take more tokens than were sampled (special tokens kept as text, split
    # UTF-8), so an honest peer's completion of max_new_tokens may count more
    max_tokens = sw.max_completion_tokens or 2 * config.generation.max_new_tokens
    round_tokens = (
        sw.max_external_tokens or sw.external_groups * config.generation.completions_per_question * max_tokens
    )
    bounded = count_tokens is not None
    validator = BatchValidator(
        sw.name,
        tasks,
        limits,
        policy,
        held_out=held_out_check(tasks, config),
        own_peer_id=identity.peer_id,
        count_tokens=count_tokens,
        max_completion_tokens=max_tokens if bounded else None,
        clock=clock,
    )
    return RolloutExchange(
        transport,
        identity,
        sw.name,
        validator,
        PeerBook(ban_after=sw.ban_after, ban_s=sw.ban_s, offer_strikes=sw.offer_strikes, trust_rounds=sw.trust_rounds),
        limits,
        model=config.model.name,
        window_s=sw.window_s,
        max_batches=sw.max_batches_per_round,
        round_timeout_s=sw.round_timeout_s,
        batches_per_peer_per_round=sw.batches_per_peer_per_round,
        max_external_tokens=round_tokens if bounded else None,
        max_peer_tokens=max(1, math.floor(sw.max_share_per_peer * round_tokens)) if bounded else None,
        newcomer_groups=math.floor(sw.newcomer_share * sw.external_groups),
        share_logprobs=sw.share_logprobs,
        clock=clock,
    )


def offset_clock(offset_s: float) -> Callable[[], float]:
    """The swarm's clock: the system clock, or (`swarm.clock_offset_s`, tests) that far off it."""
    return time.time if not offset_s else lambda: time.time() + offset_s


class Swarm:
    """One node's membership of a swarm: what it shares and takes each round, and what it counts."""

    def __init__(
        self,
        exchange: RolloutExchange,
        *,
        want_groups: int,
        per_peer_groups: int,
        owns_transport: bool = False,
        background: bool = False,
    ) -> None:
        self._exchange = exchange
        self._want = want_groups
        self._per_peer = per_peer_groups
        self._owns_transport = owns_transport
        self._closed = False
        self._sharer = BackgroundSharer(exchange, want_groups, per_peer_groups) if background else None
        """The I/O thread (`swarm.background_sharing`): it alone touches the exchange; None: `share` does it."""

    @classmethod
    def open(
        cls,
        config: NodeConfig,
        tasks: TaskSet,
        *,
        transport: Transport | None = None,
        identity: Identity | None = None,
        say: Callable[[str], None] | None = None,
        count_tokens: Callable[[str], int] | None = None,
    ) -> Swarm:
        """Join the swarm `config.swarm` names: over `transport` if given (the caller keeps and closes it),
        else over `open_transport(config)` (closed by `close`). The identity is `swarm.key_path`'s unless
        given. `say` gets the lines a user should see: the addresses others join through, the peer id.
        `count_tokens` is this node's token count of a completion's text: peers' completions and the round's
        external tokens are bounded with it (`swarm.max_completion_tokens`, `swarm.max_external_tokens`)."""
        tell = say or (lambda line: None)
        sw = config.swarm
        owns = transport is None
        if transport is None:
            transport = open_transport(config)
        try:
            if owns:
                addresses = transport.visible_maddrs()
                if addresses:
                    tell("this node's addresses (others join with --peers ADDR): " + " ".join(addresses))
                else:
                    tell("memory transport: no network; only nodes of this process share rollouts")
                # a node with peers to join waits for one attempt at them (all at once, at most op_timeout_s)
                # before its first round, so a restarted node shares from its first rounds; else it trains
                # alone and the transport keeps trying
                wait_joined = getattr(transport, "wait_joined", None)
                if callable(wait_joined):
                    wait_joined(sw.op_timeout_s)
            exchange = open_exchange(config, tasks, transport, identity or load_or_create(sw.key_path), count_tokens)
        except BaseException:
            if owns:
                transport.close()
            raise
        tell(f"swarm {sw.name}: peer id {exchange.identity.peer_id}")
        per_peer = max(1, math.floor(sw.max_share_per_peer * sw.external_groups))
        return cls(
            exchange,
            want_groups=sw.external_groups,
            per_peer_groups=per_peer,
            owns_transport=owns,
            background=sw.background_sharing,
        )

    @property
    def peer_id(self) -> str:
        return self._exchange.identity.peer_id

    def addresses(self) -> list[str]:
        """Addresses other nodes can join through (none on the in-memory transport)."""
        return self._exchange.transport.visible_maddrs()

    def share(self, round_: int, policy_version: int, groups: Sequence[Group]) -> list[Group]:
        """One round's swarm I/O under one deadline (`swarm.round_timeout_s`): publish this node's groups,
        then collect up to `swarm.external_groups` of peers' (at most `max_share_per_peer` of them from one
        peer), validated and re-scored here; their `source` is the author's peer id. A transport failure
        or the deadline leaves the round with what it has (see `trouble`).

        With the I/O thread, the groups are handed over and the round takes what the thread fetched and
        validated since the previous round: it never waits on the network."""
        if self._sharer is not None:
            self._sharer.publish(round_, policy_version, groups)
            return self._sharer.take(round_)
        ex = self._exchange
        ex.start_round()
        # peers unreachable: publish counts it as an I/O error; still read what is there, retry next round
        ex.publish(round_, policy_version, groups)
        return ex.collect(round_, want_groups=self._want, per_peer_groups=self._per_peer)

    def standing(self, peers: Iterable[str], round_: int) -> dict[str, tuple[int, bool]]:
        """(cohort, junior) of each of `peers` in the node's round `round_` (`PeerBook.standing`, `junior`); with
        the I/O thread, as it found them when it fetched their groups."""
        if self._sharer is not None:
            known = self._sharer.standing
            return {p: known.get(p, (1 << 30, True)) for p in set(peers)}  # unknown: the most junior
        return self._exchange.book.for_sampling(peers, round_)

    def note_gated(self, by_source: Mapping[str, int]) -> None:
        """Peers' completions the learner's likelihood gate dropped (`improbable`), charged to their authors:
        counted, never a strike (another model's honest text can be unlikely here)."""
        if self._sharer is not None:
            self._sharer.note_gated(by_source)
            return
        for peer, n in by_source.items():
            self._exchange.counts["improbable"] += n
            self._exchange.book.rejected(peer, Counter({"improbable": n}))

    def trouble(self) -> list[str]:
        """Lines for the user about swarm I/O since the last call (transport notices, I/O errors, rate-limited)."""
        return self._exchange.trouble() if self._sharer is None else self._sharer.trouble()

    def peers(self) -> list[PeerRow]:
        """The peer book, most recently heard from first (with the I/O thread: after its latest pass)."""
        return self._exchange.book.snapshot() if self._sharer is None else self._sharer.view().peers

    def counters(self, peers: Sequence[PeerRow] | None = None) -> SwarmCounters:
        """Every swarm counter since start: rejections by reason (of offers, of downloaded batches, of the
        transport's records), peers known and banned (from `peers`, or the book now), misreported rewards,
        failed fetches, I/O errors."""
        ex = self._exchange
        rows = self.peers() if peers is None else peers
        view = view_of(ex) if self._sharer is None else self._sharer.view()
        return {
            "rejected": view.rejected,
            "peers": len(rows),
            "banned_peers": sum(1 for p in rows if p["banned"]),
            "misreported_rewards": view.misreported_rewards,
            "fetch_misses": view.fetch_misses,
            "io_errors": view.io_errors,
        }

    def clock_offset(self) -> float | None:
        """Seconds this node's clock seems ahead of its peers' (negative: behind; `clock.ClockWatch`), None
        before it has seen a peer."""
        found = self._exchange.clock_watch.offset() if self._sharer is None else self._sharer.view().clock_offset
        return None if found is None else round(found[0], 1)

    def waiting(self) -> int:
        """Peers' groups the I/O thread has fetched and validated for the next round (0 without it)."""
        return 0 if self._sharer is None else self._sharer.waiting()

    def io_seconds(self) -> float:
        """Seconds the I/O thread has spent on swarm I/O and validation so far, off the round's critical path
        (0 without it: then it is the rounds' `share_s`)."""
        return 0.0 if self._sharer is None else self._sharer.busy_s

    def close(self) -> None:
        """Leave the swarm: stops the I/O thread (once it has stored the latest round's groups), closes the
        transport if `open` opened it. Idempotent."""
        if not self._closed and self._sharer is not None:
            self._sharer.close()
        if not self._closed and self._owns_transport:
            self._exchange.transport.close()
        self._closed = True
