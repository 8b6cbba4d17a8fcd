"""A volunteer's first hour: no crash loop after a broken checkpoint or metrics line, one line and
exit 2 for every bad path, port and file a user can give, mistakes refused or said instead of accepted
silently. Real `swarmnode` processes, as a user runs them."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

SWARMNODE = str(Path(sys.executable).with_name("swarmnode"))
FAST = ["--set", "eval.every=0", "--set", "generation.questions_per_round=8", "--threads", "1"]
PEER_ID = "12D3KooWMz7ZLsS3F6D8B5UQr7gwLPnpHTbXTAR886r9oy7Capoc"


def swarmnode(*args: str, timeout: float = 300, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SWARMNODE, *args], capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )


def one_line(out: subprocess.CompletedProcess[str]) -> str:
    """The single error line of a refused command (asserting it is one, with exit 2 and no traceback)."""
    assert out.returncode == 2, (out.returncode, out.stdout[-2000:], out.stderr[-2000:])
    assert "Traceback" not in out.stderr and out.stderr.strip().count("\n") == 0, out.stderr
    assert out.stderr.startswith("swarmnode: error: "), out.stderr
    return out.stderr.strip()


def checkpoints(run_dir: Path) -> list[str]:
    return sorted(p.name for p in (run_dir / "checkpoints").glob("round-*"))


# ---------------------------------------------------------------- 1. no crash loop


@pytest.mark.parametrize("damage", ["truncated weights", "garbage meta", "no meta", "empty folder"])
def test_a_node_resumes_and_keeps_running_after_a_broken_newest_checkpoint(tmp_path: Path, damage: str) -> None:
    common = ["join", "--silo", "--run-dir", str(tmp_path), "--set", "checkpoint.every=1", *FAST]
    assert swarmnode(*common, "--rounds", "3").returncode == 0
    newest = tmp_path / "checkpoints" / "round-000003"
    if damage == "truncated weights":
        weights = newest / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:-100])
    elif damage == "garbage meta":
        (newest / "meta.json").write_text('{"format": 1, "round": 3, "fil')
    elif damage == "no meta":
        (newest / "meta.json").unlink()
    else:
        for path in newest.iterdir():
            path.unlink()
    # resumed from round 2, the node trains round 3 again and must not die writing round-000003 (a crash loop)
    out = swarmnode(*common, "--rounds", "4")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "resumed from" in out.stdout and "round-000002" in out.stdout
    said = [line for line in out.stderr.splitlines() if "round-000003" in line]
    assert len(said) == 1 and "moved to" in said[0] and "corrupt" in said[0], out.stderr
    assert checkpoints(tmp_path)[-2:] == ["round-000003", "round-000004"]
    kept = list((tmp_path / "checkpoints" / "corrupt").iterdir())
    assert [p.name[: len("round-000003")] for p in kept] == ["round-000003"]  # kept, not deleted
    again = swarmnode(*common, "--rounds", "5")  # and it goes on restarting by itself
    assert again.returncode == 0 and "round-000004" in again.stdout, again.stderr[-2000:]


def test_a_half_written_metrics_line_is_moved_aside_not_a_crash(tmp_path: Path) -> None:
    common = ["join", "--silo", "--run-dir", str(tmp_path), "--set", "checkpoint.every=1", *FAST]
    assert swarmnode(*common, "--rounds", "2").returncode == 0
    with (tmp_path / "metrics.jsonl").open("a") as f:
        f.write('{"round": 3, "time": 17000000')  # killed in the middle of a write
    out = swarmnode(*common, "--rounds", "3")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "broken line" in out.stderr and "metrics.broken.jsonl" in out.stderr
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["round"] for r in rows] == [1, 2, 3]
    assert (tmp_path / "metrics.broken.jsonl").read_text().startswith('{"round": 3, "time"')
    report = swarmnode("report", str(tmp_path), "--out", str(tmp_path / "r.png"))
    assert report.returncode == 0, report.stderr


# ---------------------------------------------------------------- 2. every path, port and file: one line


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port on 127.0.0.1 that something else listens on."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        yield busy.getsockname()[1]


def bad_paths(tmp_path: Path, port: int) -> list[tuple[list[str], str]]:
    """(command, what its one line says) for every path, port and file argument with a bad value. A regular
    file stands in for a folder the user cannot write (tests may run as root, where permissions do not bite)."""
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    folder = tmp_path / "a-folder"
    folder.mkdir()
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text("garbage")
    bad_key = tmp_path / "bad.pem"
    bad_key.write_text("not a key")
    bad_key.chmod(0o600)
    no_rounds = tmp_path / "no-rounds"
    no_rounds.mkdir()
    (no_rounds / "metrics.jsonl").write_text("")
    run = ["--run-dir", str(tmp_path / "run"), "--rounds", "1"]
    swarm = ["join", "--swarm", "s", *run]
    return [
        (["join", "--silo", "--run-dir", str(blocker / "run")], "is a file, not a folder"),
        (["join", "--silo", "--run-dir", ""], "run_dir: Value error, must not be empty"),
        (["join", "--silo", *run, "--config", str(tmp_path / "missing.toml")], "not found"),
        (["join", "--silo", *run, "--config", str(folder)], "Is a directory"),
        (["join", "--silo", *run, "--config", str(bad_toml)], "not valid TOML"),
        (["join", "--silo", *run, "--model", str(blocker)], "is not a model directory"),
        (["join", "--silo", *run, "--model", str(tmp_path / "no-model")], "does not exist"),
        (["eval", "--model", "some-org/some-model"], "the Hugging Face hub (http://127.0.0.1:"),
        ([*swarm, "--peers-file", str(blocker / "peers")], "is a file, not a folder"),
        ([*swarm, "--peers-file", str(folder)], "is a folder"),
        ([*swarm, "--peers", "notanaddress"], "'notanaddress' is not a multiaddr"),
        ([*swarm, "--peers", "/ip4/127.0.0.1/tcp/9"], "has no peer id"),
        ([*swarm, "--set", 'swarm.host_maddrs=["garbage"]'], "swarm.host_maddrs: 'garbage' is not a multiaddr"),
        ([*swarm, "--set", f'swarm.host_maddrs=["/ip4/127.0.0.1/tcp/{port}"]'], "the port is taken"),
        (
            [*swarm, "--transport", "libp2p", "--set", f'swarm.host_maddrs=["/ip4/127.0.0.1/tcp/{port}"]'],
            "the libp2p host could not listen there",
        ),
        ([*swarm, "--set", f"swarm.key_path={blocker / 'id.pem'}"], "is a file, not a folder"),
        ([*swarm, "--set", f"swarm.key_path={folder}"], "is not a regular file"),
        ([*swarm, "--set", f"swarm.key_path={bad_key}"], "is corrupt"),
        (["join", "--silo", *run, "--set", "status.port=70000"], "status.port"),
        (["join", "--silo", *run, "--set", "status.host=203.0.113.9"], "not a loopback address"),
        (
            ["join", "--silo", *run, "--set", "status.host=no-such-host.invalid", "--set", "status.token=t"],
            "status.host no-such-host.invalid: cannot listen there",
        ),
        (["keygen", "--out", str(blocker / "id.pem")], "is a file, not a folder"),
        (["keygen", "--out", str(folder)], "already exists"),
        (["report", str(tmp_path / "missing-run")], "not a run directory"),
        (["report", str(no_rounds)], "holds no rounds yet"),
        (["report", str(no_rounds), "--out", str(blocker / "r.png")], "is a file, not a folder"),
        (["report", str(no_rounds), "--out", str(folder)], "is a folder"),
        (["report", str(no_rounds), "--out", str(tmp_path / "r.txt")], "cannot draw a .txt"),
        (["eval", "--checkpoint-of", str(tmp_path / "missing-run")], "no complete checkpoint"),
        (["eval", "--questions", "0"], "--questions must be at least 1"),
        (["eval", "--json", str(blocker / "e.json")], "is a file, not a folder"),
        (["bench", "protocol", "--json", str(blocker / "b.json")], "is a file, not a folder"),
        (["bootstrap", "--addr-file", str(blocker / "addrs")], "is a file, not a folder"),
        (["models", "get", "smollm2-135m", "--dir", str(blocker / "models")], "is a file, not a folder"),
        (["models", "get", str(tmp_path / "missing.gguf")], "does not exist"),
        (["tui", "--run-dir", str(tmp_path / "missing-run")], "status.url does not exist"),
        (["tui", "--url", "ftp://127.0.0.1:1"], "--url must start with http"),
        (["doctor", "--swarm", "s", "--peers", "notanaddress"], "is not a multiaddr"),
        (["doctor", "--timeout", "0"], "--timeout must be between"),
    ]


def test_every_bad_path_port_and_file_is_one_line_and_exit_2(tmp_path: Path, taken_port: int) -> None:
    table = []
    with socket.socket() as closed:  # the hub, as a machine with no network sees it: nothing answers
        closed.bind(("127.0.0.1", 0))
        hub = {"HF_ENDPOINT": f"http://127.0.0.1:{closed.getsockname()[1]}"}
    for args, said in bad_paths(tmp_path, taken_port):
        out = swarmnode(*args, timeout=180, env=hub)
        line = one_line(out)
        assert said in line, (args, line)
        table.append((" ".join(args).replace(str(tmp_path), "T"), line.replace(str(tmp_path), "T")))
    print("\n".join(f"{a}\n    -> {line}" for a, line in table))  # the closing note's table (pytest -s)


# ---------------------------------------------------------------- 3. mistakes said, not accepted silently


def test_a_swarm_node_without_peers_says_it_trains_alone(tmp_path: Path) -> None:
    out = swarmnode(
        "join", "--swarm", "lonely", "--rounds", "6", "--run-dir", str(tmp_path / "run"), "--set", "status.port=0",
        "--set", f"swarm.key_path={tmp_path / 'id.pem'}", *FAST,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    warnings = out.stderr.splitlines()
    assert any("no --peers given" in w and "starts swarm lonely on its own" in w for w in warnings), out.stderr
    alone = [w for w in warnings if "training alone" in w]
    assert len(alone) == 1 and "nothing from any peer in 5 rounds" in alone[0], out.stderr


def test_doctor_fails_a_corrupt_key_that_join_would_refuse(tmp_path: Path) -> None:
    key = tmp_path / "id.pem"
    key.write_text("-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n")
    key.chmod(0o600)
    out = swarmnode("doctor", "--swarm", "s", "--set", f"swarm.key_path={key}", "--set", "status.port=0")
    assert out.returncode == 1
    line = next(line for line in out.stdout.splitlines() if "identity key" in line)
    assert line.startswith("FAIL") and "corrupt" in line and "move it away" in line
    join = swarmnode("join", "--swarm", "s", "--run-dir", str(tmp_path / "r"), "--set", f"swarm.key_path={key}")
    assert "corrupt" in one_line(join)


# ---------------------------------------------------------------- 5. smaller things users expect


def test_version_help_and_refused_flags() -> None:
    from swarmnode import __version__

    out = swarmnode("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"swarmnode {__version__}"
    text = " ".join(swarmnode("join", "--help").stdout.split())
    for said in ("add, sub, mul, rev, sort, count, max", "(default: 0)", "(default: swarmnode/tiny-add)", "--quiet"):
        assert said in text, said
    line = one_line(swarmnode("bootstrap", "--model", "x", "--rounds", "3"))
    assert "bootstrap does not take --model x --rounds 3 (a bootstrap node runs no model)" in line
    assert "invalid int value: 'x'" in one_line(swarmnode("join", "--rounds", "x"))


def test_quiet_shows_only_warnings_on_stderr_and_a_resume_names_what_changed(tmp_path: Path) -> None:
    common = ["join", "--silo", "--run-dir", str(tmp_path), *FAST]
    first = swarmnode(*common, "--rounds", "2")
    assert first.returncode == 0 and first.stderr == "" and "round     2 | reward" in first.stdout
    # not training settings: threads, the status API, a longer run
    same = swarmnode(*common, "--rounds", "3", "--threads", "2", "--set", "status.enabled=false", "--quiet")
    assert same.returncode == 0 and same.stdout == "" and same.stderr == "", same.stdout + same.stderr
    changed = swarmnode(*common, "--rounds", "4", "--set", "train.lr=5e-5", "--log-level", "warning")
    assert changed.returncode == 0 and changed.stdout == ""
    assert changed.stderr.splitlines() == [
        "warning: training settings differ from the checkpoint's (train.lr 0.0001 -> 5e-05); "
        "continuing with the new ones"
    ]
