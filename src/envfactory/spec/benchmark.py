"""External benchmarks' tool sets and task texts as data: what environments must never be built from.

Contract:
- `BenchmarkToolSet` is one tool set of one benchmark (a BFCL multi-turn backend class such as
  `GorillaFileSystem`, a τ² domain such as `retail`), its tools normalised to `ToolSpec`s whose
  `input_schema` is JSON Schema and whose `source` names the benchmark (`provider`) and the set (`service`).
  `description` holds what the benchmark says about the whole set, so that tool descriptions carry only
  what is specific to each tool.
- `BenchmarkTask` is one task's user-side texts, in turn order, with the tool sets it uses.
- `resources.benchmarks` produces them from the installed packages; `verify.contamination` consumes them.
  Neither layer imports the other: these models are the boundary.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from envfactory.spec.base import SpecModel
from envfactory.spec.tool import ToolSpec

BenchmarkName = Literal["bfcl", "tau2"]


class BenchmarkToolSet(SpecModel):
    """The tools of one benchmark tool set, as an agent of that benchmark sees them."""

    schema_version: Literal[1] = 1
    benchmark: BenchmarkName
    name: str = Field(description="backend class (BFCL) or domain (τ²)")
    package: str = Field(description="registry package that carried it, e.g. nvidia-bfcl")
    package_version: str
    description: str = ""
    tools: list[ToolSpec]

    @property
    def key(self) -> str:
        """`benchmark:name`, e.g. `bfcl:GorillaFileSystem`, `tau2:retail`."""
        return f"{self.benchmark}:{self.name}"


class BenchmarkTask(SpecModel):
    """The user-side texts of one benchmark task (one entry per user turn)."""

    schema_version: Literal[1] = 1
    benchmark: BenchmarkName
    category: str = Field(description="BFCL test category (multi_turn_base, ...) or τ² domain")
    id: str
    tool_sets: list[str] = Field(default_factory=list, description="names of the tool sets it uses")
    texts: list[str] = Field(min_length=1)
