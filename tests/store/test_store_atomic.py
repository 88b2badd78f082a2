"""Atomic writes: whole new file or the old one, never a torn one; no temporaries left on failure."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from envfactory.store import atomic_writer, stray_temporaries, write_atomic, write_text_atomic


def test_write_creates_parents_and_replaces(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "file.json"
    write_atomic(target, b"one")
    assert target.read_bytes() == b"one"
    write_text_atomic(target, "two")
    assert target.read_text() == "two"
    assert stray_temporaries(target.parent) == []


def test_failure_inside_the_writer_keeps_the_old_file_and_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "file.bin"
    write_atomic(target, b"old")
    with pytest.raises(RuntimeError), atomic_writer(target) as handle:
        handle.write(b"partial new content")
        raise RuntimeError("killed halfway")
    assert target.read_bytes() == b"old"
    assert stray_temporaries(tmp_path) == []


def test_keyboard_interrupt_is_cleaned_up_too(tmp_path: Path) -> None:
    target = tmp_path / "file.bin"
    with pytest.raises(KeyboardInterrupt), atomic_writer(target) as handle:
        handle.write(b"x" * 1000)
        raise KeyboardInterrupt
    assert not target.exists()
    assert stray_temporaries(tmp_path) == []


def test_concurrent_readers_only_ever_see_complete_versions(tmp_path: Path) -> None:
    target = tmp_path / "file.bin"
    versions = [bytes([i]) * 200_000 for i in range(1, 30)]
    write_atomic(target, versions[0])
    seen: set[bytes] = set()
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            seen.add(target.read_bytes())

    reader = threading.Thread(target=read)
    reader.start()
    for data in versions[1:]:
        write_atomic(target, data, durable=False)
    done.set()
    reader.join()
    assert seen <= set(versions)
    assert target.read_bytes() == versions[-1]
