"""The endurance soak in CI (slow): `swarmnode bench soak` for 5 minutes, with the checks of the
60-minute run: a bootstrap and 4 real nodes on 127.0.0.1, a flooding peer, nodes SIGKILLed and restarted,
the bootstrap gone at half time (about 6-8 minutes; every process it starts is stopped by PID at the end)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from swarmnode.bench import soak
from swarmnode.bench.soak_checks import REJOIN_BAR


@pytest.mark.slow
def test_five_minute_soak_passes_its_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    failures = soak.run(5.0, tmp_path / "soak.json", tmp_path / "soak")
    out = capsys.readouterr().out
    assert failures == [], out
    report = json.loads((tmp_path / "soak.json").read_text())
    assert len(report["restarts"]) >= 2 and all(n["rounds"] > 0 for n in report["nodes"])
    after_boot = [r for r in report["restarts"] if not r["before_bootstrap_died"] and r["rounds_to_rejoin"]]
    assert after_boot and all(r["rounds_to_rejoin"] <= REJOIN_BAR for r in after_boot), report["restarts"]
    used = [r["rounds_to_be_used"] for r in after_boot]
    assert all(n is not None and n <= REJOIN_BAR for n in used), report["restarts"]
    assert report["tracebacks"] == 0
    assert "every check passed" in out
