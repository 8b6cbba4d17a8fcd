"""Import boundaries, checked in fresh interpreters: `protocol` imports alone; `swarmnode report` and
`swarmnode bootstrap` (no model) never load the model stack, each run for real as a user would."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from swarmnode.swarm.transports.libp2p import libp2p_available
from tests.helpers import read_line_matching

WATCHED = ("torch", "transformers", "swarmnode.node")
SAY_LOADED = f"print('LOADED', *[m for m in {WATCHED!r} if m in sys.modules], flush=True)\n"
PROBE = "import sys\nfrom swarmnode.cli import main\ncode = main(sys.argv[1:])\n" + SAY_LOADED + "sys.exit(code)\n"
"""Runs `swarmnode ARGS...` in this interpreter, then prints which of WATCHED it imported."""


def loaded(output: str) -> set[str]:
    lines = [line for line in output.splitlines() if line.startswith("LOADED")]
    assert len(lines) == 1, f"the probe did not finish: {output[-2000:]}"
    return set(lines[0].split()[1:])


def test_protocol_imports_without_torch_or_network() -> None:
    code = (
        "import sys, protocol, protocol.testvectors\n"
        "bad = [m for m in ('torch', 'hivemind', 'aiohttp', 'transformers', 'swarmnode', 'socket', 'asyncio')"
        " if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_the_dashboard_loads_neither_torch_nor_the_node() -> None:
    """`join --tui` keeps the dashboard in its own process: that process holds no model."""
    code = "import sys, swarmnode.tui, swarmnode.tui.supervise\n" + SAY_LOADED
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert loaded(out.stdout) == set()


def test_report_loads_neither_torch_nor_the_node(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    rows = [{"round": 1, "mean_reward": 0.5}, {"round": 1, "eval_greedy_accuracy": 0.25}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = subprocess.run(
        [sys.executable, "-c", PROBE, "report", str(run), "--out", str(tmp_path / "r.png")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "r.png").exists()
    assert loaded(out.stdout) == set()


@pytest.mark.parametrize("transport", ["hivemind", "libp2p"])
def test_bootstrap_loads_no_model_stack(transport: str, tmp_path: Path, procs: list[subprocess.Popen[str]]) -> None:
    """Neither loads torch, transformers or the node (hivemind's package imports torch itself: the bootstrap
    imports only its DHT, `hivemind_light.py`)."""
    if transport == "libp2p" and not libp2p_available():
        pytest.skip("the libp2p extra is not installed")
    # the default swarm.host_maddrs listen on 127.0.0.1 only, NAT traversal off
    command = [sys.executable, "-c", PROBE, "bootstrap", "--transport", transport]  # a bootstrap has no run dir
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
    procs.append(proc)
    read_line_matching(proc, r"peers join with: --peers /ip4/127\.0\.0\.1/", limit=120)
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output
    assert "bootstrap node stopped" in output
    assert not loaded(output) & {"torch", "transformers", "swarmnode.node"}


def test_the_dht_without_torch_falls_back_to_the_ordinary_import_when_it_cannot_be_done() -> None:
    code = (
        "import sys\n"
        "from swarmnode.swarm.transports import hivemind_light as light\n"
        "light.UTILS_NAMES = {**light.UTILS_NAMES, 'logging': ('no_such_name',)}\n"
        "print('light', light.import_dht_without_torch(), 'hivemind' in sys.modules)\n"
        "import hivemind\n"
        "from hivemind.dht.node import DHTNode\n"
        "print('full', hasattr(hivemind, 'DHT'), 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert out.stdout.split("\n")[:2] == ["light False False", "full True True"]
