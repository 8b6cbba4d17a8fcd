"""The installed `swarmnode` console script, run as a user would."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from swarmnode.errors import UserError

# the console script installed beside the interpreter running the tests
SWARMNODE = Path(sys.executable).with_name("swarmnode")


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    assert SWARMNODE.exists(), f"{SWARMNODE} missing: install the package (make install)"
    return subprocess.run([str(SWARMNODE), *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def test_keygen_writes_a_private_key_and_prints_the_peer_id(tmp_path: Path) -> None:
    out = run("keygen", "--out", str(tmp_path / "id.pem"))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == f"wrote {tmp_path / 'id.pem'} (mode 0600)"
    assert lines[1].startswith("peer id: ") and len(lines[1].split()[-1]) == 32
    assert stat.S_IMODE(os.stat(tmp_path / "id.pem").st_mode) == 0o600


def test_keygen_refuses_to_overwrite_with_one_line(tmp_path: Path) -> None:
    assert run("keygen", "--out", str(tmp_path / "id.pem")).returncode == 0
    before = (tmp_path / "id.pem").read_bytes()
    out = run("keygen", "--out", str(tmp_path / "id.pem"))
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "already exists" in out.stderr
    assert "Traceback" not in out.stderr
    assert (tmp_path / "id.pem").read_bytes() == before


def test_bench_protocol_prints_a_table_and_writes_json(tmp_path: Path) -> None:
    out = run("bench", "protocol", "--seconds", "0.05", "--json", str(tmp_path / "p.json"))
    assert out.returncode == 0, out.stderr
    for op in ("msgpack encode", "sign+encode", "msgpack decode", "verify+decode"):
        assert op in out.stdout
    doc = json.loads((tmp_path / "p.json").read_text())
    assert doc["benchmark"] == "protocol"
    assert [r["operation"] for r in doc["rows"]] == [
        "msgpack encode",
        "sign+encode",
        "msgpack decode",
        "verify+decode",
    ]
    for row in doc["rows"]:
        assert row["msgs_per_s"] > 0 and row["mb_per_s"] > 0 and row["bytes"] > 50_000


def test_bad_flag_value_is_one_line(tmp_path: Path) -> None:
    out = run("bench", "protocol", "--seconds", "-1", "--json", str(tmp_path / "p.json"))
    assert out.returncode == 2 and out.stderr.strip().count("\n") == 0 and "--seconds" in out.stderr


def test_peers_file(tmp_path: Path) -> None:
    from swarmnode.bootstrap import read_peers_file, write_addr_file

    path = tmp_path / "shared" / "bootstrap.addr"
    with pytest.raises(UserError, match="did not appear"):
        read_peers_file(path, wait_s=0.3)
    path.parent.mkdir()
    path.write_text("\n# nothing\n")
    with pytest.raises(UserError, match="no multiaddr"):
        read_peers_file(path, wait_s=0.3)
    addresses = ["/ip4/10.0.0.2/tcp/31337/p2p/X", "/ip4/127.0.0.1/tcp/31337/p2p/X"]
    write_addr_file(tmp_path / "other" / "bootstrap.addr", addresses)  # what bootstrap --addr-file writes
    assert read_peers_file(tmp_path / "other" / "bootstrap.addr") == addresses
    assert [p.name for p in (tmp_path / "other").iterdir()] == ["bootstrap.addr"]  # no temporary file left


def test_report_plots_runs(tmp_path: Path) -> None:
    import json as json_

    runs = []
    for name, silo in (("swarm-run", False), ("silo-run", True)):
        run = tmp_path / name
        run.mkdir()
        rows = [{"round": r, "mean_reward": r / 10} for r in range(1, 6)]
        rows += [{"round": 5, "eval_greedy_accuracy": 0.4}]
        (run / "metrics.jsonl").write_text("".join(json_.dumps(r) + "\n" for r in rows))
        (run / "config.json").write_text(json_.dumps({"silo": silo, "swarm": {"name": "demo"}}))
        runs.append(str(run))
    out = subprocess.run(
        [str(Path(sys.executable).with_name("swarmnode")), "report", *runs, "--out", str(tmp_path / "r.png")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = subprocess.run(
        [str(Path(sys.executable).with_name("swarmnode")), "report", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "no metrics.jsonl" in bad.stderr and bad.stderr.count("\n") == 1


def test_transport_flag(tmp_path: Path) -> None:
    """--transport memory runs the whole swarm path (sign, publish, read, validate) with no network."""
    key = tmp_path / "k.pem"
    out = run(
        "join", "--transport", "memory", "--rounds", "2", "--run-dir", str(tmp_path / "run"), "--threads", "1",
        "--backend", "hf", "--set", "eval.every=0", "--set", f"swarm.key_path={key}", "--set", "status.enabled=false",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "memory transport: no network" in out.stdout and "peer id" in out.stdout
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["round"] for r in rows] == [1, 2] and all(r["io_errors"] == 0 and r["peers"] == 0 for r in rows)
    for args in (("join", "--silo", "--transport", "memory", "--run-dir", str(tmp_path / "no")),
                 ("bootstrap", "--transport", "memory")):  # fmt: skip
        refused = run(*args)
        assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert "contradict" in run("join", "--silo", "--transport", "libp2p").stderr


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (("--configs", "silo,8/8-nonsense"), "--configs takes"),
        (("--hetero", "--nodes", "3"), "--hetero needs"),
        (("--set", "train.offpolicy_mask=0.5"), "offpolicy_mask"),
    ],
)
def test_bench_sapo_refuses_bad_flags_in_one_line(tmp_path: Path, flags: tuple[str, ...], said: str) -> None:
    out = run("bench", "sapo", *flags, "--json", str(tmp_path / "s.json"))
    assert out.returncode == 2 and out.stderr.strip().count("\n") == 0 and said in out.stderr, out.stderr
    assert not (tmp_path / "s.json").exists()
