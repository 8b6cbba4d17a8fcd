"""The poisoning defenses by hand: the answer format, the windowed likelihood gate, the drift signal, and
seniority against sybils (peer book, downloads, the J slots). Each guard is also shown off, where the
attack it stops gets through."""

from __future__ import annotations

import dataclasses
import random
import time
from collections import Counter

import pytest
import torch
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import protocol
from protocol import TaskRef
from swarmnode import grpo
from swarmnode.bench.attacks import Crowd, carries_payload, clean_group, payload_rate, poisoned_group
from swarmnode.drift import WINDOW, Drift
from swarmnode.experience import select_groups
from swarmnode.groups import Group, Seniority
from swarmnode.identity import Identity
from swarmnode.swarm.sharing.exchange import RolloutExchange
from swarmnode.swarm.sharing.validate import BatchValidator
from swarmnode.swarm.transports.memory import MemoryHub, MemoryTransport
from swarmnode.swarm.trust.book import PeerBook
from swarmnode.swarm.trust.standing import Standing
from swarmnode.tasks import Question, TaskSet, make_task
from swarmnode.tasks.base import stray_text

LIMITS = protocol.Limits()
Q = Question(TaskRef("add", 0, 0), "01+01=", "2")


# ---------------------------------------------------------------- the answer format


@pytest.mark.parametrize(
    ("text", "end", "exact"),
    [
        ("<answer>2</answer>", "", ""),
        ("  <answer>2</answer>\n", "", ""),
        ("<answer>2</answer> SPAM", "SPAM", "SPAM"),
        ("SPAM <answer>2</answer>", "", "SPAM"),
        ("a <answer>1</answer> b <answer>2</answer> c", "c", "a <answer>1</answer> b c"),
        ("no answer at all", "", ""),
        ("<answer>52</answer> SPAM</answer>", "SPAM</answer>", "SPAM</answer>"),  # a stray close tag hides nothing
    ],
)
def test_stray_text_by_format(text: str, end: str, exact: str) -> None:
    assert stray_text(text, "end") == end
    assert stray_text(text, "exact") == exact
    assert stray_text(text, "anywhere") == ""


def test_a_payload_after_a_right_answer_scores_nothing_under_the_default_format() -> None:
    add = make_task("add")
    q = TaskSet([add]).draw(0, 0, 1)[0]
    right, tail, head = (
        f"<answer>{q.answer}</answer>",
        f"<answer>{q.answer}</answer> SPAM",
        f"SPAM <answer>{q.answer}</answer>",
    )
    end, exact, anywhere = TaskSet([add]), TaskSet([add], "exact"), TaskSet([add], "anywhere")
    assert [end.score(q, t) for t in (right, tail, head)] == [1.0, 0.0, 1.0]
    assert [exact.score(q, t) for t in (right, tail, head)] == [1.0, 0.0, 0.0]
    assert [anywhere.score(q, t) for t in (right, tail, head)] == [1.0, 1.0, 1.0]  # the guard off: it scores


def test_the_validator_counts_completions_outside_the_format() -> None:
    tasks = TaskSet([make_task("add")])
    q = tasks.draw(0, 0, 1)[0]
    group = poisoned_group(q, tasks, random.Random(0), size=8, where="after")
    assert group.rewards == (0.0,) * 8  # claimed as the victim scores them: no strike, no signal either
    key = Ed25519PrivateKey.generate()
    batch = protocol.RolloutBatch("s", 1, 0, int(time.time() * 1000), "m", (group,))
    outcome = BatchValidator("s", tasks, LIMITS).check(protocol.seal_payload(batch, key, LIMITS))
    distinct = len(set(group.completions[::2]))  # a repeated completion is a duplicate, counted once
    assert outcome.rejected == Counter({"off_format": distinct}) and outcome.misreported == 0
    assert all(carries_payload(c) for c in group.completions[::2]) and payload_rate(group.completions) == 0.5


# ---------------------------------------------------------------- the likelihood gate


def test_the_windowed_gate_catches_a_short_improbable_run_that_the_mean_hides() -> None:
    """Twenty likely tokens (-0.1) and a payload of four (-9): the mean (-1.7) passes a -5 gate, the worst
    run of 4 (-9) does not. Short rows fall back to their mean; padding never counts."""
    row = [-0.1] * 10 + [-9.0] * 4 + [-0.1] * 10
    logp = torch.tensor([row, [-0.1] * 24, [-6.0, -6.0, 0.0, 0.0] + [0.0] * 20])
    mask = torch.tensor([[1.0] * 24, [1.0] * 24, [1.0, 1.0] + [0.0] * 22])
    assert grpo.likelihood_gate(logp, mask, -5.0).tolist() == [True, True, False]
    assert grpo.likelihood_gate(logp, mask, -5.0, window=4).tolist() == [False, True, False]
    assert grpo.likelihood_gate(logp, mask, -5.0, window=30).tolist() == [True, True, False]  # longer: the mean
    padded = torch.tensor([[-0.5] * 8 + [-50.0] * 16])  # 8 real tokens, padding far below the gate
    eight = torch.tensor([[1.0] * 8 + [0.0] * 16])
    assert grpo.likelihood_gate(padded, eight, -5.0, window=4).tolist() == [True]  # padding never counts


def test_the_learner_charges_gated_completions_to_their_author() -> None:
    from swarmnode.config import TrainConfig
    from swarmnode.learner import Learner
    from tests.unit.test_learner import _setup

    model, prompter = _setup()  # untrained: every token about -log(vocab), far under -1
    texts = ("<answer>2</answer> SPAM", "<answer>3</answer>")
    peer = Group(Q, texts, (1.0, 0.0), "mallory", model="m")
    own = Group(Q, texts, (1.0, 0.0), "local")
    stats = Learner(model, TrainConfig(peer_min_logprob=-1.0), prompter).step([peer, own])
    assert stats.gated == 2 and stats.gated_by_source == {"mallory": 2} and set(stats.gated_texts) == set(texts)
    off = Learner(model, TrainConfig(peer_min_logprob=0.0), prompter).step([peer])
    assert off.gated == 0 and off.gated_by_source == {}


# ---------------------------------------------------------------- the drift signal


def test_drift_finds_refused_peers_text_in_own_samples_and_says_so() -> None:
    drift = Drift()
    drift.note_own(["<answer>5</answer>"] * WINDOW)  # the start: clean
    assert drift.line(1) is None and drift.row()["stray_rate"] == 0.0
    drift.note_refused(["VISIT-SPAM now"])
    drift.note_own(["<answer>4</answer> VISIT-SP"] * 20 + ["<answer>4</answer> hello"] * 4)
    row = drift.row()
    assert row["peer_text_rate"] == pytest.approx(20 / WINDOW) and row["stray_rate"] == pytest.approx(24 / WINDOW)
    assert row["top"] == "VISIT-SP"
    line = drift.line(2)
    assert line is not None and "refused in peers'" in line and "VISIT-SP" in line
    assert drift.line(3) is None  # said once, then again only after a while
    drift.note_own(["<answer>5</answer>"] * WINDOW)
    gone = drift.line(4)
    assert gone is not None and "gone" in gone and drift.line(5) is None
    assert drift.row()["peer_text_rate"] == 0.0


def test_drift_matches_only_the_refused_part_and_reads_unclosed_answers_whole() -> None:
    """Text before the answer that the format allows is not remembered as refused (a node writing its own
    reasoning is no alarm); an answer never closed counts as outside text."""
    drift = Drift()
    drift.note_refused([stray_text("Let me think about it. <answer>3</answer> BUY", "end")])
    drift.note_own(["Let me think: <answer>4</answer>"] * 10)
    assert drift.row()["peer_text_rate"] == 0.0
    drift.note_own(["<answer>1BUY"] * 10)
    assert drift.row()["peer_text_rate"] == pytest.approx(10 / 20)


def test_drift_without_refused_text_only_watches_the_stray_share() -> None:
    drift = Drift()
    drift.note_own(["<answer>5</answer>"] * WINDOW)
    drift.note_own(["<answer>5</answer> BUY"] * 8)
    assert drift.row()["peer_text_rate"] == 0.0
    assert "outside the answer" in (drift.line(1) or "")


# ---------------------------------------------------------------- seniority against sybils


def test_tenure_cohorts_youth_and_what_resets_them() -> None:
    book = PeerBook(trust_rounds=10)
    assert book.tenure("new", 5) == (1 << 30, True)
    book.accepted("old", "m", 1, [1.0], round_=3)
    assert book.tenure("old", 5) == (0, True) and book.tenure("old", 13) == (0, False)
    for r in range(4, 30):
        book.accepted("old", "m", 1, [1.0], round_=r)
    book.accepted("late", "m", 1, [1.0], round_=25)
    assert book.tenure("old", 30) == (0, False) and book.tenure("late", 30) == (2, True)
    assert Standing(book, 30).first == 0  # "old" is an elder
    assert book.tenure("old", 45) == (1 << 30, True)  # gone for longer than trust_rounds: no tenure
    book.accepted("old", "m", 1, [1.0], round_=45)
    assert book.tenure("old", 46) == (4, True)  # it starts again
    book.rejected("late", Counter({"bad_signature": 5}))  # banned: tenure gone too
    assert book.tenure("late", 26) == (1 << 30, True)
    assert PeerBook().tenure("anyone", 100) == (0, False)  # seniority off
    assert Standing(PeerBook(), 100).first is None


def test_a_peer_that_only_announces_keeps_its_tenure() -> None:
    """The node downloads only what it needs: an older peer it skipped for rounds is still there."""
    book = PeerBook(trust_rounds=10)
    book.accepted("p", "m", 1, [1.0], round_=1)
    for r in range(5, 60, 5):
        book.present("p", r)  # its announcements read, its batches not needed
    assert book.tenure("p", 60) == (0, False)
    book.present("gone", 60)  # no tenure: announcing alone starts none
    assert book.tenure("gone", 61)[1]


def _groups(source: str, n: int) -> list[Group]:
    return [Group(Q, ("a", "b"), (1.0, 0.0), source) for _ in range(n)]


def _placed(groups: list[Group], standing: dict[str, tuple[int, bool]]) -> list[Group]:
    """The groups carrying their authors' seniority, as the exchange hands them over."""
    return [dataclasses.replace(g, seniority=Seniority(*standing[g.source])) for g in groups]


def test_many_young_identities_cannot_crowd_out_peers_with_a_record() -> None:
    honest = [g for p in ("h1", "h2", "h3") for g in _groups(p, 3)]
    sybils = [g for k in range(20) for g in _groups(f"s{k}", 4)]
    standing = {**{p: (0, False) for p in ("h1", "h2", "h3")}, **{f"s{k}": (1 << 30, True) for k in range(20)}}
    for seed in range(20):
        skipped: Counter[str] = Counter()
        chosen = select_groups(
            [],
            _placed(sybils + honest, standing),
            local_count=0,
            external_count=8,
            rng=random.Random(seed),
            newcomer_slots=1,
            skipped=skipped,
        )
        assert len(chosen) == 8 and sum(g.source.startswith("h") for g in chosen) == 7
        assert skipped["newcomer_share"] == len(sybils) - 1
    crowded = select_groups([], sybils + honest, local_count=0, external_count=8, rng=random.Random(0))
    assert sum(g.source.startswith("h") for g in crowded) < 4  # without seniority the crowd takes the round


def test_a_later_cohort_takes_what_earlier_ones_leave_and_a_young_newcomer_is_used_at_once() -> None:
    standing = {"founder": (0, False), "later": (3, False), "new": (1 << 30, True)}
    pool = _groups("later", 4) + _groups("founder", 2) + _groups("new", 4)
    chosen = select_groups(
        [],
        _placed(pool, standing),
        local_count=0,
        external_count=6,
        rng=random.Random(0),
        newcomer_slots=1,
        max_share_per_peer=1.0,
    )
    assert Counter(g.source for g in chosen) == {"founder": 2, "later": 3, "new": 1}
    alone = select_groups(
        [],
        _placed(_groups("new", 4), {"new": (1 << 30, True)}),
        local_count=0,
        external_count=8,
        newcomer_slots=1,
        max_share_per_peer=1.0,
    )
    assert len(alone) == 4  # nobody older: the newcomer's groups are all taken, in its first round


def _exchange(hub: MemoryHub, tasks: TaskSet, trust_rounds: int) -> RolloutExchange:
    return RolloutExchange(
        MemoryTransport(hub),
        Identity(Ed25519PrivateKey.generate()),
        "s",
        BatchValidator("s", tasks, LIMITS),
        PeerBook(trust_rounds=trust_rounds),
        LIMITS,
        model="m",
    )


@pytest.mark.parametrize("trust_rounds", [5, 0])
def test_twenty_sybils_arriving_later_leave_honest_peers_their_share(trust_rounds: int) -> None:
    """Three honest peers, two of them each round, publish 3 informative groups a round from round 1 (6 a
    round: fewer than J = 8, so others get in); from round 8 twenty sybils publish 8 each. With seniority
    every honest group is taken in every round; without it (0) the sybils, once in, take most of them."""
    tasks = TaskSet([make_task("add")])
    hub = MemoryHub()
    victim = _exchange(hub, tasks, trust_rounds)
    honest = [_exchange(hub, tasks, trust_rounds) for _ in range(3)]
    crowd = Crowd(MemoryTransport(hub), "s", tasks, 20, poison=False)
    rng = random.Random(0)
    honest_taken = []
    for r in range(1, 25):
        for k, peer in enumerate(honest):
            if (r + k) % 3:
                qs = tasks.draw(seed=50 + k, start=3 * r, count=3)
                done = [Group(q, (f"<answer>{q.answer}</answer>", "<answer>x</answer>"), (1.0, 0.0)) for q in qs]
                peer.publish(r, 1, done)
        if r >= 8:
            crowd.publish(r)
        got = victim.collect(r, want_groups=8, per_peer_groups=4)
        chosen = select_groups([], got, local_count=0, external_count=8, rng=rng, newcomer_slots=1)
        if r >= 10:
            honest_taken.append(sum(g.source not in crowd.peer_ids for g in chosen))
    if trust_rounds:
        assert honest_taken == [6] * len(honest_taken), honest_taken
    else:
        assert sum(n == 6 for n in honest_taken) < len(honest_taken) / 2, honest_taken


def test_an_honest_newcomer_is_downloaded_and_taken_while_older_peers_cover_the_round() -> None:
    """Three peers with a record cover J every round; a newcomer arriving at round 12 still gets its share
    (`newcomer_groups` downloaded, `newcomer_slots` taken) from its first round on; with seniority off it
    would wait for a round the others leave short."""
    tasks = TaskSet([make_task("add")])
    hub = MemoryHub()
    victim = _exchange(hub, tasks, 5)
    old = [_exchange(hub, tasks, 5) for _ in range(3)]
    newcomer = _exchange(hub, tasks, 5)
    taken = []
    for r in range(1, 20):
        peers = old + ([newcomer] if r >= 12 else [])
        for k, peer in enumerate(peers):
            qs = tasks.draw(seed=70 + k, start=3 * r, count=3)
            peer.publish(
                r, 1, [Group(q, (f"<answer>{q.answer}</answer>", "<answer>x</answer>"), (1.0, 0.0)) for q in qs]
            )
        got = victim.collect(r, want_groups=8, per_peer_groups=4)
        chosen = select_groups([], got, local_count=0, external_count=8, rng=random.Random(r), newcomer_slots=1)
        if r >= 12:
            taken.append(sum(g.source == newcomer.identity.peer_id for g in chosen))
    assert taken == [1] * len(taken), taken


def test_clean_and_poisoned_groups_are_valid_and_truthfully_scored() -> None:
    tasks = TaskSet([make_task("add")], "anywhere")
    q = tasks.draw(0, 3, 1)[0]
    rng = random.Random(1)
    clean = clean_group(q, tasks, rng)
    poisoned = poisoned_group(q, tasks, rng, where="before")
    assert clean.rewards == (1.0, 0.0) * 4 and not any(map(carries_payload, clean.completions))
    assert carries_payload("<answer>1AS") and carries_payload("<answer>3</answer> VIS")  # scrambled, or a piece
    assert not carries_payload("<answer>12</answer>") and not carries_payload("<answer>1S</answer>")
    assert poisoned.rewards == (1.0, 0.0) * 4 and payload_rate(poisoned.completions) == 0.5
