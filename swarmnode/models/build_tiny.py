"""Reproduce the embedded default model: `python -m swarmnode.models.build_tiny [--out DIR]`.

A ~1.1M-parameter Llama with a byte-level tokenizer, pre-trained with plain supervised learning on the
built-in `add` task (2 digits, train split) and stopped early, so that its held-out greedy accuracy is
low but not zero: GRPO needs some successes in each group to learn from. CPU, one thread, fixed seed,
and a pinned kernel path (`KERNEL_ENV`: torch's AVX2 kernels, MKL's AVX2 code branch, oneDNN capped at
AVX2): the same command gives the same weights, bit for bit, on any x86-64 CPU with AVX2 or better.
Without the pin an AVX-512 CPU picks other kernels and the last digits of the weights differ.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from swarmnode.evaluation import evaluate
from swarmnode.models.loading import EMBEDDED_DIR
from swarmnode.models.tiny import byte_tokenizer, tiny_llama
from swarmnode.policy.base import Prompter
from swarmnode.policy.hf import HFBackend
from swarmnode.tasks import TaskSet, builtin
from swarmnode.tasks.builtin import BuiltinTask


@dataclass(frozen=True)
class Recipe:
    families: tuple[tuple[str, int, float], ...] = (("add", 2, 1.0),)
    """(built-in task family, level, share of the examples): a family with a small share starts sparse."""
    steps: int = 230
    batch: int = 64
    lr: float = 1e-3
    seed: int = 1234
    hidden: int = 128
    layers: int = 4
    heads: int = 4
    intermediate: int = 512
    decay: bool = False
    """Decay the learning rate linearly to zero (else constant after warm-up). Off: a decayed model ends
    with flat digit distributions (greedy 22% but sampled 9%) from which GRPO barely learns."""


RECIPE = Recipe()
MIX_FAMILIES = (
    ("add", 2, 1.0),
    ("sub", 2, 1.0),
    ("max", 2, 0.5),
    ("count", 2, 0.6),
    ("sort", 2, 0.15),
    ("mul", 2, 0.4),
)
RECIPES = {
    "tiny-add": RECIPE,
    "tiny-mix": Recipe(families=MIX_FAMILIES, steps=900),
    "tiny-mix-small": Recipe(
        families=MIX_FAMILIES, steps=900, hidden=96, layers=3, heads=4, intermediate=384, seed=4321
    ),
    "tiny-spec-a": Recipe(
        families=(("add", 2, 1.0), ("sub", 2, 1.0), ("max", 2, 0.04), ("count", 2, 0.001)), steps=900
    ),
    "tiny-spec-b": Recipe(
        families=(("add", 2, 0.15), ("sub", 2, 0.15), ("max", 2, 1.0), ("count", 2, 1.0)), steps=800, seed=1235
    ),
}
"""The embedded models: `tiny-add` (the default) and `tiny-mix`, several families at uneven starting
accuracies (the SAPO benchmark world of `bench sapo --world mix`). Not embedded, built by `bench sapo` into its
folder (`--out`): `tiny-mix-small` (tiny-mix at hidden 96, 3 layers: `--hetero`'s other size), and for
`--world specialists` `tiny-spec-a`, strong on add and sub (62% and 52% held-out greedy),
weak on max (10%) and count (32%: a model that knows count's answer format gets a third right by answering
1; with fewer count examples it never learns the format and gets none), and `tiny-spec-b`, strong on max and
count (94%, 90%), weak on add and sub (9%, 7%); about 2 minutes each on one core."""

KERNEL_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
"""The CPU kernel path the shipped weights were built with. These variables are read once, when torch
and its math libraries load, so `main` runs the build in a child process that has them from the start."""


def kernel_path() -> dict[str, str]:
    """What this process computes with: the pinned variables as set, and the capability torch reports."""
    return {
        **{k: os.environ.get(k, "") for k in KERNEL_ENV},
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }


def kernels_pinned() -> bool:
    return all(os.environ.get(k) == v for k, v in KERNEL_ENV.items())


def family_task(name: str, level: int) -> BuiltinTask:
    return builtin.FAMILIES[name](level)


def build(out: Path, steps: int, quiet: bool = False, recipe: Recipe = RECIPE) -> dict[str, float | dict[str, float]]:
    if torch.backends.cpu.get_cpu_capability() != "AVX2":
        print(
            f"note: torch computes with {torch.backends.cpu.get_cpu_capability()} kernels here, not AVX2: "
            "the weights will not match the shipped ones bit for bit",
            file=sys.stderr,
        )
    torch.set_num_threads(1)
    torch.manual_seed(recipe.seed)
    rng = random.Random(recipe.seed)
    tokenizer = byte_tokenizer()
    model = tiny_llama(
        tokenizer,
        recipe.hidden,
        recipe.layers,
        recipe.heads,
        recipe.intermediate,
        seed=recipe.seed,
    )
    prompter = Prompter(tokenizer, "off", "")
    families = [family_task(name, level) for name, level, _ in recipe.families]
    shares = [share for *_, share in recipe.families]
    tasks = TaskSet(families)
    pick = random.Random(recipe.seed + 1)  # which family each example is of (apart from `rng`, which
    # draws the questions, so a one-family recipe's questions do not depend on the family draws)
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr)
    warmup = max(1, steps // 20)
    # linear warm-up, then linear decay to zero: the model stops in a settled state, not mid-oscillation
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / max(1, steps - warmup)) if recipe.decay else 1.0),
    )
    start = time.perf_counter()
    for step in range(steps):
        first = rng.randrange(2**31)
        rows = []
        for i in range(recipe.batch):
            task = pick.choices(families, shares)[0]
            q = task.question(task.refs(seed=recipe.seed, start=first + i, count=1, split="train")[0])
            rows.append((prompter.prompt_ids(q.text), prompter.completion_ids(f"<answer>{q.answer}</answer>")))
        width = max(len(p) + len(c) for p, c in rows)
        ids = torch.full((len(rows), width), prompter.pad_id)
        labels = torch.full((len(rows), width), -100)
        for i, (p, c) in enumerate(rows):
            ids[i, : len(p) + len(c)] = torch.tensor(p + c)
            labels[i, len(p) : len(p) + len(c)] = torch.tensor(c)  # loss on the answer only
        loss = model(input_ids=ids, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if not quiet and (step + 1) % 50 == 0:
            probe = evaluate(HFBackend(model, prompter), prompter, tasks, questions=200, seed=777, max_new_tokens=8)
            each = " ".join(f"{k} {v:.0%}" for k, v in probe.by_task.items()) if len(families) > 1 else ""
            print(
                f"step {step + 1}/{steps} loss {loss.item():.3f} held-out greedy {probe.greedy_accuracy:.1%} "
                f"({time.perf_counter() - start:.0f}s) {each}"
            )
    backend = HFBackend(model, prompter)
    result = evaluate(backend, prompter, tasks, questions=500, seed=12345, max_new_tokens=8, k=8)
    summary: dict[str, float | dict[str, float]] = {
        "held_out_greedy_accuracy": result.greedy_accuracy,
        "held_out_pass_at_8": result.pass_at_k or 0.0,
        "train_seconds": time.perf_counter() - start,
    }
    if len(families) > 1:
        summary["held_out_greedy_by_task"] = result.by_task
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    meta = {**asdict(recipe), "steps": steps, **summary, "kernel_path": kernel_path()}
    (out / "recipe.json").write_text(json.dumps(meta, indent=2) + "\n")
    if not quiet:
        print(json.dumps(summary))
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(RECIPES), default="tiny-add", help="which embedded model")
    parser.add_argument("--out", type=Path, help="where to write it (default: the embedded model's folder)")
    parser.add_argument("--steps", type=int, help="training steps (default: the recipe's)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    args = parser.parse_args()
    if not kernels_pinned():
        # re-run with the pinned kernel path, whatever the caller's environment says
        env = {**os.environ, **KERNEL_ENV}
        argv = [sys.executable, "-m", "swarmnode.models.build_tiny", *sys.argv[1:]]
        raise SystemExit(subprocess.run(argv, env=env, check=False).returncode)  # noqa: S603
    recipe = RECIPES[args.model]
    out = args.out or EMBEDDED_DIR.with_name(args.model)
    build(out, args.steps or recipe.steps, quiet=args.quiet, recipe=recipe)


if __name__ == "__main__":
    main()
