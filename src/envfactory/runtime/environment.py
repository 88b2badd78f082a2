"""A loaded environment: its sealed `EnvSpec`, its backend, compiled validators and seed states."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envfactory.runtime.backend import Backend
from envfactory.runtime.validation import CompiledSchema
from envfactory.spec import EnvSpec, ToolSpec


@dataclass(frozen=True, slots=True)
class CompiledTool:
    """A tool of a loaded environment with its compiled input and output schemas, and whether it writes
    state."""
    spec: ToolSpec
    input: CompiledSchema
    output: CompiledSchema
    writes: bool


@dataclass(frozen=True, slots=True)
class Environment:
    """Everything sessions of one environment share. Build with `Environment.create` or the loader."""

    spec: EnvSpec
    backend: Backend
    tools: dict[str, CompiledTool]
    seeds: dict[str, Any] = field(default_factory=dict)
    directory: Path | None = None

    @classmethod
    def create(
        cls, backend: Backend, seeds: dict[str, Any] | None = None, directory: Path | None = None
    ) -> Environment:
        """An environment over `backend`: each tool's input and output schemas compiled once. `seeds`: named
        seed states; `directory`: where the environment was loaded from, if anywhere."""
        spec = backend.spec
        tools = {
            tool.name: CompiledTool(
                spec=tool,
                input=CompiledSchema(tool.input_schema),
                output=CompiledSchema(tool.output_schema),
                writes=tool.effect == "write",
            )
            for tool in spec.tools
        }
        return cls(spec=spec, backend=backend, tools=tools, seeds=dict(seeds or {}), directory=directory)

    @property
    def name(self) -> str:
        """The environment's name (`spec.meta.name`)."""
        return self.spec.meta.name

    def default_state(self) -> Any:
        """The `default` seed state when there is one, else `None` (the empty state)."""
        return self.seeds.get("default")
