"""Workspace layout and run directories with their manifests."""

from __future__ import annotations

from pathlib import Path

import pytest

from envfactory.errors import StoreError
from envfactory.spec import RunManifest
from envfactory.store import RunDir, Workspace, check_run_id, default_models_dir, stray_temporaries


def manifest(run_id: str) -> RunManifest:
    return RunManifest(
        run_id=run_id, command="envfactory test", created_at="2026-01-01T00:00:00Z", envfactory_version="0.1.0",
        config={"b": 1, "a": [1, 2]}, seeds={"main": 7},
    )


def test_layout_matches_the_design(tmp_path: Path) -> None:
    workspace = Workspace(tmp_path / "ws")
    assert not workspace.root.exists()  # creating the value touches nothing
    assert workspace.catalog_path.name == "catalog.sqlite"
    assert workspace.llm_cache_path.name == "llm-cache.sqlite"
    assert workspace.run_path("r1") == tmp_path / "ws" / "runs" / "r1"
    assert workspace.envs_dir == tmp_path / "ws" / "envs"
    assert default_models_dir().parts[-3:] == (".cache", "envfactory", "models")


def test_run_directory_round_trips_its_manifest_and_artifacts(tmp_path: Path) -> None:
    workspace = Workspace(tmp_path / "ws").ensure()
    run = RunDir.create(workspace, "demo-1")
    assert run.logs_dir.is_dir()
    path = run.write_manifest(manifest("demo-1"))
    assert path.read_bytes() == manifest("demo-1").to_json_bytes() + b"\n"
    assert run.read_manifest() == manifest("demo-1")
    run.write_config({"z": 1, "a": 2})
    assert (run.path / "config.json").read_bytes() == b'{"a":2,"z":1}\n'
    run.write_jsonl("out/items.jsonl", [{"b": 2, "a": 1}, {"c": None}])
    assert (run.path / "out" / "items.jsonl").read_bytes() == b'{"a":1,"b":2}\n{"c":null}\n'
    assert workspace.run_ids() == ["demo-1"]
    assert stray_temporaries(run.path) == []


@pytest.mark.parametrize("bad", ["", "..", "a/b", "../x", "-x", "x" * 200, "a b"])
def test_run_ids_are_single_safe_components(bad: str) -> None:
    with pytest.raises(StoreError, match="invalid run id"):
        check_run_id(bad)


def test_artifacts_cannot_escape_the_run_directory(tmp_path: Path) -> None:
    run = RunDir.create(Workspace(tmp_path), "r")
    for bad in ("../x.json", "/etc/passwd", ""):
        with pytest.raises(StoreError, match="must be relative"):
            run.write_json(bad, {})


def test_manifest_of_another_run_and_bad_manifests_are_refused(tmp_path: Path) -> None:
    run = RunDir.create(Workspace(tmp_path), "r")
    with pytest.raises(StoreError, match="written into run directory"):
        run.write_manifest(manifest("other"))
    with pytest.raises(StoreError, match="does not exist"):
        run.read_manifest()
    (run.path / "manifest.json").write_text('{"run_id": 3}')
    with pytest.raises(StoreError, match="not a valid run manifest"):
        run.read_manifest()
