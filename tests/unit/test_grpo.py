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
