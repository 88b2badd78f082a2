"""Console and file output shared by the verbs.

- Human output goes through Rich consoles, which are created per call (nothing at import time).
  Text from specs, catalogs and models is hostile by assumption, so these consoles (`SafeConsole`)
  never interpret markup or emoji codes in strings (`[/]` in a description prints as itself; the CLI's
  own styling is built with `Text` styles) and strip C0/C1 control characters from everything they
  render, so no escape sequence from data reaches the terminal. Output that bypasses Rich goes through
  `echo` (plain lines) or `configure_logging` (log records), which remove the same characters.
- Nothing else in `envfactory.cli` writes to the terminal: no `print`, no `typer.echo`, no Rich console
  but these (tests/cli/test_output_funnel.py scans the package and fails on a bypass).
- Machine output (`--json`) is plain JSON on stdout, indented and with sorted keys. It does not go
  through Rich, so it is never wrapped, highlighted or paged.
- Files the CLI writes are written atomically (temporary file, then rename) in canonical formatting.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson
import typer
from rich.console import Console, ConsoleOptions, RenderableType
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

_JSON_OPTIONS = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS


# Every C0 control but tab and newline, DEL, and the C1 controls (U+0080-U+009F, e.g. CSI U+009B).
CONTROL_CHARACTERS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def plain_text(text: str) -> str:
    """`text` without control characters (terminal escape sequences lose their ESC/CSI/OSC introducer
    and their BEL/ST terminator, and print as inert characters)."""
    return CONTROL_CHARACTERS.sub("", text)


class SafeConsole(Console):
    """A Rich console for hostile text: strings are never parsed as markup or emoji codes, and control
    characters are removed from every segment it renders (tables, panels and `Text` included); the
    escape sequences of Rich's own styles are added after that, when the segments are written."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("markup", False)
        kwargs.setdefault("emoji", False)
        kwargs.setdefault("highlight", False)
        super().__init__(**kwargs)

    def render(self, renderable: RenderableType, options: ConsoleOptions | None = None) -> Iterable[Segment]:
        for segment in super().render(renderable, options):
            if segment.control is None and CONTROL_CHARACTERS.search(segment.text):
                yield Segment(plain_text(segment.text), segment.style, segment.control)
            else:
                yield segment


def echo(text: str, *, err: bool = False) -> None:
    """One plain line (no Rich) on stdout, or stderr with `err`, without control characters."""
    typer.echo(plain_text(text), err=err)


class PlainLogFormatter(logging.Formatter):
    """A log formatter whose records (messages that may quote hostile input, tracebacks) reach the
    terminal without control characters."""

    def format(self, record: logging.LogRecord) -> str:
        return plain_text(super().format(record))


def configure_logging(level: str) -> None:
    """Log records of `level` and above to stderr, through `PlainLogFormatter`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(PlainLogFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler])


def console() -> Console:
    # Rich assumes 80 columns when stdout is not a terminal (CI logs, pipes), which squeezes the
    # summary tables into ellipses; logs have no width limit, so use a wide one there.
    out = SafeConsole()
    if not out.is_terminal:
        out = SafeConsole(width=140)
    return out


def error_console() -> Console:
    return SafeConsole(stderr=True, soft_wrap=True)


def pretty_json(data: Any) -> bytes:
    """Canonical human-readable JSON: two-space indent, sorted keys, UTF-8, trailing newline."""
    return orjson.dumps(data, option=_JSON_OPTIONS) + b"\n"


# JSON escapes C0 controls itself; DEL and the C1 controls (U+009B is a one-character CSI) it may leave raw.
_RAW_IN_JSON = re.compile("[\x7f-\x9f]")


def emit_json(data: Any) -> None:
    """Write `data` as JSON to stdout (the `--json` output of listing verbs), with DEL and C1 control
    characters escaped (`\\u009b`), so no data reaches a terminal as a control sequence."""
    text = pretty_json(data).decode("utf-8")
    typer.echo(_RAW_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text), nl=False)


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


def read_regular_file(path: Path, max_bytes: int, what: str) -> bytes:
    """The bytes of `path`, which must be a regular file of at most `max_bytes` (a directory, a device
    such as /dev/zero, a FIFO or an oversized file raises `SpecError` saying so, before anything is read
    without bound)."""
    from envfactory.errors import SpecError

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError as exc:
        raise SpecError(f"{path}: no such file ({what})") from exc
    except IsADirectoryError as exc:
        raise SpecError(f"{path}: is a directory; {what} must be a regular file") from exc
    except OSError as exc:
        raise SpecError(f"{path}: cannot open {what} ({exc.strerror})") from exc
    info = os.fstat(fd)
    if stat.S_ISDIR(info.st_mode):
        os.close(fd)
        raise SpecError(f"{path}: is a directory; {what} must be a regular file")
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(info.st_mode):
            raise SpecError(f"{path}: not a regular file; {what} must be a regular file of at most {max_bytes} bytes")
        if info.st_size > max_bytes:
            raise SpecError(f"{path}: {info.st_size} bytes; {what} may have at most {max_bytes} bytes")
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:  # it grew while we read
        raise SpecError(f"{path}: more than {max_bytes} bytes; {what} may have at most {max_bytes} bytes")
    return data


def funnel_table(title: str, stages: Sequence[str], reached: Mapping[str, int],
                 drops: Mapping[str, Mapping[str, int]]) -> Table:
    """A funnel as a table: each stage in order, how many items reached it and why the others stopped
    there (reasons by count, largest first)."""
    table = Table(title=title)
    table.add_column("stage")
    table.add_column("reached", justify="right")
    table.add_column("dropped here (reason: count)")
    for stage in stages:
        reasons = drops.get(stage, {})
        shown = ", ".join(f"{reason}: {n}" for reason, n in sorted(reasons.items(), key=lambda item: -item[1]))
        table.add_row(stage, str(reached.get(stage, 0)), shown)
    return table
