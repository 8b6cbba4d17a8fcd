"""`swarmnode bench round`: one RL round of fixed work through swarmnode (each backend) and through TRL's
GRPOTrainer, in the same run, on the same model, prompts and rewards.

Work: 8 reasoning-gym `basic_arithmetic` questions x 8 completions x up to 64 new tokens, temperature 1,
one GRPO step (beta 0, clip 0.2 / 0.28), on a ~5M-parameter Llama built on the spot with random weights.
A random model never answers correctly, so every system gets the same reward: the verifier's score plus
a small deterministic bonus (completion length mod 7, x 0.01) that keeps reward variance non-zero and
makes every system do its full update. Each system starts from the same saved weights; times are for
one cold round after the engine or trainer exists. With `--model NAME` (SmolLM2, say): that model instead, with
the node's own prompt (chat template, worked examples; TRL gets the same prompt as text) on the node's own tasks.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from swarmnode.bench.generate import node_runtime
from swarmnode.bench.report import format_table, write_json
from swarmnode.config import TrainConfig
from swarmnode.groups import Group
from swarmnode.learner import Learner
from swarmnode.models import load_model
from swarmnode.models.tiny import save_tiny_llama
from swarmnode.policy import Prompter, SamplingParams
from swarmnode.policy.hf import HFBackend
from swarmnode.policy.vllm import VLLMBackend, vllm_status
from swarmnode.tasks import Question, make_task

QUESTIONS, COMPLETIONS, NEW_TOKENS, LR = 8, 8, 64, 1e-5


Score = Callable[[Question, str], float]


def with_bonus(score: Score) -> Score:
    """The verifier's score plus the length bonus that keeps every group's rewards varied."""
    return lambda question, completion: score(question, completion) + 0.01 * (len(completion) % 7)


reward = with_bonus(make_task("basic_arithmetic").score)


def _model_dir(folder: Path) -> Path:
    return Path(save_tiny_llama(folder, hidden=256, layers=6, heads=4, intermediate=688, max_positions=512))


def _swarmnode_round(
    backend: Any, model: Any, prompter: Prompter, questions: list[Question], score: Score = reward
) -> dict[str, float]:
    learner = Learner(model, TrainConfig(lr=LR, warmup_updates=0), prompter)
    start = time.perf_counter()
    prompts = [prompter.prompt_ids(q.text) for q in questions]
    outputs = backend.generate(prompts, SamplingParams(n=COMPLETIONS, max_new_tokens=NEW_TOKENS, seed=0))
    groups = [
        Group(
            q,
            tuple(c.text for c in outs),
            tuple(score(q, c.text) for c in outs),
            token_ids=tuple(c.token_ids for c in outs),
        )
        for q, outs in zip(questions, outputs, strict=True)
    ]
    generate_s = time.perf_counter() - start
    stats = learner.step(groups)
    backend.sync_weights()
    round_s = time.perf_counter() - start
    tokens = sum(len(c.token_ids) for outs in outputs for c in outs)
    return {
        "generate_s": generate_s,
        "train_s": round_s - generate_s,
        "round_s": round_s,
        "generated_tokens": tokens,
        "stepped": float(stats.stepped),
    }


def _trl_round(
    source: Path, questions: list[Question], prompts: list[str] | None = None, score: Score = reward
) -> dict[str, float]:
    """TRL's round on `prompts` (the questions' texts unless given: the node's rendered prompts)."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer  # type: ignore[attr-defined]

    model, tokenizer = load_model(str(source))
    texts = prompts or [q.text for q in questions]
    by_text = dict(zip(texts, questions, strict=True))

    def rewards(prompts: list[str], completions: list[str], **_: Any) -> list[float | None]:
        return [score(by_text[p], c) for p, c in zip(prompts, completions, strict=True)]

    with tempfile.TemporaryDirectory(prefix="swarmnode-trl-") as out:
        args = GRPOConfig(
            output_dir=out,
            use_cpu=True,
            bf16=False,
            per_device_train_batch_size=QUESTIONS * COMPLETIONS,
            num_generations=COMPLETIONS,
            max_completion_length=NEW_TOKENS,
            beta=0.0,
            max_steps=1,
            learning_rate=LR,
            report_to=[],
            save_strategy="no",
            temperature=1.0,
            epsilon=0.2,
            epsilon_high=0.28,
            disable_tqdm=True,
            logging_strategy="no",
            seed=0,
        )
        trainer = GRPOTrainer(
            model=model,
            reward_funcs=rewards,
            args=args,
            processing_class=tokenizer,
            train_dataset=Dataset.from_list([{"prompt": text} for text in texts]),
        )
        spent = {"generate": 0.0}
        original = trainer._generate_and_score_completions

        def timed(*a: Any, **k: Any) -> Any:
            t = time.perf_counter()
            result = original(*a, **k)
            spent["generate"] += time.perf_counter() - t
            return result

        trainer._generate_and_score_completions = timed  # type: ignore[method-assign]
        start = time.perf_counter()
        trainer.train()
        round_s = time.perf_counter() - start
    return {"generate_s": spent["generate"], "train_s": round_s - spent["generate"], "round_s": round_s}


def _fresh_model(source: Path, prompter: Prompter | None) -> tuple[Any, Prompter]:
    """A fresh copy of the bench's weights, with `prompter` (the node's, for a named model) or the bare question."""
    model, tokenizer = load_model(str(source))
    return model, prompter or Prompter(tokenizer, "off", "")


def run(threads: int, json_path: Path, model: str | None = None) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="swarmnode-bench-round-") as tmp:
        if model:
            rt = node_runtime(model, threads)
            source, questions, score = Path(rt.source), rt.tasks.draw(0, 0, QUESTIONS), with_bonus(rt.tasks.score)
            tasks = "/".join(rt.tasks.tasks)
            rendered = [rt.tokenizer.decode(rt.prompter.prompt_ids(q.text)) for q in questions]
            subject = f"{model} ({sum(p.numel() for p in rt.model.parameters()) / 1e6:.1f}M)"
            node_prompter: Prompter | None = rt.prompter
            del rt  # each system starts from the saved weights
        else:
            task = make_task("basic_arithmetic")
            questions = [task.question(r) for r in task.refs(0, 0, QUESTIONS, "train")]
            source, score, rendered, subject = _model_dir(Path(tmp) / "model"), reward, None, "4.8M-parameter Llama"
            tasks, node_prompter = "basic_arithmetic", None
        torch.set_num_threads(threads)
        rows.append({"system": "TRL GRPOTrainer (fp32)", **_trl_round(source, questions, rendered, score)})
        for system, use_vllm in (("swarmnode, transformers", False), ("swarmnode, vLLM", True)):
            ok, why = vllm_status()
            if use_vllm and not ok:
                print(f"(no vLLM row: {why})")
                continue
            policy, prompter = _fresh_model(source, node_prompter)
            backend = (
                VLLMBackend.with_defaults(policy, str(source), prompter) if use_vllm else HFBackend(policy, prompter)
            )
            rows.append({"system": system, **_swarmnode_round(backend, policy, prompter, questions, score)})
    trl = rows[0]["round_s"]
    for row in rows:
        row["x_trl_round"] = row["round_s"] / trl
    print(
        f"round bench: {QUESTIONS} {tasks} questions x {COMPLETIONS} completions x up to {NEW_TOKENS} "
        f"new tokens, {subject}, one GRPO step, {threads} torch thread(s)"
    )
    print(
        format_table(
            ("system", "generate s", "train s", "round s", "x TRL"),
            [(r["system"], r["generate_s"], r["train_s"], r["round_s"], f"{r['x_trl_round']:.2f}x") for r in rows],
        )
    )
    write_json(
        json_path,
        "round",
        {
            "threads": threads,
            "model": subject,
            "tasks": tasks,
            "questions": QUESTIONS,
            "completions": COMPLETIONS,
            "max_new_tokens": NEW_TOKENS,
        },
        rows,
    )
    print(f"wrote {json_path}")
    return rows
