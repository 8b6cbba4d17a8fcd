"""A hivemind DHT node's local storage (and its cache) within a `StorageBudget`.

hivemind keeps every record a peer stores (or that its own lookups cache) in a `DHTLocalStorage` until the
record's expiry, with no bound on bytes: a peer could fill a node's memory with valid records. This storage
notes each record it keeps with the budget (a batch under its signer, an announcement under the peer id it
is filed under) and evicts what the budget says, oldest first. It also refuses, without touching hivemind's
expiry heap, a store that would change nothing (an expiry not later than the one kept): replays of the same
record cost nothing, and an announcement not newer than its author's kept one is counted. It starts and
listens on nothing: the node it serves is started in `hivemind_dht.py` with nat_port_map, auto_nat and relays
off unless the user opts in (`swarm.transport.nat_traversal`).
"""

from __future__ import annotations

import heapq
import os
from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Iterator
from typing import Any

from hivemind.dht.routing import DHTID
from hivemind.dht.storage import DHTLocalStorage, DictionaryDHTValue

from swarmnode.swarm.transports import records
from swarmnode.swarm.transports.storage_budget import StorageBudget
from swarmnode.swarm.trust.reasons import Refusal

COMPACT_AFTER = 1024
"""Stale entries hivemind's expiry heap may gather (replaced records) before it is rebuilt."""
PENDING_SLACK = 256
"""Keys without a pending lookup that `PendingGets` lets gather (beyond twice those with one) before it drops
them."""


class BudgetedStorage(DHTLocalStorage):  # type: ignore[misc]
    expiration_heap: list[Any]

    def __init__(
        self,
        budget: StorageBudget,
        author_of: Callable[[bytes], str],
        counts: Counter[str],
        counter: Callable[[Refusal], str],
    ) -> None:
        super().__init__()
        self.budget = budget
        self.author_of = author_of
        """The signer of a regular value (a batch, as hivemind serialises it)."""
        self.counts = counts
        self.counter = counter
        """The counter name of a reason (`dht_...`)."""
        self.places: dict[DHTID, set[Any]] = {}
        """The subkeys (None for a regular value) noted with the budget under each key."""

    def store(self, key: DHTID, value: bytes, expiration_time: float, subkey: Any = None) -> bool:
        if subkey is not None:
            return self.store_subkey(key, subkey, value, expiration_time)
        kept = self.data.get(key)
        if kept is not None and kept.expiration_time >= expiration_time:
            return False
        if not super().store(key, value, expiration_time):
            return False
        if isinstance(value, DictionaryDHTValue):  # a lookup's whole dictionary, cached
            for subkey, entry in list(value.data.items()):
                self.note(key, subkey, subkey if isinstance(subkey, str) else "", len(entry.value))
        else:
            self.note(key, None, self.author_of(value), len(value))
        return True

    def store_subkey(self, key: DHTID, subkey: Any, value: bytes, expiration_time: float) -> bool:
        kept = self.data.get(key)
        if kept is not None and isinstance(kept.value, DictionaryDHTValue):
            entry = kept.value.data.get(subkey)
            if entry is not None and entry.expiration_time >= expiration_time:
                if entry.value != value:  # the same announcement again costs nothing and is no refusal
                    self.counts[self.counter(records.OLDER_ANNOUNCEMENT)] += 1
                return False
        if not super().store_subkey(key, subkey, value, expiration_time):
            return False
        self.note(key, subkey, subkey if isinstance(subkey, str) else "", len(value))
        return True

    def note(self, key: DHTID, subkey: Any, author: str, size: int) -> None:
        """Note the record just kept, forget what left this key, evict what the budget says."""
        item = self.data.get(key)
        present = set(item.value.data) if item is not None and isinstance(item.value, DictionaryDHTValue) else {None}
        noted = self.places.setdefault(key, set())
        for gone in noted - present:
            self.budget.forget((key, gone))
        noted &= present
        noted.add(subkey)
        for place in self.budget.keep((key, subkey), author, size):
            self.delete(place)
            self.counts[self.counter(records.OVER_BUDGET)] += 1
        if len(self.expiration_heap) > 2 * len(self.key_to_heap) + COMPACT_AFTER:
            self.expiration_heap = list(self.key_to_heap.values())
            heapq.heapify(self.expiration_heap)

    def delete(self, place: Hashable) -> None:
        if not isinstance(place, tuple):
            return
        key, subkey = place
        self.places.get(key, set()).discard(subkey)
        item = self.data.get(key)
        if item is not None and subkey is not None and isinstance(item.value, DictionaryDHTValue):
            del item.value[subkey]
            if item.value.data:
                return
        if key in self.data:
            del self[key]
        for left in self.places.pop(key, set()):
            self.budget.forget((key, left))

    def _remove_outdated(self) -> None:
        before = len(self.data)
        super()._remove_outdated()
        if len(self.data) != before:  # expired keys: forget what was noted under them
            for key in [k for k in self.places if k not in self.data]:
                for subkey in self.places.pop(key):
                    self.budget.forget((key, subkey))


class PendingGets(defaultdict[Any, Any]):
    """hivemind's `DHTNode.pending_get_requests` (the lookups in flight per key, to share their results), without
    its leak: hivemind never deletes a key whose lookups have finished, so every key a node ever looked up (a
    batch downloaded, an announcement bucket of a window read) keeps an empty sorted set (about 2 KB) for the
    life of the node. Here a key with no lookup left is dropped once such keys outnumber the others twice over
    (plus `PENDING_SLACK`): the same lookups are shared, and the map holds about what is in flight. It is only
    touched on the DHT's event loop, like the dictionary it replaces."""

    def __missing__(self, key: Any) -> Any:
        if len(self) > 2 * self._busy + PENDING_SLACK:
            for done in [k for k, searches in self.items() if not searches]:
                del self[done]
            self._busy = len(self)
        return super().__missing__(key)

    _busy = 0
    """Keys with a lookup in flight when the map was last pruned."""


def install_budgets(
    node: Any,
    budget: StorageBudget,
    author_of: Callable[[bytes], str],
    counts: Counter[str],
    counter: Callable[[Refusal], str],
) -> None:
    """Give hivemind's `DHTNode` a storage within `budget` and a cache within a quarter of it (call before it
    meets any peer, while both are empty), and its map of lookups in flight without hivemind's leak
    (`PendingGets`). A node without hivemind's protocol (a test's stand-in) keeps none."""
    protocol_ = getattr(node, "protocol", None)
    if protocol_ is None:
        return
    cache = StorageBudget(budget.total_bytes // 4, budget.author_bytes // 4, budget.entry_bytes)
    protocol_.storage = BudgetedStorage(budget, author_of, counts, counter)
    protocol_.cache = BudgetedStorage(cache, author_of, counts, counter)
    pending = getattr(node, "pending_get_requests", None)
    if isinstance(pending, defaultdict):  # still empty: no lookup has run yet
        node.pending_get_requests = PendingGets(pending.default_factory, pending)
    control = getattr(getattr(getattr(node, "p2p", None), "_client", None), "control", None)
    calls = getattr(control, "_pending_calls", None)
    if type(calls) is dict:
        control._pending_calls = SettledCalls(calls)  # type: ignore[union-attr]
    keep_records_at_home(protocol_)


class _Unlisted:
    """A storage as hivemind's routing update sees it: every record is there, none is listed (see
    `keep_records_at_home`)."""

    def __init__(self, storage: Any) -> None:
        self._storage = storage

    def items(self) -> Iterator[Any]:
        return iter(())

    def __getattr__(self, name: str) -> Any:
        return getattr(self._storage, name)


def keep_records_at_home(protocol_: Any) -> None:
    """No records handed to a node met for the first time. hivemind's routing update sends a node it has not
    met every stored record that node is now among the nearest for, in one request: in a small swarm, about
    everything a node holds (minutes of batches and announcements, thousands of records, megabytes). In
    soaks every peer's reads then found nothing for a round or two whenever a node (re)joined:
    most likely the newcomer, checking every record (a signature each) on its DHT thread, answered nobody
    for seconds, and lookups that reached it waited out their RPC timeouts. Here a writer's records stay
    where it stored them (on `num_replicas` nodes, each record living minutes at most); the routing table
    is updated as hivemind does it."""
    update, stored = protocol_.update_routing_table, protocol_.storage
    unlisted = _Unlisted(stored)  # one view for every call: the update runs on every request sent and answered

    async def update_routing_table(node_id: Any, peer_id: Any, responded: bool = True) -> None:
        protocol_.storage = unlisted
        try:
            await update(node_id, peer_id, responded)
        finally:
            protocol_.storage = stored

    protocol_.update_routing_table = update_routing_table


class _Settle:
    """A pending call's future as the map hands it out: a reply to a call already settled is dropped."""

    __slots__ = ("_future",)

    def __init__(self, future: Any) -> None:
        self._future = future

    def set_result(self, value: object) -> None:
        if not self._future.done():
            self._future.set_result(value)

    def set_exception(self, exc: BaseException) -> None:
        if not self._future.done():
            self._future.set_exception(exc)

    def __await__(self) -> Any:
        return self._future.__await__()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._future, name)


class SettledCalls(dict[Any, Any]):
    """hivemind's map of calls awaiting the p2p daemon's reply (`ControlClient._pending_calls`). hivemind
    1.1.12 sets the reply on the call's future even when the caller already gave up on it (a timeout
    cancelled it): `InvalidStateError`, which ends its task reading the daemon's replies, so every later call
    of the node would time out. Here a reply to a call already settled is dropped."""

    def __getitem__(self, key: Any) -> Any:
        return _Settle(super().__getitem__(key))


DAEMON_GOMEMLIMIT = "48MiB"
"""The Go memory limit given to hivemind's p2p daemon (a soft target: its GC runs sooner, it never fails).
Without it, the daemon keeps about 30 MB more resident after relaying 100 MB of 1 MB records, refused or
not (Go returns freed memory to the system slowly); with it, about 6 MB. A user's own GOMEMLIMIT wins."""


def limit_daemon_memory() -> None:
    """Set the daemon's Go memory limit in the environment it inherits, unless the user set one."""
    os.environ.setdefault("GOMEMLIMIT", DAEMON_GOMEMLIMIT)
