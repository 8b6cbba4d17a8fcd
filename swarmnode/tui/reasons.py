"""A short human label for each rejection reason a node counts (protocol/SPEC.md, "Reasons" and 6-6c), for
the dashboard's refusals pane. What a reason does to a peer (ban / strike / neither) is not decided here: the
node says it in the status API (`reason_effects`, from `swarm.trust.reasons.counts_against`)."""

from __future__ import annotations

LABELS: dict[str, str] = {
    # the wire protocol (protocol/reasons.py)
    "not_bytes": "not bytes at all",
    "oversize": "bigger than the size limit",
    "malformed_envelope": "unreadable envelope",
    "trailing_bytes": "extra bytes after the message",
    "non_canonical_envelope": "non-canonical encoding",
    "unsupported_version": "unknown protocol version",
    "unknown_kind": "unknown message kind",
    "bad_signature": "bad signature: forged or tampered",
    "malformed_payload": "unreadable payload",
    "bad_utf8": "invalid UTF-8 text",
    "ext_type": "forbidden msgpack extension",
    "too_deep": "nested too deep",
    "non_finite_float": "NaN or infinite number",
    "schema": "fields of the wrong shape",
    "limit_exceeded": "over a protocol limit",
    "internal_error": "validator error (a bug here)",
    # the node's checks of a batch (swarm/sharing/validate.py)
    "wrong_kind": "not a rollout batch",
    "wrong_swarm": "for another swarm",
    "own_batch": "this node's batch, offered back",
    "stale": "too old (swarm.max_age_s)",
    "future": "dated in the future: clock skew",
    "duplicate_message": "seen before: a replay",
    "duplicate_completion": "a completion sent twice",
    "copied_completion": "copied from an earlier peer",
    "unknown_task": "a task this node does not run",
    "question_mismatch": "question differs from its task",
    "held_out_question": "one of this node's test questions",
    "long_completion": "completion too long",
    "off_format": "text outside the answer format",
    "improbable": "likelihood gate: unlikely text",
    # offers and downloads (swarm/sharing/exchange.py, swarm/sharing/offers.py)
    "batch_id_mismatch": "bytes are not the offered batch",
    "size_mismatch": "size differs from the offer",
    "offer_missing": "offered batch is not there",
    "summary_mismatch": "contents differ from the offer",
    "misreported_reward": "claimed rewards are wrong",
    "quota": "over its downloads this round",
    "probation": "struck: one download a round",
    "token_budget": "over the round's token budget",
    "announcement_invalid": "announcement does not verify",
    "stale_announcement": "announcement dated too early",
    "future_announcement": "announcement dated in future",
}
"""By reason code; at most 34 characters each (the narrow refusals table)."""

RECORD_LABELS: dict[str, str] = {
    "malformed": "unreadable record",
    "malformed_record": "unreadable record",
    "oversize": "record too big",
    "batch_id_mismatch": "batch under a wrong key",
    "batch_key_mismatch": "batch under a wrong key",
    "bad_announcement": "invalid announcement",
    "announcement_window": "announcement in wrong window",
    "bad_batch": "junk stored as a batch",
    "expiry": "wrong expiry: pinning?",
    "older_announcement": "older announcement: replay?",
    "over_budget": "author over storage budget",
    "fetch_stream": "bad fetch request",
}
"""The transports' record rules (swarm/transports/records.py), counted as `dht_<rule>` and `libp2p_<rule>`."""

TRANSPORTS = {"dht_": "DHT", "libp2p_": "gossip"}


def label(reason: str) -> str:
    """`reason` in words; an unknown code (a newer node's) as itself."""
    if reason in LABELS:
        return LABELS[reason]
    for prefix, transport in TRANSPORTS.items():
        if reason.startswith(prefix) and reason[len(prefix) :] in RECORD_LABELS:
            return f"{transport}: {RECORD_LABELS[reason[len(prefix) :]]}"
    return reason
