"""The SQLite key-value cache: typed and versioned rows, WAL, threads and processes, bad files."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
from pathlib import Path
from typing import Literal

import pytest

from envfactory.errors import StoreError
from envfactory.spec import SpecModel
from envfactory.store import FORMAT_VERSION, KVStore, Workspace


class Note(SpecModel):
    schema_version: Literal[1] = 1
    text: str
    n: int = 0


def note_v2() -> type[SpecModel]:
    class Note(SpecModel):  # same kind (class name), next schema version
        schema_version: Literal[2] = 2
        text: str

    return Note


class Other(SpecModel):
    schema_version: Literal[1] = 1
    text: str


def test_typed_rows_round_trip_and_persist(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    with KVStore(path) as store:
        assert store.journal_mode() == "wal"
        store.put_model("notes", "k1", Note(text="héllo", n=3))
        assert store.get_model("notes", "k1", Note) == Note(text="héllo", n=3)
        assert store.get_model("notes", "missing", Note) is None
        assert store.get_model("other-namespace", "k1", Note) is None
    with KVStore(path) as store:  # a new process would see the same
        assert store.get_model("notes", "k1", Note) == Note(text="héllo", n=3)
        assert store.counts() == {"notes": 1}


def test_another_kind_or_version_is_a_miss_never_a_wrong_value(tmp_path: Path) -> None:
    with KVStore(tmp_path / "c.sqlite") as store:
        store.put_model("ns", "k", Note(text="a"))
        assert store.get_model("ns", "k", Other) is None  # same fields, other kind
        assert store.get_model("ns", "k", note_v2()) is None  # same kind, other version
        store.put("ns", "garbage", "Note", 1, b"{not json")
        assert store.get_model("ns", "garbage", Note) is None


def test_raw_rows_batches_and_deletes(tmp_path: Path) -> None:
    with KVStore(tmp_path / "c.sqlite") as store:
        items = [(f"k{i}", "float32", 1, bytes([i % 256]) * 8) for i in range(1200)]
        store.put_many("vec", items)
        rows = store.get_many("vec", [f"k{i}" for i in range(0, 1300, 7)])
        assert len(rows) == len(range(0, 1200, 7))
        assert rows["k14"].value == bytes([14]) * 8 and rows["k14"].kind == "float32"
        assert store.delete("vec", "k14") == 1
        assert store.get("vec", "k14") is None
        assert store.delete("vec") == 1199
        assert store.counts() == {}


def test_threads_share_one_store(tmp_path: Path) -> None:
    store = KVStore(tmp_path / "c.sqlite")
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for i in range(150):
                store.put_model("t", f"{worker}-{i}", Note(text=str(i), n=worker))
                assert store.get_model("t", f"{worker}-{i}", Note) is not None
        except BaseException as exc:  # collected and re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert store.counts() == {"t": 8 * 150}
    store.close()


def _write_from_process(path: str, worker: int) -> None:
    with KVStore(Path(path)) as store:
        for i in range(100):
            store.put_model("p", f"{worker}-{i}", Note(text="x" * 100, n=i))
            store.put_many("q", [(f"{worker}-{i}-{j}", "raw", 1, b"v") for j in range(3)])


def test_processes_share_one_file(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    KVStore(path).close()
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_write_from_process, args=(str(path), w)) for w in range(3)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
        assert process.exitcode == 0
    with KVStore(path) as store:
        assert store.counts() == {"p": 300, "q": 900}
        assert store.get_model("p", "2-99", Note) == Note(text="x" * 100, n=99)


def test_not_a_database_is_refused_with_advice(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match=r"not an envfactory cache database.*delete it"):
        KVStore(path)


def test_a_newer_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    KVStore(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {FORMAT_VERSION + 1}")
    with pytest.raises(StoreError, match="newer than this envfactory"):
        KVStore(path)


def test_closed_store_refuses_use(tmp_path: Path) -> None:
    store = KVStore(tmp_path / "c.sqlite")
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.get("a", "b")


def test_workspace_opens_its_cache(tmp_path: Path) -> None:
    workspace = Workspace(tmp_path / "ws")
    with workspace.open_llm_cache() as store:
        store.put("a", "b", "raw", 1, b"x")
    assert workspace.llm_cache_path.is_file()
    assert (tmp_path / "ws" / "runs").is_dir() and (tmp_path / "ws" / "envs").is_dir()
