"""Choosing the generation backend: `auto` takes vLLM when it is installed, else transformers."""

from __future__ import annotations

from typing import Any

from swarmnode.policy.base import PolicyBackend, Prompter
from swarmnode.policy.hf import HFBackend
from swarmnode.policy.vllm import VLLMBackend, vllm_status


def make_backend(
    name: str, model: Any, source: str, prompter: Prompter, generation: Any, dtype: str, seed: int
) -> tuple[PolicyBackend, str]:
    """The generation backend for `generation.backend` ("auto", "hf" or "vllm") and why it was chosen."""
    if name == "hf":
        return HFBackend(model, prompter), "transformers (asked for)"
    ok, why = vllm_status()
    if name == "auto" and not ok:
        return HFBackend(model, prompter), f"transformers ({why})"
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
