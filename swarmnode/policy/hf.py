"""transformers generation: every prompt x n samples in batched `generate` calls with the KV cache.

Prompts are left-padded so all completions start at the same column; the learner uses the same layout
and the same position ids, so its log-probs match what generation sampled from.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import torch
from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList

from swarmnode.policy.base import Completion, Prompter, SamplingParams


def left_pad(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        if row:
            ids[i, width - len(row) :] = torch.tensor(row, dtype=torch.long)
            mask[i, width - len(row) :] = 1
    return ids, mask


class BehaviourRecorder(LogitsProcessor):
    """Records the log-probability of each sampled token under the sampling distribution (softmax of the
    logits at `temperature`), one generation step at a time: at step t it sees the token sampled at t - 1
    in `input_ids` and the distribution of step t - 1 it kept. Memory: one step's distribution."""

    def __init__(self, temperature: float) -> None:
        self.temperature = temperature
        self.steps: list[torch.Tensor] = []
        self._last: torch.Tensor | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self._last is not None:
            self.steps.append(self._last.gather(1, input_ids[:, -1:]).squeeze(1))
        self._last = torch.log_softmax(scores.float() / self.temperature, dim=-1)
        return scores

    def finish(self, new_tokens: torch.Tensor) -> list[list[float]]:
        """[N, T] log-probs of the generated tokens (`new_tokens`: [N, T]) as lists, one per row."""
        if self._last is not None and len(self.steps) < new_tokens.shape[1]:
            self.steps.append(self._last.gather(1, new_tokens[:, len(self.steps) : len(self.steps) + 1]).squeeze(1))
        self._last = None
        if not self.steps:
            return [[] for _ in range(new_tokens.shape[0])]
        rows: list[list[float]] = torch.stack(self.steps, dim=1).tolist()
        return rows


class HFBackend:
    name = "hf"

    def __init__(self, model: Any, prompter: Prompter, max_batch_sequences: int = 512) -> None:
        self.model = model
        self.prompter = prompter
        self.max_batch_sequences = max_batch_sequences

    def generate(self, prompts: Sequence[Sequence[int]], params: SamplingParams) -> list[list[Completion]]:
        if params.seed is not None:
            torch.manual_seed(params.seed)
        per_call = max(1, self.max_batch_sequences // params.n)
        results: list[list[Completion]] = []
        for start in range(0, len(prompts), per_call):
            results += self._generate_chunk(prompts[start : start + per_call], params)
        return results

    @torch.no_grad()
    def _generate_chunk(self, prompts: Sequence[Sequence[int]], params: SamplingParams) -> list[list[Completion]]:
        ids, mask = left_pad(prompts, self.prompter.pad_id)
        greedy = params.temperature == 0.0
        config = GenerationConfig(
            do_sample=not greedy,
            temperature=None if greedy else params.temperature,
            # explicit "off" values: None would fall back to transformers' default top_k=50, and the learner's
            # log-probs (full softmax at this temperature) would no longer match what was sampled
            top_p=None if greedy else params.top_p,
            top_k=None if greedy else params.top_k,
            max_new_tokens=params.max_new_tokens,
            num_return_sequences=params.n,
            pad_token_id=self.prompter.pad_id,
            eos_token_id=list(self.prompter.end_ids),
        )
        # the behaviour log-probs are those of the full softmax at the temperature (what the learner computes)
        recorder = (
            BehaviourRecorder(params.temperature) if not greedy and params.top_p == 1.0 and params.top_k == 0 else None
        )
        was_training = self.model.training
        self.model.eval()
        try:
            out = self.model.generate(
                input_ids=ids,
                attention_mask=mask,
                generation_config=config,
                logits_processor=LogitsProcessorList([recorder] if recorder else []),
            )
        finally:
            self.model.train(was_training)
        new = out[:, ids.shape[1] :]
        new_tokens = new.tolist()
        completions = [self.prompter.decode(row) for row in new_tokens]
        if recorder is not None:
            logprobs = recorder.finish(new)
            completions = [
                dataclasses.replace(c, logprobs=tuple(lp[: len(c.token_ids)]))
                for c, lp in zip(completions, logprobs, strict=True)
            ]
        return [completions[i * params.n : (i + 1) * params.n] for i in range(len(prompts))]

    def sync_weights(self) -> None:
        """Nothing to do: generation runs on the learner's own model object."""
