"""Every reason this node refuses something a peer sent, in one enum: what it does to the peer it is charged to
(`category`) and the counter it is counted under (`counter`). Every place that refuses names a member; the
status API and the dashboard read the category from here, and the peer book applies it.

Categories. `BAN`: only a broken or hostile peer produces it, and it counts toward the peer's ban (`ban_after`).
`STRIKE`: an offer that failed or lied; each is a strike (`offer_strikes`), and a clean delivery heals one.
`NEITHER`: ordinary in a busy swarm (stale, duplicate, over a quota), a defense an honest peer can trigger too
(text outside the answer format, completions the likelihood gate drops), or a record a transport refused
(charged to nobody: the store refuses it before anyone reads it).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

Category = Literal["ban", "strike", "neither"]
BAN: Category = "ban"
STRIKE: Category = "strike"
NEITHER: Category = "neither"


class Refusal(StrEnum):
    """A refusal's code (the enum's value), with its `category` and `counter`."""

    category: Category
    counter: str
    """The name it is counted under in the node's `rejected` counters and a peer's row: its code, but for the
    record rules (`dht_...` on the hivemind transport; `libp2p_<rule>` on GossipSub)."""

    def __new__(cls, code: str, category: Category, counter: str = "") -> Refusal:
        member = str.__new__(cls, code)
        member._value_ = code
        member.category = category
        member.counter = counter or code
        return member

    # the wire protocol (protocol/reasons.py): decoding and the signature
    NOT_BYTES = "not_bytes", NEITHER
    OVERSIZE = "oversize", BAN
    """An envelope bigger than `max_envelope_bytes`, or an offer claiming such a size."""
    MALFORMED_ENVELOPE = "malformed_envelope", BAN
    TRAILING_BYTES = "trailing_bytes", BAN
    NON_CANONICAL = "non_canonical_envelope", BAN
    UNSUPPORTED_VERSION = "unsupported_version", NEITHER
    """A newer protocol version: an honest newer node's message."""
    UNKNOWN_KIND = "unknown_kind", NEITHER
    BAD_SIGNATURE = "bad_signature", BAN
    MALFORMED_PAYLOAD = "malformed_payload", BAN
    BAD_UTF8 = "bad_utf8", BAN
    EXT_TYPE = "ext_type", BAN
    TOO_DEEP = "too_deep", BAN
    NON_FINITE = "non_finite_float", BAN
    SCHEMA = "schema", BAN
    LIMIT = "limit_exceeded", BAN
    INTERNAL = "internal_error", NEITHER
    """The validator failed on it: a bug here, never the peer's fault."""

    # the node's checks of a downloaded batch (sharing/validate.py)
    WRONG_KIND = "wrong_kind", NEITHER
    WRONG_SWARM = "wrong_swarm", NEITHER
    OWN_BATCH = "own_batch", STRIKE
    """This node's own batch, offered back to it (before download) or downloaded."""
    STALE = "stale", NEITHER
    FUTURE = "future", NEITHER
    DUPLICATE_MESSAGE = "duplicate_message", NEITHER
    """A batch seen before: a replay, or the same batch read in more than one window."""
    DUPLICATE_COMPLETION = "duplicate_completion", NEITHER
    COPIED_COMPLETION = "copied_completion", NEITHER
    """Signed after this node already held the same text from another peer (no strike: honest nodes with a
    shared seed and model can write the same text)."""
    UNKNOWN_TASK = "unknown_task", NEITHER
    QUESTION_MISMATCH = "question_mismatch", BAN
    HELD_OUT_QUESTION = "held_out_question", NEITHER
    LONG_COMPLETION = "long_completion", NEITHER

    # defenses against valid data: per completion, never a strike or a ban
    OFF_FORMAT = "off_format", NEITHER
    """Text outside the answer format (kept, scored 0)."""
    IMPROBABLE = "improbable", NEITHER
    """Dropped by the learner's likelihood gate."""

    # offers and downloads (sharing/offers.py, sharing/exchange.py)
    ANNOUNCEMENT_INVALID = "announcement_invalid", NEITHER
    """An announcement that does not verify (charged to nobody: its signer is unknown)."""
    STALE_ANNOUNCEMENT = "stale_announcement", NEITHER
    FUTURE_ANNOUNCEMENT = "future_announcement", NEITHER
    OFFER_MISSING = "offer_missing", STRIKE
    BATCH_ID_MISMATCH = "batch_id_mismatch", STRIKE
    SIZE_MISMATCH = "size_mismatch", STRIKE
    SUMMARY_MISMATCH = "summary_mismatch", STRIKE
    MISREPORTED_REWARD = "misreported_reward", STRIKE
    """Rewards the author claimed that this node's verifier scores otherwise: a strike once per batch."""
    QUOTA = "quota", NEITHER
    PROBATION = "probation", NEITHER
    """Offers of a struck peer beyond its one download a round."""
    TOKEN_BUDGET = "token_budget", NEITHER
    """Groups over the round's token budget (charged to nobody)."""

    # the transports' record rules (transports/records.py); the code is the rule's name prefixed `record_`
    RECORD_MALFORMED = "record_malformed", NEITHER, "dht_malformed_record"
    RECORD_OVERSIZE = "record_oversize", NEITHER, "dht_oversize"
    RECORD_BATCH_ID_MISMATCH = "record_batch_id_mismatch", NEITHER, "dht_batch_key_mismatch"
    RECORD_BAD_ANNOUNCEMENT = "record_bad_announcement", NEITHER, "dht_bad_announcement"
    RECORD_ANNOUNCEMENT_WINDOW = "record_announcement_window", NEITHER, "dht_announcement_window"
    RECORD_BAD_BATCH = "record_bad_batch", NEITHER, "dht_bad_batch"
    RECORD_EXPIRY = "record_expiry", NEITHER, "dht_expiry"
    RECORD_OLDER_ANNOUNCEMENT = "record_older_announcement", NEITHER, "dht_older_announcement"
    RECORD_OVER_BUDGET = "record_over_budget", NEITHER, "dht_over_budget"
    RECORD_FETCH_STREAM = "record_fetch_stream", NEITHER, "libp2p_fetch_stream"
    """A malformed fetch request to the GossipSub host."""

    @property
    def rule(self) -> str:
        """A record rule's name, as the transports count it (`libp2p_<rule>`); "" for other refusals."""
        return self.value.removeprefix("record_") if self.value.startswith("record_") else ""


RECORD_RULES = tuple(r for r in Refusal if r.rule)
"""The transports' record rules."""


def refusal(code: str) -> Refusal:
    """The member whose code is `code` (a refusal named by its string); ValueError for any other string."""
    found = _BY_CODE.get(code)
    if found is None:
        raise ValueError(f"{code!r} is not a refusal reason (swarmnode/swarm/trust/reasons.py)")
    return found


def _by_counter(counter: str) -> Refusal | None:
    """The refusal counted under `counter` (any transport's record counters too), or None: a newer node's."""
    found = _BY_COUNTER.get(counter)
    if found is None and counter.startswith("libp2p_"):
        found = _BY_RULE.get(counter.removeprefix("libp2p_"))
    return found


def counts_against(counter: str) -> Category:
    """What a refusal counted under `counter` does to the peer charged with it ("neither" for codes this node
    does not know)."""
    found = _by_counter(counter)
    return NEITHER if found is None else found.category


_BY_CODE = {r.value: r for r in Refusal}
_BY_COUNTER = {r.counter: r for r in Refusal}
_BY_RULE = {r.rule: r for r in RECORD_RULES}

PROTOCOL_INVALID = frozenset(r.counter for r in Refusal if r.category == BAN)
"""Codes that count toward a ban."""
LIES = frozenset(r.value for r in Refusal if r.category == STRIKE)
"""Codes that are a strike."""
DEFENSES = frozenset({Refusal.OFF_FORMAT.value, Refusal.IMPROBABLE.value})
"""The per-completion counts of the defenses against valid data (never a strike or a ban)."""
