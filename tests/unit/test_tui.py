"""The dashboard, driven by Textual's pilot, and SVG snapshots of its screens at 80x24 and 200x50. Fed from
status snapshots of real nodes: a 3-node hivemind swarm (tests/data/status_feed.json, made by
tests/data/record_feed.py), and three scenes recorded from nodes on the in-memory transport
(tests/data/status_scenes.json, made by tests/data/record_scenes.py): a silo node, an honest swarm, and a
swarm under attack by a faker (banned), a liar (struck, then banned) and a poisoner (its groups dropped by
the answer format, never held against it)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Static

from protocol.reasons import Reason
from swarmnode.run_dir import SWARM_COUNTER_KEYS
from swarmnode.status import StatusSnapshot
from swarmnode.swarm.transports.hivemind_records import DHT_COUNTERS
from swarmnode.swarm.trust.reasons import DEFENSES, LIES, PROTOCOL_INVALID
from swarmnode.tui import Dashboard, DeadFeed, RecordedFeed
from swarmnode.tui.app import KeyHelp, Table
from swarmnode.tui.panes import (
    drift_line,
    identity_line,
    mix_lines,
    peer_views,
    refusal_views,
    safe,
    speed_text,
    trained_line,
)
from swarmnode.tui.reasons import LABELS, label

DATA = Path(__file__).parents[1] / "data"
FEED: list[Any] = json.loads((DATA / "status_feed.json").read_text())
SCENES: dict[str, Any] = json.loads((DATA / "status_scenes.json").read_text())
SIZES = {"80x24": (80, 24), "200x50": (200, 50)}


def first_start() -> Any:
    """The recorded node as it was before its first round."""
    snap = copy.deepcopy(FEED[0])
    snap.update(round=0, phase="starting", recent_rounds=[], evals=[], peers=[], rejected={}, events=snap["events"][:2])
    return snap


def text(app: Dashboard, selector: str) -> str:
    return str(app.query_one(selector, Static).render())


def table(app: Dashboard, selector: str) -> list[dict[str, str]]:
    """The rows of a table, by column label."""
    widget = app.query_one(selector, Table)
    labels = [str(c.label) for c in widget.columns.values()]
    return [dict(zip(labels, map(str, widget.get_row_at(i)), strict=True)) for i in range(widget.row_count)]


async def test_the_main_screen_follows_the_feed() -> None:
    feed = RecordedFeed(FEED[1:])
    app = Dashboard(feed, poll_s=0.05)
    async with app.run_test(size=(140, 45)) as pilot:
        await pilot.pause(0.3)
        rows = table(app, "#peers")
        assert {r["peer"] for r in rows} == {p["peer_id"][:8] for p in FEED[2]["peers"]}
        assert f"round {FEED[2]['round']}" in text(app, "#health")
        assert "tokens/s" in text(app, "#speed")
        assert f"of {FEED[2]['questions_per_round']} own groups + 8 peers'" in text(app, "#trained")
        assert "held-out accuracy 30.0% at round 30" in str(app.query_one("#accuracy").render())
        assert not app.query_one("#banner").has_class("shown")
        await pilot.press("p")
        await pilot.press("r")
        assert feed.actions == ["pause", "resume"]
        await pilot.press("q")
        assert app.return_code == 0  # q quit it; had it not, it would still run (return code None) here


def log_text(app: Dashboard) -> str:
    return "\n".join(app.log_lines)


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
        assert "lost contact" in log_text(app) and "reconnected" in log_text(app)


async def test_a_node_that_stopped_is_said_to_have_stopped_and_no_longer_polled(tmp_path: Path) -> None:
    """A node has stopped when it said "stopped" last, or (started from a run directory) its status.url is gone."""
    stopping = copy.deepcopy(FEED[2])
    stopping["phase"] = "stopped"
    feed = RecordedFeed([FEED[2], stopping], ends=True)
    app = Dashboard(feed, poll_s=0.05)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.4)
        assert "the node has stopped after round 30" in text(app, "#banner")
        calls = feed.calls
        await pilot.pause(0.3)
        assert feed.calls == calls  # no retrying forever

    url_file = tmp_path / "status.url"
    url_file.write_text("http://127.0.0.1:7391\n")
    app = Dashboard(DeadFeed(), poll_s=0.05, url_file=url_file)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.2)
        assert "node unreachable" in text(app, "#banner")  # crashed, or not up yet: it may come back
        url_file.unlink()  # what the node's status server does when it closes
        await pilot.pause(0.2)
        assert "the node has stopped" in text(app, "#banner")


@pytest.mark.parametrize(
    "broken",
    [
        {},
        {"peers": "x", "recent_rounds": [1, None], "evals": {}, "rejected": []},
        {"round": "?", "now": None},
        {"swarm": "s", "peers": [{"peer_id": 5, "rejected": {"x": "y"}, "banned": True, "banned_for_s": "?"}]},
        {"swarm": "s", "reason_effects": [], "rejected": {"bad_signature": 3}, "recent_rounds": [{"rejected": 1}]},
    ],
)
async def test_missing_or_wrong_fields_never_crash_it(broken: Any) -> None:
    app = Dashboard(RecordedFeed([broken]), poll_s=0.05)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.2)
        assert app.is_running


def test_the_recorded_feeds_are_the_status_contract() -> None:
    """The feeds were recorded from real nodes; they must still be what the node sends. (status_feed.json's
    nodes refused nothing: its `reason_effects` are {}, as such a node sends.)"""
    for snap in [*FEED, *SCENES.values()]:
        assert set(snap) == StatusSnapshot.__required_keys__
        assert set(snap["swarm_counters"]) <= set(SWARM_COUNTER_KEYS) - {"rejected"}  # `rejected`: at the top
    assert set(FEED[-1]["swarm_counters"]) == set(SWARM_COUNTER_KEYS) - {"rejected"}
    assert SCENES["silo"]["silo"] and not SCENES["honest"]["silo"] and not SCENES["attack"]["silo"]


def test_formatting_helpers() -> None:
    snap = FEED[2]
    assert snap["peer_id"][:8] in identity_line(snap)
    assert len(peer_views(snap)) == 2
    assert "generate" in speed_text(snap) and "waiting" in speed_text(first_start())
    assert mix_lines(first_start()) == []
    assert safe("[/bold]\x1b[2J model \ufffd 😀") == "[/bold]?[2J model ? ?"


def test_groups_trained_on_are_said_unambiguously() -> None:
    """The round line's `groups 19/16` is 19 groups trained on (own and peers', those with reward variance)
    for 16 own questions: the dashboard says which is which."""
    snap = copy.deepcopy(FEED[2])
    snap["recent_rounds"][-1].update(groups=19, external_groups=8, external_available=32)
    assert trained_line(snap) == "round 30 trained on 11 of 16 own groups + 8 peers' (of 32 received)"
    silo = copy.deepcopy(SCENES["silo"])
    last = silo["recent_rounds"][-1]
    assert trained_line(silo) == f"round 30 trained on {last['groups']} of 16 own groups"


def test_every_reason_the_node_counts_has_a_label() -> None:
    """A reason in words, not `dht_expiry`: every code of the protocol, the trust sets and the DHT's rules."""
    codes = {r.value for r in Reason} | PROTOCOL_INVALID | LIES | DEFENSES | set(DHT_COUNTERS.values())
    codes |= {"libp2p_" + code.removeprefix("dht_") for code in DHT_COUNTERS.values()}
    for code in codes:
        assert label(code) != code, code
    assert label("dht_expiry") == "DHT: wrong expiry: pinning?"
    assert all(len(text) <= 34 for text in LABELS.values())


async def test_the_attackers_are_on_top_of_the_peers_table_and_honest_peers_have_nothing_against_them() -> None:
    """At 80x24 the peers the node acts against are the first rows, marked with what is done
    (banned, struck); honest peers whose completions the likelihood gate and the answer format dropped
    show 0 against them, the drops apart ("dropped", never held against)."""
    snap = SCENES["attack"]
    effects = snap["reason_effects"]
    by_id = {p["peer_id"][:8]: p for p in snap["peers"]}
    attackers = {k for k, p in by_id.items() if p["banned"] or p.get("strikes")}
    honest = {k for k, p in by_id.items() if p["model"] == snap["model"]}
    assert len(attackers) == 2 and len(honest) == 2
    app = Dashboard(RecordedFeed([snap]), poll_s=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        rows = table(app, "#peers")
        assert {r["peer"] for r in rows[: len(attackers)]} == attackers
        for row in rows[: len(attackers)]:
            peer = by_id[row["peer"]]
            assert row["status"].startswith("banned" if peer["banned"] else "struck")
            held = sum(n for r, n in peer["rejected"].items() if effects[r] in ("ban", "strike"))
            assert int(row["against"]) == held > 0
        for row in rows:
            if row["peer"] in honest:
                assert row["status"] == "ok" and row["against"] == "0"
                assert int(row["dropped"]) == sum(by_id[row["peer"]]["rejected"].values()) > 0
        assert "dropped: never held against" in text(app, "#peers-legend-short")
        assert "2 banned" in text(app, "#peers-title") or "banned" in text(app, "#peers-title")
        # every row is on the screen: none scrolled away, none cut
        assert app.query_one("#peers", Table).size.height >= len(rows) + 1
        refused = table(app, "#refusals")
        assert {r["refused"] for r in refused} == {label(code) for code in snap["rejected"]}
        against = {r["refused"]: r["against"] for r in refused}
        assert against[label("question_mismatch")] == "ban" and against[label("offer_missing")] == "strike"
        assert against[label("improbable")] == "no" and against[label("off_format")] == "no"


async def test_silo_mode_shows_no_peers_refusals_or_drift() -> None:
    snap = SCENES["silo"]
    assert snap["recent_rounds"][-1]["drift"]  # the node sends it: the dashboard leaves it out
    app = Dashboard(RecordedFeed([snap]), poll_s=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        assert app.query_one("#swarm").region.area == 0  # no peers, no refusals
        assert not app.query_one("#drift").display and drift_line(snap) == ""
        assert app.query_one("#silo").region.area > 0
        assert "silo" in text(app, "#identity")


async def test_the_drift_signal_and_the_defenses_counts_are_on_the_dashboard() -> None:
    """A round row's `drift` shows under the learning pane (in a swarm); the defenses' counts are
    rows of the refusals table, in words, never held against a peer."""
    snap = copy.deepcopy(FEED[2])
    snap["recent_rounds"][-1]["drift"] = {
        "stray_rate": 0.25,
        "peer_text_rate": 0.125,
        "top": "SPAM",
        "refused_fragments": 9,
    }
    snap["rejected"] = {**snap["rejected"], "off_format": 31, "improbable": 12}
    snap["reason_effects"] = {"off_format": "neither", "improbable": "neither"}
    line = "drift: refused peers' text in 12% of own samples, text outside the answer in 25%"
    assert drift_line(snap) == line
    assert drift_line(FEED[2]) == ""  # the recorded rows carry no `drift`: no line
    app = Dashboard(RecordedFeed([snap]), poll_s=0.05)
    async with app.run_test(size=(140, 45)) as pilot:
        await pilot.pause(0.3)
        assert text(app, "#drift") == line
        rows = {r["refused"]: (r["against"], r["total"]) for r in table(app, "#refusals")}
        assert rows[label("off_format")] == ("no", "31") and rows[label("improbable")] == ("no", "12")


def test_refusals_show_a_recent_count_and_the_total() -> None:
    snap = SCENES["attack"]
    views = {v.code: v for v in refusal_views(snap)}
    rounds = snap["recent_rounds"]
    for code, view in views.items():
        assert view.total == snap["rejected"][code]
        assert view.recent == rounds[-1]["rejected"].get(code, 0) - rounds[-11]["rejected"].get(code, 0)


async def test_the_key_help_lists_every_key_the_app_binds() -> None:
    app = Dashboard(RecordedFeed([SCENES["honest"]]), poll_s=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.2)
        bound = [
            app.get_key_display(binding)
            for owner in (app, app.screen, app.query_one("#peers", Table))
            for _, binding in owner._bindings
        ]
        await pilot.press("question_mark")
        await pilot.pause(0.1)
        assert isinstance(app.screen, KeyHelp)
        shown = str(app.screen.query_one("#keys", Static).render())
        for key in bound:
            assert f"{key}  " in shown, key
        await pilot.press("escape")
        assert not isinstance(app.screen, KeyHelp)


async def test_peer_chosen_text_cannot_inject_markup_or_shift_the_screen() -> None:
    snap = copy.deepcopy(SCENES["honest"])
    snap["peers"][0]["model"] = "[/bold][reverse]x😀\u0301\ufffd"
    app = Dashboard(RecordedFeed([snap]), poll_s=3600)
    async with app.run_test(size=(200, 50)) as pilot:
        await pilot.pause(0.3)
        models = [r["model"] for r in table(app, "#peers")]
        assert "[/bold][reverse]x???" in models


# ---------------------------------------------------------------------- snapshots


async def _settle(pilot: Any) -> None:
    await pilot.pause(0.3)


def test_snapshot_main_screen(snap_compare: Any) -> None:
    assert snap_compare(Dashboard(RecordedFeed(FEED[2:]), poll_s=3600), terminal_size=(140, 45), run_before=_settle)


def test_snapshot_first_start(snap_compare: Any) -> None:
    assert snap_compare(
        Dashboard(RecordedFeed([first_start()]), poll_s=3600), terminal_size=(140, 45), run_before=_settle
    )


def test_snapshot_unreachable(snap_compare: Any) -> None:
    assert snap_compare(Dashboard(DeadFeed(), poll_s=3600), terminal_size=(140, 45), run_before=_settle)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("scene", ["silo", "honest", "attack"])
def test_snapshot_scene(snap_compare: Any, scene: str, size: str) -> None:
    app = Dashboard(RecordedFeed([SCENES[scene]]), poll_s=3600)
    assert snap_compare(app, terminal_size=SIZES[size], run_before=_settle)
