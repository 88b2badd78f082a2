"""`Operation`: one API operation of an authentic resource, normalised from any source
(AWS service models, Google discovery documents, OpenAPI files, MCP tool lists, docs).

Operations keep their source ids and original field names so everything built from them stays
traceable to the specification.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from envfactory.spec.base import JSONObject, JSONValue, SpecModel


class ResourceSource(SpecModel):
    """Where a resource's description was read from."""

    package: str = ""
    package_version: str = ""
    file: str = ""
    licence: str = ""
    url: str = ""


class OperationError(SpecModel):
    """An error an operation is documented to return: its code, description and HTTP status."""
    code: str
    description: str = ""
    http_status: int | None = None


class OperationExample(SpecModel):
    """An example from the source itself (spec examples, awscli pages): used as a scenario oracle."""

    title: str = ""
    input: JSONValue = None
    output: JSONValue = None
    source: str = Field(default="", description="e.g. examples-1.json, awscli:sqs/create-queue.rst")


def _empty_object_schema() -> JSONObject:
    return {"type": "object", "properties": {}}


class Operation(SpecModel):
    """One API operation normalised from any source: identity, documentation, HTTP binding, input and
    output JSON Schemas, errors and examples."""
    schema_version: Literal[1] = 1
    id: str = Field(description="provider:service:version:operation, unique in the catalog")
    provider: str
    service: str
    service_version: str = ""
    name: str = Field(description="the source's operation id or method name, unchanged")
    description: str = ""
    http_method: str | None = None
    http_path: str | None = None
    input_schema: JSONObject = Field(default_factory=_empty_object_schema)
    output_schema: JSONObject = Field(default_factory=dict)
    errors: list[OperationError] = Field(default_factory=list)
    examples: list[OperationExample] = Field(default_factory=list)
    docs: str = ""
    domains: list[str] = Field(default_factory=list, description="from the source's own categories")
    source: ResourceSource = Field(default_factory=ResourceSource)
