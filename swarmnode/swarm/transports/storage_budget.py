"""What a node keeps for peers, bounded in bytes per author and in total (`StorageBudget`): the memory hub, a
DHT node's storage and its cache, and the GossipSub host each keep peers' records within one, and count what
it evicts as `over_budget`."""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Hashable

AUTHOR_BYTES = 32 * 1024 * 1024
"""What one author's records may take of a node's storage (a node stores a batch per round for `ttl_s`)."""
TOTAL_BYTES = 256 * 1024 * 1024
"""What all peers' records may take of a node's storage (per store: a DHT node's storage and its cache)."""
ENTRY_BYTES = 512
"""What a record costs beyond its bytes (keys, expiry, containers), so tiny records are not free."""


class StorageBudget:
    """What a node keeps for peers, in bytes (`ENTRY_BYTES` more per record), per author and in total. Over an
    author's budget its own oldest records go first; over the total, the oldest records of the author who
    holds the most: many identities flooding a node push out each other before an honest author's records."""

    def __init__(
        self, total_bytes: int = TOTAL_BYTES, author_bytes: int = AUTHOR_BYTES, entry_bytes: int = ENTRY_BYTES
    ) -> None:
        self.total_bytes = total_bytes
        self.author_bytes = author_bytes
        self.entry_bytes = entry_bytes
        self.used = 0
        self.evicted = 0
        """Records evicted so far to stay within budget."""
        self.author_used: Counter[str] = Counter()
        self._places: dict[Hashable, str] = {}
        self._by_author: dict[str, OrderedDict[Hashable, int]] = {}

    def keep(self, place: Hashable, author: str, size: int) -> list[Hashable]:
        """Note a record of `size` bytes kept at `place` (replacing what was noted there); returns the places
        to evict, oldest first, so the author and the total stay within budget (maybe `place` itself)."""
        self.forget(place)
        cost = size + self.entry_bytes
        self._places[place] = author
        self._by_author.setdefault(author, OrderedDict())[place] = cost
        self.author_used[author] += cost
        self.used += cost
        evict: list[Hashable] = []
        while self.author_used[author] > self.author_bytes:
            evict.append(self._evict_oldest(author))
        while self.used > self.total_bytes:
            evict.append(self._evict_oldest(max(self.author_used, key=self.author_used.__getitem__)))
        return evict

    def forget(self, place: Hashable) -> None:
        """A record gone (expired, replaced or deleted)."""
        author = self._places.pop(place, None)
        if author is None:
            return
        cost = self._by_author[author].pop(place)
        self.author_used[author] -= cost
        self.used -= cost
        if not self._by_author[author]:
            del self._by_author[author], self.author_used[author]

    def __contains__(self, place: Hashable) -> bool:
        return place in self._places

    def _evict_oldest(self, author: str) -> Hashable:
        place = next(iter(self._by_author[author]))
        self.forget(place)
        self.evicted += 1
        return place
