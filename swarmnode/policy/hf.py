"""transformers generation: every prompt x n samples in batched `generate` calls with the KV cache.

Prompts are left-padded so all completions start at the same column; the learner uses the same layout
and the same position ids, so its log-probs match what generation sampled from.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import GenerationConfig

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
            eos_token_id=self.prompter.eos_id,
        )
        was_training = self.model.training
        self.model.eval()
        try:
            out = self.model.generate(input_ids=ids, attention_mask=mask, generation_config=config)
        finally:
            self.model.train(was_training)
        new_tokens = out[:, ids.shape[1] :].tolist()
        completions = [self.prompter.decode(row) for row in new_tokens]
        return [completions[i * params.n : (i + 1) * params.n] for i in range(len(prompts))]

    def sync_weights(self) -> None:
        """Nothing to do: generation runs on the learner's own model object."""
