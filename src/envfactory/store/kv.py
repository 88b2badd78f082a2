"""A SQLite key-value cache with typed, versioned rows: LLM responses, embeddings, other derived data.

Contract:
- One SQLite file in WAL mode: readers never block the writer, and several threads and processes may
  use one file at once (one connection per thread, created lazily; a forked child opens its own).
  Writers wait for each other up to `busy_timeout_s`, then a `StoreError` names the file.
- A row is `(namespace, key) -> (kind, version, value bytes)`. `kind` names the value's type (a model
  class name, `float32`, ...) and `version` its schema version. A reader that expects another kind or
  version gets a miss, never a wrong value, so a changed model invalidates its rows by itself.
- The file carries a format number (`PRAGMA user_version`). A file written by a newer format, or one
  that is not a database, is refused with a `StoreError` that says what to do (it holds only derived
  data, so deleting it is always safe).
- Writes are idempotent upserts (the same key always maps to the same derived value). The store holds
  caches, so it trades the durability of the last few writes for speed (`synchronous=NORMAL`): a crash
  may lose them, never corrupt the file.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from envfactory.errors import StoreError
from envfactory.spec import SpecModel

FORMAT_VERSION = 1
_CHUNK = 500  # keys per SELECT ... IN (...) (well below SQLite's variable limit)

_CREATE = """
CREATE TABLE IF NOT EXISTS entries (
    namespace  TEXT    NOT NULL,
    key        TEXT    NOT NULL,
    kind       TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    value      BLOB    NOT NULL,
    created_at REAL    NOT NULL,
    PRIMARY KEY (namespace, key)
) WITHOUT ROWID
"""

_M = TypeVar("_M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class Row:
    """One stored value with the type facts it was written with."""

    kind: str
    version: int
    value: bytes


def model_kind(cls: type[BaseModel]) -> str:
    """The `kind` a pydantic model's rows are stored under."""
    return cls.__name__


def model_version(cls: type[BaseModel]) -> int:
    """The model's `schema_version` default (0 for models without one)."""
    field = cls.model_fields.get("schema_version")
    default = field.default if field is not None else None
    return default if isinstance(default, int) else 0


class KVStore:
    """A typed key-value cache in one SQLite file (see the module docstring).

    Use as a context manager, or call `close()`; connections of other threads are closed too.
    """

    def __init__(self, path: Path, *, busy_timeout_s: float = 60.0, clock: Callable[[], float] = time.time) -> None:
        """Open (creating the file and its directory if needed) the store at `path`. `busy_timeout_s`: how long a
        writer waits for another process's lock; `clock`: seconds since the epoch, for expiry. Raises `StoreError`."""
        self.path = Path(path)
        self._busy_timeout_s = busy_timeout_s
        self._clock = clock
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[tuple[int, sqlite3.Connection]] = []
        self._closed = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the directory of {self.path}: {exc}") from exc
        self._initialise()

    # -- connections ---------------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        pid = os.getpid()
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and getattr(self._local, "pid", None) == pid:
            return conn
        if self._closed:
            raise StoreError(f"{self.path} is closed")
        try:
            # Autocommit mode; transactions are explicit (BEGIN IMMEDIATE) where several statements
            # must see one snapshot. check_same_thread=False only so that close() works from any thread:
            # each thread still uses its own connection.
            conn = sqlite3.connect(
                self.path, timeout=self._busy_timeout_s, isolation_level=None, check_same_thread=False
            )
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_s * 1000)}")
            conn.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.Error as exc:
            raise self._error("open", exc) from exc
        self._local.conn = conn
        self._local.pid = pid
        with self._lock:
            self._connections.append((pid, conn))
        return conn

    def _error(self, action: str, exc: sqlite3.Error) -> StoreError:
        message = str(exc)
        if isinstance(exc, sqlite3.DatabaseError) and "not a database" in message:
            return StoreError(
                f"{self.path} is not an envfactory cache database ({message}); it holds only derived data: delete it"
            )
        if "locked" in message or "busy" in message:
            return StoreError(f"{self.path} stayed locked for {self._busy_timeout_s:g}s during {action}: {message}")
        return StoreError(f"cannot {action} {self.path}: {message}")

    def _initialise(self) -> None:
        conn = self._connection()
        try:
            conn.execute("PRAGMA journal_mode = WAL").fetchone()
            conn.execute("BEGIN IMMEDIATE")
            try:
                (found,) = conn.execute("PRAGMA user_version").fetchone()
                if found > FORMAT_VERSION:
                    raise StoreError(
                        f"{self.path} has cache format {found}, newer than this envfactory's "
                        f"{FORMAT_VERSION}; upgrade envfactory or delete the file (it holds only derived data)"
                    )
                if found < FORMAT_VERSION:
                    conn.execute(_CREATE)
                    conn.execute(f"PRAGMA user_version = {FORMAT_VERSION}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            self.close()
            raise self._error("initialise", exc) from exc
        except StoreError:
            self.close()
            raise

    def close(self) -> None:
        """Close every connection this process opened on the file."""
        with self._lock:
            self._closed = True
            connections, self._connections = self._connections, []
        pid = os.getpid()
        for owner, conn in connections:
            if owner == pid:
                conn.close()
        self._local = threading.local()

    def __enter__(self) -> KVStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- raw rows ------------------------------------------------------------------------------------

    def get(self, namespace: str, key: str) -> Row | None:
        """The row stored under `(namespace, key)`, or `None`."""
        try:
            found = self._connection().execute(
                "SELECT kind, version, value FROM entries WHERE namespace = ? AND key = ?", (namespace, key)
            ).fetchone()
        except sqlite3.Error as exc:
            raise self._error("read", exc) from exc
        return None if found is None else Row(found[0], found[1], bytes(found[2]))

    def get_many(self, namespace: str, keys: Sequence[str]) -> dict[str, Row]:
        """The rows stored under any of `keys` (missing keys are absent from the result)."""
        unique = list(dict.fromkeys(keys))
        rows: dict[str, Row] = {}
        conn = self._connection()
        try:
            for start in range(0, len(unique), _CHUNK):
                chunk = unique[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                for key, kind, version, value in conn.execute(
                    f"SELECT key, kind, version, value FROM entries WHERE namespace = ? AND key IN ({marks})",
                    (namespace, *chunk),
                ):
                    rows[key] = Row(kind, version, bytes(value))
        except sqlite3.Error as exc:
            raise self._error("read", exc) from exc
        return rows

    def put(self, namespace: str, key: str, kind: str, version: int, value: bytes) -> None:
        """Store one row (replacing any row under the same key)."""
        self.put_many(namespace, [(key, kind, version, value)])

    def put_many(self, namespace: str, items: Iterable[tuple[str, str, int, bytes]]) -> None:
        """Store rows `(key, kind, version, value)` in one transaction."""
        now = self._clock()
        params = [(namespace, key, kind, version, value, now) for key, kind, version, value in items]
        if not params:
            return
        conn = self._connection()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany("INSERT OR REPLACE INTO entries VALUES (?, ?, ?, ?, ?, ?)", params)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise self._error("write", exc) from exc

    def delete(self, namespace: str, key: str | None = None) -> int:
        """Delete one key, or the whole namespace when `key` is None; returns the rows deleted."""
        conn = self._connection()
        try:
            if key is None:
                cursor = conn.execute("DELETE FROM entries WHERE namespace = ?", (namespace,))
            else:
                cursor = conn.execute("DELETE FROM entries WHERE namespace = ? AND key = ?", (namespace, key))
        except sqlite3.Error as exc:
            raise self._error("write", exc) from exc
        return cursor.rowcount

    def counts(self) -> dict[str, int]:
        """Rows per namespace."""
        try:
            found = self._connection().execute(
                "SELECT namespace, COUNT(*) FROM entries GROUP BY namespace ORDER BY namespace"
            ).fetchall()
        except sqlite3.Error as exc:
            raise self._error("read", exc) from exc
        return {namespace: count for namespace, count in found}

    def journal_mode(self) -> str:
        """SQLite's journal mode for this file (`wal` unless the filesystem refused it)."""
        (mode,) = self._connection().execute("PRAGMA journal_mode").fetchone()
        return str(mode).lower()

    # -- typed rows ----------------------------------------------------------------------------------

    def get_model(self, namespace: str, key: str, cls: type[_M]) -> _M | None:
        """The stored model, or `None` on a miss, another kind or version, or a row that no longer validates."""
        row = self.get(namespace, key)
        return None if row is None else _decode(row, cls)

    def put_model(self, namespace: str, key: str, model: BaseModel) -> None:
        """Store a pydantic model as canonical JSON, under its class name and schema version."""
        cls = type(model)
        self.put(namespace, key, model_kind(cls), model_version(cls), _encode(model))


def _encode(model: BaseModel) -> bytes:
    if isinstance(model, SpecModel):
        return model.to_json_bytes()
    return model.model_dump_json(by_alias=True).encode("utf-8")


def _decode(row: Row, cls: type[_M]) -> _M | None:
    if row.kind != model_kind(cls) or row.version != model_version(cls):
        return None
    try:
        return cls.model_validate_json(row.value)
    except ValidationError:
        return None
