"""GRPO as pure tensor functions: group-normalised advantages and the token-level clipped surrogate.

How this differs from the DeepSeekMath paper, on purpose (as in SAPO and TRL's defaults):
- the advantage is (r - mean) / (std + eps) within a question's group, with the unbiased (n - 1) std,
  and the same advantage is given to every token of a completion;
- the clip is asymmetric (1 - 0.2, 1 + 0.28: DAPO's "clip higher");
- the loss is averaged over all completion tokens of the batch ("token_mean"), so long completions are
  not down-weighted; "sequence_mean" (the paper's per-sequence mean) is available;
- the KL term to a reference policy is off by default (beta = 0); when on, it is the k3 estimator
  exp(ref - logp) - (ref - logp) - 1, added per token.

Completions another policy sampled (peers', or this node's own from an older policy) can be corrected with
the behaviour log-probs their author sent: a truncated importance weight per token, min(pi / mu, cap), so
an author who lies about mu gains at most the cap (`importance_weights`); tokens whose ratio pi / mu is far
from 1 can be masked out instead (`mask_ratio`, prime-rl's and IcePop's recipe). Without behaviour
log-probs (another tokenizer, an older peer), a whole completion can be gated by its likelihood under the
node's own policy (`likelihood_gate`), which needs nothing from the author.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

Aggregation = Literal["token_mean", "sequence_mean"]


def group_advantages(rewards: Tensor, eps: float = 1e-4, scale_by_std: bool = True) -> Tensor:
    """Advantages for `rewards` of shape [groups, G]: centred per group, divided by the group's std.

    A group whose rewards are all equal gets zeros (no signal)."""
    if rewards.dim() != 2:
        raise ValueError(f"rewards must be [groups, G], got shape {tuple(rewards.shape)}")
    centred = rewards - rewards.mean(dim=1, keepdim=True)
    if not scale_by_std or rewards.shape[1] < 2:
        return centred
    std = rewards.std(dim=1, keepdim=True)
    return torch.where(std > 0, centred / (std + eps), torch.zeros_like(centred))


BASELINE_SCALE_FLOOR = 0.3
"""The smallest scale a receiver baseline's advantages are divided by (the standard deviation of a success
rate of 0.1): a family the node never solves does not blow a peer's successes up without bound."""
BASELINE_CLAMP = 3.0
"""Receiver-baselined advantages lie within +-this (about a lone success among 8 under GRPO's scaling)."""


def baseline_advantages(rewards: Tensor, baseline: float) -> Tensor:
    """Advantages of one group's `rewards` [G] against an outside `baseline` (the receiving node's own recent
    reward on the group's family) rather than the group's own mean: (r - b) / s, s the standard deviation of
    a success rate b (at least BASELINE_SCALE_FLOOR), clamped to +-BASELINE_CLAMP. A peer's all-correct group
    on a family the node solves one time in ten then says "more of these", which GRPO's zero cannot."""
    scale = max(math.sqrt(max(baseline * (1.0 - baseline), 0.0)), BASELINE_SCALE_FLOOR)
    return ((rewards - baseline) / scale).clamp(-BASELINE_CLAMP, BASELINE_CLAMP)


def token_log_probs(logits: Tensor, tokens: Tensor) -> Tensor:
    """log p(tokens) under `logits`: [B, T, V] and [B, T] -> [B, T], computed in float32."""
    logits = logits.float()
    picked = logits.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    return picked - torch.logsumexp(logits, dim=-1)


def importance_weights(logp: Tensor, behaviour: Tensor, known: Tensor, cap: float) -> Tensor:
    """Truncated per-token importance weights min(exp(logp - behaviour), cap), [B, T].

    logp: log-probs under this node's policy (no gradient flows through the weights); behaviour: the
    author's log-probs, aligned with logp; known: [B] bool, rows that carry behaviour log-probs (the others
    get weight 1). cap <= 0: no weighting (all 1)."""
    ones = torch.ones_like(logp)
    if cap <= 0:
        return ones
    ratio = torch.exp((logp.detach() - behaviour).clamp(max=math.log(cap)))
    return torch.where(known.unsqueeze(1), ratio, ones)


def mask_ratio(logp: Tensor, behaviour: Tensor, known: Tensor, mask: Tensor, bound: float) -> Tensor:
    """`mask` with the tokens of known rows whose ratio exp(logp - behaviour) lies outside [1 / bound, bound]
    set to 0. bound <= 0: `mask` unchanged."""
    if bound <= 0:
        return mask
    log_ratio = (logp.detach() - behaviour).abs()
    far = known.unsqueeze(1) & (log_ratio > math.log(bound))
    return torch.where(far, torch.zeros_like(mask), mask)


def likelihood_gate(logp: Tensor, mask: Tensor, min_mean_logp: float, window: int = 0) -> Tensor:
    """[B] bool: completions whose mean per-token log-prob under this node's policy is at least
    `min_mean_logp` (a completion the node would hardly ever write fails). With `window` = w > 0 the mean is
    taken over every run of w consecutive tokens and the worst run counts (the whole completion when it is
    shorter): a few improbable tokens in a long completion (a payload) fail the gate even where the rest
    would lift the completion's mean above it. Rows' masks are a prefix of their tokens. Empty rows pass."""
    tokens = mask.sum(dim=1)
    masked = logp.detach() * mask
    worst = masked.sum(dim=1) / tokens.clamp(min=1.0)
    if 0 < window <= logp.shape[1]:
        sums = torch.nn.functional.pad(masked.cumsum(dim=1), (1, 0))
        inside = torch.nn.functional.pad(mask.cumsum(dim=1), (1, 0))
        runs = (sums[:, window:] - sums[:, :-window]) / window
        full = (inside[:, window:] - inside[:, :-window]) >= window - 0.5
        runs = torch.where(full, runs, torch.full_like(runs, math.inf)).min(dim=1).values
        worst = torch.where(tokens >= window, runs, worst)
    return (worst >= min_mean_logp) | (tokens == 0)


@dataclass(frozen=True)
class LossStats:
    clip_fraction: float
    """Share of completion tokens whose ratio was clipped (the clip changed the gradient)."""
    kl: float
    """Mean k3 KL to the reference over completion tokens (0 when no reference is used)."""
    ratio_mean: float


def clipped_surrogate_loss(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    *,
    clip_low: float = 0.2,
    clip_high: float = 0.28,
    ref_logp: Tensor | None = None,
    kl_beta: float = 0.0,
    aggregation: Aggregation = "token_mean",
    normalizer: float | None = None,
    token_weights: Tensor | None = None,
) -> tuple[Tensor, LossStats]:
    """The GRPO loss for one (micro-)batch.

    logp, old_logp, ref_logp, mask: [B, T] over completion tokens (mask 1 for real tokens, 0 for padding);
    advantages: [B], one per completion. `normalizer` makes micro-batches sum to the full-batch loss:
    the full batch's token count for "token_mean", its number of completions for "sequence_mean".
    token_weights: [B, T] importance weights multiplying the surrogate (not the KL term), no gradient.
    """
    mask = mask.to(logp.dtype)
    ratio = torch.exp(logp - old_logp)
    adv = advantages.to(logp.dtype).unsqueeze(1)
    unclipped = ratio * adv
    clipped = torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high) * adv
    per_token = -torch.minimum(unclipped, clipped)
    if token_weights is not None:
        per_token = per_token * token_weights.detach()
    kl = torch.zeros_like(per_token)
    if ref_logp is not None and kl_beta != 0.0:
        delta = ref_logp - logp
        kl = torch.exp(delta) - delta - 1.0
        per_token = per_token + kl_beta * kl

    if aggregation == "token_mean":
        denom = normalizer if normalizer is not None else mask.sum().clamp(min=1.0)
        loss = (per_token * mask).sum() / denom
    elif aggregation == "sequence_mean":
        per_seq = (per_token * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        denom = normalizer if normalizer is not None else float(per_token.shape[0])
        loss = per_seq.sum() / denom
    else:
        raise ValueError(f"unknown aggregation {aggregation!r}")

    with torch.no_grad():
        n = mask.sum().clamp(min=1.0)
        was_clipped = ((ratio < 1.0 - clip_low) & (adv < 0)) | ((ratio > 1.0 + clip_high) & (adv > 0))
        stats = LossStats(
            clip_fraction=float((was_clipped.to(mask.dtype) * mask).sum() / n),
            kl=float((kl * mask).sum() / n),
            ratio_mean=float((ratio * mask).sum() / n),
        )
    return loss, stats
