"""The build stage's migrations of an older workspace layout: `library reproduce`'s scratch rebuild in
`builds/reproduce/` moves to run `reproduce-library`, or is dropped when a newer scratch is there and the
caller is a reproduction (which empties it anyway); a build of a config named `reproduce` is not scratch."""

from __future__ import annotations

from pathlib import Path

import pytest

from envfactory.build.errors import BuildError
from envfactory.build.stage import (
    legacy_scratch,
    migrate_legacy_build,
    migrate_legacy_reproduce,
    reproduce_root,
)
from envfactory.store import Workspace


def _scratch(root: Path) -> Path:
    scratch = root / "builds" / "reproduce" / "envs" / "books"
    scratch.mkdir(parents=True)
    (scratch / "spec.json").write_text("{}")
    return scratch


def test_reproduce_root_moves_an_older_scratch_rebuild_into_the_run_layout(tmp_path: Path) -> None:
    workspace = Workspace(tmp_path).ensure()
    _scratch(tmp_path)
    root = reproduce_root(workspace)
    assert root == tmp_path / "runs" / "reproduce-library" / "library" / "build"
    assert (root / "envs" / "books" / "spec.json").is_file()
    assert not (tmp_path / "builds").exists()


def test_a_newer_scratch_wins_for_a_reproduction_and_is_refused_otherwise(tmp_path: Path) -> None:
    workspace = Workspace(tmp_path).ensure()
    _scratch(tmp_path)
    newer = tmp_path / "runs" / "reproduce-library" / "library" / "build" / "envs"
    newer.mkdir(parents=True)
    with pytest.raises(BuildError, match="both hold a reproduction"):
        migrate_legacy_reproduce(workspace)
    assert (tmp_path / "builds" / "reproduce").is_dir()
    assert migrate_legacy_reproduce(workspace, discard=True) is None
    assert not (tmp_path / "builds").exists() and newer.is_dir()


def test_a_build_of_a_config_named_reproduce_is_a_build_not_scratch(tmp_path: Path) -> None:
    workspace = Workspace(tmp_path).ensure()
    _scratch(tmp_path)
    (tmp_path / "builds" / "reproduce" / "config.json").write_text("{}")
    assert legacy_scratch(workspace) is None
    assert migrate_legacy_reproduce(workspace) is None
    moved = migrate_legacy_build(workspace, "reproduce")
    assert moved == tmp_path / "runs" / "library-reproduce" / "library" / "build"
    assert (moved / "config.json").is_file()
