"""Tool descriptors for the wire: OpenAI function format and MCP format, from `ToolSpec`s.

MCP annotations are derived from the tool's `effect` and `idempotent` flag, never written by hand:

| effect | readOnlyHint | destructiveHint | idempotentHint | openWorldHint |
|---|---|---|---|---|
| read | true | false | true | false |
| write | false | true | the tool's `idempotent` | false |

`destructiveHint` stays at MCP's conservative default for every write: a `ToolSpec` does not say
whether a write only adds. `openWorldHint` is false: an environment is a closed, simulated world.
An output schema is announced only when its root is an object (MCP requires that through 2025-11-25);
the call result then carries the output as `structuredContent`.
"""

from __future__ import annotations

from envfactory.serve.models import McpTool, McpToolAnnotations, OpenAITool
from envfactory.spec import ToolSpec


def annotations_for(spec: ToolSpec) -> McpToolAnnotations:
    """MCP hints from the spec: a read is read-only, non-destructive and idempotent; a write is destructive
    and idempotent when the spec says so; never open-world."""
    read = spec.effect == "read"
    return McpToolAnnotations(
        read_only_hint=read,
        destructive_hint=not read,
        idempotent_hint=read or spec.idempotent,
        open_world_hint=False,
    )


def has_object_output(spec: ToolSpec) -> bool:
    """True when the tool's output schema is an object (MCP structured content needs one)."""
    return spec.output_schema.get("type") == "object"


def mcp_tool(spec: ToolSpec) -> McpTool:
    """The tool as MCP `tools/list` describes it (output schema only when it is an object)."""
    return McpTool(
        name=spec.name,
        description=spec.description,
        input_schema=spec.input_schema,
        output_schema=spec.output_schema if has_object_output(spec) else None,
        annotations=annotations_for(spec),
    )


def openai_tool(spec: ToolSpec) -> OpenAITool:
    """The tool in OpenAI function-calling format (`ToolSpec.openai_function`)."""
    return OpenAITool.model_validate(spec.openai_function())
