"""Google discovery documents from google-api-python-client: methods, parameters, request/response schemas."""

from __future__ import annotations

from typing import Any

import jsonschema_rs

from envfactory.resources import Catalog, GoogleSource


def props(schema: dict[str, Any]) -> dict[str, Any]:
    properties = schema["properties"]
    assert isinstance(properties, dict)
    return properties


def test_tasks_insert(small_catalog: Catalog) -> None:
    op = small_catalog.operation("google:tasks:v1:tasks.tasks.insert")
    assert (op.provider, op.service, op.service_version, op.name) == ("google", "tasks", "v1", "tasks.tasks.insert")
    assert op.http_method == "POST"
    assert op.http_path == "/tasks/v1/lists/{tasklist}/tasks"
    schema = op.input_schema
    assert schema["required"] == ["tasklist", "body"]
    assert props(schema)["tasklist"]["x-google-location"] == "path"
    assert props(schema)["parent"]["x-google-location"] == "query"
    body = props(schema)["body"]
    assert body["x-google-schema"] == "Task"
    assert {"title", "notes", "due", "status", "parent"} <= set(props(body))
    assert op.output_schema["$ref"] == "#/$defs/Task"
    assert "title" in props(op.output_schema["$defs"]["Task"])
    validator = jsonschema_rs.validator_for(schema)
    assert validator.is_valid({"tasklist": "MDE", "body": {"title": "Buy milk", "status": "needsAction"}})
    assert not validator.is_valid({"body": {"title": "no list"}})
    assert op.domains == ["office"]
    assert op.source.package == "google-api-python-client"
    assert op.source.file == "googleapiclient/discovery_cache/documents/tasks.v1.json"


def test_tasks_list_parameters(small_catalog: Catalog) -> None:
    op = small_catalog.operation("google:tasks:v1:tasks.tasks.list")
    p = props(op.input_schema)
    assert p["showCompleted"]["type"] == "boolean"
    assert p["maxResults"]["type"] == "integer"
    assert op.input_schema["required"] == ["tasklist"]
    assert op.http_method == "GET"


def test_calendar_events(small_catalog: Catalog) -> None:
    insert = small_catalog.operation("google:calendar:v3:calendar.events.insert")
    assert insert.input_schema["required"] == ["calendarId", "body"]
    body = props(insert.input_schema)["body"]
    # required only for this method, through the schema's annotations.required
    assert body["required"] == ["end", "start"]
    assert props(body)["start"]["$ref"] == "#/$defs/EventDateTime"
    listing = small_catalog.operation("google:calendar:v3:calendar.events.list")
    assert props(listing.input_schema)["orderBy"]["enum"] == ["startTime", "updated"]
    assert props(listing.input_schema)["maxResults"].get("minimum") == 1
    resource = small_catalog.resource("google:calendar")
    assert len(resource.operations) == small_catalog.service("google:calendar").operations >= 30
    for op in resource.operations:
        jsonschema_rs.validator_for(op.input_schema)
        jsonschema_rs.validator_for(op.output_schema)


def test_domains_from_the_fixed_table(small_catalog: Catalog) -> None:
    assert small_catalog.service("google:classroom").domains == ["academia"]
    assert small_catalog.service("google:tasks").domains == ["office"]


def test_discovery_document_of_every_installed_api_scans(tmp_path: Any) -> None:
    source = GoogleSource()
    result = source.scan()
    assert len(result.services) >= 600
    assert len(result.operations) >= 25_000
    ids = [op.id for op in result.operations]
    assert len(ids) == len(set(ids))
