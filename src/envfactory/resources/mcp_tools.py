"""MCP servers as sources: start a configured stdio server, list its tools with the official `mcp`
Python SDK, and turn each tool into an `Operation` (name, description, `inputSchema`,
`outputSchema`, annotations noted in the docs).

A server is described by `McpServerConfig` (a name, a command and its arguments, optional
environment). `known_servers(cache_dir)` gives the reference servers of RESOURCES.md that are
installed: PyPI `mcp-server-time` (run with this interpreter) and the npm servers that
`envfactory resources setup` installs under `<cache_dir>/npm`. Listing happens once per fingerprint
(command + package version) and is then served from the catalog's index.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from envfactory.resources import domains
from envfactory.resources._schema import DefinitionCollector, finished_schema
from envfactory.resources._text import DESCRIPTION_LIMIT, clean_name, clean_text, summary_of
from envfactory.resources.model import (
    OperationEntry,
    Resource,
    ServiceEntry,
    Skipped,
    SourceFormatError,
    SourceUnavailableError,
    operation_id,
    resource_id,
)
from envfactory.resources.source import ScanResult, package_version
from envfactory.spec import JSONObject, Operation, ResourceSource
from envfactory.spec.schema_tools import definition_name, local_definition

PROVIDER = "mcp"
_DEFINITION_ROOTS = ("#/$defs/", "#/definitions/")  # where an MCP tool schema keeps its definitions
LIST_TIMEOUT_S = 60.0
INSTALL_SDK = "pip install 'envfactory[resources]'"


@dataclass(frozen=True, slots=True)
class McpServerConfig:
    """How to start one stdio MCP server."""

    name: str
    command: str
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    package: str = ""
    package_version: str = ""
    licence: str = ""


@dataclass(frozen=True, slots=True)
class NpmServer:
    """A reference MCP server published on npm, pinned."""

    name: str
    package: str
    version: str
    licence: str = "MIT"


NPM_SERVERS: tuple[NpmServer, ...] = (
    NpmServer("memory", "@modelcontextprotocol/server-memory", "2026.8.31"),
)
TIME_SERVER_PACKAGE = "mcp-server-time"


def npm_prefix(cache_dir: Path) -> Path:
    """The npm prefix MCP servers are installed under in the cache."""
    return cache_dir / "npm"


def _npm_entry(prefix: Path, server: NpmServer) -> Path | None:
    package_dir = prefix / "node_modules" / server.package
    try:
        manifest = orjson.loads((package_dir / "package.json").read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    if manifest.get("version") != server.version:
        return None
    bin_field = manifest.get("bin")
    target = next(iter(bin_field.values()), None) if isinstance(bin_field, dict) else bin_field
    entry = package_dir / target if isinstance(target, str) else None
    return entry if entry is not None and entry.is_file() else None


def known_servers(cache_dir: Path) -> tuple[list[McpServerConfig], list[tuple[str, str]]]:
    """(installed reference servers, [(what is missing, the command that adds it)])."""
    found: list[McpServerConfig] = []
    missing: list[tuple[str, str]] = []
    time_version = package_version(TIME_SERVER_PACKAGE)
    if time_version is not None and importlib.util.find_spec("mcp_server_time") is not None:
        found.append(McpServerConfig(
            name="time", command=sys.executable, args=("-m", "mcp_server_time", "--local-timezone", "UTC"),
            package=TIME_SERVER_PACKAGE, package_version=time_version, licence="MIT",
        ))
    else:
        missing.append((f"MCP server {TIME_SERVER_PACKAGE} (PyPI)", "pip install 'envfactory[resources]'"))
    for server in NPM_SERVERS:
        entry = _npm_entry(npm_prefix(cache_dir), server)
        if entry is None:
            missing.append((f"MCP server {server.package}@{server.version} (npm)",
                            f"envfactory resources setup --only mcp-{server.name}"))
            continue
        # The memory server keeps its graph in a file; point it at a scratch path, never the package.
        memory_file = Path(tempfile.gettempdir()) / "envfactory-mcp-memory-listing.jsonl"
        found.append(McpServerConfig(
            name=server.name, command="node", args=(str(entry),), env={"MEMORY_FILE_PATH": str(memory_file)},
            package=server.package, package_version=server.version, licence=server.licence,
        ))
    return found, missing


async def _list_tools(config: McpServerConfig) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    try:
        from mcp import Client, StdioServerParameters
    except ImportError as exc:
        raise SourceUnavailableError("the mcp Python SDK", INSTALL_SDK) from exc
    params = StdioServerParameters(
        command=config.command, args=list(config.args), env=dict(config.env) or None,
    )
    tools: list[dict[str, Any]] = []
    async with Client(params, read_timeout_seconds=LIST_TIMEOUT_S, mode="legacy") as client:
        info = client.server_info
        cursor: str | None = None
        for _ in range(100):  # pages; a server that never stops paging is cut off
            page = await client.list_tools(cursor=cursor)
            tools.extend(tool.model_dump(mode="json", by_alias=True, exclude_none=True) for tool in page.tools)
            cursor = page.next_cursor
            if not cursor:
                break
        server = info.model_dump(mode="json", exclude_none=True) if info is not None else {}
    return server, tools


def list_tools(config: McpServerConfig) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(server info, tools as JSON) of a running server; `SourceFormatError` when it cannot be listed."""
    try:
        return asyncio.run(asyncio.wait_for(_list_tools(config), LIST_TIMEOUT_S))
    except SourceUnavailableError:
        raise
    except (Exception, ExceptionGroup) as exc:  # process did not start, crashed, spoke no MCP, timed out
        detail = clean_text(str(exc) or type(exc).__name__, 300)
        raise SourceFormatError(f"MCP server {config.name!r} ({config.command}) could not be listed: {detail}") from exc


class McpServerSource:
    """One stdio MCP server; its tools are listed at scan time and kept in the index."""

    def __init__(self, config: McpServerConfig) -> None:
        """The server `config` describes; it is started (once) when tools are first listed."""
        self.config = config
        self._listing: tuple[dict[str, Any], list[dict[str, Any]]] | None = None

    @property
    def key(self) -> str:
        """`mcp:<name>`."""
        return f"mcp:{self.config.name}"

    def fingerprint(self) -> str:
        """The server's command, arguments, package and version as JSON (the server is not started)."""
        c = self.config
        return orjson.dumps([c.command, list(c.args), c.package, c.package_version]).decode()

    def _tools(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        if self._listing is None:
            self._listing = list_tools(self.config)
        return self._listing

    def _identity(self, server: Mapping[str, Any]) -> tuple[str, str]:
        version = clean_text(server.get("version"), 100) or self.config.package_version
        return self.config.name, version

    def _source(self) -> ResourceSource:
        c = self.config
        return ResourceSource(package=c.package, package_version=c.package_version, licence=c.licence,
                              file=" ".join([Path(c.command).name, *c.args])[:500])

    def _operation(self, service: str, version: str, tool: Mapping[str, Any]) -> Operation:
        name = clean_name(tool.get("name"))
        if name is None:
            raise SourceFormatError("tool without a usable name")
        schemas: list[JSONObject] = []
        notes: list[str] = []
        for key in ("inputSchema", "outputSchema"):
            raw = tool.get(key)
            if raw is None:
                schemas.append({"type": "object", "properties": {}} if key == "inputSchema" else {})
                continue
            if not isinstance(raw, Mapping):
                raise SourceFormatError(f"{key} is not an object")

            def resolve(ref: str, raw: Mapping[str, Any] = raw) -> tuple[str, Any] | None:
                name = definition_name(ref, _DEFINITION_ROOTS)
                body = local_definition(raw, ref, _DEFINITION_ROOTS) if name is not None else None
                return (name, body) if name is not None and body is not None else None

            collector = DefinitionCollector(resolve)
            body = {k: v for k, v in raw.items() if k not in ("$defs", "definitions")}
            schema, note = finished_schema(collector.attach(collector.convert(body)))
            if schema is None:
                raise SourceFormatError(f"{key} does not compile: {note}")
            notes.extend(collector.budget.problems + ([note] if note else []))
            schemas.append(schema)
        annotations = tool.get("annotations")
        docs = ""
        if isinstance(annotations, Mapping):
            hints = {k: v for k, v in annotations.items() if isinstance(v, bool | str)}
            docs = "annotations: " + orjson.dumps(hints, option=orjson.OPT_SORT_KEYS).decode() if hints else ""
        if notes:
            docs = (docs + "\n" if docs else "") + "catalog notes: " + "; ".join(notes)
        return Operation(
            id=operation_id(PROVIDER, service, version, name), provider=PROVIDER, service=service,
            service_version=version, name=name, description=clean_text(tool.get("description"), DESCRIPTION_LIMIT),
            input_schema=schemas[0], output_schema=schemas[1], docs=docs,
            domains=domains.for_mcp_server(self.config.name), source=self._source(),
        )

    def scan(self) -> ScanResult:
        """One service whose operations are the server's tools; a server that cannot be started or listed
        becomes a `Skipped` row."""
        try:
            server, tools = self._tools()
        except SourceFormatError as exc:
            return ScanResult(skipped=[Skipped(source=self.key, item=self.config.name, reason=str(exc))])
        service, version = self._identity(server)
        rid = resource_id(PROVIDER, service, version)
        result = ScanResult()
        for tool in tools:
            name = clean_name(tool.get("name"))
            if name is None:
                result.skipped.append(Skipped(source=self.key, item=f"{rid}:?", reason="tool without a usable name"))
                continue
            result.operations.append(OperationEntry(
                id=operation_id(PROVIDER, service, version, name), service_id=rid, name=name,
                summary=summary_of(clean_text(tool.get("description"), 1000)),
            ))
        result.services.append(ServiceEntry(
            id=rid, kind="mcp", provider=PROVIDER, service=service, version=version,
            title=clean_text(server.get("title") or server.get("name") or service, 200),
            description=f"MCP server {self.config.package or self.config.command}",
            domains=domains.for_mcp_server(self.config.name), licence=self.config.licence, source=self._source(),
            operations=len(result.operations), source_key=self.key, locator=self.config.name,
        ))
        return result

    def load(self, entry: ServiceEntry) -> Resource:
        """The server's `Resource`, one operation per tool (tools that cannot be converted are recorded as
        skipped); `SourceFormatError` when the server cannot be listed."""
        server, tools = self._tools()
        service, version = self._identity(server)
        operations: list[Operation] = []
        skipped: list[Skipped] = []
        for tool in tools:
            try:
                operations.append(self._operation(service, version, tool))
            except SourceFormatError as exc:
                skipped.append(Skipped(source=self.key, item=f"{entry.id}:{clean_text(str(tool.get('name')), 100)}",
                                       reason=str(exc)))
        return Resource(
            id=entry.id, kind="mcp", provider=PROVIDER, service=service, version=version, title=entry.title,
            description=entry.description, licence=self.config.licence, domains=list(entry.domains),
            source=self._source(), operations=operations, skipped=skipped,
            docs=clean_text(server.get("instructions"), DESCRIPTION_LIMIT) if isinstance(server, Mapping) else "",
        )


def configs_from(entries: Sequence[tuple[str, Sequence[str]]]) -> list[McpServerConfig]:
    """Configs from (name, command line) pairs (what the CLI's `--mcp NAME=COMMAND ...` gives)."""
    out: list[McpServerConfig] = []
    for name, argv in entries:
        if not argv:
            raise SourceFormatError(f"MCP server {name!r}: empty command")
        out.append(McpServerConfig(name=name, command=argv[0], args=tuple(argv[1:])))
    return out
