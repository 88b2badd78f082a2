"""The catalog's own records: `Resource` (one service with its operations), the light index rows
(`ServiceEntry`, `OperationEntry`) that listing and search read without parsing a specification, and
`Skipped` (an item left out, with the reason).

Contract:
- A `Resource` is what every source normalises to: provider, service, version, licence, where it was
  read from (`ResourceSource`: package@version or file), domain tags from the source's own categories,
  and `Operation`s (`envfactory.spec`) that keep the source's operation ids and field names.
- Ids: a resource is `provider:service:version`, an operation `provider:service:version:name`
  (`resource_id`, `operation_id`); colons and whitespace inside a part become `-` so that ids split
  unambiguously, while `Operation.name` and the schema keep the original spelling.
- Index rows cross the disk boundary (the on-disk index), so they are frozen pydantic models too.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field

from envfactory.errors import EnvFactoryError, SpecError
from envfactory.spec import Operation, ResourceSource, SpecModel

SourceKind = Literal["aws", "google", "openapi", "mcp", "docs"]

_ID_UNSAFE = re.compile(r"[:\s]+")


def id_part(value: str) -> str:
    """One part of a catalog id: the value with colons and whitespace replaced by `-`."""
    return _ID_UNSAFE.sub("-", value.strip()) or "-"


def resource_id(provider: str, service: str, version: str) -> str:
    """The id of a resource: `<provider>:<service>:<version>`, each part made id-safe."""
    return ":".join(id_part(part) for part in (provider, service, version))


def operation_id(provider: str, service: str, version: str, name: str) -> str:
    """The id of an operation: its resource id and `:<name>`."""
    return f"{resource_id(provider, service, version)}:{id_part(name)}"


class Skipped(SpecModel):
    """Something a source could not turn into a resource or an operation, and why."""

    schema_version: Literal[1] = 1
    source: str = Field(description="the catalog source key, e.g. aws, openapi:/path/spec.json")
    item: str = Field(description="what was skipped: a file, a service id or an operation id")
    reason: str


class ServiceEntry(SpecModel):
    """One row of `resources list`: a service as the index knows it, without its operations."""

    schema_version: Literal[1] = 1
    id: str
    kind: SourceKind
    provider: str
    service: str
    version: str = ""
    title: str = ""
    description: str = ""
    domains: list[str] = Field(default_factory=list)
    licence: str = ""
    source: ResourceSource = Field(default_factory=ResourceSource)
    operations: int = 0
    source_key: str = Field(description="the catalog source that produced it")
    locator: str = Field(default="", description="how that source finds the service again (source-specific)")


class OperationEntry(SpecModel):
    """One operation as the search index knows it: enough to rank and print, not its schemas."""

    schema_version: Literal[1] = 1
    id: str
    service_id: str
    name: str
    summary: str = ""
    http_method: str | None = None
    http_path: str | None = None


class Resource(SpecModel):
    """One service of an authentic resource, with every operation normalised to `Operation`."""

    schema_version: Literal[1] = 1
    id: str
    kind: SourceKind
    provider: str
    service: str
    version: str = ""
    title: str = ""
    description: str = ""
    licence: str = ""
    domains: list[str] = Field(default_factory=list)
    source: ResourceSource = Field(default_factory=ResourceSource)
    operations: list[Operation] = Field(default_factory=list)
    docs: str = Field(default="", description="documentation text (the whole content of a docs-only resource)")
    skipped: list[Skipped] = Field(default_factory=list, description="operations left out, with reasons")

    def operation(self, name: str) -> Operation:
        """The operation called `name` (its source name or its id part); KeyError if there is none."""
        for op in self.operations:
            if name in (op.name, op.id, id_part(op.name)):
                return op
        raise KeyError(name)


class SourceUnavailableError(EnvFactoryError):
    """An optional source is not installed; the message carries the exact command that adds it."""

    def __init__(self, what: str, command: str) -> None:
        """`what`: the missing package or program; `command`: the exact command that installs it."""
        super().__init__(f"{what} is not installed; add it with: {command}")
        self.what = what
        self.command = command


class SourceFormatError(SpecError):
    """A specification file is malformed or in a format the catalog does not read."""


class UnknownResourceError(EnvFactoryError, KeyError):
    """No service or operation in the catalog has this id."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown resource"


class MissingSource(SpecModel):
    """An optional source that is not set up, and the command that sets it up."""

    schema_version: Literal[1] = 1
    name: str
    what: str
    command: str
