"""The shipped library's `spec.json` files share their repeated schemas (version 2, `$defs`); what is
served from them must be what the version-1 files served, byte for byte.

`tests/fixtures/library_served_schemas.json` was recorded from the version-1 library: per environment,
its content hash, the hash of its full canonical form and the hash of every tool as MCP `tools/list`,
the OpenAI function list, an LLM's `FunctionTool` (what the agent's prompt and the local model's
grammar are made of) and the HTTP API's `ToolSpec` describe it. An environment rebuilt since (another
content hash) is not compared; the round-trip test below covers every environment whatever its age.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from envfactory.llm.types import FunctionTool
from envfactory.runtime import library_env_names, library_root
from envfactory.serve.tools import mcp_tool, openai_tool
from envfactory.spec import EnvSpec, canonical_json
from envfactory.spec.spec_file import DEFS_KEY

FIXTURE = Path(__file__).parents[1] / "fixtures" / "library_served_schemas.json"


def _sha(value: Any) -> str:
    return hashlib.sha256(canonical_json(value)).hexdigest()


def served_hash(spec: EnvSpec) -> str:
    """The hash of every tool as it is served, one line per tool in name order (as the fixture)."""
    lines = []
    for tool in sorted(spec.tools, key=lambda t: t.name):
        parts = (
            _sha(mcp_tool(tool).model_dump(mode="json", by_alias=True, exclude_none=True)),
            _sha(openai_tool(tool).model_dump(mode="json", by_alias=True)),
            _sha(FunctionTool.from_spec(tool).openai()),
            _sha(tool.model_dump(mode="json")),
        )
        lines.append(" ".join((tool.name, *parts)))
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


@pytest.fixture(scope="module")
def shipped() -> dict[str, tuple[bytes, EnvSpec]]:
    root = library_root()
    out = {}
    for name in library_env_names():
        data = (root / name / "spec.json").read_bytes()
        out[name] = (data, EnvSpec.model_validate_json(data))
    return out


def test_served_schemas_are_those_of_the_version_1_library(shipped: dict[str, tuple[bytes, EnvSpec]]) -> None:
    recorded = json.loads(FIXTURE.read_text())["envs"]
    compared, different = 0, []
    for name, (_, spec) in shipped.items():
        old = recorded.get(name)
        if old is None or old["content_hash"] != spec.content_hash:
            continue
        compared += 1
        full = hashlib.sha256(canonical_json({**spec.model_dump(mode="json"), "schema_version": 1})).hexdigest()
        if full != old["full_form"] or served_hash(spec) != old["served"]:
            different.append(name)
    assert different == []
    assert compared >= 100  # the library of the recording; lower it only when environments are rebuilt


def test_the_shipped_files_are_the_shared_form_the_writer_emits(shipped: dict[str, tuple[bytes, EnvSpec]]) -> None:
    """`library reproduce` compares bytes: every shipped file is exactly what `to_json_bytes` writes."""
    shared = 0
    for name, (data, spec) in shipped.items():
        assert spec.to_json_bytes() == data, name
        document = json.loads(data)
        assert document["schema_version"] == 2, name
        shared += DEFS_KEY in document
        assert b'"$ref"' not in canonical_json(spec.model_dump(mode="json")), name  # served: no reference left
        for tool in spec.tools:  # key order as the version-1 files had it (sorted): prompts print schemas as they are
            for schema in (tool.input_schema, tool.output_schema):
                assert orjson.dumps(schema) == canonical_json(schema), (name, tool.name)
    assert shared == len(shipped)


def test_the_library_is_at_most_ten_mebibytes() -> None:
    size = sum(p.stat().st_size for p in library_root().rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    assert size <= 10 * 2**20, size
