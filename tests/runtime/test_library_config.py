"""The one reader of a library's `config.json` (`runtime.loader.load_library_config`): the shipped
config loads, and a missing, corrupt or foreign config is a `SpecError` naming the file, which the
CLI verbs that read a library config show as a one-line message (exit 1), not a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from envfactory.build.errors import BuildError
from envfactory.build.publish import publish_library
from envfactory.cli.app import app
from envfactory.errors import SpecError
from envfactory.runtime import library_config, library_root, load_library_config
from envfactory.spec.library import LibraryConfig


def test_shipped_config_is_read_from_the_shipped_library() -> None:
    shipped = library_config()
    assert shipped == LibraryConfig.model_validate_json((library_root() / "config.json").read_bytes())
    assert library_config(library_root()) == shipped
    assert shipped.config_hash() == load_library_config(library_root() / "config.json").config_hash()


def test_missing_config_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"config\.json: no such library config"):
        library_config(tmp_path)


def test_corrupt_config_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_bytes(b'{"name": "tiny", "domains": [')
    with pytest.raises(SpecError, match=r"config\.json: not a library config"):
        load_library_config(path)


@pytest.mark.parametrize("document", [
    {"schema_version": 2},  # a newer (or older) schema version is refused, not guessed
    {"domains": ["space"]},  # not a library domain
    {"proposals_per_domain": 0},
    ["not", "an", "object"],
])
def test_invalid_config_says_what_is_wrong(tmp_path: Path, document: object) -> None:
    path = tmp_path / "library.json"
    path.write_text(json.dumps(document))
    with pytest.raises(SpecError) as caught:
        load_library_config(path)
    assert str(caught.value).startswith(f"{path}: not a library config")


def test_library_build_with_a_corrupt_config_is_a_clear_cli_error(tmp_path: Path) -> None:
    config = tmp_path / "broken.json"
    config.write_text("{ not json")
    result = CliRunner().invoke(app, ["library", "build", "--config", str(config), "-w", str(tmp_path / "ws")])
    assert result.exit_code == 1
    output = " ".join(result.output.split())  # the console may wrap a long path's line
    assert "not a library config" in output and "Traceback" not in output


def test_reproducing_a_library_without_config_is_a_clear_cli_error(tmp_path: Path) -> None:
    library = tmp_path / "library"
    library.mkdir()
    (library / "index.json").write_bytes((library_root() / "index.json").read_bytes())
    result = CliRunner().invoke(app, ["library", "reproduce", "--library", str(library), "-w", str(tmp_path / "ws")])
    assert result.exit_code == 1
    output = " ".join(result.output.split())
    assert "no such library config" in output and "Traceback" not in output


def test_exporting_a_build_with_a_corrupt_config_is_a_build_error(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("[]")
    with pytest.raises(BuildError, match="is not a readable library build"):
        publish_library(tmp_path, tmp_path / "out")
