"""The one list of refusal reasons (`swarm/trust/reasons.py`): every reason with its category and counter, a
label on the dashboard for each, the peer book refusing any other code, and no place in the node that refuses
by a string of its own (an AST scan of swarmnode/, itself shown to catch one)."""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

import pytest

import protocol
from swarmnode.swarm.transports import records
from swarmnode.swarm.trust.book import PeerBook
from swarmnode.swarm.trust.reasons import RECORD_RULES, Refusal, counts_against
from swarmnode.tui.reasons import label

B, S, N = "ban", "strike", "neither"

TABLE: dict[str, tuple[str, str]] = {
    # the wire protocol
    "not_bytes": (N, "not_bytes"),
    "oversize": (B, "oversize"),
    "malformed_envelope": (B, "malformed_envelope"),
    "trailing_bytes": (B, "trailing_bytes"),
    "non_canonical_envelope": (B, "non_canonical_envelope"),
    "unsupported_version": (N, "unsupported_version"),
    "unknown_kind": (N, "unknown_kind"),
    "bad_signature": (B, "bad_signature"),
    "malformed_payload": (B, "malformed_payload"),
    "bad_utf8": (B, "bad_utf8"),
    "ext_type": (B, "ext_type"),
    "too_deep": (B, "too_deep"),
    "non_finite_float": (B, "non_finite_float"),
    "schema": (B, "schema"),
    "limit_exceeded": (B, "limit_exceeded"),
    "internal_error": (N, "internal_error"),
    # a downloaded batch
    "wrong_kind": (N, "wrong_kind"),
    "wrong_swarm": (N, "wrong_swarm"),
    "own_batch": (S, "own_batch"),
    "stale": (N, "stale"),
    "future": (N, "future"),
    "duplicate_message": (N, "duplicate_message"),
    "duplicate_completion": (N, "duplicate_completion"),
    "copied_completion": (N, "copied_completion"),
    "unknown_task": (N, "unknown_task"),
    "question_mismatch": (B, "question_mismatch"),
    "held_out_question": (N, "held_out_question"),
    "long_completion": (N, "long_completion"),
    # defenses against valid data
    "off_format": (N, "off_format"),
    "improbable": (N, "improbable"),
    # offers and downloads
    "announcement_invalid": (N, "announcement_invalid"),
    "stale_announcement": (N, "stale_announcement"),
    "future_announcement": (N, "future_announcement"),
    "offer_missing": (S, "offer_missing"),
    "batch_id_mismatch": (S, "batch_id_mismatch"),
    "size_mismatch": (S, "size_mismatch"),
    "summary_mismatch": (S, "summary_mismatch"),
    "misreported_reward": (S, "misreported_reward"),
    "quota": (N, "quota"),
    "probation": (N, "probation"),
    "token_budget": (N, "token_budget"),
    # the transports' record rules
    "record_malformed": (N, "dht_malformed_record"),
    "record_oversize": (N, "dht_oversize"),
    "record_batch_id_mismatch": (N, "dht_batch_key_mismatch"),
    "record_bad_announcement": (N, "dht_bad_announcement"),
    "record_announcement_window": (N, "dht_announcement_window"),
    "record_bad_batch": (N, "dht_bad_batch"),
    "record_expiry": (N, "dht_expiry"),
    "record_older_announcement": (N, "dht_older_announcement"),
    "record_over_budget": (N, "dht_over_budget"),
    "record_fetch_stream": (N, "libp2p_fetch_stream"),
}


def test_every_reason_with_its_category_and_counter() -> None:
    assert {r.value: (r.category, r.counter) for r in Refusal} == TABLE
    assert {r.value for r in protocol.Reason} <= set(TABLE)  # every wire refusal is one of them
    assert set(records.REASONS) | {Refusal.RECORD_FETCH_STREAM} == set(RECORD_RULES)
    for code, (category, counter) in TABLE.items():
        assert counts_against(counter) == category, code
        if code.startswith("record_"):  # the GossipSub host counts the same rule under its own prefix
            assert counts_against("libp2p_" + code.removeprefix("record_")) == category


def test_every_reason_has_a_label_on_the_dashboard() -> None:
    unlabelled = [r.counter for r in Refusal if label(r.counter) == r.counter]
    unlabelled += [f"libp2p_{r.rule}" for r in RECORD_RULES if label(f"libp2p_{r.rule}") == f"libp2p_{r.rule}"]
    assert unlabelled == []


def test_the_book_applies_the_category_and_refuses_any_other_code() -> None:
    book = PeerBook(ban_after=2, offer_strikes=2)
    book.rejected("p", Counter({"stale": 5}))
    assert book.peers["p"].recent_invalid == 0 and book.peers["p"].strikes == 0
    book.rejected("p", Counter({"offer_missing": 1}))
    assert book.peers["p"].strikes == 1
    book.rejected("p", Counter({"bad_signature": 2}))
    assert book.is_banned("p")
    with pytest.raises(ValueError, match="not a refusal reason"):
        book.rejected("q", Counter({"some_new_reason": 1}))


# ---------------------------------------------------------------- no refusal named by a string of its own

REFUSING_CALLS = {"charge", "count", "refuse", "rejected", "_reject"}
"""Functions and methods that take a refusal."""
COUNTERS = {"rejected", "ignored", "counts"}
"""Counters refusals are written to."""
EXEMPT = {"swarm/trust/reasons.py", "tui/reasons.py"}
"""The enum itself, and the dashboard's labels (keyed by counter name)."""


def string_refusals(source: str) -> list[int]:
    """Lines of `source` where a refusal is named by a string literal: an argument of a refusing call, a key
    of a counter, or a key of a `Counter({...})`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name in REFUSING_CALLS and any(_is_text(a) for a in node.args):
                found.append(node.lineno)
            if name == "Counter" and node.args and isinstance(node.args[0], ast.Dict):
                if any(_is_text(k) for k in node.args[0].keys if k is not None):
                    found.append(node.lineno)
        if isinstance(node, ast.Subscript) and _is_text(node.slice):
            target = node.value
            name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
            if name in COUNTERS:
                found.append(node.lineno)
    return found


def _is_text(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


def test_the_scan_finds_a_refusal_named_by_a_string() -> None:
    assert string_refusals("self.tally.charge(author, 'new_reason')") == [1]
    assert string_refusals("x = 1\noutcome.rejected['made_up'] += 1") == [2]
    assert string_refusals("book.rejected(p, Counter({'made_up': 1}))") == [1]
    assert string_refusals("self.tally.charge(author, Refusal.QUOTA)") == []


def test_no_place_in_the_node_refuses_by_a_string_of_its_own() -> None:
    root = Path(__file__).resolve().parents[2] / "swarmnode"
    found = []
    for path in sorted(root.rglob("*.py")):
        where = path.relative_to(root).as_posix()
        if where not in EXEMPT:
            found += [f"{where}:{line}" for line in string_refusals(path.read_text())]
    assert found == [], "name a member of swarm/trust/reasons.py Refusal instead"
