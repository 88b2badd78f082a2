"""The catalog's on-disk index: one SQLite file with every source's services, operation headers and
skipped items, an FTS5 full-text index ranked by BM25, converted resources, and embedding vectors.

Contract:
- Each source's rows are replaced in one transaction when its fingerprint changes; readers see the
  old rows or the new ones, never half a source. Two processes building the same source serialise
  on SQLite's write lock and the second one finds the work done.
- The file is a cache: a corrupt file or an older format is deleted and rebuilt.
- Search is BM25 over operation names (split camelCase/snake_case/dots; weight 4) and summaries plus
  service titles (weight 1), with Porter stemming. `linear_search` is the same ranking computed in
  Python over every row, without the index: the baseline of the benchmark and the fallback when this
  SQLite has no FTS5.
"""

from __future__ import annotations

import logging
import math
import sqlite3
import zlib
from array import array
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson

from envfactory.resources._text import tokens
from envfactory.resources.model import OperationEntry, Resource, ServiceEntry, Skipped
from envfactory.resources.source import ScanResult

logger = logging.getLogger(__name__)

INDEX_FORMAT = "5"  # 5: uncategorised APIs.guru providers tagged by table
NAME_WEIGHT = 4.0
TEXT_WEIGHT = 1.0
MAX_CACHED_RESOURCE_BYTES = 32 * 1024 * 1024

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sources(key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS services(
    source TEXT NOT NULL, id TEXT NOT NULL, provider TEXT NOT NULL, kind TEXT NOT NULL, domains TEXT NOT NULL,
    data BLOB NOT NULL, PRIMARY KEY(source, id));
CREATE TABLE IF NOT EXISTS operations(
    rowid INTEGER PRIMARY KEY, source TEXT NOT NULL, id TEXT NOT NULL, service_id TEXT NOT NULL,
    name TEXT NOT NULL, summary TEXT NOT NULL, method TEXT, path TEXT, title TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS operations_by_id ON operations(id);
CREATE INDEX IF NOT EXISTS operations_by_service ON operations(service_id, source);
CREATE INDEX IF NOT EXISTS operations_by_source ON operations(source);
CREATE TABLE IF NOT EXISTS skipped(source TEXT NOT NULL, item TEXT NOT NULL, reason TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS resources(source TEXT NOT NULL, id TEXT NOT NULL, data BLOB NOT NULL, PRIMARY KEY(source, id));
CREATE TABLE IF NOT EXISTS vectors(embedder TEXT NOT NULL, op_id TEXT NOT NULL, text_hash TEXT NOT NULL,
    vector BLOB NOT NULL, PRIMARY KEY(embedder, op_id));
"""
_FTS = "CREATE VIRTUAL TABLE IF NOT EXISTS operations_fts USING fts5(name, text, tokenize='porter unicode61')"


@dataclass(frozen=True, slots=True)
class Ranked:
    """An operation entry with its search score."""
    entry: OperationEntry
    score: float


def _placeholders(values: Sequence[object]) -> str:
    return ",".join("?" * len(values))


class CatalogIndex:
    """The index file at `path` (or in memory when `path` is None)."""

    def __init__(self, path: Path | None) -> None:
        """Open (creating it and its directory if needed) the SQLite index at `path`, or one in memory."""
        self.path = path
        self._db = self._open()

    def _open(self) -> sqlite3.Connection:
        if self.path is None:
            return self._init(sqlite3.connect(":memory:"))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            return self._init(sqlite3.connect(self.path, timeout=300))
        except sqlite3.DatabaseError as exc:
            logger.warning("catalog index %s is unreadable (%s); rebuilding it", self.path, exc)
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            return self._init(sqlite3.connect(self.path, timeout=300))

    def _init(self, db: sqlite3.Connection) -> sqlite3.Connection:
        db.isolation_level = None  # explicit transactions only
        if self.path is not None:
            db.execute("PRAGMA journal_mode=WAL")
        db.execute("BEGIN IMMEDIATE")
        try:
            has_meta = db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone()
            row = db.execute("SELECT value FROM meta WHERE key='format'").fetchone() if has_meta else None
            if row is None or row[0] != INDEX_FORMAT:
                for table in ("meta", "sources", "services", "operations", "skipped", "resources", "vectors",
                              "operations_fts"):
                    db.execute(f"DROP TABLE IF EXISTS {table}")
            for statement in _SCHEMA.strip().split(";"):
                if statement.strip():
                    db.execute(statement)
            try:
                db.execute(_FTS)
                fts = "1"
            except sqlite3.OperationalError:  # SQLite built without FTS5: linear search instead
                fts = "0"
            db.execute("INSERT OR REPLACE INTO meta VALUES ('format', ?)", (INDEX_FORMAT,))
            db.execute("INSERT OR REPLACE INTO meta VALUES ('fts', ?)", (fts,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self.has_fts = db.execute("SELECT value FROM meta WHERE key='fts'").fetchone()[0] == "1"
        return db

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    # -- sources ------------------------------------------------------------------------------------

    def fingerprint(self, key: str) -> str | None:
        """The fingerprint the source `key` was indexed under, or None when it was never indexed."""
        row = self._db.execute("SELECT fingerprint FROM sources WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def lock(self) -> None:
        """Take the write lock (waits for another process building the index)."""
        self._db.execute("BEGIN IMMEDIATE")

    def unlock(self, commit: bool) -> None:
        """End the write transaction `lock()` began: commit, or roll back when `commit` is False."""
        self._db.execute("COMMIT" if commit else "ROLLBACK")

    def replace_source(self, key: str, fingerprint: str, result: ScanResult) -> None:
        """Replace a source's rows; call between `lock()` and `unlock(True)`."""
        db = self._db
        if self.has_fts:
            db.execute("DELETE FROM operations_fts WHERE rowid IN (SELECT rowid FROM operations WHERE source=?)", (key,))
        for table in ("services", "operations", "skipped", "resources"):
            db.execute(f"DELETE FROM {table} WHERE source=?", (key,))
        titles: dict[str, str] = {}
        for service in result.services:
            titles[service.id] = f"{service.title} {service.service}"
            db.execute(
                "INSERT OR REPLACE INTO services VALUES (?,?,?,?,?,?)",
                (key, service.id, service.provider, service.kind, orjson.dumps(service.domains).decode(),
                 service.model_dump_json()),
            )
        for op in result.operations:
            title = titles.get(op.service_id, "")
            cursor = db.execute(
                "INSERT INTO operations(source, id, service_id, name, summary, method, path, title) VALUES (?,?,?,?,?,?,?,?)",
                (key, op.id, op.service_id, op.name, op.summary, op.http_method, op.http_path, title),
            )
            if self.has_fts:
                db.execute(
                    "INSERT INTO operations_fts(rowid, name, text) VALUES (?,?,?)",
                    (cursor.lastrowid, " ".join(tokens(op.name)), " ".join(tokens(f"{op.summary} {title}"))),
                )
        db.executemany("INSERT INTO skipped VALUES (?,?,?)", [(key, s.item, s.reason) for s in result.skipped])
        db.execute("INSERT OR REPLACE INTO sources VALUES (?,?)", (key, fingerprint))

    # -- reading ------------------------------------------------------------------------------------

    def services(self, sources: Sequence[str]) -> list[ServiceEntry]:
        """The service entries of `sources`, grouped in the order `sources` lists them."""
        rows = self._db.execute(
            f"SELECT source, data FROM services WHERE source IN ({_placeholders(sources)})", tuple(sources)
        ).fetchall()
        order = {key: i for i, key in enumerate(sources)}
        rows.sort(key=lambda row: order[row[0]])
        return [ServiceEntry.model_validate_json(row[1]) for row in rows]

    def skipped(self, sources: Sequence[str]) -> list[Skipped]:
        """What scanning `sources` skipped, in the order it was recorded."""
        rows = self._db.execute(
            f"SELECT source, item, reason FROM skipped WHERE source IN ({_placeholders(sources)}) ORDER BY rowid",
            tuple(sources),
        ).fetchall()
        return [Skipped(source=row[0], item=row[1], reason=row[2]) for row in rows]

    @staticmethod
    def _entry(row: Sequence[object]) -> OperationEntry:
        return OperationEntry(id=str(row[0]), service_id=str(row[1]), name=str(row[2]), summary=str(row[3]),
                              http_method=row[4] if isinstance(row[4], str) else None,
                              http_path=row[5] if isinstance(row[5], str) else None)

    def operations_of(self, service_id: str, source: str) -> list[OperationEntry]:
        """The operation headers of one service of one source, in scan order."""
        rows = self._db.execute(
            "SELECT id, service_id, name, summary, method, path FROM operations WHERE service_id=? AND source=? "
            "ORDER BY rowid", (service_id, source),
        ).fetchall()
        return [self._entry(row) for row in rows]

    def operation_entry(self, op_id: str, sources: Sequence[str]) -> tuple[str, OperationEntry] | None:
        """(source key, header) of operation `op_id` in the first of `sources` that has it, or None."""
        rows = self._db.execute(
            f"SELECT id, service_id, name, summary, method, path, source FROM operations WHERE id=? "
            f"AND source IN ({_placeholders(sources)})", (op_id, *sources),
        ).fetchall()
        if not rows:
            return None
        order = {key: i for i, key in enumerate(sources)}
        row = min(rows, key=lambda r: order[str(r[6])])
        return str(row[6]), self._entry(row)

    def scope(self, sources: Sequence[str], services: Iterable[str] | None) -> list[tuple[OperationEntry, str]]:
        """Every operation (with its service title) of the given sources, optionally of some services."""
        rows = self._db.execute(
            f"SELECT id, service_id, name, summary, method, path, title FROM operations "
            f"WHERE source IN ({_placeholders(sources)}) ORDER BY rowid", tuple(sources),
        ).fetchall()
        wanted = set(services) if services is not None else None
        return [(self._entry(row), str(row[6])) for row in rows if wanted is None or row[1] in wanted]

    # -- search -------------------------------------------------------------------------------------

    def search(self, query: str, sources: Sequence[str], limit: int, services: Iterable[str] | None = None) -> list[Ranked]:
        """The `limit` best operations for `query` by BM25 over names and summaries (names weigh more), in
        `sources` and, when given, only in `services`; ties broken by id, so the order is deterministic. Falls
        back to `linear_search` when SQLite lacks FTS5; an empty query gives []."""
        terms = sorted(set(tokens(query)))
        if not terms:
            return []
        if not self.has_fts:
            return self.linear_search(query, sources, limit, services)
        match = " OR ".join('"' + term.replace('"', "") + '"' for term in terms)
        wanted = set(services) if services is not None else None
        # Over-fetch when filtering by service: the filter is applied to the ranked rows.
        fetch = limit if wanted is None else max(limit * 50, 2000)
        rows = self._db.execute(
            f"SELECT o.id, o.service_id, o.name, o.summary, o.method, o.path, "
            f"bm25(operations_fts, {NAME_WEIGHT}, {TEXT_WEIGHT}) AS score "
            f"FROM operations_fts JOIN operations o ON o.rowid = operations_fts.rowid "
            f"WHERE operations_fts MATCH ? AND o.source IN ({_placeholders(sources)}) "
            f"ORDER BY score, o.id LIMIT ?",
            (match, *sources, fetch),
        ).fetchall()
        ranked = [Ranked(self._entry(row), -float(row[6])) for row in rows if wanted is None or row[1] in wanted]
        return _dedup(ranked)[:limit]

    def linear_search(
        self, query: str, sources: Sequence[str], limit: int, services: Iterable[str] | None = None
    ) -> list[Ranked]:
        """BM25 (k1=1.2, b=0.75, the FTS5 constants) over every row in Python: no index, no stemming."""
        terms = set(tokens(query))
        if not terms:
            return []
        docs = []
        for entry, title in self.scope(sources, services):
            name = Counter(tokens(entry.name))
            text = Counter(tokens(f"{entry.summary} {title}"))
            docs.append((entry, name, text, sum(name.values()), sum(text.values())))
        if not docs:
            return []
        n = len(docs)
        avg_name = sum(d[3] for d in docs) / n or 1.0
        avg_text = sum(d[4] for d in docs) / n or 1.0
        df = Counter(term for d in docs for term in terms if term in d[1] or term in d[2])
        # FTS5's idf: log((N - n + 0.5) / (n + 0.5)), floored at a small positive value
        idf = {t: max(1e-6, math.log((n - df[t] + 0.5) / (df[t] + 0.5))) for t in terms}
        k1, b = 1.2, 0.75
        ranked: list[Ranked] = []
        for entry, name, text, name_len, text_len in docs:
            score = 0.0
            for term in terms:
                for counts, length, avg, weight in ((name, name_len, avg_name, NAME_WEIGHT),
                                                    (text, text_len, avg_text, TEXT_WEIGHT)):
                    tf = counts.get(term, 0)
                    if tf:
                        score += weight * idf[term] * tf * (k1 + 1) / (tf + k1 * (1 - b + b * length / avg))
            if score > 0:
                ranked.append(Ranked(entry, score))
        ranked.sort(key=lambda r: (-r.score, r.entry.id))
        return _dedup(ranked)[:limit]

    # -- converted resources and vectors -------------------------------------------------------------

    def cached_resource(self, source: str, resource_id: str) -> Resource | None:
        """The converted `Resource` stored for (source, id), or None (also when the row is unreadable)."""
        row = self._db.execute("SELECT data FROM resources WHERE source=? AND id=?", (source, resource_id)).fetchone()
        if row is None:
            return None
        try:
            return Resource.model_validate_json(zlib.decompress(row[0]))
        except (zlib.error, ValueError):
            return None

    def store_resource(self, source: str, resource: Resource) -> None:
        """Store a converted `Resource` (compressed) for later loads; one over `MAX_CACHED_RESOURCE_BYTES` is
        not stored."""
        data = zlib.compress(resource.model_dump_json().encode(), 3)
        if len(data) > MAX_CACHED_RESOURCE_BYTES:
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.execute("INSERT OR REPLACE INTO resources VALUES (?,?,?)", (source, resource.id, data))
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def vectors(self, embedder: str, keys: Sequence[tuple[str, str]]) -> dict[str, array[float]]:
        """Stored vectors for (operation id, text hash) pairs whose text has not changed."""
        found: dict[str, array[float]] = {}
        wanted = dict(keys)
        ids = list(wanted)
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            for op_id, text_hash, blob in self._db.execute(
                f"SELECT op_id, text_hash, vector FROM vectors WHERE embedder=? AND op_id IN ({_placeholders(chunk)})",
                (embedder, *chunk),
            ):
                if wanted.get(op_id) == text_hash:
                    vector = array("f")
                    vector.frombytes(blob)
                    found[op_id] = vector
        return found

    def store_vectors(self, embedder: str, rows: Sequence[tuple[str, str, array[float]]]) -> None:
        """Store (operation id, text hash, vector) rows for `embedder`, replacing older ones, in one transaction."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.executemany(
                "INSERT OR REPLACE INTO vectors VALUES (?,?,?,?)",
                [(embedder, op_id, text_hash, vector.tobytes()) for op_id, text_hash, vector in rows],
            )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise


def _dedup(ranked: list[Ranked]) -> list[Ranked]:
    """One hit per operation id (the same service may be indexed by two sources)."""
    seen: set[str] = set()
    out: list[Ranked] = []
    for hit in ranked:
        if hit.entry.id not in seen:
            seen.add(hit.entry.id)
            out.append(hit)
    return out
