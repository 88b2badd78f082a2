"""No function in `src/envfactory` is longer than 80 lines unless a comment says why (STYLE, issue 15).

A function's length is counted from its `def` line to its last line, docstring and signature included.
A longer function passes when the comment block directly above it (above its decorators, if any) has a
line `# long: <the reason it stays long>`, e.g.:

    # long: a Typer command whose 33 option declarations are its signature; the body is about 60 lines
    @app.command("run")
    def run(...) -> None:

`PENDING` lists code other engineers are still splitting; an entry there is a debt, not a licence: a file
entry that no longer holds a long function must be removed (the last test says so).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import envfactory

PACKAGE_DIR = Path(envfactory.__file__).resolve().parent
MAX_LINES = 80
MARKER = "# long:"

# Paths relative to src/envfactory: a file, or a folder ending in "/" (every file under it).
PENDING: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class LongFunction:
    path: str
    line: int
    name: str
    lines: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line} {self.name} ({self.lines} lines)"


def _reason(lines: list[str], node: ast.FunctionDef | ast.AsyncFunctionDef) -> str | None:
    """The text after `# long:` in the comment block right above the function (or its decorators)."""
    first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
    index = first - 2  # the line above, 0-based
    while index >= 0 and lines[index].strip().startswith("#"):
        text = lines[index].strip()
        if text.startswith(MARKER):
            return text[len(MARKER):].strip()
        index -= 1
    return None


def long_functions(source: str, path: str, limit: int = MAX_LINES) -> list[LongFunction]:
    """Functions (methods and nested ones included) over `limit` lines without a `# long:` reason."""
    lines = source.splitlines()
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        assert node.end_lineno is not None
        length = node.end_lineno - node.lineno + 1
        if length > limit and not _reason(lines, node):
            found.append(LongFunction(path, node.lineno, node.name, length))
    return sorted(found, key=lambda f: f.line)


def _pending(path: str) -> bool:
    return any(path == entry or (entry.endswith("/") and path.startswith(entry)) for entry in PENDING)


def _scan() -> list[LongFunction]:
    found: list[LongFunction] = []
    for file in sorted(PACKAGE_DIR.rglob("*.py")):
        path = file.relative_to(PACKAGE_DIR).as_posix()
        found += long_functions(file.read_text(encoding="utf-8"), path)
    return found


def _function(name: str, body_lines: int, above: str = "") -> str:
    body = "".join(f"    x{i} = {i}\n" for i in range(body_lines))
    return f"{above}def {name}() -> None:\n{body}"


def test_the_checker_counts_from_def_to_last_line() -> None:
    assert long_functions(_function("ok", MAX_LINES - 1), "m.py") == []
    assert long_functions(_function("over", MAX_LINES), "m.py") == [LongFunction("m.py", 1, "over", MAX_LINES + 1)]


def test_the_checker_accepts_a_reason_above_the_def_or_its_decorators() -> None:
    reason = "# long: a table of cases reads best in one place\n"
    assert long_functions(_function("f", 100, above=reason), "m.py") == []
    decorated = reason + "# another comment\n@staticmethod\n" + _function("g", 100)
    assert long_functions(decorated, "m.py") == []


def test_the_checker_refuses_a_marker_without_a_reason_or_apart_from_the_function() -> None:
    assert [f.name for f in long_functions(_function("f", 100, above="# long:\n"), "m.py")] == ["f"]
    detached = "# long: said too early\n\nx = 1\n" + _function("g", 100)
    assert [f.name for f in long_functions(detached, "m.py")] == ["g"]


def test_the_checker_sees_methods_and_nested_functions() -> None:
    nested = "class C:\n    def outer(self) -> None:\n        def inner() -> None:\n" + "".join(
        f"            y{i} = {i}\n" for i in range(90)
    )
    assert [f.name for f in long_functions(nested, "m.py")] == ["outer", "inner"]


def test_no_function_over_80_lines_without_a_reason() -> None:
    offenders = [f for f in _scan() if not _pending(f.path)]
    assert not offenders, (
        f"functions over {MAX_LINES} lines: split them, or put `{MARKER} <why>` on the line above the def:\n  "
        + "\n  ".join(map(str, offenders))
    )


def test_pending_files_still_need_their_entry() -> None:
    paths = {f.path for f in _scan()}
    stale = [entry for entry in PENDING if not entry.endswith("/") and entry not in paths]
    assert not stale, f"no long function left in {stale}: remove them from PENDING in {Path(__file__).name}"
