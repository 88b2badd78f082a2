"""Local Markdown and HTML documentation as a source.

A file (or every `*.md`, `*.markdown`, `*.html`, `*.htm` file of a directory) becomes one resource.
Operations are extracted only when the document is clearly structured as an HTTP API reference:
headings of the form `METHOD /path` (e.g. `## POST /v1/orders`), optionally preceded by a name in
backticks (`` ### `create_order` — POST /orders ``). Each such section gives an operation: its prose is
the description, a Markdown table with Name/Type/Required/Description columns the input schema, a
```json block after a line mentioning "request" the input example and one after "response" the
output example. Anything else is a docs-only resource (its text in `Resource.docs`, no operations) —
the catalog does not guess operations out of prose.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import orjson

from envfactory.resources._text import DESCRIPTION_LIMIT, clean_name, clean_text, html_to_text, summary_of
from envfactory.resources.model import (
    OperationEntry,
    Resource,
    ServiceEntry,
    Skipped,
    SourceFormatError,
    operation_id,
    resource_id,
)
from envfactory.resources.source import ScanResult
from envfactory.spec import JSONObject, JSONValue, Operation, OperationExample, ResourceSource

PROVIDER = "docs"
SUFFIXES = (".md", ".markdown", ".html", ".htm")
MAX_DOC_BYTES = 8 * 1024 * 1024
DOCS_LIMIT = 200_000

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_ENDPOINT = re.compile(
    r"^(?:`(?P<name>[A-Za-z_][\w.\-]*)`\s*(?:[-—–:]\s*)?)?(?P<method>GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS)\s+"
    r"`?(?P<path>/[^\s`]*)`?$"
)
_HTML_HEADING = re.compile(r"<h([1-6])[^>]*>(.*?)</h\1>", re.I | re.S)
_TYPES: Mapping[str, str] = MappingProxyType({"string": "string", "str": "string", "integer": "integer", "int": "integer", "number": "number",
          "float": "number", "boolean": "boolean", "bool": "boolean", "array": "array", "object": "object"})


@dataclass(frozen=True, slots=True)
class Section:
    """A Markdown section: its heading level and text, and its lines."""
    level: int
    heading: str
    lines: list[str]


def _markdown_of(path: Path, data: str) -> str:
    if path.suffix.lower() in (".html", ".htm"):
        # headings become Markdown headings so that one extractor serves both formats
        marked = _HTML_HEADING.sub(lambda m: "\n" + "#" * int(m.group(1)) + " " + html_to_text(m.group(2)) + "\n", data)
        return html_to_text(marked)
    return data


def sections(text: str) -> Iterator[Section]:
    """The Markdown sections of `text` in order: each heading with its lines (headings inside code fences
    do not count)."""
    current = Section(0, "", [])
    fenced = False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        match = None if fenced else _HEADING.match(line)
        if match is not None:
            yield current
            current = Section(len(match.group(1)), match.group(2).strip(), [])
        else:
            current.lines.append(line)
    yield current


def _table_schema(lines: list[str]) -> tuple[JSONObject, list[JSONValue]] | None:
    rows = [line.strip() for line in lines if line.strip().startswith("|")]
    if len(rows) < 3:
        return None
    header = [cell.strip().lower() for cell in rows[0].strip("|").split("|")]
    if "name" not in header and "parameter" not in header:
        return None
    col = {name: i for i, name in enumerate(header)}
    name_col = col.get("name", col.get("parameter", 0))
    properties: JSONObject = {}
    required: list[JSONValue] = []
    for row in rows[2:]:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        if len(cells) <= name_col:
            continue
        name = clean_name(cells[name_col].strip("`* "))
        if name is None:
            continue
        schema: JSONObject = {}
        if "type" in col and col["type"] < len(cells):
            kind = _TYPES.get(cells[col["type"]].strip("` ").lower())
            if kind:
                schema["type"] = kind
        if "description" in col and col["description"] < len(cells):
            schema["description"] = clean_text(cells[col["description"]], 1000)
        properties[name] = schema
        if "required" in col and col["required"] < len(cells) and cells[col["required"]].lower() in ("yes", "true", "required", "✓", "x"):
            required.append(name)
    if not properties:
        return None
    return properties, required


def _json_or_none(text: str) -> JSONValue:
    try:
        value: JSONValue = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return value


def _json_blocks(lines: list[str]) -> Iterator[tuple[str, JSONValue]]:
    """(the last prose line before the block, parsed JSON) for every ```json block."""
    lead = ""
    block: list[str] | None = None
    for line in lines:
        stripped = line.strip()
        if block is None and stripped.startswith("```"):
            block = [] if stripped[3:].strip().lower() in ("json", "") else None
            if block is None:
                continue
        elif block is not None and stripped.startswith("```"):
            parsed = _json_or_none("\n".join(block))
            if parsed is not None:
                yield lead, parsed
            block = None
        elif block is not None:
            block.append(line)
        elif stripped:
            lead = stripped.lower()


class DocsSource:
    """Markdown/HTML documentation at `path` (a file or a directory)."""

    def __init__(self, path: Path) -> None:
        """`path`: a Markdown/HTML file or a directory of them (resolved; read at scan time)."""
        self.path = path.expanduser().resolve()

    @property
    def key(self) -> str:
        """`docs:<absolute path>`."""
        return f"docs:{self.path}"

    def _files(self) -> list[Path]:
        if self.path.is_dir():
            return sorted(p for p in self.path.rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file())
        return [self.path] if self.path.is_file() else []

    def fingerprint(self) -> str:
        """Each file's path, size and mtime (`missing` when there are none)."""
        parts = []
        for f in self._files():
            stat = f.stat()
            parts.append(f"{f}:{stat.st_size}:{stat.st_mtime_ns}")
        return ";".join(parts) or "missing"

    def _read(self, path: Path) -> str:
        if path.stat().st_size > MAX_DOC_BYTES:
            raise SourceFormatError(f"{path.name}: over {MAX_DOC_BYTES // 2**20} MiB")
        return _markdown_of(path, path.read_bytes().decode("utf-8", errors="replace"))

    def _service(self, path: Path) -> str:
        base = self.path if self.path.is_dir() else self.path.parent
        return clean_name(str(path.relative_to(base).with_suffix(""))) or path.stem

    def _parse(self, path: Path) -> tuple[str, str, list[Operation]]:
        text = self._read(path)
        service = self._service(path)
        title = ""
        operations: list[Operation] = []
        source = ResourceSource(file=str(path))
        for section in sections(text):
            if section.level == 1 and not title:
                title = clean_text(section.heading, 200)
            match = _ENDPOINT.match(section.heading)
            if match is None:
                continue
            method, http_path = match["method"], match["path"]
            name = clean_name(match["name"] or f"{method} {http_path}")
            if name is None:
                continue
            prose = [line for line in section.lines if not line.strip().startswith("|")]
            description = clean_text("\n".join(prose).split("```", 1)[0], DESCRIPTION_LIMIT)
            input_schema: JSONObject = {"type": "object", "properties": {}}
            table = _table_schema(section.lines)
            if table is not None:
                input_schema["properties"] = table[0]
                if table[1]:
                    input_schema["required"] = table[1]
            request: JSONValue = None
            response: JSONValue = None
            for lead, value in _json_blocks(section.lines):
                if "response" in lead and response is None:
                    response = value
                elif "request" in lead and request is None:
                    request = value
            examples = [OperationExample(title="documentation example", input=request, output=response,
                                         source=str(path))] if request is not None or response is not None else []
            operations.append(Operation(
                id=operation_id(PROVIDER, service, "", name), provider=PROVIDER, service=service, name=name,
                description=description, http_method=method, http_path=http_path, input_schema=input_schema,
                examples=examples, source=source,
            ))
        return title or service, clean_text(text, DOCS_LIMIT), operations

    def scan(self) -> ScanResult:
        """One service per document, its sections as operations; an unreadable file becomes a `Skipped` row."""
        result = ScanResult()
        files = self._files()
        if not files:
            result.skipped.append(Skipped(source=self.key, item=str(self.path), reason="no Markdown or HTML files here"))
        for path in files:
            try:
                title, text, operations = self._parse(path)
            except (OSError, SourceFormatError) as exc:
                result.skipped.append(Skipped(source=self.key, item=str(path), reason=str(exc)))
                continue
            service = self._service(path)
            rid = resource_id(PROVIDER, service, "")
            result.operations.extend(
                OperationEntry(id=op.id, service_id=rid, name=op.name, summary=summary_of(op.description),
                               http_method=op.http_method, http_path=op.http_path)
                for op in operations
            )
            result.services.append(ServiceEntry(
                id=rid, kind="docs", provider=PROVIDER, service=service, title=title,
                description=summary_of(text, 400) if not operations else f"{len(operations)} documented endpoints",
                source=ResourceSource(file=str(path)), operations=len(operations), source_key=self.key,
                locator=str(path),
            ))
        return result

    def load(self, entry: ServiceEntry) -> Resource:
        """The document's `Resource` (sections as operations); `SourceFormatError` when it cannot be read."""
        path = Path(entry.locator)
        try:
            title, text, operations = self._parse(path)
        except OSError as exc:
            raise SourceFormatError(f"{path}: cannot read ({exc})") from exc
        return Resource(
            id=entry.id, kind="docs", provider=PROVIDER, service=entry.service, title=title,
            description=summary_of(text, 400), source=ResourceSource(file=str(path)), operations=operations,
            docs=text,
        )
