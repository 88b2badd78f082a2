"""The shipped library's `spec.json` files share their repeated schemas (version 2, `$defs`); what is
served from them must be what the full (version-1) form serves, byte for byte.

`tests/fixtures/library_served_schemas.json` holds, per environment, its content hash, the hash of its
full canonical form and the hash of every tool as MCP `tools/list`, the OpenAI function list, an LLM's
`FunctionTool` (what the agent's prompt and the local model's grammar are made of) and the HTTP API's
`ToolSpec` describe it. It was first recorded from the version-1 library files (commit c3b9c91). The
generation-2 library (2026-12-07) shipped no version-1 files, so it was re-recorded by
`python tests/serve/test_library_served_schemas.py` (`record_fixture`): each shipped file is expanded
by `_expand_independently` (a plain `$ref` substitution, not `spec_file.expand_spec`) into the full
version-1 document, which `EnvSpec` reads without any `$defs` expansion; the hashes come from that. So
the test still compares the `$defs` reading against a form that never went through it. An environment
rebuilt since (another content hash) is not compared; the round-trip test below covers every
environment whatever its age.
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


def _expand_independently(document: dict[str, Any]) -> dict[str, Any]:
    """The full version-1 document of a version-2 file: every `{"$ref": "#/$defs/NAME"}` replaced by its
    (expanded) definition, `$defs` dropped. Deliberately not `spec_file.expand_spec`, which it checks."""
    defs = document.get(DEFS_KEY, {})

    def expand(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if len(node) == 1 and isinstance(ref, str) and ref.startswith("#/$defs/") and defs:
                return expand(defs[ref.removeprefix("#/$defs/")])
            return {k: expand(v) for k, v in node.items()}
        return [expand(v) for v in node] if isinstance(node, list) else node

    full = {k: expand(v) for k, v in document.items() if k != DEFS_KEY}
    return {**full, "schema_version": 1}


def record_fixture() -> None:
    """Re-record FIXTURE from the shipped library's files, expanded by `_expand_independently`."""
    root = library_root()
    envs = {}
    for name in library_env_names():
        full = _expand_independently(json.loads((root / name / "spec.json").read_bytes()))
        assert DEFS_KEY not in full and b'"#/$defs/' not in canonical_json(full), name
        spec = EnvSpec.model_validate(full)
        envs[name] = {"content_hash": spec.content_hash, "served": served_hash(spec),
                      "full_form": hashlib.sha256(canonical_json({**spec.model_dump(mode="json"), "schema_version": 1})).hexdigest()}
    about = ("Re-recorded from the generation-2 library (2026-12-07) by `python tests/serve/test_library_served_schemas.py`: "
             "each spec.json expanded by a plain $ref substitution (not spec_file.expand_spec) into its full version-1 "
             "form; per environment, its content hash, the sha256 of that full canonical form and the sha256 of its served "
             "tools (one line per tool, by name: the sha256 of its MCP tools/list entry, OpenAI function, LLM FunctionTool "
             "and HTTP ToolSpec). First recorded from the version-1 library files at commit c3b9c91. "
             "tests/serve/test_library_served_schemas.py compares.")
    FIXTURE.write_text(json.dumps({"about": about, "envs": envs}, indent=1, sort_keys=True) + "\n")


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


if __name__ == "__main__":
    record_fixture()
