"""MCP servers as sources: started over stdio and listed with the official SDK."""

from __future__ import annotations

import sys
from pathlib import Path

import jsonschema_rs
import pytest

from envfactory.resources import Catalog, McpServerConfig, McpServerSource, known_servers

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "resources"


def test_a_stdio_server_written_with_the_sdk(tmp_path: Path) -> None:
    config = McpServerConfig(name="notes", command=sys.executable, args=(str(FIXTURES / "mcp_notes_server.py"),))
    with Catalog([McpServerSource(config)], tmp_path) as catalog:
        [service] = catalog.services()
        assert service.kind == "mcp" and service.provider == "mcp" and service.service == "notes"
        add = catalog.operation(f"{service.id}:add_note")
        assert add.name == "add_note"
        assert add.input_schema["required"] == ["title", "body"]
        assert add.description.startswith("Add a note")
        validator = jsonschema_rs.validator_for(add.input_schema)
        assert validator.is_valid({"title": "t", "body": "b", "tags": ["x"]})
        assert not validator.is_valid({"title": "t"})
        assert [op.name for op in catalog.operations(service.id)] == ["add_note", "search_notes"]
    # listed once: a second catalog over the same index does not start the server again
    with Catalog([McpServerSource(config)], tmp_path) as again:
        assert again.services()[0].id == service.id
        assert again.built == []


def test_reference_time_server(tmp_path: Path) -> None:
    servers, _ = known_servers(tmp_path)
    time_server = [s for s in servers if s.name == "time"]
    if not time_server:
        pytest.skip("mcp-server-time is not installed; pip install 'envfactory[resources]'")
    with Catalog([McpServerSource(time_server[0])], tmp_path) as catalog:
        [service] = catalog.services()
        assert service.domains == ["utilities"]
        op = catalog.operation(f"{service.id}:get_current_time")
        assert op.input_schema["required"] == ["timezone"]
        assert {o.name for o in catalog.operations(service.id)} == {"get_current_time", "convert_time"}


def test_reference_memory_server_from_npm(user_cache: Path, tmp_path: Path) -> None:
    servers, _ = known_servers(user_cache)
    memory = [s for s in servers if s.name == "memory"]
    if not memory:
        pytest.skip("the npm memory server is not set up; run: envfactory resources setup --only mcp-memory")
    with Catalog([McpServerSource(memory[0])], tmp_path) as catalog:
        [service] = catalog.services()
        names = {o.name for o in catalog.operations(service.id)}
        assert {"create_entities", "create_relations", "read_graph", "search_nodes"} <= names
        create = catalog.operation(f"{service.id}:create_entities")
        assert create.input_schema["required"] == ["entities"]


def test_servers_that_fail_are_skipped(tmp_path: Path) -> None:
    broken = [
        McpServerConfig(name="missing", command=str(tmp_path / "no-such-program")),
        McpServerConfig(name="silent", command=sys.executable, args=("-c", "import sys; sys.exit(3)")),
    ]
    with Catalog([McpServerSource(c) for c in broken], tmp_path) as catalog:
        assert catalog.services() == []
        reasons = {s.item: s.reason for s in catalog.skipped()}
        assert set(reasons) == {"missing", "silent"}
        assert all("could not be listed" in reason for reason in reasons.values())


def test_missing_npm_server_names_the_set_up_command(tmp_path: Path) -> None:
    _, missing = known_servers(tmp_path)
    assert ("MCP server @modelcontextprotocol/server-memory@2026.8.31 (npm)",
            "envfactory resources setup --only mcp-memory") in missing
