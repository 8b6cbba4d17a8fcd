"""The committed conformance vectors: each gives its expected result; regenerating them changes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from protocol import Accepted, Limits, Rejected, verify_and_decode
from protocol.testvectors import VECTOR_DIR, build_vectors, payload_to_json, render

FILES = sorted(VECTOR_DIR.glob("*.json"))


def test_there_are_vectors_of_both_kinds() -> None:
    results = [json.loads(f.read_text())["expect"]["result"] for f in FILES]
    assert results.count("accept") >= 3
    assert results.count("reject") >= 30


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_vector(path: Path) -> None:
    vector = json.loads(path.read_text(encoding="utf-8"))
    verdict = verify_and_decode(bytes.fromhex(vector["envelope_hex"]), Limits(**vector["limits"]))
    expect = vector["expect"]
    if expect["result"] == "accept":
        assert isinstance(verdict, Accepted), verdict
        assert verdict.kind == expect["kind"]
        assert verdict.message_id.hex() == expect["message_id"]
        assert verdict.author.hex() == expect["author"]
        assert verdict.peer_id == expect["peer_id"]
        assert payload_to_json(verdict.payload) == expect["payload"]
    else:
        assert isinstance(verdict, Rejected), verdict
        assert verdict.reason.value == expect["reason"], verdict.detail


def test_committed_vectors_match_the_generator() -> None:
    built = {v["name"]: render(v) for v in build_vectors()}
    committed = {f.stem: f.read_text(encoding="utf-8") for f in FILES}
    assert committed.keys() == built.keys(), "run `python -m protocol.testvectors`"
    for name, text in built.items():
        assert committed[name] == text, f"{name} drifted; run `python -m protocol.testvectors`"
