"""What a node computes with, built from its config in one place: model, tokenizer, prompter, tasks and the
generation backend. The node, `swarmnode eval` and the benches all build it here.

`--backend auto` is decided here. vLLM pays a fixed cost per request that a tiny model's short completions
never earn back on a CPU: `swarmnode bench generate` measured the 1.1M-parameter default at 0.61x
transformers' tokens/s under vLLM, a 4.8M model 1.3-1.7x faster generation (`bench round`) and a 25M one
1.36x. So `auto` takes vLLM on a GPU whenever it is installed, on a CPU only for models of at least
`CPU_VLLM_MIN_PARAMS` parameters, and says which it took and why.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers.utils import logging as transformers_logging

from swarmnode.config import GenerationConfig, NodeConfig
from swarmnode.errors import UserError
from swarmnode.groups import Group
from swarmnode.models import load_model, resolve_model_source
from swarmnode.policy.base import Completion, PolicyBackend, Prompter, SamplingParams
from swarmnode.policy.hf import HFBackend
from swarmnode.policy.vllm import VLLMBackend, vllm_status
from swarmnode.tasks import Question, TaskSet, make_task

CPU_VLLM_MIN_PARAMS = 4_000_000
"""On a CPU, `auto` picks vLLM only from this many parameters up (see the module docstring)."""


@dataclass
class Runtime:
    model: Any
    tokenizer: Any
    prompter: Prompter
    tasks: TaskSet
    backend: PolicyBackend
    source: str
    """Where the weights came from: a model id, a local folder or a checkpoint."""
    backend_why: str
    """Which generation backend was chosen, and why (said to the user)."""

    def rollouts(self, questions: Sequence[Question], params: SamplingParams) -> list[Group]:
        """Generate `params.n` completions per question and score each with this node's own verifier."""
        outputs = self.backend.generate([self.prompter.prompt_ids(q.text) for q in questions], params)
        again = self.prompter.completion_ids
        return [
            Group(
                q,
                tuple(c.text for c in outs),
                tuple(self.tasks.score(q, c.text) for c in outs),
                token_ids=tuple(c.token_ids for c in outs),
                logprobs=behaviour(outs),
                round_trips=tuple(again(c.text, c.finished) == list(c.token_ids) for c in outs),
            )
            for q, outs in zip(questions, outputs, strict=True)
        ]


def round_seed(seed: int, round_: int, salt: int = 0) -> int:
    """The seed of one round's sampling and selection: a function of (seed, round) alone, so a resumed run
    continues exactly as if it had never stopped; a resumed swarm node adds a `salt` of its own (see
    `Node`)."""
    text = f"swarmnode:{seed}:{round_}" + (f":{salt}" if salt else "")
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1


def make_tasks(config: NodeConfig) -> TaskSet:
    tasks = [make_task(name, config.task.params.get(name)) for name in config.task.names]
    return TaskSet(tasks, config.task.answer_format, config.task.weights)


def choose_backend(
    name: str, model: Any, source: str, prompter: Prompter, generation: GenerationConfig, dtype: str, seed: int
) -> tuple[PolicyBackend, str]:
    """The generation backend for `generation.backend` ("auto", "hf" or "vllm") and why it was chosen."""
    if name == "hf":
        return HFBackend(model, prompter), "transformers (asked for)"
    ok, why = vllm_status()
    if name == "auto":
        if not ok:
            return HFBackend(model, prompter), f"transformers ({why})"
        params = sum(p.numel() for p in model.parameters())
        on_gpu = next(model.parameters()).device.type == "cuda"
        if not on_gpu and params < CPU_VLLM_MIN_PARAMS:
            return HFBackend(model, prompter), (
                f"transformers: vLLM is installed, but for a {params / 1e6:.1f}M-parameter model on a CPU "
                f"transformers is faster (vLLM only from {CPU_VLLM_MIN_PARAMS / 1e6:.0f}M; --backend vllm forces it)"
            )
    backend = VLLMBackend(
        model,
        source,
        prompter,
        dtype=dtype,
        memory_fraction=generation.vllm_memory_fraction,
        max_model_len=generation.vllm_max_model_len,
        cpu_kv_cache_gib=generation.vllm_cpu_kv_cache_gib,
        seed=seed,
    )
    return backend, "vLLM (asked for)" if name == "vllm" else f"vLLM ({why})"


def build(config: NodeConfig, source: str | None = None) -> Runtime:
    """Load the model (from `source`, a checkpoint say, else `config.model.name`) and everything around it."""
    torch.set_num_threads(config.threads)
    transformers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()
    source = source or resolve_model_source(config.model.name)
    model, tokenizer = load_model(source, config.model.dtype)
    tasks = make_tasks(config)
    try:
        prompter = Prompter(
            tokenizer,
            config.model.chat_template,
            config.model.system_prompt,
            model.generation_config,
            tasks.examples(config.model.examples),
        )
    except ValueError as exc:
        raise UserError(f"model {config.model.name!r}: {exc}") from exc
    gen = config.generation
    backend, why = choose_backend(gen.backend, model, source, prompter, gen, config.model.dtype, config.seed)
    return Runtime(model, tokenizer, prompter, tasks, backend, source, why)


def behaviour(outs: Sequence[Completion]) -> tuple[tuple[float, ...], ...] | None:
    """A group's behaviour log-probs: every completion's, or None when any was not recorded."""
    rows = [c.logprobs for c in outs if c.logprobs is not None]
    return tuple(rows) if len(rows) == len(outs) else None
