"""The status API: JSON snapshot, valid Prometheus text, the event stream, pause/resume, tokens."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from swarmnode.errors import UserError
from swarmnode.status import NodeStatus, StatusServer


def _status() -> NodeStatus:
    status = NodeStatus({"peer_id": "abcdefgh" * 4, "swarm": "demo", "model": "tiny", "backend": "hf"})
    peers = [
        {"peer_id": "p" * 32, "model": "m", "last_seen_s": 1.0, "accepted_groups": 5, "rejected": {}, "banned": False},
        {
            "peer_id": "q" * 32,
            "model": "m",
            "last_seen_s": 2.0,
            "accepted_groups": 0,
            "rejected": {"bad_signature": 6},
            "banned": True,
        },
    ]
    row = {
        "round": 3,
        "mean_reward": 0.25,
        "tokens_per_s": 900.0,
        "round_s": 0.4,
        "external_groups": 4,
        "external_by_peer": {"p" * 32: 4},
        "rejected": {"bad_signature": 6, "stale": 1},
        "peers": 2,
    }
    status.round_done(row, peers)
    status.eval_done({"round": 3, "eval_greedy_accuracy": 0.4})
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
        assert [p["peer_id"][0] for p in snap["peers"]] == ["p", "q"]
        assert snap["rejected"] == {"bad_signature": 6, "stale": 1}
        assert {e["kind"] for e in snap["events"]} >= {"round", "peer", "eval"}

        code, body = _get(server.url + "/metrics")
        families = {f.name: f for f in text_string_to_metric_families(body.decode())}
        assert families["swarmnode_round"].samples[0].value == 3
        assert families["swarmnode_banned_peers"].samples[0].value == 1
        reasons = {
            s.labels["reason"]: s.value for s in families["swarmnode_rejections"].samples if s.name.endswith("_total")
        }
        assert reasons == {"bad_signature": 6, "stale": 1}

        assert _post(server.url + "/pause") == {"paused": True} and status.pause_requested.is_set()
        assert _post(server.url + "/resume") == {"paused": False} and not status.pause_requested.is_set()

        with urllib.request.urlopen(server.url + "/events?since=0", timeout=10) as stream:
            first = [stream.readline() for _ in range(3)]
            assert first[0].startswith(b"id: 1") and b'"kind"' in first[1]
            status.event("log", "hello from the node")
            lines = []
            while not any(b"hello from the node" in line for line in lines) and len(lines) < 200:
                lines.append(stream.readline())
            assert any(b"hello from the node" in line for line in lines)
        assert _get(server.url + "/events?since=x")[0] == 400
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
