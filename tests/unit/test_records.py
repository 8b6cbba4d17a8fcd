"""The record rules (`swarm/transports/records.py`), each check alone, and the same rules as the three transports apply
them: the hivemind record validator (hashed DHT keys), the libp2p topic validator and the in-memory hub.
No DHT node is started here (so no nat_port_map to turn off): the validators are called directly."""

from __future__ import annotations

import dataclasses

import msgpack
import pytest

import protocol
from protocol.testvectors import KEY_A, KEY_B, sample_announcement, sample_batch
from swarmnode.swarm.transports import records
from swarmnode.swarm.transports.envelope_head import envelope_head
from swarmnode.swarm.transports.hivemind_records import DHTKeys, announcement_key, batch_key, record_problem
from swarmnode.swarm.transports.libp2p_store import State
from swarmnode.swarm.transports.memory import MemoryHub, MemoryTransport
from swarmnode.swarm.transports.storage_budget import ENTRY_BYTES, StorageBudget

LIMITS = protocol.Limits()
SWARM = "demo-swarm"
NOW = 1_000_000 * 60.0
WINDOW = int(NOW // 60)


def rules(keys: records.RecordKeys | None = None, swarm: str | None = SWARM) -> records.SwarmRules:
    return records.SwarmRules(swarm, LIMITS, window_s=60.0, keys=keys, clock=lambda: NOW)


def peer(key: object) -> str:
    return protocol.peer_id(key.public_key().public_bytes_raw())  # type: ignore[attr-defined]


ANN_A = protocol.seal_payload(sample_announcement(), KEY_A, LIMITS)
BATCH = protocol.seal_payload(sample_batch(), KEY_A, LIMITS)
BUCKET_A = records.SwarmRules(SWARM, LIMITS).bucket_of(peer(KEY_A))


def test_batches_are_filed_under_the_hash_of_their_bytes_within_the_size_limit() -> None:
    r = rules()
    assert records.check_batch(r, records.BatchRecord(protocol.message_id(BATCH), BATCH)) is None
    assert records.check_batch(r, records.BatchRecord(b"\x01" * 32, BATCH)) == records.BATCH_ID_MISMATCH
    big = b"\x00" * (LIMITS.max_envelope_bytes + 1)
    assert records.check_batch(r, records.BatchRecord(protocol.message_id(big), big)) == records.OVERSIZE


def test_announcements_signed_for_this_swarm_under_their_signer_in_a_live_window_and_its_bucket() -> None:
    r = rules()
    good = records.check_announcement(r, records.AnnouncementRecord(ANN_A, (WINDOW, BUCKET_A), peer(KEY_A)))
    assert good == records.Signed(peer(KEY_A), sample_announcement())
    tampered = bytearray(ANN_A)
    tampered[-3] ^= 1
    foreign = protocol.seal_payload(dataclasses.replace(sample_announcement(), swarm="other"), KEY_A, LIMITS)
    cases = {
        records.BAD_ANNOUNCEMENT: [
            records.AnnouncementRecord(bytes(tampered), (WINDOW, BUCKET_A)),
            records.AnnouncementRecord(foreign, (WINDOW, BUCKET_A)),
            records.AnnouncementRecord(BATCH, (WINDOW, BUCKET_A)),  # a batch is no announcement
            records.AnnouncementRecord(ANN_A, (WINDOW, BUCKET_A), peer(KEY_B)),  # filed under somebody else
        ],
        records.ANNOUNCEMENT_WINDOW: [
            records.AnnouncementRecord(ANN_A, (WINDOW - 3, BUCKET_A)),
            records.AnnouncementRecord(ANN_A, (WINDOW + 2, BUCKET_A)),
            records.AnnouncementRecord(ANN_A, (WINDOW, (BUCKET_A + 1) % 8)),  # not its signer's bucket
        ],
    }
    for reason, bad in cases.items():
        for record in bad:
            assert records.check_announcement(r, record) == reason, record
    for window in range(WINDOW - 2, WINDOW + 2):
        assert isinstance(
            records.check_announcement(r, records.AnnouncementRecord(ANN_A, (window, BUCKET_A))), records.Signed
        )
    # a hub in one process takes any window and any swarm; still only signed announcements
    anywhere = rules(swarm=None)
    assert isinstance(
        records.check_announcement(anywhere, records.AnnouncementRecord(foreign), records.ANY_WINDOW, ()),
        records.Signed,
    )
    assert records.check_announcement(
        anywhere, records.AnnouncementRecord(bytes(tampered)), records.ANY_WINDOW, ()
    ) == (records.BAD_ANNOUNCEMENT)


def test_the_hivemind_validator_applies_the_same_rules_to_hashed_keys() -> None:
    pytest.importorskip("hivemind")
    r = rules(DHTKeys(SWARM))
    keys = DHTKeys(SWARM)

    def problem(key: str, value: bytes, subkey: str | None = None) -> str | None:
        packed_subkey: bytes = msgpack.packb(subkey)
        return record_problem(r, keys_of(key), packed_subkey, msgpack.packb(value, use_bin_type=True))

    def keys_of(key: str) -> bytes:
        from hivemind.dht.routing import DHTID

        return bytes(DHTID.generate(source=key).to_bytes())

    assert keys.batch(protocol.message_id(BATCH)) == keys_of(batch_key(SWARM, protocol.message_id(BATCH)))
    assert problem(batch_key(SWARM, protocol.message_id(BATCH)), BATCH) is None
    assert problem(batch_key(SWARM, b"\x01" * 32), BATCH) == records.BATCH_ID_MISMATCH
    ann_key = announcement_key(SWARM, WINDOW, BUCKET_A)
    assert problem(ann_key, ANN_A, peer(KEY_A)) is None
    assert problem(ann_key, ANN_A, peer(KEY_B)) == records.BAD_ANNOUNCEMENT
    assert problem(announcement_key(SWARM, WINDOW - 3, BUCKET_A), ANN_A, peer(KEY_A)) == records.ANNOUNCEMENT_WINDOW
    wrong_bucket = announcement_key(SWARM, WINDOW, (BUCKET_A + 1) % 8)
    assert problem(wrong_bucket, ANN_A, peer(KEY_A)) == records.ANNOUNCEMENT_WINDOW
    assert record_problem(r, keys_of(ann_key), msgpack.packb(peer(KEY_A)), b"\x01junk") == records.MALFORMED


def test_an_announcement_is_verified_once_however_often_it_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    """A window's announcements are read every pass and returned by several DHT nodes: each distinct envelope's
    signature is checked once, and the checks of where it is filed still run every time."""
    verified: list[bytes] = []
    real = protocol.verify_and_decode

    def counting(raw: bytes, limits: protocol.Limits) -> protocol.Verdict:
        verified.append(raw)
        return real(raw, limits)

    monkeypatch.setattr(protocol, "verify_and_decode", counting)
    r = rules()
    tampered = bytearray(ANN_A)
    tampered[-3] ^= 1
    for _ in range(5):
        record = records.AnnouncementRecord(ANN_A, (WINDOW, BUCKET_A), peer(KEY_A))
        assert records.check_announcement(r, record) == records.Signed(peer(KEY_A), sample_announcement())
        bad = records.AnnouncementRecord(bytes(tampered), (WINDOW, BUCKET_A))
        assert records.check_announcement(r, bad) == records.BAD_ANNOUNCEMENT
        elsewhere = records.AnnouncementRecord(ANN_A, (WINDOW - 3, BUCKET_A))
        assert records.check_announcement(r, elsewhere) == records.ANNOUNCEMENT_WINDOW
        wrong_signer = records.AnnouncementRecord(ANN_A, (WINDOW, BUCKET_A), peer(KEY_B))
        assert records.check_announcement(r, wrong_signer) == records.BAD_ANNOUNCEMENT
    assert verified == [ANN_A, bytes(tampered)]
    monkeypatch.setattr(records, "CHECKED_ANNOUNCEMENTS", 3)  # the oldest checks are forgotten past the bound
    later = [
        protocol.seal_payload(dataclasses.replace(sample_announcement(), created_ms=i), KEY_A, LIMITS)
        for i in (1, 2, 3)
    ]
    for envelope in [*later, ANN_A]:
        records.signed_announcement(r, envelope)
    assert verified == [ANN_A, bytes(tampered), *later, ANN_A]


def test_the_libp2p_topic_and_the_memory_hub_refuse_what_the_rules_refuse() -> None:
    state = State(SWARM, LIMITS, 60.0, StorageBudget(10_000_000))
    state.rules.clock = lambda: NOW
    assert state.check_announcement(WINDOW, ANN_A) == records.Signed(peer(KEY_A), sample_announcement())
    assert state.check_announcement(WINDOW - 3, ANN_A) is None
    assert not state.check_batch(b"\x01" * 32, BATCH)
    assert state.rejected == {"libp2p_announcement_window": 1, "libp2p_batch_id_mismatch": 1}
    hub = MemoryTransport(MemoryHub())
    with pytest.raises(ValueError):
        hub.store_batch(b"\x01" * 32, BATCH)
    hub.announce(WINDOW - 3, ANN_A)  # the hub files any window
    assert hub.announcements(WINDOW - 3, BUCKET_A) == [ANN_A]


# ---------------------------------------------------------------- expiry, signed batches, budget

SIGNED_S = sample_announcement().created_ms / 1000


def rules_at(now: float, keys: records.RecordKeys | None = None) -> records.SwarmRules:
    return records.SwarmRules(SWARM, LIMITS, window_s=60.0, keys=keys, clock=lambda: now, ttl_s=900.0)


def test_a_batch_value_must_be_a_signed_rollout_batch_of_this_swarm() -> None:
    r = rules()
    junk = bytes(range(256)) * 4096  # 1 MB of noise, filed at its own hash
    tampered = bytearray(BATCH)
    tampered[-5] ^= 1
    other_swarm = protocol.seal_payload(dataclasses.replace(sample_batch(), swarm="other"), KEY_A, LIMITS)
    for bad in (junk, bytes(tampered), ANN_A, other_swarm, b"\x95\x01"):
        assert records.check_batch(r, records.BatchRecord(protocol.message_id(bad), bad)) == records.BAD_BATCH
    assert records.check_batch(r, records.BatchRecord(protocol.message_id(BATCH), BATCH)) is None
    assert records.batch_author(r, BATCH) == peer(KEY_A)
    assert envelope_head(BATCH) == (protocol.KIND_ROLLOUTS, KEY_A.public_key().public_bytes_raw())
    assert envelope_head(junk) is None


def test_a_batch_lives_at_most_the_ttl_and_the_skew_past_now() -> None:
    r = rules_at(SIGNED_S)
    place = protocol.message_id(BATCH)
    assert records.check_batch(r, records.BatchRecord(place, BATCH, SIGNED_S + 900 + 30)) is None
    assert records.check_batch(r, records.BatchRecord(place, BATCH, SIGNED_S + 86_400)) == records.EXPIRY
    assert records.check_batch(r, records.BatchRecord(place, BATCH)) is None  # the keeper chooses the expiry


def test_an_announcement_expires_exactly_its_life_past_its_signed_time() -> None:
    keys = DHTKeys(SWARM)
    r = rules_at(SIGNED_S + 5, keys)
    key = keys.announcement(int((SIGNED_S + 5) // 60), BUCKET_A)
    life = 4 * 60.0  # the live windows: two behind, the current one, one ahead
    assert r.announcement_expiry(sample_announcement()) == SIGNED_S + life

    def verdict(expires: float | None, envelope: bytes = ANN_A) -> object:
        return records.check_announcement(r, records.AnnouncementRecord(envelope, key, peer(KEY_A), expires))

    assert isinstance(verdict(SIGNED_S + life), records.Signed)
    assert isinstance(verdict(None), records.Signed)
    for pinned in (SIGNED_S + 86_400, SIGNED_S + life + 1, SIGNED_S + 900):  # a day; a second more; the ttl
        assert verdict(pinned) == records.EXPIRY
    ahead = dataclasses.replace(sample_announcement(), created_ms=sample_announcement().created_ms + 60_000)
    signed_ahead = protocol.seal_payload(ahead, KEY_A, LIMITS)  # signed a minute in the future
    assert verdict(r.announcement_expiry(ahead), signed_ahead) == records.EXPIRY


def test_only_a_newer_signed_announcement_replaces_its_authors_kept_one() -> None:
    old, new = sample_announcement(), dataclasses.replace(sample_announcement(), created_ms=SIGNED_MS + 1)
    assert records.replaces(None, old) and records.replaces(old, new)
    assert not records.replaces(new, old) and not records.replaces(old, old)


SIGNED_MS = sample_announcement().created_ms


def test_the_budget_evicts_an_authors_oldest_then_the_heaviest_authors_oldest() -> None:
    budget = StorageBudget(total_bytes=10_000, author_bytes=4_000, entry_bytes=0)
    assert budget.keep("a1", "alice", 1_500) == [] and budget.keep("a2", "alice", 1_500) == []
    assert budget.keep("a3", "alice", 1_500) == ["a1"]  # alice over her 4,000: her oldest goes
    assert budget.author_used["alice"] == 3_000 and "a1" not in budget
    for i in range(4):  # mallory's identities fill the rest
        assert budget.keep(f"m{i}", f"mallory{i}", 1_600) == []
    assert budget.used == 9_400
    assert budget.keep("m9", "mallory0", 1_600) == ["m0"]  # the heaviest author loses its oldest, not alice
    assert budget.keep("a4", "alice", 1_000) == ["a2"]  # over both: alice's own oldest first, then fine
    assert budget.used <= 10_000 and budget.evicted == 3
    budget.keep("a4", "alice", 10)  # a place noted again replaces its old size
    budget.forget("a3")
    budget.forget("nowhere")
    assert budget.author_used["alice"] == 10 and budget.used == 10 + 4 * 1_600


def fresh(key: object, created_ms: int) -> bytes:
    payload = dataclasses.replace(sample_announcement(), created_ms=created_ms)
    return protocol.seal_payload(payload, key, LIMITS)  # type: ignore[arg-type]


def test_in_a_dht_node_an_old_announcement_cannot_pin_its_authors_entry() -> None:
    """The pinning attack: an honest peer's own old announcement re-stored with a far expiry."""
    pytest.importorskip("hivemind")
    import time

    from hivemind.dht.routing import DHTID

    from swarmnode.swarm.transports.hivemind_records import make_record_validator
    from swarmnode.swarm.transports.hivemind_storage import BudgetedStorage

    now = time.time()
    r = records.SwarmRules(SWARM, LIMITS, window_s=60.0, keys=DHTKeys(SWARM))
    validator = make_record_validator(r)
    storage = BudgetedStorage(StorageBudget(), lambda v: "", validator.counts, lambda reason: reason.counter)
    key = announcement_key(SWARM, int(now // 60), BUCKET_A)
    key_id = DHTID.generate(source=key)
    subkey = msgpack.packb(peer(KEY_A))
    old, new = fresh(KEY_A, int(now * 1000) - 20_000), fresh(KEY_A, int(now * 1000))

    def offer(envelope: bytes, expires: float) -> bool:
        from hivemind.dht.validation import DHTRecord

        value = msgpack.packb(envelope, use_bin_type=True)
        if not validator.validate(DHTRecord(key_id.to_bytes(), subkey, value, expires)):
            return False
        return bool(storage.store(key_id, value, expires, subkey=peer(KEY_A)))

    def kept() -> bytes:
        item = storage.get(key_id)
        assert item is not None
        return bytes(msgpack.unpackb(item.value.data[peer(KEY_A)].value))

    exact_old = (int(now * 1000) - 20_000) / 1000 + 240
    assert not offer(old, now + 86_400)  # pinned for a day: refused by the validator
    assert validator.counts == {"dht_expiry": 1}
    assert offer(old, exact_old) and kept() == old  # with its own expiry it may stand, until...
    assert offer(new, int(now * 1000) / 1000 + 240) and kept() == new  # ...its author's newer one replaces it
    assert not offer(old, exact_old) and kept() == new  # and the old one cannot come back
    assert validator.counts == {"dht_expiry": 1, "dht_older_announcement": 1}
    assert not offer(new, int(now * 1000) / 1000 + 240)  # the same again: nothing changes, nothing counted
    assert validator.counts == {"dht_expiry": 1, "dht_older_announcement": 1}


def test_a_dht_node_keeps_signed_batches_within_its_budget() -> None:
    pytest.importorskip("hivemind")
    import time

    from hivemind.dht.routing import DHTID

    from protocol.samples import test_key
    from swarmnode.swarm.transports.hivemind_records import make_record_validator
    from swarmnode.swarm.transports.hivemind_storage import BudgetedStorage

    r = records.SwarmRules(SWARM, LIMITS, keys=DHTKeys(SWARM))
    validator = make_record_validator(r)
    budget = StorageBudget(total_bytes=60_000, author_bytes=20_000)

    def author_of(value: bytes) -> str:
        return records.batch_author(r, msgpack.unpackb(value))

    storage = BudgetedStorage(budget, author_of, validator.counts, lambda reason: reason.counter)
    expires = time.time() + 600
    kept: dict[object, list[DHTID]] = {}
    for key in (KEY_A, KEY_B, test_key("swarmnode test key C")):
        for i in range(12):  # each batch ~2.4 KB: 12 of them over the author's 20 KB
            group = dataclasses.replace(sample_batch().groups[0], completions=("x" * 500,) * 4)
            batch = dataclasses.replace(sample_batch(), round=i, groups=(group,))
            raw = protocol.seal_payload(batch, key, LIMITS)
            value = msgpack.packb(raw, use_bin_type=True)
            key_id = DHTID.generate(source=batch_key(SWARM, protocol.message_id(raw)))
            assert storage.store(key_id, value, expires)
            kept.setdefault(key, []).append(key_id)
    assert budget.used <= 60_000 and all(used <= 20_000 for used in budget.author_used.values())
    for ids in kept.values():  # each author's newest batches stay, its oldest went
        assert storage.get(ids[-1]) is not None and storage.get(ids[0]) is None
    assert validator.counts["dht_over_budget"] > 0
    held = sum(len(item.value) + ENTRY_BYTES for _, item in storage.items())
    assert held == budget.used  # what it holds is what the budget counts
