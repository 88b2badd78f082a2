"""Copy-on-write record store with an incremental canonical hash: the state of a declarative session.

Design (why it is fast):
- A state is a map of collections; a collection maps key -> record. Records are never mutated in
  place: a write stores a new dict, so forks share every record they have not changed.
- `fork()` copies only the map of collections (O(number of collections)); each side copies a
  collection's key map the first time it writes to it after the fork (copy-on-write).
- Every record has a 256-bit digest of its canonical JSON; a collection keeps the sum of its digests
  modulo 2**256 (a multiset hash, independent of insertion order). Digests are computed lazily: a
  write marks its record dirty, and the next `state_hash()` (or diff) digests only the dirty records
  and updates the sum, so a hash after a write costs O(changed records + collections), not O(state),
  and calls that are never hashed pay nothing for it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from typing import Any

import orjson

from envfactory.spec.base import canonical_json, sha256_hex

_MOD = 1 << 256
_SORT = orjson.OPT_SORT_KEYS


def record_digest(key: str, record: Mapping[str, Any]) -> int:
    """Digest of one (key, record) entry; canonical, so equal records give equal digests."""
    data = orjson.dumps((key, record), option=_SORT)
    return int.from_bytes(hashlib.blake2b(data, digest_size=32).digest(), "big")


class Collection:
    """One collection's records, their digests and the digest sum. Shared between forks until written.

    `digests` and `digest_sum` describe the records as of the last `flush()`; `dirty` names the keys
    written since. Flushing a shared collection is safe: it only fills a cache both owners agree on.
    """

    __slots__ = ("digest_sum", "digests", "dirty", "records")

    def __init__(
        self, records: dict[str, dict[str, Any]], digests: dict[str, int], digest_sum: int, dirty: set[str]
    ) -> None:
        """Records by key, their digests and digest sum as of the last flush, and the keys written since."""
        self.records = records
        self.digests = digests
        self.digest_sum = digest_sum
        self.dirty = dirty

    @classmethod
    def build(cls, records: dict[str, dict[str, Any]]) -> Collection:
        """A collection over `records` (taken, not copied) whose digests are computed on the first flush."""
        return cls(records, {}, 0, set(records))

    def copy(self) -> Collection:
        """A shallow copy (records shared, containers copied): what a store writes to after a fork."""
        return Collection(dict(self.records), dict(self.digests), self.digest_sum, set(self.dirty))

    def flush(self) -> None:
        """Bring `digests` and `digest_sum` up to date with the records written since the last flush."""
        if not self.dirty:
            return
        total = self.digest_sum
        digests, records = self.digests, self.records
        for key in self.dirty:
            new = record_digest(key, records[key])
            total += new - digests.get(key, 0)
            digests[key] = new
        self.digest_sum = total % _MOD
        self.dirty.clear()


class RecordStore:
    """The `StateHandle` of declarative environments."""

    __slots__ = ("_collections", "_owned", "counters")

    def __init__(self, collections: dict[str, Collection], counters: dict[str, int]) -> None:
        """A store owning `collections` (no copy is made) with the id `counters`."""
        self._collections = collections
        self._owned: set[str] = set(collections)
        self.counters = counters

    # -- reads -----------------------------------------------------------------------------------------
    def get(self, collection: str, key: str) -> dict[str, Any] | None:
        """The record `key` of `collection`, or None; `KeyError` for an unknown collection. Do not mutate it."""
        return self._collections[collection].records.get(key)

    def records(self, collection: str) -> Mapping[str, dict[str, Any]]:
        """Read-only view of a collection's records (do not mutate the records)."""
        return self._collections[collection].records

    def collection_names(self) -> Iterator[str]:
        """The collection names, in declaration order."""
        return iter(self._collections)

    def digest(self, collection: str, key: str) -> int | None:
        """The digest of record `key` (None when absent), flushing the collection first."""
        coll = self._collections[collection]
        coll.flush()
        return coll.digests.get(key)

    # -- writes ----------------------------------------------------------------------------------------
    def _writable(self, collection: str) -> Collection:
        if collection not in self._owned:
            self._collections[collection] = self._collections[collection].copy()
            self._owned.add(collection)
        return self._collections[collection]

    def put(self, collection: str, key: str, record: dict[str, Any]) -> None:
        """Write `record` under `key` (the collection is copied first if a fork still shares it)."""
        coll = self._writable(collection)
        coll.records[key] = record
        coll.dirty.add(key)

    def delete(self, collection: str, key: str) -> None:
        """Remove record `key` (`KeyError` when absent); the collection is copied first if shared."""
        coll = self._writable(collection)
        del coll.records[key]
        coll.dirty.discard(key)
        old = coll.digests.pop(key, None)
        if old is not None:
            coll.digest_sum = (coll.digest_sum - old) % _MOD

    # -- StateHandle -----------------------------------------------------------------------------------
    def fork(self) -> RecordStore:
        """A copy-on-write fork: both stores share every collection until one of them writes to it."""
        self._owned.clear()
        other = RecordStore.__new__(RecordStore)
        other._collections = dict(self._collections)
        other._owned = set()
        other.counters = dict(self.counters)
        return other

    def state_hash(self) -> str:
        """sha256 over each collection's digest sum and record count and the counters: equal for equal
        states, independent of insertion order; its cost grows only with the records written since the last hash."""
        for coll in self._collections.values():
            coll.flush()
        summary = {
            "collections": {
                name: [f"{coll.digest_sum:064x}", len(coll.records)] for name, coll in self._collections.items()
            },
            "counters": self.counters,
        }
        return sha256_hex(canonical_json(summary))

    def to_json(self) -> dict[str, Any]:
        """`{"collections": ..., "counters": ...}` as a fresh deep copy the caller may mutate."""
        # One JSON round trip yields a deep copy the caller may freely mutate.
        data = {
            "collections": {name: coll.records for name, coll in self._collections.items()},
            "counters": self.counters,
        }
        result: dict[str, Any] = orjson.loads(orjson.dumps(data))
        return result
