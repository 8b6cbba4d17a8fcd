"""swarmnode wire protocol: signed msgpack envelopes carrying rollout batches and announcements (v1; v2 adds
behaviour log-probs).

Importable alone (msgpack and cryptography only): no torch, no network. SPEC.md is the normative text.
"""

from protocol.codec import Accepted, Rejected, Verdict, encode_payload, seal_payload, verify_and_decode
from protocol.envelope import DOMAIN, VERSION, VERSIONS, message_id, peer_id, seal, signing_input
from protocol.limits import Limits
from protocol.messages import (
    KIND_ANNOUNCE,
    KIND_ROLLOUTS,
    Announcement,
    BatchSummary,
    Payload,
    RolloutBatch,
    RolloutGroup,
    TaskRef,
)
from protocol.reasons import Reason

__all__ = [
    "DOMAIN",
    "KIND_ANNOUNCE",
    "KIND_ROLLOUTS",
    "VERSION",
    "VERSIONS",
    "Accepted",
    "Announcement",
    "BatchSummary",
    "Limits",
    "Payload",
    "Reason",
    "Rejected",
    "RolloutBatch",
    "RolloutGroup",
    "TaskRef",
    "Verdict",
    "encode_payload",
    "message_id",
    "peer_id",
    "seal",
    "seal_payload",
    "signing_input",
    "verify_and_decode",
]
