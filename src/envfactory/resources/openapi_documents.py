"""Reading OpenAPI documents (part of the OpenAPI source, `openapi.py`): bytes to a JSON-like mapping
(JSON, or YAML when PyYAML is installed), and any supported version to OpenAPI 3 (Swagger 2.0 is
converted: definitions, parameters, bodies, responses).

Errors: a document over `MAX_SPEC_BYTES`, unparsable, or neither OpenAPI 3 nor Swagger 2.0 raises
`SourceFormatError` naming it. Pure and deterministic: the same bytes give the same document.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

import orjson

from envfactory.resources.model import SourceFormatError

MAX_SPEC_BYTES = 64 * 1024 * 1024
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def parse_document(data: bytes, name: str) -> Mapping[str, Any]:
    """A JSON or YAML document as a mapping; `SourceFormatError` when it is neither."""
    if len(data) > MAX_SPEC_BYTES:
        raise SourceFormatError(f"{name}: {len(data) // 2**20} MiB is over the {MAX_SPEC_BYTES // 2**20} MiB limit")
    text_start = data.lstrip()[:1]
    if text_start in (b"{", b"["):
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise SourceFormatError(f"{name}: malformed JSON ({exc})") from exc
    else:
        try:
            yaml = importlib.import_module("yaml")
        except ImportError as exc:
            raise SourceFormatError(f"{name}: YAML documents need PyYAML (pip install pyyaml)") from exc
        loader = getattr(yaml, "CSafeLoader", None) or yaml.SafeLoader
        try:
            doc = yaml.load(data, Loader=loader)
        except yaml.YAMLError as exc:
            raise SourceFormatError(f"{name}: malformed YAML ({str(exc).splitlines()[0]})") from exc
        doc = plain_json(doc)
    if not isinstance(doc, Mapping):
        raise SourceFormatError(f"{name}: not an OpenAPI document (top level is not an object)")
    return doc


def plain_json(value: Any) -> Any:
    """YAML values as JSON values (dates and other tagged scalars become strings)."""
    if isinstance(value, Mapping):
        return {str(k): plain_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain_json(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def openapi3(doc: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """The document as OpenAPI 3: returned as is, converted from Swagger 2, or refused."""
    version = doc.get("openapi")
    if isinstance(version, str) and version.startswith("3."):
        if not isinstance(doc.get("paths", {}), Mapping):
            raise SourceFormatError(f"{name}: 'paths' is not an object")
        return doc
    if str(doc.get("swagger", "")) == "2.0":
        return swagger2_to_openapi3(doc)
    found = version if version is not None else doc.get("swagger")
    raise SourceFormatError(
        f"{name}: not an OpenAPI 3 or Swagger 2.0 document "
        f"({'openapi/swagger field ' + repr(found)[:40] if found is not None else 'no openapi or swagger field'})"
    )


def _rewrite_swagger_refs(value: Any) -> Any:
    if isinstance(value, Mapping):
        out = {k: _rewrite_swagger_refs(v) for k, v in value.items()}
        ref = out.get("$ref")
        if isinstance(ref, str):
            for old, new in (("#/definitions/", "#/components/schemas/"), ("#/parameters/", "#/components/parameters/"),
                             ("#/responses/", "#/components/responses/")):
                if ref.startswith(old):
                    out["$ref"] = new + ref[len(old):]
        return out
    if isinstance(value, list):
        return [_rewrite_swagger_refs(v) for v in value]
    return value


_PARAM_SCHEMA_KEYS = ("type", "format", "items", "enum", "default", "minimum", "maximum", "exclusiveMinimum",
                      "exclusiveMaximum", "minLength", "maxLength", "pattern", "minItems", "maxItems",
                      "uniqueItems", "multipleOf", "collectionFormat")


def _resolve_swagger_param(param: Any, global_params: Mapping[str, Any]) -> Any:
    ref = param.get("$ref") if isinstance(param, Mapping) else None
    if isinstance(ref, str) and ref.startswith("#/components/parameters/"):
        return global_params.get(ref.rsplit("/", 1)[-1], param)
    return param


def _convert_swagger_param(param: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in param.items() if k not in _PARAM_SCHEMA_KEYS}
    schema = {k: param[k] for k in _PARAM_SCHEMA_KEYS if k in param and k != "collectionFormat"}
    if schema.get("type") == "file":
        schema = {"type": "string", "format": "binary"}
    out["schema"] = schema
    return out


def _convert_swagger_operation(op: Mapping[str, Any], shared: list[Any], consumes: list[str], produces: list[str],
                               global_params: Mapping[str, Any]) -> dict[str, Any]:
    """One Swagger 2 operation in OpenAPI 3 form: body and formData parameters become the request body."""
    out = {k: v for k, v in op.items() if k not in ("parameters", "responses", "consumes", "produces")}
    op_consumes = [c for c in op.get("consumes", []) if isinstance(c, str)] or consumes
    op_produces = [p for p in op.get("produces", []) if isinstance(p, str)] or produces
    params: list[Any] = []
    form: dict[str, Any] = {"type": "object", "properties": {}}
    form_required: list[str] = []
    for raw in [*shared, *(op.get("parameters") or [])]:
        param = _resolve_swagger_param(raw, global_params)
        if not isinstance(param, Mapping):
            continue
        where = param.get("in")
        if where == "body":
            out["requestBody"] = {
                "description": param.get("description", ""), "required": bool(param.get("required")),
                "content": {op_consumes[0]: {"schema": param.get("schema", {})}},
            }
        elif where == "formData":
            form["properties"][str(param.get("name"))] = _convert_swagger_param(param)["schema"]
            if param.get("required"):
                form_required.append(str(param.get("name")))
        elif isinstance(param.get("$ref"), str):
            params.append(param)
        else:
            params.append(_convert_swagger_param(param))
    if form["properties"]:
        if form_required:
            form["required"] = form_required
        media = next((c for c in op_consumes if "form" in c), "application/x-www-form-urlencoded")
        out["requestBody"] = {"required": bool(form_required), "content": {media: {"schema": form}}}
    if params:
        out["parameters"] = params
    responses: dict[str, Any] = {}
    for code, response in (op.get("responses") or {}).items():
        if not isinstance(response, Mapping):
            continue
        converted = {k: v for k, v in response.items() if k not in ("schema", "examples")}
        if "schema" in response:
            media_type: dict[str, Any] = {"schema": response["schema"]}
            examples = response.get("examples")
            if isinstance(examples, Mapping) and examples:
                media_type["example"] = next(iter(examples.values()))
            converted["content"] = {op_produces[0]: media_type}
        responses[str(code)] = converted
    out["responses"] = responses
    return out


def swagger2_to_openapi3(doc: Mapping[str, Any]) -> dict[str, Any]:
    """Convert a Swagger 2.0 document to OpenAPI 3.0 (the parts operations are made of): definitions,
    parameters (body and formData become request bodies), responses, consumes/produces, host and
    basePath."""
    src = _rewrite_swagger_refs(doc)
    consumes = [c for c in src.get("consumes", []) if isinstance(c, str)] or ["application/json"]
    produces = [p for p in src.get("produces", []) if isinstance(p, str)] or ["application/json"]
    global_params = src.get("parameters") if isinstance(src.get("parameters"), Mapping) else {}
    paths: dict[str, Any] = {}
    for path, item in (src.get("paths") or {}).items():
        if not isinstance(item, Mapping):
            continue
        shared: list[Any] = item["parameters"] if isinstance(item.get("parameters"), list) else []
        paths[str(path)] = {
            method: _convert_swagger_operation(op, shared, consumes, produces, global_params)
            for method, op in item.items() if method in METHODS and isinstance(op, Mapping)
        }
    host = src.get("host")
    scheme = (src.get("schemes") or ["https"])[0]
    servers = [{"url": f"{scheme}://{host}{src.get('basePath', '')}"}] if isinstance(host, str) else []
    return {
        "openapi": "3.0.0", "info": src.get("info", {}), "servers": servers, "paths": paths,
        "components": {
            "schemas": src.get("definitions", {}),
            "parameters": {k: _convert_swagger_param(v) for k, v in global_params.items()
                           if isinstance(v, Mapping) and v.get("in") not in ("body", "formData")},
            "responses": src.get("responses", {}),
        },
        "x-converted-from": "swagger 2.0",
    }
