"""Every byte the CLI writes to a terminal goes through `envfactory.cli._output` (issue 17, deliverable 5).

`tests/cli/test_hostile.py` and `test_hostile_models.py` run most commands over hostile text; the
commands they cannot run in CI time (trainers, long-running servers, downloads) are covered by this
scan instead: the package's source is parsed and every way of writing to the terminal that bypasses
the escaping/stripping helpers is a finding:

- `print(...)`, `typer.echo`/`secho`, `click.echo`/`secho`, `sys.stdout.write`, `sys.stderr.write`;
- a Rich console made anywhere but `_output` (`Console(...)`, `SafeConsole(...)`, `rich.print`,
  `rich.get_console`, `from rich import print`), or text parsed as markup or ANSI (`Text.from_markup`,
  `Text.from_ansi`, `rich.markup.render`, `Markdown(...)`);
- a progress bar without explicit columns (Rich's default columns parse descriptions as markup) or
  without the CLI's console, and a `TextColumn` without `markup=False`;
- `logging.basicConfig` (records must go through `_output.configure_logging`).

`_output` itself is checked by behaviour: its consoles, `echo` and log formatter turn markup, emoji
codes and control sequences into inert text. The scanner is checked against a planted example of
each finding, so this test can fail.
"""

from __future__ import annotations

import ast
import io
import logging
from pathlib import Path

import pytest

import envfactory.cli
from envfactory.cli import _output

CLI = Path(envfactory.cli.__file__).parent
HELPER = "_output.py"
HOSTILE = "[/] [bold]b[/bold] :smile: \x1b[31mred\x1b[0m \x1b]0;pwned\x07 \x9b2J back\x08space nul\x00"
INERT = "[/] [bold]b[/bold] :smile: [31mred[0m ]0;pwned 2J backspace nul"

WRITERS = {("typer", "echo"), ("typer", "secho"), ("click", "echo"), ("click", "secho"), ("rich", "print"),
           ("rich", "get_console"), ("rich", "reconfigure"), ("logging", "basicConfig")}
CONSOLES = {"Console", "SafeConsole"}
PARSERS = {"from_markup", "from_ansi"}


def _dotted(node: ast.AST) -> str:
    """`a.b.c` for a Name/Attribute chain, '' otherwise."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else ""
    return ""


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _call_findings(call: ast.Call) -> list[str]:
    name = _dotted(call.func)
    head, _, last = name.rpartition(".")
    found = []
    if name == "print":
        found.append("print()")
    if (head.rpartition(".")[2], last) in WRITERS:
        found.append(f"{name}()")
    if name in ("sys.stdout.write", "sys.stderr.write", "markup.render", "rich.markup.render"):
        found.append(f"{name}()")
    if last in CONSOLES:
        found.append(f"{name}() outside {HELPER}")
    if last in PARSERS or last == "Markdown":
        found.append(f"{name}() parses text as markup or ANSI")
    if last == "TextColumn":
        markup = _keyword(call, "markup")
        if not (isinstance(markup, ast.Constant) and markup.value is False):
            found.append("TextColumn() without markup=False")
    if last == "Progress" and (not call.args or _keyword(call, "console") is None):
        found.append("Progress() without explicit columns and the CLI's console")
    return found


def findings(source: str, filename: str = "<source>") -> list[str]:
    """Each bypass of `_output` in `source` (see the module docstring), as 'file:line: what'."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Call):
            found += [f"{filename}:{node.lineno}: {what}" for what in _call_findings(node)]
        elif isinstance(node, ast.ImportFrom) and node.module in ("rich", "builtins"):
            bad = [a.name for a in node.names if a.name in ("print", "get_console", "reconfigure")]
            found += [f"{filename}:{node.lineno}: from {node.module} import {name}" for name in bad]
    return found


PLANTED = {
    "print(spec.description)": "print()",
    "typer.echo(text)": "typer.echo()",
    "typer.secho(text, fg='red')": "typer.secho()",
    "click.echo(text, err=True)": "click.echo()",
    "sys.stderr.write(text)": "sys.stderr.write()",
    "sys.stdout.write(text)": "sys.stdout.write()",
    "rich.print(text)": "rich.print()",
    "from rich import print": "from rich import print",
    "Console().print(text)": "Console() outside",
    "rich.console.Console(stderr=True)": "rich.console.Console() outside",
    "out = SafeConsole(markup=True)": "SafeConsole() outside",
    "Text.from_markup(description)": "parses text as markup",
    "Text.from_ansi(output)": "parses text as markup or ANSI",
    "Markdown(policy)": "Markdown()",
    "TextColumn('{task.description}')": "TextColumn() without markup=False",
    "TextColumn('{task.description}', markup=True)": "TextColumn() without markup=False",
    "Progress(console=out)": "Progress() without explicit columns",
    "Progress(*columns)": "Progress() without explicit columns",
    "logging.basicConfig(level='INFO')": "logging.basicConfig()",
}


@pytest.mark.parametrize("source", sorted(PLANTED))
def test_the_scanner_finds_each_bypass(source: str) -> None:
    found = findings(source)
    assert len(found) == 1 and PLANTED[source] in found[0], found


def test_the_scanner_passes_the_helpers_own_idiom() -> None:
    ok = ("out = console()\nout.print(Text(description))\nerr = error_console()\necho(line, err=True)\n"
          "Progress(TextColumn('{task.description}', markup=False), BarColumn(), console=out)\n")
    assert findings(ok) == []


def test_nothing_in_the_cli_bypasses_the_output_helpers() -> None:
    modules = sorted(p for p in CLI.glob("*.py") if p.name != HELPER)
    assert len(modules) > 20, modules
    found = [f for path in modules for f in findings(path.read_text(encoding="utf-8"), path.name)]
    assert not found, "output that bypasses envfactory.cli._output:\n" + "\n".join(found)


def _rendered(render: object) -> str:
    buffer = io.StringIO()
    out = _output.SafeConsole(file=buffer, width=200, force_terminal=True, color_system="truecolor")
    out.print(render)  # type: ignore[arg-type]
    return buffer.getvalue()


def test_the_consoles_print_markup_as_text_and_strip_control_characters(capsys: pytest.CaptureFixture[str]) -> None:
    from rich.table import Table
    from rich.text import Text

    styled = _rendered(Text.assemble(("title ", "bold red"), HOSTILE))
    assert "\x1b[1;31mtitle" in styled  # Rich's own style survives, as an escape sequence of Rich's
    assert INERT in styled.replace("\x1b[1;31m", "").replace("\x1b[0m", "")
    table = Table(title=HOSTILE)
    table.add_column(HOSTILE)
    table.add_row(HOSTILE)
    assert _rendered(table).count("[/] [bold]b[/bold] :smile: [31mred[0m") == 3
    for make in (_output.console, _output.error_console):
        out = make()
        assert not out._markup and not out._emoji and isinstance(out, _output.SafeConsole)
        out.print(HOSTILE)
    _output.echo(HOSTILE)
    _output.echo(HOSTILE, err=True)
    captured = capsys.readouterr()
    for stream in (captured.out, captured.err):
        assert stream.count(INERT) == 2 and not _output.CONTROL_CHARACTERS.search(stream.replace("\n", "")), stream


def test_log_records_reach_the_terminal_without_control_characters() -> None:
    formatter = _output.PlainLogFormatter("%(levelname)s %(message)s")
    record = logging.LogRecord("envfactory.serve", logging.WARNING, __file__, 1, "unknown tool %s", (HOSTILE,), None)
    assert formatter.format(record) == f"WARNING unknown tool {INERT}"
