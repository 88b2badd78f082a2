"""Text hygiene for everything read from a specification: HTML to plain text, hostile characters
removed, lengths capped, and the tokeniser the search index uses.

Specification text is untrusted: descriptions may carry terminal escapes, bidi overrides, NUL bytes or
megabytes of prose. Every string that reaches a `Resource` passes through `clean_text` (prose) or
`clean_name` (identifiers, refused rather than repaired).
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

# C0/C1 controls except tab and newline, zero-width and bidi-control characters.
_HOSTILE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")
_SPACES = re.compile(r"[ \t\r\f\v]+")
_BLANK_LINES = re.compile(r"\n\s*\n+")
_TAG_HINT = re.compile(r"<[a-zA-Z/!]")
_DANGLING_BULLET = re.compile(r"(^|\n)- *\n\s*")

DESCRIPTION_LIMIT = 4000
SUMMARY_LIMIT = 240
NAME_LIMIT = 300

_BLOCK_TAGS = frozenset({
    "p", "div", "br", "ul", "ol", "li", "note", "important", "h1", "h2", "h3", "h4", "h5", "h6",
    "pre", "table", "tr", "dl", "dt", "dd", "section", "blockquote",
})
_SKIP_TAGS = frozenset({"script", "style"})


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            self._skipping += 1
        elif tag == "li":
            self.parts.append("\n- ")
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self._skipping = max(0, self._skipping - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def html_to_text(value: str) -> str:
    """Plain text of an HTML fragment (AWS documentation, HTML docs): tags dropped, entities decoded,
    list items as `- ` lines. Text without tags is only unescaped."""
    if not _TAG_HINT.search(value):
        return html.unescape(value)
    parser = _TextExtractor()
    try:
        parser.feed(value)
        parser.close()
    except (AssertionError, ValueError):  # malformed markup: fall back to the raw text
        return html.unescape(value)
    # a list item whose first child is a block (`<li><p>`) would leave its bullet on a line of its own
    return _DANGLING_BULLET.sub(r"\1- ", "".join(parser.parts))


def clean_text(value: object, limit: int = DESCRIPTION_LIMIT, *, from_html: bool = False) -> str:
    """Prose from a specification, safe to store and print: controls removed, whitespace tidied,
    at most `limit` characters (cut ones end with `…`). Non-strings give ""."""
    if not isinstance(value, str) or not value:
        return ""
    text = value[: limit * 8]  # bound the work on giant inputs before any regex runs
    if from_html:
        text = html_to_text(text)
    text = _HOSTILE.sub("", text)
    lines = [_SPACES.sub(" ", line).strip() for line in text.splitlines()]
    text = _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


def summary_of(text: str, limit: int = SUMMARY_LIMIT) -> str:
    """The first sentence (or line) of already-cleaned text, at most `limit` characters."""
    first = text.strip().split("\n", 1)[0]
    match = re.search(r"(?<=[.!?])\s", first)
    if match is not None:
        first = first[: match.start()]
    return first if len(first) <= limit else first[: limit - 1].rstrip() + "…"


def clean_name(value: object) -> str | None:
    """An identifier from a specification (operation id, tool name) if it is usable as is: a non-empty
    string without control characters and at most `NAME_LIMIT` long. None otherwise — callers skip the
    item and record why, rather than silently renaming it."""
    if not isinstance(value, str):
        return None
    name = value.strip()
    if not name or len(name) > NAME_LIMIT or _HOSTILE.search(name) or "\n" in name or "\t" in name:
        return None
    return name


_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_NON_WORD = re.compile(r"[^0-9A-Za-z]+")


def tokens(text: str) -> list[str]:
    """Search terms of a name or a text: camelCase, snake_case, kebab-case and dotted names split into
    lower-case words (`CreateQueue` → create, queue; `tasks.tasks.insert` → tasks, tasks, insert)."""
    words: list[str] = []
    for chunk in _NON_WORD.split(text):
        if not chunk:
            continue
        words.extend(part.lower() for part in _CAMEL.split(chunk) if part)
    return words
