"""Slow: the embedded model, trained alone with a fixed seed, gets better on held-out questions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SWARMNODE = str(Path(sys.executable).with_name("swarmnode"))


@pytest.mark.slow
def test_default_model_improves_held_out_accuracy(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            SWARMNODE,
            "join",
            "--silo",
            "--rounds",
            "150",
            "--seed",
            "0",
            "--run-dir",
            str(tmp_path),
            "--set",
            "eval.every=150",
            "--threads",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert out.returncode == 0, out.stderr
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    evals = {r["round"]: r["eval_greedy_accuracy"] for r in rows if "eval_greedy_accuracy" in r}
    assert set(evals) == {0, 150}
    assert evals[150] >= evals[0] + 0.10, evals


@pytest.mark.slow
@pytest.mark.parametrize(
    ("model", "asked"),
    [
        ("tiny-add", "avx2"),
        ("tiny-add", "avx512"),
        ("tiny-add", "default"),
        pytest.param("tiny-mix", "default", marks=pytest.mark.slow),  # about 5 minutes
    ],
)
def test_build_script_reproduces_the_embedded_weights(tmp_path: Path, model: str, asked: str) -> None:
    """The build script, run as a user runs it, gives the shipped weights bit for bit whatever kernel path the
    caller's environment asks torch for: AVX2, AVX-512 (the path an AVX-512 CPU takes by itself) or no
    vectorisation at all ("default", which any machine can take and which gives other weights unpinned)."""
    import os

    from safetensors.torch import load_file

    from swarmnode.models.build_tiny import KERNEL_ENV
    from swarmnode.models.loading import EMBEDDED_DIR

    env = {**os.environ, "ATEN_CPU_CAPABILITY": asked}
    for key in KERNEL_ENV.keys() - {"ATEN_CPU_CAPABILITY"}:
        env.pop(key, None)
    out = subprocess.run(
        [sys.executable, "-m", "swarmnode.models.build_tiny", "--model", model, "--out", str(tmp_path), "--quiet"],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    shipped = load_file(str(EMBEDDED_DIR.with_name(model) / "model.safetensors"))
    rebuilt = load_file(str(tmp_path / "model.safetensors"))
    assert shipped.keys() == rebuilt.keys()
    for key in shipped:
        assert (shipped[key] == rebuilt[key]).all(), key
    meta = json.loads((tmp_path / "recipe.json").read_text())
    assert meta["kernel_path"] == {**KERNEL_ENV, "torch_cpu_capability": "AVX2"}
    recorded = json.loads((EMBEDDED_DIR.with_name(model) / "recipe.json").read_text())
    meta.pop("train_seconds"), recorded.pop("train_seconds")
    assert recorded == meta  # the shipped recipe, its held-out accuracies and its kernel path, as rebuilt


@pytest.mark.slow
def test_a_swarm_learns_ahead_of_silo_on_the_sapo_benchmark(tmp_path: Path) -> None:
    """4 nodes of the embedded tiny-mix on six task families, fixed seed, 90 rounds: the node's
    defaults in a swarm (8 own + 8 peers' groups, over the in-memory transport, with the real learner and
    validation chain) against the same nodes alone, side by side in one run. The swarm is ahead on cumulative
    reward of the nodes' own completions and on held-out greedy accuracy (240 questions) at the end. About 5
    minutes on 2 cores (the two runs in parallel)."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from swarmnode.bench import sapo

    args = (0, 4, 90, 240, 90, str(tmp_path))
    with ProcessPoolExecutor(max_workers=2, mp_context=get_context("spawn")) as pool:
        silo_f, swarm_f = (pool.submit(sapo.run_one, "mix", config, *args) for config in ("silo", "8/8"))
        silo, swarm = silo_f.result(), swarm_f.result()
    assert swarm["external_groups_per_node_round"] > 4  # it did train on peers' groups
    assert swarm["generated_tokens_per_node_round"] <= 1.05 * silo["generated_tokens_per_node_round"]
    summary = {k: (silo[k], swarm[k]) for k in ("cumulative_reward", "held_out_accuracy")}
    assert swarm["cumulative_reward"] > silo["cumulative_reward"], summary
    assert swarm["held_out_accuracy"] > silo["held_out_accuracy"], summary
