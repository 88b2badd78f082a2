"""AWS service models from botocore: every service the installed botocore knows, enumerated through
`botocore.session.get_session()` (no network, no credentials), each operation with its input and
output shapes as JSON Schema, its errors, its documentation (HTML stripped), the model's own
`examples-1.json` examples and, when the awscli wheel is set up, the CLI's human-written examples.

Shape → JSON Schema:
- structure → object with the original member names, `required`, `additionalProperties: false`
  (unions: `maxProperties: 1`); list → array; map → object with `additionalProperties` (and
  `propertyNames` for enum keys); string enums, min/max (`minLength`, `minItems`, `minimum`, ...),
  patterns; timestamp → string `date-time`; blob → base64 string; document → any value.
- Shapes that take part in a cycle (DynamoDB's `AttributeValue`) become `$defs` entries referenced by
  `$ref`; the rest is inlined. Nesting is cut at `MAX_DEPTH`.
- Where a member travels (`uri`, `querystring`, `header`) is kept as `x-aws-location`
  (+ `x-aws-location-name`), idempotency tokens as `x-aws-idempotency-token`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

from envfactory.resources import domains
from envfactory.resources._schema import MAX_DEPTH, finished_schema
from envfactory.resources._text import DESCRIPTION_LIMIT, clean_text, summary_of
from envfactory.resources.awscli_examples import AwsCliExamples
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
from envfactory.spec import JSONObject, JSONValue, Operation, OperationError, OperationExample, ResourceSource

PROVIDER = "aws"
LICENCE = "Apache-2.0"
MEMBER_DOC_LIMIT = 1000
INSTALL = "pip install 'envfactory[resources]'"

_SCALARS: Mapping[str, JSONObject] = MappingProxyType({
    "string": {"type": "string"},
    "character": {"type": "string"},
    "integer": {"type": "integer"},
    "long": {"type": "integer"},
    "short": {"type": "integer"},
    "byte": {"type": "integer"},
    "float": {"type": "number"},
    "double": {"type": "number"},
    "bigdecimal": {"type": "number"},
    "biginteger": {"type": "integer"},
    "boolean": {"type": "boolean"},
    "timestamp": {"type": "string", "format": "date-time"},
    "blob": {"type": "string", "contentEncoding": "base64"},
})
_BOUNDS: Mapping[str, tuple[str, str]] = MappingProxyType({
    "string": ("minLength", "maxLength"),
    "list": ("minItems", "maxItems"),
    "map": ("minProperties", "maxProperties"),
})


def recursive_shapes(shapes: Mapping[str, Any]) -> frozenset[str]:
    """Shapes on a cycle of the shape graph (Tarjan's strongly connected components, iteratively)."""

    def children(name: str) -> list[str]:
        shape = shapes.get(name)
        if not isinstance(shape, Mapping):
            return []
        refs: list[str] = []
        members = shape.get("members")
        if isinstance(members, Mapping):
            refs.extend(m["shape"] for m in members.values() if isinstance(m, Mapping) and isinstance(m.get("shape"), str))
        for key in ("member", "key", "value"):
            ref = shape.get(key)
            if isinstance(ref, Mapping) and isinstance(ref.get("shape"), str):
                refs.append(ref["shape"])
        return [r for r in refs if r in shapes]

    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    cyclic: set[str] = set()
    counter = 0
    for root in shapes:
        if root in index:
            continue
        work: list[tuple[str, Iterable[str]]] = [(root, iter(children(root)))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, it = work[-1]
            advanced = False
            for child in it:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(children(child))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    item = stack.pop()
                    on_stack.discard(item)
                    component.append(item)
                    if item == node:
                        break
                if len(component) > 1 or node in children(node):
                    cyclic.update(component)
    return frozenset(cyclic)


class ShapeConverter:
    """Converts shapes of one service model; one instance per operation schema (it owns `$defs`)."""

    def __init__(self, shapes: Mapping[str, Any], recursive: frozenset[str]) -> None:
        """`shapes`: the service model's shapes; `recursive`: shape names that reach themselves (each becomes one
        `$defs` entry and is referenced by `$ref`)."""
        self.shapes = shapes
        self.recursive = recursive
        self.defs: dict[str, JSONValue] = {}
        self.problems: list[str] = []

    def root(self, shape_name: str | None) -> JSONObject:
        """The JSON Schema of an operation's input or output shape (None: an empty object), with the recursive
        shapes it reached under `$defs` (sorted). Problems are appended to `problems`, not raised."""
        if shape_name is None:
            return {"type": "object", "properties": {}, "additionalProperties": False}
        schema = self.shape(shape_name, 0)
        if self.defs:
            schema = {**schema, "$defs": dict(sorted(self.defs.items()))}
        return schema

    def shape(self, name: str, depth: int) -> JSONObject:
        """The schema of shape `name` at nesting `depth`: a `$ref` for a recursive shape (converted once into
        `defs`), the converted body otherwise."""
        if name in self.recursive:
            if name not in self.defs:
                self.defs[name] = {}  # taken first, so the shape's own references stop here
                self.defs[name] = self._body(name, 0)
            return {"$ref": f"#/$defs/{name}"}
        return self._body(name, depth)

    def _member(self, ref: Any, depth: int) -> JSONObject:
        if not isinstance(ref, Mapping) or not isinstance(ref.get("shape"), str):
            self.problems.append("member without a shape")
            return {}
        schema = dict(self.shape(ref["shape"], depth + 1))
        doc = clean_text(ref.get("documentation"), MEMBER_DOC_LIMIT, from_html=True)
        if doc:
            schema["description"] = doc
        for key, target in (("location", "x-aws-location"), ("locationName", "x-aws-location-name")):
            if isinstance(ref.get(key), str):
                schema[target] = ref[key]
        if ref.get("idempotencyToken") is True:
            schema["x-aws-idempotency-token"] = True
        if ref.get("deprecated") is True:
            schema["deprecated"] = True
        return schema

    def _body(self, name: str, depth: int) -> JSONObject:
        shape = self.shapes.get(name)
        if not isinstance(shape, Mapping):
            self.problems.append(f"unknown shape {name}")
            return {"description": f"(unknown shape {name})"}
        if depth > MAX_DEPTH:
            self.problems.append(f"shape {name} nested deeper than {MAX_DEPTH}")
            return {"description": f"({name}: nested too deeply; cut)"}
        kind = shape.get("type")
        schema: JSONObject
        if shape.get("document") is True:
            schema = {}
        elif kind == "structure":
            members = shape.get("members") if isinstance(shape.get("members"), Mapping) else {}
            assert isinstance(members, Mapping)
            schema = {
                "type": "object",
                "properties": {str(m): self._member(ref, depth) for m, ref in members.items()},
                "additionalProperties": False,
            }
            required: list[JSONValue] = [r for r in shape.get("required", []) if isinstance(r, str) and r in members]
            if required:
                schema["required"] = required
            if shape.get("union") is True:
                schema["maxProperties"] = 1
            if shape.get("eventstream") is True:
                schema["x-aws-eventstream"] = True
        elif kind == "list":
            schema = {"type": "array", "items": self._member(shape.get("member"), depth)}
        elif kind == "map":
            schema = {"type": "object", "additionalProperties": self._member(shape.get("value"), depth)}
            key = shape.get("key")
            if isinstance(key, Mapping) and isinstance(key.get("shape"), str):
                key_shape = self.shapes.get(key["shape"], {})
                if isinstance(key_shape, Mapping) and isinstance(key_shape.get("enum"), list):
                    schema["propertyNames"] = {"enum": list(key_shape["enum"])}
        elif isinstance(kind, str) and kind in _SCALARS:
            schema = dict(_SCALARS[kind])
            if isinstance(shape.get("enum"), list):
                schema["enum"] = [v for v in shape["enum"] if isinstance(v, str)]
            if kind == "timestamp" and isinstance(shape.get("timestampFormat"), str):
                schema["x-aws-timestamp-format"] = shape["timestampFormat"]
            if kind == "blob" and shape.get("streaming") is True:
                schema["x-aws-streaming"] = True
            pattern = shape.get("pattern")
            if isinstance(pattern, str) and kind == "string":
                schema["pattern"] = pattern
        else:
            self.problems.append(f"shape {name} has unknown type {kind!r}")
            schema = {}
        low, high = _BOUNDS.get(str(kind), ("minimum", "maximum"))
        if kind in _BOUNDS or kind in ("integer", "long", "float", "double", "short", "byte"):
            for key, target in (("min", low), ("max", high)):
                value = shape.get(key)
                if isinstance(value, int | float) and not isinstance(value, bool):
                    schema[target] = int(value) if target.endswith(("Length", "Items", "Properties")) else value
        return schema


def kebab(name: str) -> str:
    """The CLI spelling of an operation or member name (`CreateQueue` → `create-queue`)."""
    import botocore  # the CLI derives its names with botocore's own rule; use it, not a copy

    return str(botocore.xform_name(name, "-"))


class AwsSource:
    """botocore's service models (all of them, or the named `services`)."""

    def __init__(self, services: Sequence[str] | None = None, awscli_wheel: Path | None = None) -> None:
        """All botocore services, or only `services`; `awscli_wheel` (when the file exists) adds the AWS CLI's
        example pages to operation descriptions. Nothing is read until `scan`/`load`."""
        self._only = tuple(services) if services is not None else None
        self._wheel = awscli_wheel if awscli_wheel is not None and awscli_wheel.is_file() else None
        self._session: Any = None
        self._recursive: dict[str, frozenset[str]] = {}

    @property
    def key(self) -> str:
        """`aws`, or `aws[s1,s2]` when restricted to some services."""
        return "aws" if self._only is None else "aws[" + ",".join(self._only) + "]"

    def fingerprint(self) -> str:
        """botocore's version (and the awscli wheel's name and size); `SourceUnavailableError` with the install
        command when botocore is missing."""
        version = package_version("botocore")
        if version is None:
            raise SourceUnavailableError("botocore (AWS service models)", INSTALL)
        wheel = f";awscli={self._wheel.name}:{self._wheel.stat().st_size}" if self._wheel else ""
        return f"botocore=={version}{wheel}"

    def _loader(self) -> Any:
        if self._session is None:
            try:
                import botocore.session
            except ImportError as exc:
                raise SourceUnavailableError("botocore (AWS service models)", INSTALL) from exc
            self._session = botocore.session.get_session()
        return self._session.get_component("data_loader")

    def _services(self) -> list[str]:
        available = list(self._session.get_available_services()) if self._session else []
        if not available:
            self._loader()
            available = list(self._session.get_available_services())
        if self._only is None:
            return sorted(available)
        return [name for name in self._only if name in available]

    def _model(self, service: str) -> dict[str, Any]:
        model = self._loader().load_service_model(service, "service-2")
        if not isinstance(model, Mapping) or not isinstance(model.get("operations"), Mapping):
            raise SourceFormatError(f"botocore model of {service} has no operations")
        return dict(model)

    def _source(self, service: str, api_version: str) -> ResourceSource:
        return ResourceSource(
            package="botocore", package_version=package_version("botocore") or "",
            file=f"botocore/data/{service}/{api_version}/service-2.json", licence=LICENCE,
        )

    def scan(self) -> ScanResult:
        """One service entry per botocore service (operations sorted by name); a model that cannot be loaded
        and a requested service botocore lacks become `Skipped` rows."""
        result = ScanResult()
        self._loader()
        names = self._services()
        if self._only is not None:
            for missing in sorted(set(self._only) - set(names)):
                result.skipped.append(Skipped(source=self.key, item=missing, reason="not a botocore service"))
        for service in names:
            try:
                model = self._model(service)
            except Exception as exc:  # a broken data file must not stop the other 444 services
                result.skipped.append(Skipped(source=self.key, item=service, reason=f"cannot load model: {exc}"))
                continue
            entry, ops = self._entries(service, model)
            result.services.append(entry)
            result.operations.extend(ops)
        return result

    def _entries(self, service: str, model: Mapping[str, Any]) -> tuple[ServiceEntry, list[OperationEntry]]:
        meta = model.get("metadata", {})
        version = str(meta.get("apiVersion", ""))
        rid = resource_id(PROVIDER, service, version)
        ops = [
            OperationEntry(
                id=operation_id(PROVIDER, service, version, name), service_id=rid, name=name,
                summary=summary_of(clean_text(op.get("documentation"), 2000, from_html=True)),
                http_method=op.get("http", {}).get("method"), http_path=op.get("http", {}).get("requestUri"),
            )
            for name, op in sorted(model["operations"].items())
        ]
        entry = ServiceEntry(
            id=rid, kind="aws", provider=PROVIDER, service=service, version=version,
            title=clean_text(meta.get("serviceFullName") or service, 200),
            description=summary_of(clean_text(model.get("documentation"), 2000, from_html=True), 400),
            domains=domains.for_aws_service(service), licence=LICENCE, source=self._source(service, version),
            operations=len(ops), source_key=self.key, locator=service,
        )
        return entry, ops

    def load(self, entry: ServiceEntry) -> Resource:
        """The service's `Resource`, every operation's input and output shapes converted to JSON Schema;
        `SourceFormatError` when the model cannot be read."""
        service = entry.locator
        self._loader()
        try:
            model = self._model(service)
        except SourceFormatError:
            raise
        except Exception as exc:
            raise SourceFormatError(f"cannot load botocore model of {service}: {exc}") from exc
        meta = model.get("metadata", {})
        version = str(meta.get("apiVersion", ""))
        shapes = model.get("shapes", {})
        recursive = self._recursive.get(service)
        if recursive is None:
            recursive = self._recursive[service] = recursive_shapes(shapes)
        examples = self._examples(service, version)
        cli = AwsCliExamples(self._wheel) if self._wheel is not None else None
        operations: list[Operation] = []
        skipped: list[Skipped] = []
        try:
            for name, op in sorted(model["operations"].items()):
                oid = operation_id(PROVIDER, service, version, name)
                try:
                    operations.append(self._operation(service, version, name, op, shapes, recursive, examples, cli))
                except SourceFormatError as exc:
                    skipped.append(Skipped(source=self.key, item=oid, reason=str(exc)))
        finally:
            if cli is not None:
                cli.close()
        return Resource(
            id=entry.id, kind="aws", provider=PROVIDER, service=service, version=version,
            title=clean_text(meta.get("serviceFullName") or service, 200),
            description=clean_text(model.get("documentation"), DESCRIPTION_LIMIT, from_html=True),
            licence=LICENCE, domains=domains.for_aws_service(service), source=self._source(service, version),
            operations=operations, skipped=skipped,
        )

    def _examples(self, service: str, version: str) -> Mapping[str, Any]:
        try:
            data = self._loader().load_service_model(service, "examples-1", version)
        except Exception:  # most services ship no examples-1.json (DataNotFoundError)
            return {}
        examples = data.get("examples") if isinstance(data, Mapping) else None
        return examples if isinstance(examples, Mapping) else {}

    def _operation(
        self, service: str, version: str, name: str, op: Mapping[str, Any], shapes: Mapping[str, Any],
        recursive: frozenset[str], examples: Mapping[str, Any], cli: AwsCliExamples | None,
    ) -> Operation:
        oid = operation_id(PROVIDER, service, version, name)
        schemas: list[JSONObject] = []
        notes: list[str] = []
        for direction in ("input", "output"):
            ref = op.get(direction)
            shape_name = ref.get("shape") if isinstance(ref, Mapping) else None
            converter = ShapeConverter(shapes, recursive)
            raw = converter.root(shape_name if isinstance(shape_name, str) else None)
            schema, note = finished_schema(raw)
            if schema is None:
                raise SourceFormatError(f"{direction} schema does not compile: {note}")
            if note:
                notes.append(f"{direction}: {note}")
            notes.extend(f"{direction}: {p}" for p in converter.problems[:3])
            schemas.append(schema)
        errors = []
        for ref in op.get("errors", []):
            shape_name = ref.get("shape") if isinstance(ref, Mapping) else None
            if not isinstance(shape_name, str):
                continue
            shape = shapes.get(shape_name, {})
            error_info = shape.get("error", {}) if isinstance(shape, Mapping) else {}
            status = error_info.get("httpStatusCode") if isinstance(error_info, Mapping) else None
            errors.append(OperationError(
                code=shape_name,
                description=clean_text(shape.get("documentation") if isinstance(shape, Mapping) else "", 600,
                                       from_html=True),
                http_status=status if isinstance(status, int) else None,
            ))
        found: list[OperationExample] = []
        for example in examples.get(name, []) if isinstance(examples.get(name), list) else []:
            if not isinstance(example, Mapping):
                continue
            found.append(OperationExample(
                title=clean_text(example.get("title") or example.get("description"), 300),
                input=_json_value(example.get("input")), output=_json_value(example.get("output")),
                source=f"botocore:{service}/examples-1.json#{clean_text(example.get('id'), 100)}",
            ))
        if cli is not None:
            found.extend(cli.examples(service, kebab(name), self._cli_members(op, shapes)))
        http = op.get("http", {}) if isinstance(op.get("http"), Mapping) else {}
        description = clean_text(op.get("documentation"), DESCRIPTION_LIMIT, from_html=True)
        docs = str(op.get("documentationUrl", "")) if isinstance(op.get("documentationUrl"), str) else ""
        if notes:
            docs = (docs + "\n" if docs else "") + "catalog notes: " + "; ".join(notes)
        return Operation(
            id=oid, provider=PROVIDER, service=service, service_version=version, name=name,
            description=description, http_method=http.get("method"), http_path=http.get("requestUri"),
            input_schema=schemas[0], output_schema=schemas[1], errors=errors, examples=found, docs=docs,
            domains=domains.for_aws_service(service), source=self._source(service, version),
        )

    @staticmethod
    def _cli_members(op: Mapping[str, Any], shapes: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
        ref = op.get("input")
        shape = shapes.get(str(ref.get("shape"))) if isinstance(ref, Mapping) else None
        members = shape.get("members", {}) if isinstance(shape, Mapping) else {}
        out: dict[str, tuple[str, str]] = {}
        for member, member_ref in members.items():
            target = shapes.get(str(member_ref.get("shape")), {}) if isinstance(member_ref, Mapping) else {}
            out[kebab(member)] = (member, str(target.get("type", "string")) if isinstance(target, Mapping) else "string")
        return out




def _json_value(value: Any) -> JSONValue:
    """A plain JSON copy of example data (botocore hands out OrderedDicts)."""
    if isinstance(value, Mapping):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)
