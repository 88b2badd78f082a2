"""Stage directories: atomic artifacts, a manifest written last, completion re-checked by hash."""

from __future__ import annotations

from pathlib import Path

import pytest

from envfactory.errors import StoreError
from envfactory.spec import StageManifest
from envfactory.store import StageDir, Workspace


def test_stage_writes_under_the_run_and_finishes_with_hashed_outputs(tmp_path: Path) -> None:
    stage = StageDir.open(Workspace(tmp_path / "ws"), "r1", "synth-tasks")
    assert stage.path == tmp_path / "ws" / "runs" / "r1" / "synth-tasks"
    assert stage.read_manifest() is None and not stage.is_complete()
    stage.write_jsonl("tasks.jsonl", [{"b": 1, "a": 2}, {"c": 3}])
    stage.write_json("funnel.json", {"kept": 2})
    manifest = stage.finish(outputs=["tasks.jsonl", "funnel.json"], seeds={"main": 7}, timings={"wall_s": 1.5})
    assert [ref.path for ref in manifest.outputs] == ["funnel.json", "tasks.jsonl"]
    assert manifest.outputs[1].records == 2
    assert (stage.path / "tasks.jsonl").read_bytes() == b'{"a":2,"b":1}\n{"c":3}\n'
    assert stage.is_complete()
    assert stage.read_manifest() == manifest


def test_digest_ignores_timings_only() -> None:
    a = StageManifest(stage="s", run_id="r", timings={"wall_s": 1.0}, counts={"kept": 1})
    assert a.content_digest() == a.model_copy(update={"timings": {"wall_s": 9.0}}).content_digest()
    assert a.content_digest() != a.model_copy(update={"counts": {"kept": 2}}).content_digest()


def test_an_edited_output_makes_the_stage_incomplete(tmp_path: Path) -> None:
    stage = StageDir.open(Workspace(tmp_path), "r1", "export")
    stage.write_json("rows.json", [1])
    stage.finish(outputs=["rows.json"])
    (stage.path / "rows.json").write_bytes(b"[2]\n")
    assert not stage.is_complete()


def test_partial_stage_is_not_complete(tmp_path: Path) -> None:
    stage = StageDir.open(Workspace(tmp_path), "r1", "graph")
    stage.write_json("graph.json", {})
    stage.finish(outputs=["graph.json"], status="partial")
    assert not stage.is_complete()


@pytest.mark.parametrize("name", ["Synth", "a/b", "..", ""])
def test_bad_stage_names_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(StoreError, match="invalid stage name"):
        StageDir.open(Workspace(tmp_path), "r1", name)


def test_missing_output_and_escaping_paths_are_refused(tmp_path: Path) -> None:
    stage = StageDir.open(Workspace(tmp_path), "r1", "export")
    with pytest.raises(StoreError, match="does not exist"):
        stage.finish(outputs=["nope.json"])
    with pytest.raises(StoreError, match="stay inside"):
        stage.write_json("../x.json", {})


def test_corrupt_manifest_is_a_store_error(tmp_path: Path) -> None:
    stage = StageDir.open(Workspace(tmp_path), "r1", "export")
    (stage.path / "manifest.json").write_bytes(b"{not json")
    with pytest.raises(StoreError, match="not a valid stage manifest"):
        stage.read_manifest()
