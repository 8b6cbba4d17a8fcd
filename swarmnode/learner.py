"""One GRPO update on a round's question groups: drop groups without signal, compute advantages,
recompute log-probs of every completion under the node's own policy (micro-batched), step AdamW.

The completions of one question share their prompt, so by default the prompt runs through the model once
per micro-batch and its key/value cache is repeated for every completion (`prefix_sharing`); gradients
flow back through the shared cache, so the update is the same as running every (prompt, completion) row
in full — a test checks this — at a fraction of the compute.

Groups arrive as token ids produced by `Prompter` — local completions keep the ids that were sampled,
peers' completions are re-tokenised from text — so text written by a different model trains this one.
"""

from __future__ import annotations

import copy
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from swarmnode import grpo
from swarmnode.config import TrainConfig
from swarmnode.groups import Group
from swarmnode.policy.base import Prompter


@dataclass(frozen=True)
class StepStats:
    stepped: bool
    """False when no group had reward variance: then no optimizer step is taken at all (Adam's momentum
    would otherwise keep moving the weights on a zero gradient)."""
    groups: int
    completions: int
    tokens: int
    loss: float = 0.0
    grad_norm: float = 0.0
    clip_fraction: float = 0.0
    kl: float = 0.0
    seconds: float = 0.0
    weighted: int = 0
    """Completion tokens with a known behaviour log-prob (importance-weighted or masked by it)."""
    masked: int = 0
    """Of those, tokens masked out because pi / mu was too far from 1 (train.offpolicy_mask)."""
    gated: int = 0
    """Peers' completions dropped as too unlikely under this node's policy (train.peer_min_logprob)."""
    gated_by_source: dict[str, int] = field(default_factory=dict)
    """... by the peer they came from."""
    gated_texts: tuple[str, ...] = ()
    """... their text (the drift signal looks for it in the node's own samples)."""


@dataclass(frozen=True)
class Packed:
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    targets: torch.Tensor
    """[B, C] completion ids, right-padded."""
    target_mask: torch.Tensor


def pack(rows: Sequence[tuple[Sequence[int], Sequence[int]]], pad_id: int) -> Packed:
    """[left-pad | prompt | completion | right-pad]: every completion starts at the same column, so the
    logits of all completion tokens are the last C+1 positions (`logits_to_keep`)."""
    p_width = max(len(p) for p, _ in rows)
    c_width = max(len(c) for _, c in rows)
    batch = len(rows)
    ids = torch.full((batch, p_width + c_width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    targets = torch.full((batch, c_width), pad_id, dtype=torch.long)
    target_mask = torch.zeros((batch, c_width), dtype=torch.float32)
    for i, (prompt, completion) in enumerate(rows):
        ids[i, p_width - len(prompt) : p_width] = torch.tensor(list(prompt), dtype=torch.long)
        ids[i, p_width : p_width + len(completion)] = torch.tensor(list(completion), dtype=torch.long)
        mask[i, p_width - len(prompt) : p_width + len(completion)] = 1
        targets[i, : len(completion)] = torch.tensor(list(completion), dtype=torch.long)
        target_mask[i, : len(completion)] = 1.0
    position_ids = (mask.cumsum(dim=1) - 1).clamp(min=0)
    return Packed(ids, mask, position_ids, targets, target_mask)


@dataclass(frozen=True)
class SharedPrefix:
    """Completions of one prompt: the prompt runs once, its cache is repeated for every completion."""

    prompt: torch.Tensor
    """[1, P]"""
    targets: torch.Tensor
    """[B, C] completion ids, right-padded (a causal model never looks right, so no attention mask)."""
    target_mask: torch.Tensor


def pack_shared(prompt: Sequence[int], completions: Sequence[Sequence[int]], pad_id: int) -> SharedPrefix:
    width = max(len(c) for c in completions)
    targets = torch.full((len(completions), width), pad_id, dtype=torch.long)
    target_mask = torch.zeros((len(completions), width), dtype=torch.float32)
    for i, completion in enumerate(completions):
        targets[i, : len(completion)] = torch.tensor(list(completion), dtype=torch.long)
        target_mask[i, : len(completion)] = 1.0
    return SharedPrefix(torch.tensor([list(prompt)], dtype=torch.long), targets, target_mask)


def completion_log_probs(model: Any, batch: Packed | SharedPrefix, temperature: float = 1.0) -> torch.Tensor:
    """log p(completion tokens) under `model` sampled at `temperature`, [B, C]; only completion positions
    get logits. The temperature matches the sampling distribution the completions came from."""
    if isinstance(batch, SharedPrefix):
        return _shared_prefix_log_probs(model, batch, temperature)
    c_width = batch.targets.shape[1]
    out = model(
        input_ids=batch.input_ids,
        attention_mask=batch.attention_mask,
        position_ids=batch.position_ids,
        logits_to_keep=c_width + 1,
        use_cache=False,
    )
    logits = out.logits[:, :-1, :]
    if temperature not in (0.0, 1.0):
        logits = logits / temperature
    return grpo.token_log_probs(logits, batch.targets)


def _shared_prefix_log_probs(model: Any, batch: SharedPrefix, temperature: float) -> torch.Tensor:
    rows, c_width = batch.targets.shape
    p_width = batch.prompt.shape[1]
    head = model(input_ids=batch.prompt, use_cache=c_width > 1, logits_to_keep=1)
    logits = head.logits.expand(rows, -1, -1)
    if c_width > 1:
        cache = head.past_key_values
        cache.batch_repeat_interleave(rows)
        positions = torch.arange(p_width, p_width + c_width - 1).expand(rows, -1)
        tail = model(input_ids=batch.targets[:, :-1], past_key_values=cache, position_ids=positions, use_cache=True)
        logits = torch.cat([logits, tail.logits], dim=1)
    if temperature not in (0.0, 1.0):
        logits = logits / temperature
    return grpo.token_log_probs(logits, batch.targets)


@dataclass(frozen=True)
class Row:
    """One completion as the learner trains on it."""

    prompt: Sequence[int]
    completion: Sequence[int]
    advantage: float
    behaviour: Sequence[float] | None
    """The behaviour log-prob of each completion token, when known and aligned with `completion`."""
    external: bool
    source: str = ""
    text: str = ""
    """A peer's completion: its author and text (for the gate's counts)."""


@dataclass(frozen=True)
class OffPolicy:
    """A micro-batch's behaviour log-probs and which rows have them / are peers'."""

    behaviour: torch.Tensor
    """[B, C], 0 where unknown."""
    known: torch.Tensor
    """[B] bool"""
    external: torch.Tensor
    """[B] bool"""
    rows: tuple[int, ...] = ()
    """The micro-batch's rows, by index into the update's rows."""


class Learner:
    def __init__(
        self, model: Any, config: TrainConfig, prompter: Prompter, temperature: float = 1.0, model_name: str = ""
    ) -> None:
        self.model = model
        self.model_name = model_name
        """This node's model: peers' behaviour log-probs are used only from authors of the same model."""
        self.temperature = temperature
        self.config = config
        self.prompter = prompter
        self.pad_id = prompter.pad_id
        self.optimizer = torch.optim.AdamW(
            [p for p in model.parameters() if p.requires_grad],
            lr=config.lr,
            betas=config.betas,
            weight_decay=config.weight_decay,
        )
        self.ref_model = None
        if config.kl_beta > 0:
            self.ref_model = copy.deepcopy(model).eval().requires_grad_(False)
        self.updates = 0
        """Optimizer steps taken so far: the policy version."""

    def token_rows(self, group: Group) -> tuple[list[int], list[Sequence[int]]]:
        """The learner's door: a group's prompt and completions as this model's token ids. Own completions
        are trained on exactly as sampled; peers' text is tokenised here, once."""
        if group.token_ids is not None:
            return self.prompter.prompt_ids(group.question.text), list(group.token_ids)
        completions = [self.prompter.completion_ids(c) for c in group.completions]
        return self.prompter.prompt_ids(group.question.text), list(completions)

    def behaviour(self, group: Group, completions: Sequence[Sequence[int]]) -> list[Sequence[float] | None]:
        """Each completion's behaviour log-probs where they can be trusted to line up with its tokens: own
        groups' as recorded; a peer's only when it runs this node's model and its row has one log-prob per
        token of this node's tokenization (anything else: None, no weighting)."""
        rows = group.logprobs
        if rows is None or len(rows) != len(completions) or (not group.local and group.model != self.model_name):
            return [None] * len(completions)
        return [lp if len(lp) == len(c) else None for lp, c in zip(rows, completions, strict=True)]

    def step(self, groups: Sequence[Group]) -> StepStats:
        """GRPO updates on the groups with reward variance (none: no step at all): one update on them all, or
        with `train.groups_per_update` = K, ceil(n / K) updates, each on its own share of the groups (spread
        evenly, so own and peers' groups mix in each)."""
        start = time.perf_counter()
        useful = [g for g in groups if g.trains and len(g.token_ids or g.completions) == len(g.rewards)]
        per = self.config.groups_per_update
        parts = max(1, -(-len(useful) // per)) if per else 1
        done = [self._update(useful[k::parts]) for k in range(parts)]
        stepped = [d for d in done if d.stepped]
        if not stepped:
            return StepStats(False, 0, 0, 0, seconds=time.perf_counter() - start)
        last, tokens = stepped[-1], sum(d.tokens for d in stepped)
        return StepStats(
            True,
            sum(d.groups for d in stepped),
            sum(d.completions for d in stepped),
            tokens,
            last.loss,
            last.grad_norm,
            sum(d.clip_fraction * d.tokens for d in stepped) / tokens,  # per token, as within an update
            sum(d.kl * d.tokens for d in stepped) / tokens,
            time.perf_counter() - start,
            sum(d.weighted for d in stepped),
            sum(d.masked for d in stepped),
            sum(d.gated for d in stepped),
            dict(sum((Counter(d.gated_by_source) for d in stepped), Counter())),
            tuple(t for d in stepped for t in d.gated_texts),
        )

    def _update(self, useful: Sequence[Group]) -> StepStats:
        """One GRPO update (`updates_per_batch` optimizer steps) on informative groups."""
        start = time.perf_counter()
        rows: list[Row] = []
        for g in useful:
            rewards = torch.tensor([list(g.rewards)], dtype=torch.float32)
            if g.baseline is None:
                adv = grpo.group_advantages(rewards, eps=self.config.advantage_eps)[0]
            else:
                adv = grpo.baseline_advantages(rewards[0], g.baseline)
            prompt, completions = self.token_rows(g)
            behaviour = self.behaviour(g, completions)
            texts = [""] * len(completions) if g.local else g.completions
            for completion, a, lp, text in zip(completions, adv.tolist(), behaviour, texts, strict=True):
                if completion:
                    rows.append(Row(prompt, completion, a, lp, not g.local, g.source, text))
        tokens = sum(len(r.completion) for r in rows)
        if not rows:
            return StepStats(False, 0, 0, 0, seconds=time.perf_counter() - start)

        cfg = self.config
        normalizer = float(tokens) if cfg.aggregation == "token_mean" else float(len(rows))
        packed, adv_chunks, off = self._micro_batches(rows)
        old = self._no_grad_log_probs(self.model, packed) if cfg.updates_per_batch > 1 else None
        ref = self._no_grad_log_probs(self.ref_model, packed) if self.ref_model is not None else None

        self.model.train()
        loss_total = clip = kl = grad_norm = 0.0
        weighted = masked = 0
        gated: list[int] = []
        for _ in range(cfg.updates_per_batch):
            self.optimizer.zero_grad(set_to_none=True)
            self._set_learning_rate()
            loss_total = clip = kl = 0.0
            weighted = masked = 0
            gated = []
            for k, batch in enumerate(packed):
                logp = completion_log_probs(self.model, batch, self.temperature)
                before = old[k] if old is not None else logp.detach()  # the policy this update starts from
                mask, weights, counts, dropped = self._off_policy(before, batch.target_mask, off[k])
                weighted, masked, gated = weighted + counts[0], masked + counts[1], gated + dropped
                loss, stats = grpo.clipped_surrogate_loss(
                    logp,
                    before,
                    adv_chunks[k],
                    mask,
                    clip_low=cfg.clip_low,
                    clip_high=cfg.clip_high,
                    ref_logp=ref[k] if ref is not None else None,
                    kl_beta=cfg.kl_beta,
                    aggregation=cfg.aggregation,
                    normalizer=normalizer,
                    token_weights=weights,
                )
                loss.backward()
                share = float(batch.target_mask.sum()) / tokens
                loss_total += float(loss.detach())
                clip += stats.clip_fraction * share
                kl += stats.kl * share
            grad_norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip))
            self.optimizer.step()
            self.updates += 1
        self.optimizer.zero_grad(set_to_none=True)
        return StepStats(
            True,
            len(useful),
            len(rows),
            tokens,
            loss_total,
            grad_norm,
            clip,
            kl,
            time.perf_counter() - start,
            weighted,
            masked,
            len(gated),
            dict(Counter(rows[i].source for i in gated)),
            tuple(rows[i].text for i in gated),
        )

    def _off_policy(
        self, logp: torch.Tensor, mask: torch.Tensor, off: OffPolicy
    ) -> tuple[torch.Tensor, torch.Tensor | None, tuple[int, int], list[int]]:
        """The micro-batch's training mask and importance weights under train.offpolicy_* and peer_min_logprob,
        the counts (tokens with a behaviour log-prob, tokens masked by ratio), and the rows of peers'
        completions gated (indices into the update's rows)."""
        cfg = self.config
        weights = (
            grpo.importance_weights(logp, off.behaviour, off.known, cfg.offpolicy_cap) if cfg.offpolicy_cap else None
        )
        kept = grpo.mask_ratio(logp, off.behaviour, off.known, mask, cfg.offpolicy_mask)
        masked = int((mask - kept).sum())
        gated: list[int] = []
        if cfg.peer_min_logprob < 0:
            gate = grpo.likelihood_gate(logp, mask, cfg.peer_min_logprob, cfg.peer_gate_window)
            passed = gate | ~off.external
            gated = [off.rows[j] for j in torch.nonzero(~passed).flatten().tolist()]
            kept = kept * passed.unsqueeze(1).to(kept.dtype)
        weighted = int((mask * off.known.unsqueeze(1).to(mask.dtype)).sum())
        return kept, weights, (weighted, masked), gated

    def _micro_batches(
        self, rows: list[Row]
    ) -> tuple[list[Packed | SharedPrefix], list[torch.Tensor], list[OffPolicy]]:
        size = self.config.micro_batch_size
        chunks: list[list[int]] = []
        if self.config.prefix_sharing and all(r.prompt for r in rows):
            by_prompt: dict[tuple[int, ...], list[int]] = {}
            for i, row in enumerate(rows):
                by_prompt.setdefault(tuple(row.prompt), []).append(i)
            for members in by_prompt.values():
                members.sort(key=lambda i: len(rows[i].completion))
                chunks += [members[k : k + size] for k in range(0, len(members), size)]
            packed: list[Packed | SharedPrefix] = [
                pack_shared(rows[c[0]].prompt, [rows[i].completion for i in c], self.pad_id) for c in chunks
            ]
        else:
            # similar lengths share a micro-batch, so little compute goes to padding
            order = sorted(range(len(rows)), key=lambda i: (len(rows[i].prompt), len(rows[i].completion)))
            chunks = [order[k : k + size] for k in range(0, len(order), size)]
            packed = [pack([(rows[i].prompt, rows[i].completion) for i in c], self.pad_id) for c in chunks]
        off = []
        for c, batch in zip(chunks, packed, strict=True):
            behaviour = torch.zeros_like(batch.target_mask)
            for j, i in enumerate(c):
                lp = rows[i].behaviour
                if lp is not None:
                    behaviour[j, : len(lp)] = torch.tensor(list(lp), dtype=behaviour.dtype)
            known = torch.tensor([rows[i].behaviour is not None for i in c], dtype=torch.bool)
            external = torch.tensor([rows[i].external for i in c], dtype=torch.bool)
            off.append(OffPolicy(behaviour, known, external, tuple(c)))
        return packed, [torch.tensor([rows[i].advantage for i in c]) for c in chunks], off

    def _set_learning_rate(self) -> None:
        """Warm-up as a function of the update count alone, so a resumed run follows the same schedule."""
        warmup = self.config.warmup_updates
        scale = min(1.0, (self.updates + 1) / warmup) if warmup else 1.0
        for group in self.optimizer.param_groups:
            group["lr"] = self.config.lr * scale

    @torch.no_grad()
    def _no_grad_log_probs(self, model: Any, packed: list[Packed | SharedPrefix]) -> list[torch.Tensor]:
        return [completion_log_probs(model, batch, self.temperature) for batch in packed]
