"""Inline SVG charts for the viewer's pages (funnels, per-domain counts, evaluation metrics).

Contract: `bar_chart` returns SVG markup (a `Markup`, safe to insert into a page unescaped) in which
every piece of text from an artifact is escaped; values are drawn as horizontal bars scaled to the
largest value (or `scale`), each labelled with `fmt(value)`. The same rows give the same bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape

from markupsafe import Markup

ROW_HEIGHT = 22
LABEL_WIDTH = 220
BAR_WIDTH = 280
VALUE_WIDTH = 90


def count(value: float) -> str:
    """A count, as an integer with thousands separators."""
    return f"{value:,.0f}"


def percent(value: float) -> str:
    """A share in [0, 1], as a percentage."""
    return f"{100 * value:.1f}%"


def bar_chart(title: str, rows: Sequence[tuple[str, float]], fmt: Callable[[float], str] = count,
              scale: float | None = None) -> Markup:
    """A horizontal bar chart of `rows` (label, value); `scale` is the value of a full bar."""
    largest = scale if scale is not None else max((value for _, value in rows), default=0.0)
    width = LABEL_WIDTH + BAR_WIDTH + VALUE_WIDTH
    height = 28 + ROW_HEIGHT * max(1, len(rows))
    parts = [
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
        f'<text x="0" y="16" class="chart-title">{escape(title)}</text>',
    ]
    if not rows:
        parts.append('<text x="0" y="42" class="chart-empty">nothing to draw</text>')
    for number, (label, value) in enumerate(rows):
        y = 28 + number * ROW_HEIGHT
        bar = 0.0 if largest <= 0 else BAR_WIDTH * max(0.0, min(1.0, value / largest))
        short = label if len(label) <= 32 else label[:31] + "…"
        parts.append(
            f'<g><title>{escape(label)}: {escape(fmt(value))}</title>'
            f'<text x="{LABEL_WIDTH - 6}" y="{y + 15}" text-anchor="end" class="chart-label">{escape(short)}</text>'
            f'<rect x="{LABEL_WIDTH}" y="{y + 3}" width="{bar:.1f}" height="{ROW_HEIGHT - 6}" class="chart-bar"/>'
            f'<text x="{LABEL_WIDTH + bar + 4:.1f}" y="{y + 15}" class="chart-value">{escape(fmt(value))}</text></g>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))
