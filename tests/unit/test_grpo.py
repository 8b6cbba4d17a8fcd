"""GRPO math against numbers computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from swarmnode import grpo
from swarmnode.groups import has_signal


def test_advantages_of_a_mixed_group() -> None:
    adv = grpo.group_advantages(torch.tensor([[1.0, 0.0, 0.0, 1.0]]), eps=0.0)
    # mean 0.5, unbiased std sqrt(4 * 0.25 / 3) = 0.57735
    assert adv[0].tolist() == pytest.approx([0.8660254, -0.8660254, -0.8660254, 0.8660254], abs=1e-6)


def test_advantages_of_two_completions_and_eps() -> None:
    adv = grpo.group_advantages(torch.tensor([[1.0, 0.0]]), eps=1e-4)
    assert adv[0].tolist() == pytest.approx([0.5 / (math.sqrt(0.5) + 1e-4), -0.5 / (math.sqrt(0.5) + 1e-4)])


def test_all_equal_rewards_give_zero_advantage_and_no_signal() -> None:
    adv = grpo.group_advantages(torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]]))
    assert torch.equal(adv, torch.zeros(2, 3))
    assert not has_signal([1.0, 1.0, 1.0])
    assert not has_signal([0.5])
    assert has_signal([0.0, 0.5])


def test_advantages_are_per_group() -> None:
    adv = grpo.group_advantages(torch.tensor([[1.0, 0.0], [0.0, 0.0]]), eps=0.0)
    assert adv[1].tolist() == [0.0, 0.0] and adv[0, 0] > 0 > adv[0, 1]


def _loss(logp: float, adv: float, old: float = 0.0) -> tuple[float, float]:
    x = torch.tensor([[logp]], requires_grad=True)
    loss, _ = grpo.clipped_surrogate_loss(x, torch.tensor([[old]]), torch.tensor([adv]), torch.ones(1, 1))
    loss.backward()
    assert x.grad is not None
    return float(loss.detach()), float(x.grad)


def test_unclipped_ratio_one() -> None:
    loss, grad = _loss(0.0, 2.0)
    assert loss == pytest.approx(-2.0) and grad == pytest.approx(-2.0)


def test_positive_advantage_clipped_above_1_28() -> None:
    loss, grad = _loss(math.log(1.5), 1.0)
    assert loss == pytest.approx(-1.28) and grad == 0.0


def test_negative_advantage_clipped_below_0_8() -> None:
    loss, grad = _loss(math.log(0.5), -1.0)
    assert loss == pytest.approx(0.8) and grad == 0.0


def test_negative_advantage_with_large_ratio_is_not_clipped() -> None:
    loss, grad = _loss(math.log(1.5), -1.0)  # pessimistic min keeps the unclipped -1.5
    assert loss == pytest.approx(1.5) and grad == pytest.approx(1.5)


def test_clip_boundaries_exactly() -> None:
    assert _loss(math.log(1.28), 1.0)[0] == pytest.approx(-1.28)
    assert _loss(math.log(0.8), -1.0)[0] == pytest.approx(0.8)
    # just inside the upper boundary the gradient still flows
    assert _loss(math.log(1.27), 1.0)[1] == pytest.approx(-1.27)


def test_padding_is_ignored_token_mean_and_sequence_mean() -> None:
    logp = torch.tensor([[0.0, 0.0, 100.0], [0.0, -50.0, 7.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    adv = torch.tensor([1.0, -1.0])
    loss, _ = grpo.clipped_surrogate_loss(logp, logp.clone(), adv, mask)
    assert float(loss) == pytest.approx((-1 - 1 + 1) / 3)
    loss, _ = grpo.clipped_surrogate_loss(logp, logp.clone(), adv, mask, aggregation="sequence_mean")
    assert float(loss) == pytest.approx((-1.0 + 1.0) / 2)


def test_normalizer_makes_micro_batches_add_up() -> None:
    logp = torch.tensor([[0.1, 0.2], [0.3, -0.1], [0.0, 0.0]])
    old = torch.zeros_like(logp)
    mask = torch.tensor([[1, 1], [1, 0], [1, 1]])
    adv = torch.tensor([0.5, -1.0, 2.0])
    whole, _ = grpo.clipped_surrogate_loss(logp, old, adv, mask)
    parts = sum(
        float(grpo.clipped_surrogate_loss(logp[s], old[s], adv[s], mask[s], normalizer=5.0)[0])
        for s in (slice(0, 1), slice(1, 3))
    )
    assert parts == pytest.approx(float(whole))


def test_kl_k3_term() -> None:
    logp = torch.tensor([[0.0]])
    loss, stats = grpo.clipped_surrogate_loss(
        logp, logp, torch.tensor([0.0]), torch.ones(1, 1), ref_logp=torch.tensor([[0.5]]), kl_beta=0.1
    )
    k3 = math.exp(0.5) - 0.5 - 1
    assert stats.kl == pytest.approx(k3) and float(loss) == pytest.approx(0.1 * k3)
    loss, stats = grpo.clipped_surrogate_loss(
        logp, logp, torch.tensor([0.0]), torch.ones(1, 1), ref_logp=logp, kl_beta=0.1
    )
    assert stats.kl == 0.0


def test_clip_fraction_counts_only_clipped_tokens() -> None:
    logp = torch.tensor([[math.log(1.5), 0.0, math.log(0.5), 0.0]])
    _, stats = grpo.clipped_surrogate_loss(logp, torch.zeros_like(logp), torch.tensor([1.0]), torch.ones(1, 4))
    assert stats.clip_fraction == pytest.approx(0.25)


def test_token_log_probs() -> None:
    logits = torch.tensor([[[0.0, math.log(3.0)]]])
    out = grpo.token_log_probs(logits, torch.tensor([[1]]))
    assert float(out) == pytest.approx(math.log(0.75))


# ------------------------------------------------------------------ off-policy corrections


def test_importance_weights_by_hand() -> None:
    # pi / mu per token: e^0 = 1, e^0.5 = 1.6487, e^1.5 = 4.4817 (capped at 2), e^-1 = 0.3679
    logp = torch.tensor([[-1.0, -0.5, -0.5, -2.0]])
    behaviour = torch.tensor([[-1.0, -1.0, -2.0, -1.0]])
    w = grpo.importance_weights(logp, behaviour, torch.tensor([True]), cap=2.0)
    assert w[0].tolist() == pytest.approx([1.0, math.exp(0.5), 2.0, math.exp(-1.0)], rel=1e-6)


def test_rows_without_behaviour_and_cap_off_weigh_one() -> None:
    logp = torch.tensor([[-1.0, -3.0], [-1.0, -3.0]])
    behaviour = torch.tensor([[-5.0, -5.0], [-5.0, -5.0]])
    w = grpo.importance_weights(logp, behaviour, torch.tensor([True, False]), cap=3.0)
    assert w.flatten().tolist() == pytest.approx([3.0, 3.0, 1.0, 1.0])
    assert grpo.importance_weights(logp, behaviour, torch.tensor([True, True]), cap=0.0).tolist() == [[1.0] * 2] * 2


def test_a_peer_lying_about_its_log_probs_gains_at_most_the_cap() -> None:
    """A peer claims each token had probability e^-60 under its policy (pi / mu = e^59): uncapped, one of its
    completions would outweigh 10^25 honest ones; with the cap its gradient is at most cap x an honest one."""
    logp = torch.tensor([[-1.0, -1.0]], requires_grad=True)
    honest = torch.tensor([[-1.0, -1.0]])
    lying = torch.tensor([[-60.0, -60.0]])
    known = torch.tensor([True])
    grads = []
    for behaviour in (honest, lying):
        w = grpo.importance_weights(logp, behaviour, known, cap=2.0)
        loss, _ = grpo.clipped_surrogate_loss(
            logp, logp.detach(), torch.tensor([1.0]), torch.ones(1, 2), token_weights=w
        )
        (grad,) = torch.autograd.grad(loss, logp)
        grads.append(grad)
    assert grads[0][0].tolist() == pytest.approx([-0.5, -0.5])  # token_mean over 2 tokens, advantage 1
    assert grads[1][0].tolist() == pytest.approx([-1.0, -1.0])  # exactly the cap, 2x, no more
    # and lying the other way (mu = 1: "I was certain") only shrinks its own weight
    w = grpo.importance_weights(logp, torch.zeros(1, 2), known, cap=2.0)
    assert w[0].tolist() == pytest.approx([math.exp(-1.0)] * 2)


def test_mask_ratio_by_hand() -> None:
    # ratios e^0 = 1, e^0.6 = 1.82, e^0.8 = 2.23 (> 2: masked), e^-0.8 = 0.45 (< 1/2: masked)
    logp = torch.tensor([[-1.0, -0.4, -0.2, -1.8], [-1.0, -0.4, -0.2, -1.8]])
    behaviour = torch.full((2, 4), -1.0)
    mask = torch.tensor([[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 0.0]])
    kept = grpo.mask_ratio(logp, behaviour, torch.tensor([True, False]), mask, bound=2.0)
    assert kept.tolist() == [[1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 0.0]]  # the unknown row keeps its mask
    assert torch.equal(grpo.mask_ratio(logp, behaviour, torch.tensor([True, True]), mask, bound=0.0), mask)
    # a liar's tokens (pi / mu = e^59) are all masked: it gains nothing
    assert grpo.mask_ratio(logp, torch.full((2, 4), -60.0), torch.tensor([True, True]), mask, 2.0).sum() == 0


def test_likelihood_gate_by_hand() -> None:
    logp = torch.tensor([[-0.5, -1.5, -9.0], [-4.0, -6.0, 0.0], [0.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    # means over real tokens: -1.0 and -5.0; the empty row passes
    assert grpo.likelihood_gate(logp, mask, -2.0).tolist() == [True, False, True]
    assert grpo.likelihood_gate(logp, mask, -5.0).tolist() == [True, True, True]


def test_token_weights_scale_the_surrogate_not_the_kl() -> None:
    logp = torch.tensor([[-1.0, -2.0]], requires_grad=True)
    ref = torch.tensor([[-1.5, -2.0]])
    w = torch.tensor([[0.5, 2.0]])
    loss, _ = grpo.clipped_surrogate_loss(
        logp, logp.detach(), torch.tensor([1.0]), torch.ones(1, 2), ref_logp=ref, kl_beta=0.1, token_weights=w
    )
    kl0 = math.exp(-0.5) + 0.5 - 1.0  # k3 at delta = ref - logp = -0.5; 0 at delta 0
    assert float(loss.detach()) == pytest.approx((-(0.5 + 2.0) + 0.1 * kl0) / 2)
