"""Held-out accuracy: greedy accuracy and pass@k on a task's eval split."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from swarmnode.config import EvalConfig
from swarmnode.policy.base import PolicyBackend, Prompter, SamplingParams
from swarmnode.run_dir import EvalRow
from swarmnode.tasks import TaskSet


@dataclass(frozen=True)
class EvalResult:
    questions: int
    greedy_accuracy: float
    """Share of questions whose greedy completion scores 1."""
    pass_at_k: float | None = None
    """Share of questions with at least one of k sampled completions scoring 1 (None if not measured)."""
    k: int = 0
    mean_reward: float = 0.0
    """Mean greedy reward (differs from accuracy where the verifier gives partial credit)."""
    by_task: dict[str, float] = field(default_factory=dict)
    """Greedy accuracy per task family."""


def evaluate(
    backend: PolicyBackend,
    prompter: Prompter,
    tasks: TaskSet,
    *,
    questions: int,
    seed: int,
    max_new_tokens: int,
    k: int = 0,
    temperature: float = 1.0,
) -> EvalResult:
    items = tasks.draw(seed, 0, questions, split="eval")
    prompts = [prompter.prompt_ids(q.text) for q in items]
    greedy = backend.generate(prompts, SamplingParams(n=1, max_new_tokens=max_new_tokens, temperature=0.0))
    rewards = [tasks.score(q, c[0].text) for q, c in zip(items, greedy, strict=True)]
    accuracy = sum(r >= 1.0 for r in rewards) / len(items)
    pass_k = None
    if k > 0:
        sampled = backend.generate(
            prompts, SamplingParams(n=k, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)
        )
        solved = [any(tasks.score(q, c.text) >= 1.0 for c in group) for q, group in zip(items, sampled, strict=True)]
        pass_k = sum(solved) / len(items)
    solved_by: dict[str, list[bool]] = {}
    for q, r in zip(items, rewards, strict=True):
        solved_by.setdefault(q.ref.task, []).append(r >= 1.0)
    by_task = {name: sum(s) / len(s) for name, s in sorted(solved_by.items())}
    return EvalResult(len(items), accuracy, pass_k, k, sum(rewards) / len(items), by_task)


def evaluate_row(
    backend: PolicyBackend, prompter: Prompter, tasks: TaskSet, config: EvalConfig, max_new_tokens: int, round_: int
) -> EvalRow:
    """A node's periodic held-out evaluation (greedy), as the row it reports."""
    start = time.perf_counter()
    result = evaluate(
        backend, prompter, tasks, questions=config.questions, seed=config.seed, max_new_tokens=max_new_tokens
    )
    return {
        "round": round_,
        "time": time.time(),
        "eval_greedy_accuracy": result.greedy_accuracy,
        "eval_mean_reward": result.mean_reward,
        "eval_questions": result.questions,
        "eval_by_task": result.by_task,
        "eval_s": time.perf_counter() - start,
    }
