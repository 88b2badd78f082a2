"""Rendering helpers shared by the viewer's pages: the page result type, the Jinja environment
(autoescape always on), pretty JSON and query-string parsing.

Contract: every template is rendered with autoescaping, so text from an artifact is always shown as
text; the only markup inserted unescaped is what `charts` builds (itself escaping every label).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import jinja2
import orjson

PRETTY_LIMIT = 200_000


@dataclass(frozen=True, slots=True)
class PageResult:
    """An HTML page to render (`template` with `context`), or raw `body` bytes of `content_type`."""

    template: str = ""
    context: dict[str, Any] = field(default_factory=dict)
    status: int = 200
    body: bytes = b""
    content_type: str = "text/html; charset=utf-8"


def pretty(value: Any, limit: int = PRETTY_LIMIT) -> str:
    """Indented JSON of `value`, cut at `limit` characters (with a note saying so)."""
    try:
        text = orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode("utf-8")
    except TypeError:
        text = repr(value)
    if len(text) > limit:
        return text[:limit] + f"\n… ({len(text) - limit:,} more characters not shown)"
    return text


def query_int(query: dict[str, str], name: str, default: int) -> int:
    """An integer query parameter; anything that is not one gives `default`."""
    try:
        return int(query.get(name, default))
    except ValueError:
        return default


def _fmt_float(value: Any, digits: int = 3) -> str:
    if value is None:
        return "—"
    try:
        return f"{float(value):.{digits}f}"
    except (TypeError, ValueError):
        return str(value)


def _pct(value: Any) -> str:
    if value is None:
        return "—"
    return f"{100 * float(value):.1f}%"


def make_environment() -> jinja2.Environment:
    """The Jinja environment of the viewer's templates (package `envfactory.viewer`, `templates/`)."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("envfactory.viewer", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = _fmt_float
    env.filters["pct"] = _pct
    env.filters["pretty"] = pretty
    return env
