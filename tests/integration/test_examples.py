"""Every example is exercised: the configs load (the GPU ones are validated, not run, on this CPU machine),
the silo config trains, and the 3-node local swarm script runs, shares and stops by itself."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from swarmnode.config import load_config
from tests.helpers import SWARMNODE

EXAMPLES = Path(__file__).parents[2] / "examples"


def test_every_config_is_valid() -> None:
    configs = sorted(EXAMPLES.rglob("*.toml"))
    assert len(configs) == 5
    loaded = {p.relative_to(EXAMPLES).as_posix(): load_config(p) for p in configs}
    gpu = loaded["gpu-qwen.toml"]
    assert gpu.model.name == "Qwen/Qwen2.5-0.5B-Instruct" and gpu.generation.backend == "vllm" and not gpu.silo
    assert gpu.swarm.transport.type == "hivemind" and gpu.swarm.host_maddrs == ["/ip4/0.0.0.0/tcp/31337"]
    small, large = loaded["heterogeneous/small.toml"], loaded["heterogeneous/large.toml"]
    assert small.swarm.name == large.swarm.name and small.task.names == large.task.names
    assert small.model.name != large.model.name
    assert loaded["silo-cpu.toml"].silo and not loaded["swarm-cpu.toml"].silo


def test_every_join_command_in_the_docs_uses_a_config_of_its_mode() -> None:
    """A `join --swarm ... --config X` line in the README or an example must not name a silo config (and
    `join --silo` not a swarm one): the README once suggested silo-cpu.toml for joining a swarm."""
    import re

    root = EXAMPLES.parent
    texts = [root / "README.md", *EXAMPLES.rglob("*.toml"), *EXAMPLES.rglob("*.py")]
    checked = 0
    for path in texts:
        for line in path.read_text().splitlines():
            found = re.search(r"join (--swarm|--silo)\b.*--config (examples/\S+\.toml)", line)
            if found:
                config = load_config(root / found.group(2))
                assert config.silo == (found.group(1) == "--silo"), (path.name, line)
                checked += 1
    assert checked >= 3


def test_the_silo_cpu_config_trains(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            *(SWARMNODE, "join", "--silo", "--config", str(EXAMPLES / "silo-cpu.toml"), "--rounds", "3"),
            *("--run-dir", str(tmp_path / "run"), "--set", "eval.every=0", "--set", "status.port=0"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "stopped after round 3" in out.stdout


def test_the_local_swarm_script(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / "local_swarm.py"), "--minutes", "0.75", "--dir", str(tmp_path / "swarm")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    lines = [line for line in out.stdout.splitlines() if re.match(r"node\d: \d+ rounds", line)]
    assert len(lines) == 3, out.stdout
    for i, line in enumerate(lines):
        others = {f"node{j}" for j in range(3) if j != i}
        assert all(name in line for name in others), line  # trained on groups from both other nodes
