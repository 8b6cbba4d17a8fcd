"""The status API: JSON snapshot (events in it), valid Prometheus text, pause/resume, tokens."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from swarmnode.config import StatusConfig
from swarmnode.errors import UserError
from swarmnode.run_dir import PeerRow, RoundRow, RunDir
from swarmnode.status import NodeInfo, NodeStatus, StatusServer, StatusSnapshot, serve
from swarmnode.swarm.trust.book import PeerBook
from swarmnode.swarm.trust.reasons import DEFENSES, LIES, PROTOCOL_INVALID, counts_against


def _peer(letter: str, accepted: int, rejected: dict[str, int], banned: bool) -> PeerRow:
    return PeerRow(
        peer_id=letter * 32,
        model="m",
        last_seen_s=1.0,
        accepted_groups=accepted,
        rejected=rejected,
        mean_reward=0.5,
        score=float(accepted),
        banned=banned,
    )


def _status() -> NodeStatus:
    info = NodeInfo(
        version="0",
        swarm="demo",
        silo=False,
        model="tiny",
        tasks=["add"],
        run_dir="runs/x",
        questions_per_round=8,
        external_groups=8,
        backend="auto",
        peer_id=None,
    )
    status = NodeStatus(info)
    status.set_info(peer_id="abcdefgh" * 4, backend="hf")
    peers = [_peer("p", 5, {}, False), _peer("q", 0, {"bad_signature": 6}, True)]
    row = RoundRow(
        round=3,
        mean_reward=0.25,
        tokens_per_s=900.0,
        round_s=0.4,
        external_groups=4,
        external_by_peer={"p" * 32: 4},
        rejected={"bad_signature": 6, "stale": 1},
        peers=2,
        banned_peers=1,
    )
    status.round_done(row, peers)
    status.eval_done(
        {
            "round": 3,
            "time": 0.0,
            "eval_greedy_accuracy": 0.4,
            "eval_mean_reward": 0.4,
            "eval_questions": 5,
            "eval_by_task": {"add": 0.4},
            "eval_s": 1,
        }
    )
    return status


def _get(url: str, token: str = "") -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _post(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(urllib.request.Request(url, method="POST", data=b""), timeout=10) as response:
        return dict(json.loads(response.read()))


def test_status_metrics_events_and_control() -> None:
    status = _status()
    server = StatusServer(status, "127.0.0.1", 0)
    try:
        code, body = _get(server.url + "/status")
        snap = json.loads(body)
        assert code == 200 and snap["round"] == 3 and snap["swarm"] == "demo"
        assert set(snap) == StatusSnapshot.__required_keys__  # the JSON is the typed contract, no more, no less
        assert snap["peer_id"] == "abcdefgh" * 4 and snap["backend"] == "hf"
        assert [p["peer_id"][0] for p in snap["peers"]] == ["p", "q"]
        assert snap["rejected"] == {"bad_signature": 6, "stale": 1}
        assert snap["reason_effects"] == {"bad_signature": "ban", "stale": "neither"}  # from swarm/trust/reasons.py
        assert snap["swarm_counters"] == {"peers": 2, "banned_peers": 1}  # `rejected` once, at the top
        assert {e["kind"] for e in snap["events"]} >= {"round", "peer", "eval"}

        code, body = _get(server.url + "/metrics")
        families = {f.name: f for f in text_string_to_metric_families(body.decode())}
        assert families["swarmnode_round"].samples[0].value == 3
        assert families["swarmnode_banned_peers"].samples[0].value == 1
        reasons = {
            s.labels["reason"]: s.value for s in families["swarmnode_rejections"].samples if s.name.endswith("_total")
        }
        assert reasons == {"bad_signature": 6, "stale": 1}
        # a sum over a window of rounds, which goes down as rounds leave it: a gauge, not a counter
        assert families["swarmnode_recent_external_groups"].type == "gauge"
        assert families["swarmnode_recent_external_groups"].samples[0].value == 4
        assert not any(name.startswith("swarmnode_external_groups") for name in families)

        assert _post(server.url + "/pause") == {"paused": True} and status.pause_requested.is_set()
        assert _post(server.url + "/resume") == {"paused": False} and not status.pause_requested.is_set()

        status.event("log", "hello from the node")
        events = json.loads(_get(server.url + "/status")[1])["events"]
        assert events[-1]["kind"] == "log" and events[-1]["text"] == "hello from the node"
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))  # what the dashboard's log pane follows
        assert _get(server.url + "/events")[0] == 404  # the dashboard reads events from /status
    finally:
        server.close()


def test_a_token_guards_every_route_and_is_required_off_loopback() -> None:
    with pytest.raises(UserError, match=r"status\.token"):
        StatusServer(_status(), "0.0.0.0", 0)
    server = StatusServer(_status(), "127.0.0.1", 0, token="s3cret")
    try:
        assert _get(server.url + "/status")[0] == 401
        assert _get(server.url + "/metrics", token="wrong")[0] == 401
        assert _get(server.url + "/status", token="s3cret")[0] == 200
    finally:
        server.close()


def test_a_taken_port_falls_back_to_a_free_one() -> None:
    first = StatusServer(_status(), "127.0.0.1", 0)
    try:
        second = StatusServer(_status(), "127.0.0.1", first.port)
        try:
            assert second.fallback and second.port != first.port
            assert _get(second.url + "/status")[0] == 200
        finally:
            second.close()
    finally:
        first.close()


def test_status_url_is_removed_when_the_node_stops_unless_another_node_took_it(tmp_path: Path) -> None:
    """A dashboard that finds RUN_DIR/status.url gone knows the node stopped."""
    run_dir = RunDir(tmp_path)
    config = StatusConfig(port=0)
    server, line = serve(_status(), config, run_dir)
    assert run_dir.read_status_url() == server.url and server.url in line
    server.close()
    assert not run_dir.status_url.exists()
    server.close()  # again: nothing to do, at once (no wait on its stopped loop)
    server, _ = serve(_status(), config, run_dir)
    run_dir.write_status_url("http://127.0.0.1:1")  # a node started since in the same run directory
    server.close()
    assert run_dir.read_status_url() == "http://127.0.0.1:1"


def test_the_peer_book_says_what_it_does_about_each_peer() -> None:
    """The rows the status API shows: strikes, invalid messages and how long a ban lasts; what each reason
    does is read from the trust sets (`counts_against`), never defined twice."""
    now = [1000.0]
    book = PeerBook(ban_after=2, ban_s=600.0, offer_strikes=4, clock=lambda: now[0])
    book.accepted("honest", "m", 2, [1.0, 0.0])
    book.rejected("honest", Counter({"improbable": 650, "off_format": 3, "stale": 2}))
    book.rejected("liar", Counter({"offer_missing": 2}))
    book.rejected("junk", Counter({"bad_signature": 1}))
    book.rejected("forger", Counter({"bad_signature": 2}))
    now[0] += 100.0
    rows = {r["peer_id"]: r for r in book.snapshot()}
    assert (rows["honest"]["strikes"], rows["honest"]["invalid"], rows["honest"]["banned"]) == (0, 0, False)
    assert (rows["liar"]["strikes"], rows["junk"]["invalid"]) == (2, 1)
    assert rows["forger"]["banned"] and rows["forger"]["banned_for_s"] == 500.0
    assert rows["honest"]["banned_for_s"] == 0.0
    for reason in PROTOCOL_INVALID:
        assert counts_against(reason) == "ban"
    for reason in LIES:
        assert counts_against(reason) == "strike"
    for reason in (*DEFENSES, "stale", "quota", "dht_expiry", "copied_completion"):
        assert counts_against(reason) == "neither"
