"""Atomic file writes: a reader sees the old file or the complete new one, never a torn one.

Contract:
- Data goes to a temporary file in the target's directory (same filesystem), is flushed and fsynced,
  then renamed over the target with `os.replace`; the directory is fsynced so the rename survives a crash.
- On any failure (including KeyboardInterrupt) the temporary file is removed: nothing half-written stays.
- `atomic_writer` is the streaming form, for files too large to hold in memory (model assembly).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # some filesystems do not allow opening directories; the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_writer(path: Path, *, durable: bool = True) -> Iterator[BinaryIO]:
    """Open a temporary file next to `path`; on a clean exit it replaces `path`, else it is deleted.

    Args:
        path: the file to create or replace.
        durable: fsync the file and its directory (skip only for throwaway files).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        _fsync_dir(path.parent)


def write_atomic(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Write `data` to `path` atomically (see the module docstring)."""
    with atomic_writer(path, durable=durable) as handle:
        handle.write(data)


def write_text_atomic(path: Path, text: str, *, durable: bool = True) -> None:
    """Write UTF-8 `text` to `path` atomically."""
    write_atomic(path, text.encode("utf-8"), durable=durable)


def stray_temporaries(directory: Path) -> list[Path]:
    """Temporary files a killed writer left in `directory` (`.<name>.*.tmp`), for cleanup and tests."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp"))
