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
def test_build_script_reproduces_the_embedded_weights(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    from swarmnode.models.build_tiny import RECIPE, build
    from swarmnode.models.loading import EMBEDDED_DIR

    build(tmp_path, RECIPE.steps, quiet=True)
    shipped = load_file(str(EMBEDDED_DIR / "model.safetensors"))
    rebuilt = load_file(str(tmp_path / "model.safetensors"))
    assert shipped.keys() == rebuilt.keys()
    for key in shipped:
        assert (shipped[key] == rebuilt[key]).all(), key
