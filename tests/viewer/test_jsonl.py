"""The viewer's JSONL index: offsets, case-insensitive search, lazy summaries, rebuild on change, paging."""

from __future__ import annotations

import os
from pathlib import Path

from envfactory.viewer.jsonl import IndexCache, JsonlIndex, Page


def _summary(value: dict[str, object]) -> dict[str, object]:
    return {"name": value["name"]}


def test_index_search_raw_and_summaries(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    path.write_bytes(b'{"name": "Alpha"}\n\n{"name": "beta", "note": "\xc3\xa9t\xc3\xa9"}\n{broken\n["list"]\n')
    index = JsonlIndex.build(path, _summary)
    assert len(index) == 4
    assert index.search("ALPHA") == [0] and index.search("été") == [1] and index.search("") == [0, 1, 2, 3]
    assert index.raw(1).startswith(b'{"name": "beta"')
    assert index.summary(0) == {"problem": "", "name": "Alpha"}
    assert index.summary(2)["problem"].startswith("record 2: not a readable record")
    assert index.summary(3)["problem"].startswith("record 3: not a readable record")


def test_cache_rebuilds_when_the_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    path.write_bytes(b'{"name": "a"}\n')
    cache = IndexCache(limit=1)
    first = cache.get(path, "kind", _summary)
    assert cache.get(path, "kind", _summary) is first
    path.write_bytes(b'{"name": "a"}\n{"name": "b"}\n')
    os.utime(path, ns=(1, 1))
    second = cache.get(path, "kind", _summary)
    assert second is not first and len(second) == 2
    other = tmp_path / "other.jsonl"
    other.write_bytes(b"")
    cache.get(other, "kind", _summary)
    assert len(cache) == 1  # bounded


def test_page_clamps_and_counts() -> None:
    page = Page.of(list(range(120)), 3, 50)
    assert (page.items, page.total, page.pages, page.first) == (list(range(100, 120)), 120, 3, 101)
    assert Page.of(list(range(120)), 99, 50).page == 3 and Page.of([], 1, 50).first == 0
