"""An MCP tool's schema keeps its local definitions: `#/$defs/X` and `#/definitions/X` both land in
`$defs`, recursion stays a reference, and a reference to nothing becomes a described open schema."""

from __future__ import annotations

from envfactory.resources.mcp_tools import McpServerConfig, McpServerSource


def test_definitions_of_both_spellings_are_collected_and_a_missing_one_is_described() -> None:
    source = McpServerSource(McpServerConfig(name="probe", command="true"))
    tool = {
        "name": "add_item", "description": "Add an item",
        "inputSchema": {
            "type": "object", "required": ["item"],
            "properties": {"item": {"$ref": "#/$defs/Item"}, "old": {"$ref": "#/definitions/Old"},
                           "missing": {"$ref": "#/$defs/Nope"}},
            "$defs": {"Item": {"type": "object",
                               "properties": {"name": {"type": "string"}, "child": {"$ref": "#/$defs/Item"}}}},
            "definitions": {"Old": {"type": "integer"}},
        },
    }
    schema = source._operation("probe", "1", tool).input_schema
    assert schema == {
        "type": "object", "required": ["item"],
        "properties": {"item": {"$ref": "#/$defs/Item"}, "old": {"$ref": "#/$defs/Old"},
                       "missing": {"description": "(unresolved reference #/$defs/Nope)"}},
        "$defs": {"Item": {"type": "object",
                           "properties": {"name": {"type": "string"}, "child": {"$ref": "#/$defs/Item"}}},
                  "Old": {"type": "integer"}},
    }
