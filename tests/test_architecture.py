"""The layer table in docs/architecture.md, the import contracts in .importlinter and the code agree.

The table is the source of truth. The contracts translate it into `forbidden` contracts, one per layer
package that exists. Layers that are not packages yet get no contract and are not named as forbidden
targets, because import-linter 2.17 aborts with "Module 'envfactory.<x>' does not exist." for a
forbidden module it cannot find. So when a new layer package lands (say `envfactory.store`), these
tests fail until the layer has a contract and every layer that may not import it forbids it.
"""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import envfactory

REPO = Path(__file__).resolve().parents[1]
TABLE_DOC = REPO / "docs" / "architecture.md"
CONTRACTS_FILE = REPO / ".importlinter"
PACKAGE_DIR = Path(envfactory.__file__).resolve().parent
ROOT = "envfactory"
ALL = "all"

_ROW = re.compile(r"^\|\s*`(?P<package>[a-z_]+)`\s*\|(?P<job>.*)\|(?P<imports>[^|]*)\|\s*$")


def parse_layer_table(text: str) -> dict[str, frozenset[str] | str]:
    """Layer name → the layers it may import (a set), or `ALL`."""
    layers: dict[str, frozenset[str] | str] = {}
    for line in text.splitlines():
        match = _ROW.match(line.strip())
        if match is None:
            continue
        package = match["package"]
        cell = match["imports"].strip()
        assert package not in layers, f"layer {package} appears twice in {TABLE_DOC.name}"
        if cell == ALL:
            layers[package] = ALL
        elif cell in {"—", "-", ""}:
            layers[package] = frozenset()
        else:
            names = [name.strip().strip("`") for name in cell.split(",")]
            assert all(names), f"empty entry in the 'may import' cell of {package}: {cell!r}"
            layers[package] = frozenset(names)
    return layers


def read_contracts(path: Path) -> dict[str, configparser.SectionProxy]:
    parser = configparser.ConfigParser()
    parser.read(path, encoding="utf-8")
    return {
        section.removeprefix("importlinter:contract:"): parser[section]
        for section in parser.sections()
        if section.startswith("importlinter:contract:")
    }


def module_list(value: str) -> set[str]:
    return {line.strip() for line in value.splitlines() if line.strip()}


def existing_layer_packages() -> set[str]:
    """Subpackages of envfactory (directories with an `__init__.py`)."""
    return {child.name for child in PACKAGE_DIR.iterdir() if (child / "__init__.py").is_file()}


def allowed(table: dict[str, frozenset[str] | str], layer: str) -> set[str]:
    entry = table[layer]
    return set(table) if entry == ALL else set(entry) | {layer}


def contract_for(contracts: dict[str, configparser.SectionProxy], layer: str) -> configparser.SectionProxy:
    matching = [c for c in contracts.values() if module_list(c.get("source_modules", "")) == {f"{ROOT}.{layer}"}]
    assert len(matching) == 1, f"expected exactly one contract with source_modules = {ROOT}.{layer}, found {len(matching)}"
    return matching[0]


@pytest.fixture(scope="module")
def table() -> dict[str, frozenset[str] | str]:
    return parse_layer_table(TABLE_DOC.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def contracts() -> dict[str, configparser.SectionProxy]:
    return read_contracts(CONTRACTS_FILE)


def lint_imports_executable() -> str:
    candidate = Path(sys.executable).with_name("lint-imports")
    if candidate.is_file():
        return str(candidate)
    found = shutil.which("lint-imports")
    assert found is not None, "lint-imports is not installed (pip install -e '.[test]')"
    return found


# -- the table itself ----------------------------------------------------------------------------------


def test_table_parses_and_names_the_design_layers(table: dict[str, frozenset[str] | str]) -> None:
    assert {"spec", "store", "runtime", "llm", "verify", "cli"} <= set(table)
    assert table["spec"] == frozenset()
    assert table["runtime"] == frozenset({"spec"})
    assert table["cli"] == ALL


def test_table_refers_only_to_known_layers(table: dict[str, frozenset[str] | str]) -> None:
    for layer, entry in table.items():
        if entry == ALL:
            continue
        assert isinstance(entry, frozenset)
        unknown = entry - set(table)
        assert not unknown, f"{layer} may import unknown layers {sorted(unknown)}"
        assert layer not in entry, f"{layer} lists itself"


def test_every_package_appears_in_the_table(table: dict[str, frozenset[str] | str]) -> None:
    missing = existing_layer_packages() - set(table)
    assert not missing, (
        f"packages {sorted(missing)} under src/envfactory are not in the layer table of "
        f"docs/architecture.md; add a row (and a contract in .importlinter)"
    )


def test_parser_reads_a_row_with_several_imports() -> None:
    text = "| package | job | may import |\n|---|---|---|\n| `graph` | tool graph | spec, store, llm |\n"
    assert parse_layer_table(text) == {"graph": frozenset({"spec", "store", "llm"})}


# -- contracts versus the table --------------------------------------------------------------------------


def test_one_contract_per_existing_layer(contracts: dict[str, configparser.SectionProxy]) -> None:
    sources = [module_list(c.get("source_modules", "")) for c in contracts.values()]
    expected = [{f"{ROOT}.{layer}"} for layer in sorted(existing_layer_packages())]
    assert sorted(map(sorted, sources)) == sorted(map(sorted, expected))
    for name, contract in contracts.items():
        assert contract.get("type") == "forbidden", f"contract {name} is not a forbidden contract"


@pytest.mark.parametrize("layer", sorted(existing_layer_packages()))
def test_contract_forbids_exactly_what_the_table_does_not_allow(
    layer: str, table: dict[str, frozenset[str] | str], contracts: dict[str, configparser.SectionProxy]
) -> None:
    contract = contract_for(contracts, layer)
    forbidden = module_list(contract.get("forbidden_modules", ""))
    existing = existing_layer_packages()
    expected = {f"{ROOT}.{other}" for other in existing - allowed(table, layer)}
    assert forbidden == expected, (
        f"contract for {layer} forbids {sorted(forbidden)}, the table says {sorted(expected)} "
        f"(only layers that exist as packages can be forbidden: {sorted(existing)})"
    )


def test_contracts_have_no_escape_hatches(contracts: dict[str, configparser.SectionProxy]) -> None:
    """Contracts check *direct* imports: "may import" in the table names a layer's direct dependencies,
    and their own dependencies come with them (serve may import verify, which may import llm). Every
    layer's direct imports are checked, so no chain of imports can break the table either."""
    for name, contract in contracts.items():
        assert not module_list(contract.get("ignore_imports", "")), f"contract {name} ignores imports"
        assert contract.get("allow_indirect_imports", "false").lower() == "true", name
        assert contract.get("as_packages", "true").lower() == "true", name


def test_errors_and_top_level_module_are_never_forbidden(contracts: dict[str, configparser.SectionProxy]) -> None:
    for contract in contracts.values():
        forbidden = module_list(contract.get("forbidden_modules", ""))
        assert not forbidden & {ROOT, f"{ROOT}.errors"}


# -- the code versus the contracts ----------------------------------------------------------------------


def run_lint_imports(cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [lint_imports_executable(), "--no-cache"],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False,
    )


def test_lint_imports_passes() -> None:
    result = run_lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr


def test_lint_imports_catches_a_forbidden_import(tmp_path: Path) -> None:
    """The check can fail: a copy of the package where spec imports cli breaks the spec contract."""
    shutil.copytree(PACKAGE_DIR, tmp_path / ROOT, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(CONTRACTS_FILE, tmp_path / ".importlinter")
    (tmp_path / ROOT / "spec" / "_layer_violation.py").write_text("import envfactory.cli.app\n", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    result = run_lint_imports(tmp_path, env)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "spec imports no other layer BROKEN" in output
    assert "envfactory.spec is not allowed to import envfactory.cli" in output
    assert "envfactory.spec._layer_violation -> envfactory.cli" in output


# -- regenerating the contracts ---------------------------------------------------------------------------

HEADER = """\
# Layer contracts: one `forbidden` contract per layer package that exists today. GENERATED from the
# table in docs/architecture.md by `python tests/test_architecture.py --write`; do not edit by hand.
# tests/test_architecture.py checks that these contracts and the table agree. import-linter 2.17 errors
# on forbidden modules that do not exist ("Module 'envfactory.store' does not exist."), so only existing
# packages are listed; when a new layer package lands, rerun the command above. Contracts check direct
# imports (allow_indirect_imports): the table's "may import" names direct dependencies, and layers
# bring their own allowed dependencies along (serve -> verify -> llm is fine).
# `envfactory` (the top-level module) and `envfactory.errors` are importable by every layer.

[importlinter]
root_package = envfactory
include_external_packages = False
"""


def render_contracts(table: dict[str, frozenset[str] | str], existing: set[str]) -> str:
    """The `.importlinter` text the table implies for the packages that exist, in table order."""
    parts = [HEADER]
    for layer in table:
        if layer not in existing:
            continue
        entry = table[layer]
        if entry == ALL:
            name = f"{layer} may import every layer"
        elif not entry:
            name = f"{layer} imports no other layer"
        else:
            name = f"{layer} imports only {', '.join(sorted(entry))}"
        forbidden = sorted(existing - allowed(table, layer))
        lines = [f"\n[importlinter:contract:{layer}]", f"name = {name}", "type = forbidden",
                 "allow_indirect_imports = True", "source_modules =", f"    {ROOT}.{layer}", "forbidden_modules ="]
        lines += [f"    {ROOT}.{other}" for other in forbidden]
        parts.append("\n".join(lines) + "\n")
    return "".join(parts)


def test_contracts_file_is_generated_from_the_table(table: dict[str, frozenset[str] | str]) -> None:
    expected = render_contracts(table, existing_layer_packages())
    assert CONTRACTS_FILE.read_text(encoding="utf-8") == expected, (
        "regenerate with: python tests/test_architecture.py --write"
    )


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python tests/test_architecture.py --write  (rewrites .importlinter from the table)")
    rendered = render_contracts(parse_layer_table(TABLE_DOC.read_text(encoding="utf-8")), existing_layer_packages())
    CONTRACTS_FILE.write_text(rendered, encoding="utf-8")
    print(f"wrote {CONTRACTS_FILE}")
