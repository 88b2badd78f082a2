"""Console and file output shared by the verbs.

- Human output goes through Rich consoles, which are created per call (nothing at import time).
- Machine output (`--json`) is plain JSON on stdout, indented and with sorted keys. It does not go
  through Rich, so it is never wrapped, highlighted or paged.
- Files the CLI writes are written atomically (temporary file, then rename) in canonical formatting.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import orjson
import typer
from rich.console import Console
from rich.text import Text

_JSON_OPTIONS = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS


def console() -> Console:
    # Rich assumes 80 columns when stdout is not a terminal (CI logs, pipes), which squeezes the
    # summary tables into ellipses; logs have no width limit, so use a wide one there.
    out = Console(highlight=False)
    if not out.is_terminal:
        out = Console(highlight=False, width=140)
    return out


def error_console() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def pretty_json(data: Any) -> bytes:
    """Canonical human-readable JSON: two-space indent, sorted keys, UTF-8, trailing newline."""
    return orjson.dumps(data, option=_JSON_OPTIONS) + b"\n"


def emit_json(data: Any) -> None:
    """Write `data` as JSON to stdout (the `--json` output of listing verbs)."""
    typer.echo(pretty_json(data).decode("utf-8"), nl=False)


def report_error(message: str) -> None:
    """A red one-line headline on stderr; further lines of the message (problem lists) follow plainly."""
    headline, _, details = message.partition("\n")
    err = error_console()
    err.print(Text.assemble(("error: ", "bold red"), (headline, "red")))
    if details:
        err.print(Text(details))


def problems_of(message: str) -> list[str]:
    """The individual problems of a SpecError message ("what: N problem(s):\\n  - a\\n  - b")."""
    items = [line.strip()[2:] for line in message.splitlines() if line.lstrip().startswith("- ")]
    return items or [message]


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see either the old file or the complete new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
