"""Announcement buckets that scale with the swarm: a node's estimate of the swarm's size, the level
it reads at, writers found at every level, and the record rules for the levels' keys."""

from __future__ import annotations

import dataclasses
import random

import msgpack
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import protocol
from protocol.testvectors import KEY_A, sample_announcement
from swarmnode.identity import Identity
from swarmnode.swarm.transports import records
from swarmnode.swarm.transports.base import (
    SETTINGS,
    BucketLevel,
    SwarmSettings,
    announcement_bucket,
    best_level,
    filing_levels,
    size_sample,
)
from swarmnode.swarm.transports.memory import MemoryHub, MemoryTransport
from swarmnode.swarm.transports.storage_budget import StorageBudget

LIMITS = protocol.Limits()
SWARM = "demo-swarm"
NOW = 1_000_000 * 60.0
WINDOW = int(NOW // 60)


def peer(key: object) -> str:
    return protocol.peer_id(key.public_key().public_bytes_raw())  # type: ignore[attr-defined]


ANN_A = protocol.seal_payload(sample_announcement(), KEY_A, LIMITS)
AUTHOR = peer(KEY_A)


def test_the_settings_every_node_shares() -> None:
    assert SETTINGS == SwarmSettings()  # one place: a frozen dataclass
    with pytest.raises(dataclasses.FrozenInstanceError):
        SETTINGS.max_level = 11  # type: ignore[misc]
    assert SETTINGS.levels == range(3, 11) and list(filing_levels()) == list(SETTINGS.levels)
    assert records.LEVELS == SETTINGS.levels and records.WINDOWS_BEHIND == SETTINGS.windows_behind


def test_a_new_node_starts_at_8_buckets_and_its_first_estimates_set_its_level() -> None:
    small, large, odd = BucketLevel(), BucketLevel(), BucketLevel()
    assert small.level == large.level == 3 and small.estimate == 12.0  # the middle load of 8 buckets
    assert small.observe(6.0) == 3  # a small swarm stays at the base level: 8 buckets
    assert large.observe(1000.0) == 8  # the first read of a large swarm moves the level at once...
    assert [large.observe(1000.0) for _ in range(4)][-1] == 9  # ...and the next ones settle it
    assert odd.observe(33.0) == 3  # one odd first bucket (a load of 4 at 8 buckets) weighs half
    assert best_level(1.0) == 3 and best_level(1e9) == SETTINGS.max_level  # bounded both ways
    assert [best_level(n) for n in (12, 24, 48, 96, 192, 384, 768)] == [3, 4, 5, 6, 7, 8, 9]


def test_estimates_within_the_band_keep_the_level_and_one_far_off_round_does_not_move_it() -> None:
    levels = BucketLevel()
    for _ in range(10):
        levels.observe(1000.0)
    assert levels.level == 9 and abs(levels.estimate - 1000) < 100
    for size in (700.0, 1300.0, 900.0, 1500.0, 450.0):  # loads 0.9 to 2.9 a bucket at 512 buckets: in the band
        assert levels.observe(size) == 9
    assert levels.observe(3000.0) == 9  # one round's outlier is smoothed (an estimate of ~1,370: load 2.7)
    assert best_level(levels.estimate) == 10  # nearer a load of 1.5 at 1,024 buckets, but within the band: kept
    for _ in range(30):  # the swarm really grew: the level follows, as far as the highest
        levels.observe(4000.0)
    assert levels.level == SETTINGS.max_level == best_level(4000.0)
    for _ in range(30):  # and shrank again: back to a load within the band
        levels.observe(40.0)
    assert levels.level == 5
    assert SETTINGS.low_load <= levels.estimate / 2**levels.level <= SETTINGS.high_load


def _ranked_read(n: int, level: int, known: int, reads: int, rng: random.Random) -> tuple[float, float]:
    """One reader's sample the way `_read_offers` takes it: the buckets of its known peers first. Returns
    (the corrected estimate, the naive one that counts the known peers as a random sample)."""
    buckets = 1 << level
    placed = [rng.randrange(buckets) for _ in range(n - 1)]  # every other node's bucket
    known_ids = set(rng.sample(range(n - 1), known))
    ranked = list(dict.fromkeys(placed[i] for i in known_ids))[:reads]
    counts = []
    for b in ranked:
        members = [i for i, p in enumerate(placed) if p == b]
        counts.append((len(members), sum(1 for i in members if i in known_ids)))
    naive = 1 + buckets * sum(c for c, _ in counts) / len(counts)
    return size_sample(level, counts, known), naive


def test_the_size_estimate_corrects_for_reading_known_peers_buckets_first() -> None:
    rng = random.Random(0)
    for n, level in ((1000, 9), (256, 7), (64, 5)):
        samples = [_ranked_read(n, level, known=20, reads=3, rng=rng) for _ in range(200)]
        fair = sum(s for s, _ in samples) / len(samples)
        naive = sum(s for _, s in samples) / len(samples)
        assert 0.85 * n < fair < 1.15 * n, (n, fair)
        assert naive > 1.3 * n, (n, naive)  # the bias the correction removes: it would push levels ever up


def _announcement(key: Ed25519PrivateKey, created_ms: int) -> bytes:
    payload = dataclasses.replace(sample_announcement(), created_ms=created_ms)
    return protocol.seal_payload(payload, key, LIMITS)


def test_a_writer_is_found_by_readers_at_every_level_and_only_in_its_bucket() -> None:
    hub = MemoryHub()
    writer = MemoryTransport(hub, level=9)
    keys = [Ed25519PrivateKey.generate() for _ in range(40)]
    for i, key in enumerate(keys):
        writer.level = 3 + i % 8  # writers whose estimates differ, by up to the whole range of levels
        writer.announce(7, _announcement(key, 1_000 + i))
    for level in SETTINGS.levels:
        reader = MemoryTransport(hub, level=level)
        assert len(reader.announcements(7)) == len(keys)  # every bucket of the level: everyone, once
        for key in keys[:5]:
            author = Identity(key).peer_id
            mine = announcement_bucket(author, 1 << level)
            assert _authors(reader.announcements(7, mine)) >= {author}
            assert author not in _authors(reader.announcements(7, (mine + 1) % reader.buckets))


def _authors(envelopes: list[bytes]) -> set[str]:
    out = set()
    for envelope in envelopes:
        verdict = protocol.verify_and_decode(envelope, LIMITS)
        assert isinstance(verdict, protocol.Accepted)
        out.add(verdict.peer_id)
    return out


def test_buckets_nest_from_level_to_level() -> None:
    for i in range(50):
        author = Identity(Ed25519PrivateKey.generate()).peer_id if i < 5 else f"peer{i}"
        for k in range(3, 10):
            assert announcement_bucket(author, 1 << (k + 1)) % (1 << k) == announcement_bucket(author, 1 << k)


def _rules(keys: records.RecordKeys | None = None) -> records.SwarmRules:
    return records.SwarmRules(SWARM, LIMITS, window_s=60.0, keys=keys, clock=lambda: NOW)


def test_records_are_filed_only_in_their_signers_bucket_at_an_allowed_level() -> None:
    r = _rules()
    for level in SETTINGS.levels:
        own = records.AnnouncementRecord(ANN_A, r.keys.announcement(WINDOW, r.bucket_of(AUTHOR, level), level))
        assert isinstance(records.check_announcement(r, own), records.Signed), level
        other = (r.bucket_of(AUTHOR, level) + 1) % (1 << level)
        wrong = records.AnnouncementRecord(ANN_A, r.keys.announcement(WINDOW, other, level))
        assert records.check_announcement(r, wrong) == records.ANNOUNCEMENT_WINDOW, level
    for level in (SETTINGS.base_level - 1, SETTINGS.max_level + 1, 0):  # outside the levels: nowhere to stand
        outside = records.AnnouncementRecord(ANN_A, r.keys.announcement(WINDOW, r.bucket_of(AUTHOR, level), level))
        assert records.check_announcement(r, outside) == records.ANNOUNCEMENT_WINDOW, level
    # the base level's keys carry no level, as a node without levels files them (so the two meet)
    assert r.keys.announcement(WINDOW, 5) == (WINDOW, 5) and r.keys.announcement(WINDOW, 5, 4) == (WINDOW, 5, 4)


def test_the_hivemind_validator_refuses_keys_outside_the_levels() -> None:
    pytest.importorskip("hivemind")  # its record validator only: no DHT starts, nothing listens (nat_port_map n/a)
    from hivemind.dht.routing import DHTID

    from swarmnode.swarm.transports.hivemind_records import DHTKeys, announcement_key, record_problem

    r = _rules(DHTKeys(SWARM))

    def problem(key: str) -> str | None:
        key_id = bytes(DHTID.generate(source=key).to_bytes())
        return record_problem(r, key_id, msgpack.packb(AUTHOR), msgpack.packb(ANN_A, use_bin_type=True))

    assert announcement_key(SWARM, WINDOW, 5) == f"{SWARM}/ann/{WINDOW}/5"  # the base level's keys: no level
    assert announcement_key(SWARM, WINDOW, 5, 9) == f"{SWARM}/ann/{WINDOW}/9/5"
    for level in (3, 6, 10):
        assert problem(announcement_key(SWARM, WINDOW, r.bucket_of(AUTHOR, level), level)) is None
        other = (r.bucket_of(AUTHOR, level) + 1) % (1 << level)
        assert problem(announcement_key(SWARM, WINDOW, other, level)) == records.ANNOUNCEMENT_WINDOW
    assert problem(announcement_key(SWARM, WINDOW, r.bucket_of(AUTHOR, 11), 11)) == records.ANNOUNCEMENT_WINDOW
    assert problem(announcement_key(SWARM, WINDOW, r.bucket_of(AUTHOR, 2), 2)) == records.ANNOUNCEMENT_WINDOW


def test_a_libp2p_host_answers_any_level_from_one_filing() -> None:
    from swarmnode.swarm.transports.libp2p_host import State

    state = State(SWARM, LIMITS, 60.0, StorageBudget(10_000_000))
    state.rules.clock = lambda: NOW
    signed = state.check_announcement(WINDOW, ANN_A)
    assert signed is not None and state.keep_announcement(WINDOW, signed, ANN_A)
    for level in SETTINGS.levels:
        mine = announcement_bucket(AUTHOR, 1 << level)
        assert state.listed(WINDOW, mine, level) == [ANN_A]
        assert state.listed(WINDOW, (mine + 1) % (1 << level), level) == []
    assert state.listed(WINDOW, None, 5) == [ANN_A] and state.listed(WINDOW + 1, None, 5) == []
