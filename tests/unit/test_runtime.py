"""runtime: one place builds what a node computes with, and `--backend auto` chooses by where and how big."""

from __future__ import annotations

from typing import Any

import pytest

from swarmnode import runtime
from swarmnode.config import GenerationConfig, load_config, parse_override
from swarmnode.policy.base import Prompter
from swarmnode.policy.hf import HFBackend
from tests.helpers import tiny_model


class FakeVLLM:
    name = "vllm"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args


@pytest.fixture
def vllm_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "vllm_status", lambda: (True, "vLLM is installed"))
    monkeypatch.setattr(runtime, "VLLMBackend", FakeVLLM)


def choose(name: str, hidden: int) -> tuple[Any, str]:
    model, tok = tiny_model(hidden=hidden, layers=2, heads=2)
    return runtime.choose_backend(name, model, "x", Prompter(tok, "off", ""), GenerationConfig(), "float32", 0)


def test_auto_keeps_a_small_model_on_transformers_on_a_cpu(vllm_installed: None) -> None:
    backend, why = choose("auto", hidden=32)
    assert isinstance(backend, HFBackend) and "parameter model on a CPU" in why


def test_auto_takes_vllm_for_a_model_big_enough(vllm_installed: None) -> None:
    backend, why = choose("auto", hidden=512)  # about 5M parameters
    assert isinstance(backend, FakeVLLM) and why.startswith("vLLM")


def test_asked_for_is_what_you_get(vllm_installed: None) -> None:
    assert isinstance(choose("vllm", hidden=32)[0], FakeVLLM)
    assert isinstance(choose("hf", hidden=512)[0], HFBackend)


def test_auto_without_vllm_says_why() -> None:
    backend, why = choose("auto", hidden=32)
    assert isinstance(backend, HFBackend) and why.startswith("transformers (")


def test_build_gives_the_embedded_model_with_its_tasks(tmp_path: Any) -> None:
    config = load_config(None, [parse_override(f"run_dir={tmp_path}"), parse_override("generation.backend=hf")])
    rt = runtime.build(config)
    groups = rt.rollouts(rt.tasks.draw(0, 0, 2), runtime.SamplingParams(n=3, max_new_tokens=8, seed=1))
    assert [len(g.completions) for g in groups] == [3, 3]
    assert all(g.local and g.token_ids is not None and len(g.token_ids) == 3 for g in groups)
    assert all(0.0 <= r <= 1.0 for g in groups for r in g.rewards)
