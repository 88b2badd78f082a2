"""Google APIs from the discovery documents bundled with google-api-python-client
(`googleapiclient/discovery_cache/documents/<api>.<version>.json`), read as files: the client library
itself is never imported.

A discovery method becomes an `Operation` named by its method id (`tasks.tasks.insert`), with its
`httpMethod` and path (`servicePath` + `path`). The input schema is an object whose properties are
the method's parameters under their original names (`x-google-location`: path or query; `repeated`
→ array) plus `body` — the request schema, the name google-api-python-client gives it — whose
properties are required where the schema's `annotations.required` names this method. The output is
the response schema. Named schemas (`"$ref": "Task"`) become `$defs`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson

from envfactory.resources import domains
from envfactory.resources._schema import DefinitionCollector, finished_schemas
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
from envfactory.spec import JSONObject, JSONValue, Operation, ResourceSource

PROVIDER = "google"
DISTRIBUTION = "google-api-python-client"
LICENCE = "Apache-2.0"
DOCUMENTS = "googleapiclient/discovery_cache/documents"
INSTALL = "pip install 'envfactory[resources]'"
MAX_DOCUMENT_BYTES = 64 * 1024 * 1024

_DROP = frozenset({"id", "annotations", "enumDescriptions", "location", "repeated", "required",
                   "deprecated", "enumDeprecated"})


def documents_dir() -> Path | None:
    """Where the installed client keeps its discovery documents, or None when it is not installed."""
    from importlib import metadata

    try:
        dist = metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return None
    path = Path(str(dist.locate_file(DOCUMENTS)))
    return path if path.is_dir() else None


def iter_methods(node: Mapping[str, Any], trail: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(resource path, method) pairs of a discovery document, depth first, in document order."""
    methods = node.get("methods")
    if isinstance(methods, Mapping):
        for key, method in methods.items():
            if isinstance(method, Mapping):
                yield f"{trail}{key}", method
    resources = node.get("resources")
    if isinstance(resources, Mapping):
        for key, child in resources.items():
            if isinstance(child, Mapping):
                yield from iter_methods(child, f"{trail}{key}.")


def discovery_schema(node: Any, method_id: str | None = None) -> JSONValue:
    """A discovery schema as JSON Schema: per-property `required: true` and this method's
    `annotations.required` gathered into `required`, `type: any` dropped, numeric bounds as numbers."""
    if isinstance(node, list):
        return [discovery_schema(item, method_id) for item in node]
    if not isinstance(node, Mapping):
        return node if isinstance(node, str | int | float | bool) or node is None else str(node)
    out: JSONObject = {}
    for key, value in node.items():
        if key in _DROP:
            continue
        if key == "type" and value == "any":
            continue
        if key == "properties" and isinstance(value, Mapping):
            props: JSONObject = {}
            required: list[JSONValue] = []
            for name, prop in value.items():
                props[str(name)] = discovery_schema(prop)  # method annotations apply at the top level only
                if isinstance(prop, Mapping) and (
                    prop.get("required") is True
                    or (method_id is not None and method_id in _annotated(prop))
                ):
                    required.append(str(name))
            out["properties"] = props
            if required:
                out["required"] = required
        elif key in ("minimum", "maximum") and isinstance(value, str):
            try:
                out[key] = int(value)
            except ValueError:
                continue
        else:
            out[key] = discovery_schema(value)
    if node.get("repeated") is True:
        return {"type": "array", "items": out}
    return out


def _annotated(prop: Mapping[str, Any]) -> list[str]:
    annotations = prop.get("annotations")
    required = annotations.get("required") if isinstance(annotations, Mapping) else None
    return [r for r in required if isinstance(r, str)] if isinstance(required, list) else []


class GoogleSource:
    """Discovery documents of the installed google-api-python-client (all, or the named `apis`:
    `"tasks"` for every version, `"tasks.v1"` for one)."""

    def __init__(self, apis: list[str] | None = None, directory: Path | None = None) -> None:
        """Every discovery document, or only `apis`; `directory` reads the documents from a folder instead
        of the installed google-api-python-client."""
        self._only = tuple(apis) if apis is not None else None
        self._directory = directory

    @property
    def key(self) -> str:
        """`google`, or `google[a,b]` when restricted to some APIs."""
        return "google" if self._only is None else "google[" + ",".join(self._only) + "]"

    def _dir(self) -> Path:
        directory = self._directory or documents_dir()
        if directory is None:
            raise SourceUnavailableError("google-api-python-client (Google discovery documents)", INSTALL)
        return directory

    def fingerprint(self) -> str:
        """The client library's version (or, for a folder, its files' names, sizes and mtimes);
        `SourceUnavailableError` with the install command when neither is there."""
        version = package_version(DISTRIBUTION)
        if self._directory is not None:
            files = sorted(self._directory.glob("*.json"))
            return "dir:" + ";".join(f"{f.name}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files)
        if version is None:
            raise SourceUnavailableError("google-api-python-client (Google discovery documents)", INSTALL)
        return f"{DISTRIBUTION}=={version}"

    def _files(self) -> list[Path]:
        files = sorted(f for f in self._dir().glob("*.json") if f.name != "index.json")  # index.json lists the APIs
        if self._only is None:
            return files
        wanted = set(self._only)
        return [f for f in files if f.stem in wanted or f.stem.split(".", 1)[0] in wanted]

    def _read(self, path: Path) -> Mapping[str, Any]:
        if path.stat().st_size > MAX_DOCUMENT_BYTES:
            raise SourceFormatError(f"{path.name}: larger than {MAX_DOCUMENT_BYTES // 2**20} MiB")
        try:
            doc = orjson.loads(path.read_bytes())
        except orjson.JSONDecodeError as exc:
            raise SourceFormatError(f"{path.name}: not JSON ({exc})") from exc
        if not isinstance(doc, Mapping) or not isinstance(doc.get("name"), str):
            raise SourceFormatError(f"{path.name}: not a discovery document (no name)")
        return doc

    def _source(self, path: Path, doc: Mapping[str, Any]) -> ResourceSource:
        link = doc.get("documentationLink")
        return ResourceSource(
            package=DISTRIBUTION if self._directory is None else "",
            package_version=(package_version(DISTRIBUTION) or "") if self._directory is None else "",
            file=f"{DOCUMENTS}/{path.name}" if self._directory is None else str(path),
            licence=LICENCE if self._directory is None else "", url=link if isinstance(link, str) else "",
        )

    def scan(self) -> ScanResult:
        """One service per discovery document (one version of one API); unreadable documents and
        duplicates become `Skipped` rows."""
        result = ScanResult()
        seen: dict[str, str] = {}
        for path in self._files():
            try:
                doc = self._read(path)
            except (SourceFormatError, OSError) as exc:
                result.skipped.append(Skipped(source=self.key, item=path.name, reason=str(exc)))
                continue
            api, version = str(doc["name"]), str(doc.get("version", ""))
            rid = resource_id(PROVIDER, api, version)
            if rid in seen:  # the client ships some documents under two file names
                result.skipped.append(Skipped(source=self.key, item=path.name, reason=f"same API and version as {seen[rid]}"))
                continue
            seen[rid] = path.name
            ops: list[OperationEntry] = []
            for _, method in iter_methods(doc):
                name = clean_name(method.get("id"))
                if name is None:
                    result.skipped.append(Skipped(source=self.key, item=f"{rid}:?", reason="method without a usable id"))
                    continue
                ops.append(OperationEntry(
                    id=operation_id(PROVIDER, api, version, name), service_id=rid, name=name,
                    summary=summary_of(clean_text(method.get("description"), 1000)),
                    http_method=_str(method.get("httpMethod")), http_path=self._path(doc, method),
                ))
            result.operations.extend(ops)
            result.services.append(ServiceEntry(
                id=rid, kind="google", provider=PROVIDER, service=api, version=version,
                title=clean_text(doc.get("title") or api, 200),
                description=summary_of(clean_text(doc.get("description"), 2000), 400),
                domains=domains.for_google_api(api), licence=self._source(path, doc).licence,
                source=self._source(path, doc), operations=len(ops), source_key=self.key, locator=path.name,
            ))
        return result

    @staticmethod
    def _path(doc: Mapping[str, Any], method: Mapping[str, Any]) -> str | None:
        path = method.get("path")
        if not isinstance(path, str):
            return None
        if path.startswith("/"):
            return path
        return "/" + str(doc.get("servicePath") or "") + path

    def load(self, entry: ServiceEntry) -> Resource:
        """The API version's `Resource`, request and response schemas resolved; `SourceFormatError` when the
        document is gone or unreadable."""
        path = self._dir() / entry.locator
        if not path.is_file():
            raise SourceFormatError(f"{entry.locator}: no such discovery document")
        doc = self._read(path)
        api, version = str(doc["name"]), str(doc.get("version", ""))
        schemas = doc.get("schemas") if isinstance(doc.get("schemas"), Mapping) else {}
        assert isinstance(schemas, Mapping)
        operations: list[Operation] = []
        skipped: list[Skipped] = []
        for _, method in iter_methods(doc):
            name = clean_name(method.get("id"))
            if name is None:
                continue
            oid = operation_id(PROVIDER, api, version, name)
            try:
                operations.append(self._operation(doc, path, method, name, schemas))
            except SourceFormatError as exc:
                skipped.append(Skipped(source=self.key, item=oid, reason=str(exc)))
        source = self._source(path, doc)
        return Resource(
            id=entry.id, kind="google", provider=PROVIDER, service=api, version=version,
            title=clean_text(doc.get("title") or api, 200), description=clean_text(doc.get("description")),
            licence=source.licence, domains=domains.for_google_api(api), source=source,
            operations=operations, docs=source.url, skipped=skipped,
        )

    def _operation(
        self, doc: Mapping[str, Any], path: Path, method: Mapping[str, Any], name: str, schemas: Mapping[str, Any]
    ) -> Operation:
        api, version = str(doc["name"]), str(doc.get("version", ""))

        def resolve(ref: str) -> tuple[str, Any] | None:
            body = schemas.get(ref)
            return (ref, discovery_schema(body)) if isinstance(body, Mapping) else None

        collector = DefinitionCollector(resolve)
        properties: JSONObject = {}
        required: list[JSONValue] = []
        params = method.get("parameters") if isinstance(method.get("parameters"), Mapping) else {}
        assert isinstance(params, Mapping)
        for pname, param in params.items():
            if not isinstance(param, Mapping):
                continue
            schema = collector.convert(discovery_schema(param))
            assert isinstance(schema, dict)
            if isinstance(param.get("location"), str):
                schema["x-google-location"] = param["location"]
            properties[str(pname)] = schema
            if param.get("required") is True:
                required.append(str(pname))
        request = method.get("request")
        if isinstance(request, Mapping) and isinstance(request.get("$ref"), str):
            body = schemas.get(request["$ref"])
            if isinstance(body, Mapping):
                converted = collector.convert(discovery_schema(body, method_id=name))
                assert isinstance(converted, dict)
                converted["x-google-location"] = "body"
                converted["x-google-schema"] = request["$ref"]
                properties["body"] = converted
            else:
                properties["body"] = {"description": f"(unresolved request schema {request['$ref']})"}
            if "mediaUpload" not in method:
                required.append("body")
        input_schema = collector.attach({"type": "object", "properties": properties, "additionalProperties": False,
                                         **({"required": required} if required else {})})
        out_collector = DefinitionCollector(resolve)
        response = method.get("response")
        output_schema = out_collector.attach(out_collector.convert(response)) if isinstance(response, Mapping) else {}
        notes = collector.budget.problems + out_collector.budget.problems
        finished = finished_schemas(input_schema, output_schema, notes)
        docs = "catalog notes: " + "; ".join(notes) if notes else ""
        return Operation(
            id=operation_id(PROVIDER, api, version, name), provider=PROVIDER, service=api, service_version=version,
            name=name, description=clean_text(method.get("description"), DESCRIPTION_LIMIT),
            http_method=_str(method.get("httpMethod")), http_path=self._path(doc, method),
            input_schema=finished[0], output_schema=finished[1], docs=docs,
            domains=domains.for_google_api(api), source=self._source(path, doc),
        )


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None
