"""The README's test command, `.ci/run` and `scripts/test` stay one and the same."""

from __future__ import annotations

import os
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def quick_start_blocks() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```(?:bash|sh)?\n(.*?)```", section, flags=re.S)]


def ci_test_command() -> str:
    match = re.search(r'^TEST_COMMAND="(.*)"$', (REPO / ".ci" / "run").read_text(encoding="utf-8"), flags=re.M)
    assert match is not None, ".ci/run must define TEST_COMMAND on one line"
    return match.group(1)


def test_quick_start_has_exactly_two_one_line_commands() -> None:
    blocks = quick_start_blocks()
    assert len(blocks) == 2
    assert all("\n" not in block for block in blocks)
    assert blocks[0].endswith("envfactory run --config configs/run-demo.json")


def test_ci_runs_exactly_the_readme_test_command() -> None:
    assert quick_start_blocks()[1] == ci_test_command()
    run = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert 'eval "${TEST_COMMAND}"' in run


def test_scripts_run_every_check_strictly() -> None:
    for path in (REPO / ".ci" / "run", REPO / "scripts" / "test"):
        text = path.read_text(encoding="utf-8")
        assert text.startswith("#!/usr/bin/env bash\n")
        assert "set -euo pipefail" in text
        assert os.access(path, os.X_OK), f"{path} is not executable"
    checks = (REPO / "scripts" / "test").read_text(encoding="utf-8")
    for command in ("ruff check .", "mypy", "lint-imports", "python -m pytest -q -n 2"):
        assert re.search(rf"^{re.escape(command)}(\s|$)", checks, flags=re.M), command
    assert "scripts/test" in ci_test_command()


def test_every_test_directory_is_collected() -> None:
    """pytest's default `norecursedirs` holds "build", which once hid tests/build from every run: the
    configured list must be explicit and must not match a test directory."""
    import tomllib
    from fnmatch import fnmatch

    options = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["pytest"]["ini_options"]
    patterns = options.get("norecursedirs")
    assert patterns is not None, "set norecursedirs explicitly: the default skips directories named build"
    test_dirs = [d for d in (REPO / "tests").rglob("*") if d.is_dir() and any(d.glob("test_*.py"))]
    assert any(d.name == "build" for d in test_dirs)
    hidden = [str(d.relative_to(REPO)) for d in test_dirs
              if any(fnmatch(part, pattern) for part in d.relative_to(REPO).parts for pattern in patterns)]
    assert hidden == []
