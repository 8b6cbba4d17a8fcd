"""This node's side of the swarm, behind one object: `open_swarm(config, tasks)` wires identity, transport,
validation chain, peer book and exchange from the config and returns a `Swarm` (`membership.py`): in line
(`InlineSwarm`, here) or with the I/O thread (`sharing/background.py`). Nothing outside `swarm/` needs the
parts it is built from.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

import protocol
from swarmnode.config import NodeConfig, SwarmConfig
from swarmnode.experience import newcomer_slots, per_peer_cap
from swarmnode.groups import Group
from swarmnode.identity import Identity, load_or_create
from swarmnode.swarm import open_transport
from swarmnode.swarm.membership import Swarm, View, view_of
from swarmnode.swarm.sharing.background import BackgroundSwarm
from swarmnode.swarm.sharing.exchange import Budget, RolloutExchange
from swarmnode.swarm.sharing.validate import BatchValidator, FreshnessPolicy
from swarmnode.swarm.transports.base import Transport
from swarmnode.swarm.trust.book import PeerBook
from swarmnode.tasks import Question, TaskSet

__all__ = ["InlineSwarm", "Swarm", "held_out_check", "offset_clock", "open_exchange", "open_swarm"]


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
    round_tokens = sw.max_external_tokens or fetched(sw) * config.generation.completions_per_question * max_tokens
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
    budget = Budget(
        max_batches=sw.max_batches_per_round,
        batches_per_peer=sw.batches_per_peer_per_round,
        newcomer_groups=newcomer_slots(sw.newcomer_share, sw.external_groups),
        max_external_tokens=round_tokens if bounded else None,
        max_peer_tokens=per_peer_cap(sw.max_share_per_peer, round_tokens) if bounded else None,
        every_group=sw.baseline == "receiver",
    )
    book = PeerBook(
        ban_after=sw.ban_after, ban_s=sw.ban_s, offer_strikes=sw.offer_strikes, trust_rounds=sw.trust_rounds
    )
    return RolloutExchange(
        transport,
        identity,
        sw.name,
        validator,
        book,
        limits,
        model=config.model.name,
        budget=budget,
        round_timeout_s=sw.round_timeout_s,
        window_s=sw.window_s,
        share_logprobs=sw.share_logprobs,
        clock=clock,
    )


def fetched(sw: SwarmConfig) -> int:
    """Peers' groups a round fetches to choose its J from: `swarm.candidates`, or J."""
    return sw.candidates or sw.external_groups


def offset_clock(offset_s: float) -> Callable[[], float]:
    """The swarm's clock: the system clock, or (`swarm.clock_offset_s`, tests) that far off it."""
    return time.time if not offset_s else lambda: time.time() + offset_s


class InlineSwarm(Swarm):
    """The round does its own swarm I/O, under one deadline (`swarm.round_timeout_s`)."""

    def share(self, round_: int, policy_version: int, groups: Sequence[Group]) -> list[Group]:
        ex = self._exchange
        ex.start_round()
        # peers unreachable: publish counts it as an I/O error; still read what is there, retry next round
        ex.publish(round_, policy_version, groups)
        return ex.collect(round_, want_groups=self._want, per_peer_groups=self._per_peer)

    def note_gated(self, by_source: Mapping[str, int]) -> None:
        self._exchange.charge_gated(by_source)

    def trouble(self) -> list[str]:
        return self._exchange.trouble()

    def view(self) -> View:
        return view_of(self._exchange)


def open_swarm(
    config: NodeConfig,
    tasks: TaskSet,
    *,
    transport: Transport | None = None,
    identity: Identity | None = None,
    say: Callable[[str], None] | None = None,
    count_tokens: Callable[[str], int] | None = None,
) -> Swarm:
    """Join the swarm `config.swarm` names: over `transport` if given (the caller keeps and closes it), else
    over `open_transport(config)` (closed by `close`). The identity is `swarm.key_path`'s unless given. `say`
    gets the lines a user should see: the addresses others join through, the peer id. `count_tokens` is this
    node's token count of a completion's text: peers' completions and the round's external tokens are bounded
    with it (`swarm.max_completion_tokens`, `swarm.max_external_tokens`). With `swarm.background_sharing` the
    swarm's I/O runs in its own thread (`BackgroundSwarm`), else in the round (`InlineSwarm`)."""
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
    kind = BackgroundSwarm if sw.background_sharing else InlineSwarm
    return kind(
        exchange,
        want_groups=fetched(sw),
        per_peer_groups=per_peer_cap(sw.max_share_per_peer, fetched(sw)),
        owns_transport=owns,
    )
