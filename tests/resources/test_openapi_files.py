"""OpenAPI 3 files of the user's, Swagger 2 conversion, and bad input of every kind."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema_rs
import orjson
import pytest

from envfactory.resources import Catalog, OpenApiFileSource, SourceFormatError, openapi_documents
from envfactory.resources import openapi as openapi_module
from envfactory.resources.openapi import openapi3, parse_document

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "resources"


def props(schema: dict[str, Any]) -> dict[str, Any]:
    properties = schema["properties"]
    assert isinstance(properties, dict)
    return properties


@pytest.fixture
def bookshop(tmp_path: Path) -> Catalog:
    return Catalog([OpenApiFileSource(FIXTURES / "bookshop.openapi.json")], tmp_path)


def test_user_openapi_file(bookshop: Catalog) -> None:
    [service] = bookshop.services()
    assert service.id == "cornerbookshop.example:bookshop.openapi:2.1.0"
    assert service.kind == "openapi" and service.licence == "MIT"
    assert service.domains == ["commerce"]  # x-apisguru-categories: ecommerce
    assert service.operations == 5
    names = [op.name for op in bookshop.operations(service.id)]
    assert names == ["listBooks", "getBook", "createOrder", "cancelOrder", "GET /health"]


def test_operation_mapping(bookshop: Catalog) -> None:
    op = bookshop.operation("cornerbookshop.example:bookshop.openapi:createOrder")
    assert (op.http_method, op.http_path) == ("POST", "/orders")
    body = props(op.input_schema)["body"]
    assert body["$ref"] == "#/$defs/NewOrder" and body["x-in"] == "body"
    assert op.input_schema["required"] == ["body"]
    assert {e.code for e in op.errors} == {"409", "422"}
    assert [e.http_status for e in op.errors] == [409, 422]
    assert op.examples[0].input == {"body": {"customer_id": "cus_17", "lines": [{"isbn": "9780140449136", "quantity": 1}]}}
    validator = jsonschema_rs.validator_for(op.input_schema)
    assert validator.is_valid(op.examples[0].input)
    assert validator.is_valid({"body": {"customer_id": "c", "lines": [{"isbn": "1", "quantity": 1}], "gift_note": None}})
    assert not validator.is_valid({"body": {"customer_id": "c", "lines": []}})
    # allOf and $defs of the response, with the 3.0 `nullable` rewritten
    assert op.output_schema["$ref"] == "#/$defs/Order"
    assert op.input_schema["$defs"]["NewOrder"]["properties"]["gift_note"]["type"] == ["string", "null"]


def test_parameters_refs_and_recursion(bookshop: Catalog) -> None:
    listing = bookshop.operation("cornerbookshop.example:bookshop.openapi:listBooks")
    p = props(listing.input_schema)
    assert p["page_size"]["maximum"] == 100 and p["page_size"]["x-in"] == "query"
    assert p["genre"]["$ref"] == "#/$defs/Genre"
    assert listing.errors[0].description == "The request was malformed"
    get = bookshop.operation("cornerbookshop.example:bookshop.openapi:getBook")
    assert get.input_schema["required"] == ["isbn"]
    assert props(get.input_schema)["isbn"]["x-in"] == "path"
    defs = get.output_schema["$defs"]
    assert defs["Series"]["properties"]["books"]["items"] == {"$ref": "#/$defs/Book"}  # a cycle kept as $ref
    assert get.examples[0].output["title"] == "Crime and Punishment"  # type: ignore[index]
    jsonschema_rs.validator_for(get.output_schema)
    assert jsonschema_rs.validator_for(get.output_schema).is_valid(get.examples[0].output)


def test_swagger2_is_converted(tmp_path: Path) -> None:
    with Catalog([OpenApiFileSource(FIXTURES / "petstore.swagger2.json")], tmp_path) as catalog:
        register = catalog.operation("clinic.example.org:petstore.swagger2:registerPet")
        assert register.input_schema["required"] == ["body"]
        assert props(register.input_schema)["body"]["$ref"] == "#/$defs/NewPet"
        assert register.input_schema["$defs"]["NewPet"]["required"] == ["name", "species", "owner"]
        assert register.output_schema["$ref"] == "#/$defs/Pet"
        assert register.examples[0].output == {"id": 7, "name": "Miso", "species": "cat", "owner": "Ana"}
        listing = catalog.operation("clinic.example.org:petstore.swagger2:listPets")
        assert props(listing.input_schema)["species"]["enum"] == ["cat", "dog", "rabbit"]
        upload = catalog.operation("clinic.example.org:petstore.swagger2:uploadPhoto")
        body = props(upload.input_schema)["body"]
        assert body["x-content-type"] == "multipart/form-data" and body["required"] == ["file"]


def write(tmp_path: Path, name: str, doc: Any) -> Path:
    path = tmp_path / name
    path.write_bytes(doc if isinstance(doc, bytes) else orjson.dumps(doc))
    return path


def minimal(paths: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"openapi": "3.0.0", "info": {"title": "t", "version": "1"}, "paths": paths, **extra}


def test_bad_files_are_skipped_with_reasons(tmp_path: Path) -> None:
    files = [
        write(tmp_path, "broken.json", b'{"openapi": "3.0.0", "paths": {'),
        write(tmp_path, "old.json", {"swaggerVersion": "1.2", "apis": []}),
        write(tmp_path, "list.json", [1, 2, 3]),
        write(tmp_path, "bad-paths.json", {"openapi": "3.0.0", "info": {}, "paths": ["not", "an", "object"]}),
        tmp_path / "absent.json",
        write(tmp_path, "good.json", minimal({"/ping": {"get": {"operationId": "ping", "responses": {}}}})),
    ]
    with Catalog([OpenApiFileSource(f) for f in files], tmp_path / "cache") as catalog:
        assert [s.service for s in catalog.services()] == ["good"]
        reasons = {Path(s.item).name: s.reason for s in catalog.skipped()}
        assert "malformed JSON" in reasons["broken.json"]
        assert "not an OpenAPI 3 or Swagger 2.0 document" in reasons["old.json"]
        assert "top level is not an object" in reasons["list.json"]
        assert "'paths' is not an object" in reasons["bad-paths.json"]
        assert "cannot read" in reasons["absent.json"]


def test_refused_versions_say_why() -> None:
    with pytest.raises(SourceFormatError, match=r"not an OpenAPI 3 or Swagger 2.0 document \(openapi/swagger field '1.2'\)"):
        openapi3({"swagger": "1.2"}, "x.json")


def test_operations_without_schemas(tmp_path: Path) -> None:
    path = write(tmp_path, "bare.json", minimal({"/things": {"get": {}, "delete": {"operationId": "dropAll"}}}))
    with Catalog([OpenApiFileSource(path)], tmp_path / "cache") as catalog:
        get = catalog.operation("bare:bare:1:GET /things")
        assert get.input_schema == {"type": "object", "properties": {}, "additionalProperties": False}
        assert get.output_schema == {}
        assert catalog.operation("bare:bare:1:dropAll").errors == []


def test_cyclic_and_external_refs(tmp_path: Path) -> None:
    doc = minimal(
        {"/a": {"post": {"operationId": "loop", "requestBody": {"content": {"application/json": {
            "schema": {"type": "object", "properties": {"x": {"$ref": "#/components/schemas/A"},
                                                        "y": {"$ref": "other.json#/Thing"},
                                                        "z": {"$ref": "#/components/schemas/Missing"}}}}}},
            "parameters": [{"$ref": "#/components/parameters/P1"}],
            "responses": {"200": {"$ref": "#/components/responses/R1"}}}}},
        components={
            "schemas": {"A": {"$ref": "#/components/schemas/B"}, "B": {"$ref": "#/components/schemas/A"}},
            "parameters": {"P1": {"$ref": "#/components/parameters/P2"}, "P2": {"$ref": "#/components/parameters/P1"}},
            "responses": {"R1": {"$ref": "#/components/responses/R1"}},
        },
    )
    path = write(tmp_path, "cycles.json", doc)
    with Catalog([OpenApiFileSource(path)], tmp_path / "cache") as catalog:
        op = catalog.operation("cycles:cycles:1:loop")
        body = props(op.input_schema)["body"]
        assert "unresolved reference other.json#/Thing" in props(body)["y"]["description"]
        assert "unresolved" in props(body)["z"]["description"]
        assert op.input_schema["$defs"]["A"] == {"description": "(cyclic reference with no content)"}
        assert "cyclic $ref chain" in op.docs and "a parameter could not be resolved" in op.docs
        jsonschema_rs.validator_for(op.input_schema)


def test_hostile_strings(tmp_path: Path) -> None:
    doc = minimal({
        "/x": {
            "get": {"operationId": "list\u0007Things\x1b[2J", "responses": {}},
            "post": {"operationId": "a" * 5000, "responses": {}},
            "put": {"operationId": "okName", "summary": "\x1b[31mred\x1b[0m \u202eevil\u202c <script>alert(1)</script>",
                    "description": "x" * 100_000, "responses": {}},
            "patch": {"operationId": "okName", "responses": {}},
        },
    }, info={"title": "\x00Null\x00 API", "version": "1:2 3"})
    path = write(tmp_path, "hostile.json", doc)
    with Catalog([OpenApiFileSource(path)], tmp_path / "cache") as catalog:
        [service] = catalog.services()
        assert service.title == "Null API" and service.version == "1:2 3"
        assert service.id == "hostile:hostile:1-2-3"
        op = catalog.operation("hostile:hostile:1-2-3:okName")
        assert "\x1b" not in op.description and "\u202e" not in op.description
        assert len(op.description) <= 4000
        reasons = [s.reason for s in catalog.skipped()]
        assert sum("not a usable name" in r for r in reasons) == 2
        assert "duplicate operationId" in reasons


def test_huge_specs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(openapi_module, "MAX_SPEC_BYTES", 2000)  # the directory tarball's member limit
    monkeypatch.setattr(openapi_documents, "MAX_SPEC_BYTES", 2000)  # a document's limit (parse_document)
    monkeypatch.setattr(openapi_module, "MAX_OPERATIONS", 3)
    big = write(tmp_path, "big.json", minimal({"/p": {"get": {"description": "y" * 5000}}}))
    many = write(tmp_path, "many.json", minimal({f"/p{i}": {"get": {"operationId": f"op{i}"}} for i in range(6)}))
    with Catalog([OpenApiFileSource(big), OpenApiFileSource(many)], tmp_path / "cache") as catalog:
        assert [s.service for s in catalog.services()] == ["many"]
        assert catalog.services()[0].operations == 3
        reasons = " | ".join(s.reason for s in catalog.skipped())
        assert "over the 0 MiB limit" in reasons
        assert "huge specification: 6 operations, only the first 3 kept" in reasons


def test_yaml_documents(tmp_path: Path) -> None:
    pytest.importorskip("yaml")
    path = tmp_path / "notes.yaml"
    path.write_text(
        "openapi: 3.1.0\ninfo: {title: Notes, version: '1'}\npaths:\n  /notes:\n    get:\n"
        "      operationId: listNotes\n      responses:\n        '200':\n          description: ok\n"
        "          content:\n            application/json:\n              schema: {type: array, items: {type: string}}\n",
        encoding="utf-8",
    )
    with Catalog([OpenApiFileSource(path)], tmp_path / "cache") as catalog:
        op = catalog.operation("notes:notes:1:listNotes")
        assert op.output_schema == {"type": "array", "items": {"type": "string"}}


def test_parse_document_limits() -> None:
    with pytest.raises(SourceFormatError, match="malformed"):
        parse_document(b"{nope", "x.json")
