"""The container files, checked without a Docker engine (this machine has none): hadolint on both
Dockerfiles, and the compose file's structure read as YAML (`docker compose config` needs the client).
What is not tested here: building the images and running the compose stack."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

DOCKER = Path(__file__).parents[2] / "docker"
HADOLINT = Path(sys.executable).with_name("hadolint")


@pytest.mark.parametrize("name", ["cpu.Dockerfile", "gpu.Dockerfile"])
def test_dockerfiles_pass_hadolint_and_house_rules(name: str) -> None:
    out = subprocess.run([str(HADOLINT), str(DOCKER / name)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    text = (DOCKER / name).read_text()
    assert re.search(r"^USER 10001:10001$", text, re.M)  # never root at run time
    assert "HEALTHCHECK" in text and "/status" in text
    assert "torch==2.13.0" in text
    assert not re.search(r"(?i)(token|secret|password)\s*=", text)  # nothing secret baked into a layer
    ignore = (DOCKER / f"{name}.dockerignore").read_text().splitlines()
    assert "*" in ignore  # everything is excluded unless listed
    assert "**/*.pem" in ignore  # identity keys never enter the build context


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    return data


def test_compose_runs_a_bootstrap_and_three_nodes_on_a_private_network() -> None:
    compose = _compose()
    services = compose["services"]
    assert {"bootstrap", "node1", "node2", "node3", "tui"} <= set(services)
    assert compose["networks"]["swarm"]["internal"] is True
    volumes = set()
    for name in ("node1", "node2", "node3"):
        node = services[name]
        assert node["networks"] == ["swarm"]
        data = [v for v in node["volumes"] if v.endswith(":/data")]
        assert len(data) == 1
        volumes.add(data[0])
        command = node["command"]
        assert command[0] == "join" and "--peers-file" in command
        assert "status.token=${STATUS_TOKEN}" in command and "status.host=0.0.0.0" in command
        assert node["depends_on"]["bootstrap"]["condition"] == "service_healthy"
        assert "STATUS_TOKEN" in node["environment"]
    assert len(volumes) == 3  # a volume each for keys, checkpoints and logs
    boot = services["bootstrap"]["command"]
    assert boot[0] == "bootstrap" and "--addr-file" in boot
    assert services["tui"]["profiles"] == ["tui"] and services["tui"]["tty"] is True


def test_the_compose_commands_are_valid_swarmnode_commands(tmp_path: Path) -> None:
    """Each service's command parses with the real CLI (checked with `config show`, which resolves the same
    flags and settings without starting anything)."""
    from swarmnode.cli import build_parser

    services = _compose()["services"]
    for name in ("bootstrap", "node1"):
        argv = [a.replace("${STATUS_TOKEN}", "demo-token") for a in services[name]["command"]]
        args = build_parser().parse_args(argv)
        assert args.command in ("join", "bootstrap")
    addr = tmp_path / "bootstrap.addr"
    addr.write_text("/ip4/172.20.0.2/tcp/31337/p2p/12D3KooWMz7ZLsS3F6D8B5UQr7gwLPnpHTbXTAR886r9oy7Capoc\n")
    argv = [a.replace("${STATUS_TOKEN}", "demo-token") for a in services["node1"]["command"][1:]]
    argv = [str(addr) if a == "/shared/bootstrap.addr" else a for a in argv]
    out = subprocess.run(
        [str(Path(sys.executable).with_name("swarmnode")), "config", "show", *_show_flags(argv)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert '"token": "demo-token"' in out.stdout and '"host": "0.0.0.0"' in out.stdout


def _show_flags(argv: list[str]) -> list[str]:
    """join's flags that `config show` shares (it has no --swarm or --peers-file)."""
    keep: list[str] = []
    items = iter(argv)
    for a in items:
        if a in ("--swarm", "--peers-file"):
            next(items)  # and its value
        else:
            keep.append(a)
    return keep
