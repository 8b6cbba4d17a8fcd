"""The dashboard, driven by Textual's pilot against a status feed recorded from a real 3-node swarm
(tests/data/status_feed.json, made by tests/data/record_feed.py), plus SVG snapshots of its main screens."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import DataTable, Log, Static

from swarmnode.run_dir import SWARM_COUNTER_KEYS
from swarmnode.status import StatusSnapshot
from swarmnode.tui import Dashboard, DeadFeed, RecordedFeed
from swarmnode.tui.app import mix_text, peer_rows, throughput_text, title_line

FEED: list[dict[str, Any]] = json.loads((Path(__file__).parents[1] / "data" / "status_feed.json").read_text())


def first_start() -> dict[str, Any]:
    """The recorded node as it was before its first round."""
    snap = copy.deepcopy(FEED[0])
    snap.update(round=0, phase="starting", recent_rounds=[], evals=[], peers=[], rejected={}, events=snap["events"][:2])
    return snap


def text(app: Dashboard, selector: str) -> str:
    return str(app.query_one(selector, Static).render())


async def test_the_main_screen_follows_the_feed() -> None:
    feed = RecordedFeed(FEED[1:])
    app = Dashboard(feed, poll_s=0.05)
    async with app.run_test(size=(140, 45)) as pilot:
        await pilot.pause(0.3)
        peers = app.query_one("#peers", DataTable)
        assert peers.row_count == 2
        shown = {str(peers.get_row_at(i)[0]) for i in range(peers.row_count)}
        assert shown == {p["peer_id"][:8] for p in FEED[2]["peers"]}
        assert f"round {FEED[2]['round']}" in text(app, "#title")
        assert "tokens/s" in text(app, "#throughput")
        assert f"{FEED[2]['questions_per_round']} own + " in text(app, "#mix")
        assert "Held-out accuracy: " in text(app, "#accuracy-label")
        assert not app.query_one("#banner").has_class("shown")
        await pilot.press("p")
        await pilot.press("r")
        assert feed.actions == ["pause", "resume"]
        await pilot.press("q")
        assert app.return_code == 0  # q quit it; had it not, it would still run (return code None) here


async def test_an_unreachable_node_is_shown_and_retried() -> None:
    feed = RecordedFeed(FEED[1:])
    app = Dashboard(DeadFeed(), poll_s=0.05)
    async with app.run_test(size=(140, 45)) as pilot:
        await pilot.pause(0.3)
        assert app.query_one("#banner").has_class("shown")
        assert "node unreachable" in text(app, "#banner")
        app.feed = feed  # the node comes back
        await pilot.pause(0.3)
        assert not app.query_one("#banner").has_class("shown")
        lines = "\n".join(app.query_one("#log", Log).lines)
        assert "lost contact" in lines and "reconnected" in lines


@pytest.mark.parametrize(
    "broken",
    [{}, {"peers": "x", "recent_rounds": [1, None], "evals": {}, "rejected": []}, {"round": "?", "now": None}],
)
async def test_missing_or_wrong_fields_never_crash_it(broken: dict[str, Any]) -> None:
    app = Dashboard(RecordedFeed([broken]), poll_s=0.05)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.2)
        assert app.is_running


def test_the_recorded_feed_is_the_status_contract() -> None:
    """The feed was recorded from a real node; it must still be what today's node sends."""
    for snap in FEED:
        assert set(snap) == StatusSnapshot.__required_keys__
        assert set(snap["swarm_counters"]) <= set(SWARM_COUNTER_KEYS) - {"rejected"}  # `rejected`: at the top
    assert set(FEED[-1]["swarm_counters"]) == set(SWARM_COUNTER_KEYS) - {"rejected"}


def test_formatting_helpers() -> None:
    snap = FEED[2]
    assert snap["peer_id"][:8] in title_line(snap)
    assert len(peer_rows(snap)) == 2
    assert "generate" in throughput_text(snap) and "waiting" in throughput_text(first_start())
    assert mix_text(first_start()) == "no rounds yet"


def test_snapshot_main_screen(snap_compare: Any) -> None:
    assert snap_compare(Dashboard(RecordedFeed(FEED[2:]), poll_s=3600), terminal_size=(140, 45), run_before=_settle)


def test_snapshot_first_start(snap_compare: Any) -> None:
    assert snap_compare(
        Dashboard(RecordedFeed([first_start()]), poll_s=3600), terminal_size=(140, 45), run_before=_settle
    )


def test_snapshot_unreachable(snap_compare: Any) -> None:
    assert snap_compare(Dashboard(DeadFeed(), poll_s=3600), terminal_size=(140, 45), run_before=_settle)


async def _settle(pilot: Any) -> None:
    await pilot.pause(0.3)


async def test_the_drift_signal_and_the_defenses_counts_are_on_the_dashboard() -> None:
    """Issue 16: a round row's `drift` shows under the mix; the defenses' counts are rows of the rejections
    table, by reason."""
    snap = copy.deepcopy(FEED[2])
    snap["recent_rounds"][-1]["drift"] = {
        "stray_rate": 0.25,
        "peer_text_rate": 0.125,
        "top": "SPAM",
        "refused_fragments": 9,
    }
    snap["rejected"] = {**snap["rejected"], "off_format": 31, "improbable": 12}
    assert "drift: 12% of own samples carry refused peers' text, 25% text outside the answer" in mix_text(snap)
    assert "drift" not in mix_text(FEED[2])  # rows from before issue 16 have none
    app = Dashboard(RecordedFeed([snap]), poll_s=0.05)
    async with app.run_test(size=(140, 45)) as pilot:
        await pilot.pause(0.3)
        assert "drift: 12%" in text(app, "#mix")
        table = app.query_one("#rejections", DataTable)
        rows = {str(table.get_row_at(i)[0]): str(table.get_row_at(i)[1]) for i in range(table.row_count)}
        assert rows["off_format"] == "31" and rows["improbable"] == "12"
