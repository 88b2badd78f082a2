"""Paged, searchable indexes over JSONL artifacts (trajectories, tasks, attempts, chains).

Contract:
- `JsonlIndex.build(path, summarise)` reads the file once and keeps, for every non-empty line, its byte
  offset and the line lowercased for search; nothing is parsed then, so indexing costs one read.
- `search(query)` is a case-insensitive substring match over the raw line (so over every field a
  record holds); `raw(number)` re-reads one line by its offset.
- `summary(number)` is `summarise(parsed line)`, the few display fields a list shows, computed when a
  page first shows that record and kept; a line that is not JSON gets a summary with `problem` set
  instead of failing the page.
- `IndexCache` keeps one index per file and rebuilds it when the file's size or mtime changes; it is an
  attribute of the viewer (no module-level state) and bounded in the files it holds.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

Summary = dict[str, Any]
Summariser = Callable[[Any], Summary]


@dataclass(frozen=True, slots=True)
class JsonlIndex:
    """Offsets and lowercase text of one JSONL file's records, and the summaries shown so far."""

    path: Path
    offsets: tuple[int, ...]
    texts: tuple[bytes, ...]
    summarise: Summariser
    _summaries: dict[int, Summary] = field(default_factory=dict)

    @classmethod
    def build(cls, path: Path, summarise: Summariser) -> JsonlIndex:
        """Index `path` (an `OSError` propagates: the caller reports the file as unreadable)."""
        offsets: list[int] = []
        texts: list[bytes] = []
        position = 0
        with path.open("rb") as handle:
            for line in handle:
                start, position = position, position + len(line)
                if line.strip():
                    offsets.append(start)
                    texts.append(line.lower())
        return cls(path, tuple(offsets), tuple(texts), summarise)

    def __len__(self) -> int:
        return len(self.offsets)

    def search(self, query: str) -> list[int]:
        """Record numbers whose line contains `query` (case-insensitive); all of them for an empty query."""
        if not query:
            return list(range(len(self.offsets)))
        needle = query.lower().encode("utf-8")
        return [number for number, text in enumerate(self.texts) if needle in text]

    def raw(self, number: int) -> bytes:
        """The bytes of record `number` (an `IndexError` when there is no such record)."""
        if not 0 <= number < len(self.offsets):
            raise IndexError(number)
        with self.path.open("rb") as handle:
            handle.seek(self.offsets[number])
            return handle.readline()

    def summary(self, number: int) -> Summary:
        """The display fields of record `number` (always with `problem`: empty, or why it is unreadable)."""
        cached = self._summaries.get(number)
        if cached is not None:
            return cached
        try:
            made = {"problem": "", **self.summarise(orjson.loads(self.raw(number)))}
        except (orjson.JSONDecodeError, TypeError, ValueError, AttributeError, KeyError) as exc:
            made = {"problem": f"record {number}: not a readable record ({exc})"}
        self._summaries[number] = made
        return made


class IndexCache:
    """Indexes of JSONL files, rebuilt when a file changes; at most `limit` files are kept."""

    def __init__(self, limit: int = 64) -> None:
        """An empty cache that keeps the `limit` most recently used file indexes (thread-safe)."""
        self._limit = limit
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[Path, str], tuple[tuple[int, int], JsonlIndex]] = OrderedDict()

    def __len__(self) -> int:
        """How many file indexes are held."""
        with self._lock:
            return len(self._entries)

    def get(self, path: Path, kind: str, summarise: Summariser) -> JsonlIndex:
        """The index of `path` for record kind `kind` (built, or rebuilt if the file changed)."""
        stat = path.stat()
        stamp = (stat.st_size, stat.st_mtime_ns)
        key = (path, kind)
        with self._lock:
            cached = self._entries.get(key)
            if cached is not None and cached[0] == stamp:
                self._entries.move_to_end(key)
                return cached[1]
        index = JsonlIndex.build(path, summarise)
        with self._lock:
            self._entries[key] = (stamp, index)
            self._entries.move_to_end(key)
            while len(self._entries) > self._limit:
                self._entries.popitem(last=False)
        return index


@dataclass(frozen=True, slots=True)
class Page:
    """One page of results: the items shown and what the pager needs."""

    items: list[Any]
    total: int
    page: int
    pages: int
    size: int

    @classmethod
    def of(cls, matches: list[Any], page: int, size: int) -> Page:
        """Page `page` (1-based, clamped into range) of `matches` in slices of `size`."""
        pages = max(1, -(-len(matches) // size))
        page = min(max(1, page), pages)
        start = (page - 1) * size
        return cls(list(matches[start:start + size]), len(matches), page, pages, size)

    @property
    def first(self) -> int:
        """1-based position of the first item shown (0 when there is none)."""
        return (self.page - 1) * self.size + 1 if self.items else 0
