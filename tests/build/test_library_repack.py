"""`envfactory library repack`: a library whose `spec.json` files are in the version-1 (full) form is
rewritten in the current form (version 2, shared schemas), hashes unchanged; a second run changes nothing."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from envfactory.build.errors import BuildError
from envfactory.build.publish import repack_library
from envfactory.cli.app import app
from envfactory.runtime import library_root
from envfactory.spec import EnvSpec, canonical_json
from envfactory.spec.library import LibraryIndex


def _old_library(tmp_path: Path, count: int = 2) -> tuple[Path, list[str]]:
    """A copy of the first `count` shipped environments, their specs written in the version-1 form."""
    shipped = library_root()
    index = LibraryIndex.model_validate_json((shipped / "index.json").read_bytes())
    entries = index.entries[:count]
    library = tmp_path / "library"
    library.mkdir()
    for entry in entries:
        shutil.copytree(shipped / entry.name, library / entry.name)
        spec = EnvSpec.model_validate_json((shipped / entry.name / "spec.json").read_bytes())
        (library / entry.name / "spec.json").write_bytes(
            canonical_json({**spec.model_dump(mode="json"), "schema_version": 1}))
    (library / "index.json").write_bytes(index.model_copy(update={"entries": entries}).to_json_bytes())
    return library, [e.name for e in entries]


def test_repack_rewrites_version_1_specs_in_the_shipped_form(tmp_path: Path) -> None:
    library, names = _old_library(tmp_path)
    old_sizes = {n: (library / n / "spec.json").stat().st_size for n in names}
    result = CliRunner().invoke(app, ["library", "repack", "--library", str(library)])
    assert result.exit_code == 0, result.output
    assert f"rewrote {len(names)} spec.json file(s)" in result.output
    for name in names:
        data = (library / name / "spec.json").read_bytes()
        assert data == (library_root() / name / "spec.json").read_bytes()  # what publish ships
        assert orjson.loads(data)["schema_version"] == 2 and len(data) < old_sizes[name]
    assert repack_library(library) == []  # already in the current form


def test_repack_refuses_a_spec_that_does_not_read(tmp_path: Path) -> None:
    library, names = _old_library(tmp_path, count=1)
    path = library / names[0] / "spec.json"
    document = orjson.loads(path.read_bytes())
    document["tools"][0]["description"] += " (edited after sealing)"
    path.write_bytes(orjson.dumps(document))
    with pytest.raises(BuildError, match="content_hash"):
        repack_library(library)
    assert orjson.loads(path.read_bytes()) == document  # nothing written
