"""Hybrid environments (`runtime.hybrid`): declarative tools in-process, authored tools in the sandbox,
one state. The authored code here is hand-written (a counter-style `archive` and its broken variants);
the LLM side of authoring is tested in tests/build/test_author.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from envfactory.errors import SandboxRequiredError, SpecError
from envfactory.runtime import load_env, open_session
from envfactory.runtime.declarative.compile import compile_source
from envfactory.runtime.hybrid import authored_module
from envfactory.runtime.sandbox import SandboxPool
from envfactory.spec import (
    AuthoredCode,
    DeclarativeEnvSource,
    EnvSpec,
    HybridImplementation,
    ToolSpec,
)

SOURCE = DeclarativeEnvSource.model_validate({
    "meta": {"name": "notes_hybrid", "domain": "office"},
    "collections": {
        "notes": {
            "key": "id", "id_prefix": "note_", "id_width": 3,
            "record_schema": {"type": "object", "properties": {
                "id": {"type": "string"}, "text": {"type": "string", "maxLength": 40},
                "archived": {"type": "boolean"}}, "required": ["id", "text"], "additionalProperties": False},
        },
        "archive_log": {
            "key": "entry", "id_prefix": "log_",
            "record_schema": {"type": "object", "properties": {
                "entry": {"type": "string"}, "note": {"type": "string"}, "at": {"type": "string"}},
                "required": ["entry", "note"], "additionalProperties": False},
            "references": [{"field": "note", "collection": "notes", "on_delete": "cascade"}],
        },
    },
    "tools": [
        {"name": "create_note", "description": "Create a note.",
         "input_schema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"],
                          "additionalProperties": False},
         "operation": {"kind": "create", "collection": "notes"}},
        {"name": "get_note", "description": "Get a note.",
         "input_schema": {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"],
                          "additionalProperties": False},
         "operation": {"kind": "get", "collection": "notes"}},
    ],
})

ARCHIVE = ToolSpec(
    name="archive_notes", description="Archive every note whose text starts with a prefix.",
    input_schema={"type": "object", "properties": {"prefix": {"type": "string"}, "dry_run": {"type": "boolean"}},
                  "required": ["prefix"], "additionalProperties": False},
    output_schema={"type": "object", "properties": {"archived": {"type": "array", "items": {"type": "string"}}},
                   "required": ["archived"], "additionalProperties": False},
    effect="write", idempotent=False,
)

GOOD = '''
class AuthoredTools(AuthoredBase):
    @tool(effect="write")
    def archive_notes(self, prefix: str) -> dict[str, Any]:
        """Archive every note whose text starts with prefix.

        Args:
            prefix: the start of the texts to archive.
        """
        done = []
        for key, note in sorted(self.records("notes").items()):
            if note["text"].startswith(prefix) and not note.get("archived"):
                self.put("notes", {**note, "archived": True})
                self.put("archive_log", {"entry": self.new_key("archive_log"), "note": key, "at": self.now()})
                done.append(key)
        if not done:
            raise self.not_found(f"no note starts with {prefix!r}")
        return {"archived": done}
'''


def hybrid(tmp_path: Path, body: str = GOOD, *, unsupported: list[str] | None = None,
           tool: ToolSpec = ARCHIVE) -> Path:
    declarative = compile_source(SOURCE)
    model = declarative.implementation.model  # type: ignore[union-attr]
    spec = EnvSpec(
        meta=declarative.meta, state_schema=declarative.state_schema, tools=[*declarative.tools, tool],
        implementation=HybridImplementation(model=model, authored=AuthoredCode(
            class_name="AuthoredTools", source=authored_module(model, body), tools=[tool.name],
            unsupported_arguments={tool.name: ["dry_run"] if unsupported is None else unsupported})),
    ).seal()
    directory = tmp_path / "env"
    directory.mkdir(exist_ok=True)
    (directory / "spec.json").write_bytes(spec.to_json_bytes())
    return directory


@pytest.fixture(scope="module")
def pool() -> Iterator[SandboxPool]:
    with SandboxPool(max_workers=2) as shared:
        yield shared


def test_authored_code_never_runs_in_process(tmp_path: Path) -> None:
    directory = hybrid(tmp_path)
    with pytest.raises(SandboxRequiredError, match="authored tools"):
        load_env(directory)
    with pytest.raises(SandboxRequiredError):
        load_env(directory, trusted=True)  # trust covers curated toolkits, never generated code


def test_declarative_and_authored_tools_share_one_state(tmp_path: Path, pool: SandboxPool) -> None:
    env = load_env(hybrid(tmp_path), sandbox=pool)
    session = open_session(env, None, seed=3)
    for text in ("todo: milk", "todo: bread", "idea: boat"):
        assert session.call("create_note", {"text": text}).ok
    before = session.hash()
    fork = session.fork()
    result = session.call("archive_notes", {"prefix": "todo"})
    assert result.ok, result.error
    assert result.output == {"archived": ["note_001", "note_002"]}
    assert session.call("get_note", {"id": "note_001"}).output["archived"] is True  # type: ignore[index]
    state = session.state_json()
    assert sorted(state["collections"]["archive_log"]) == ["log_1", "log_2"]
    assert state["counters"]["archive_log"] == 2
    assert fork.hash() == before  # the fork did not see the authored write
    diff = session.diff(fork)
    assert {c.path for c in diff.changes} >= {"/collections/archive_log/log_1", "/collections/notes/note_001/archived"}
    # The declarative engine keeps its sequence after the authored writes.
    assert session.call("create_note", {"text": "later"}).output["id"] == "note_004"  # type: ignore[index]


def test_a_failed_authored_call_leaves_the_state_untouched(tmp_path: Path, pool: SandboxPool) -> None:
    env = load_env(hybrid(tmp_path), sandbox=pool)
    session = open_session(env, None)
    session.call("create_note", {"text": "todo: milk"})
    before = session.hash()
    missing = session.call("archive_notes", {"prefix": "zzz"})
    assert missing.error is not None and missing.error.kind == "not_found"
    refused = session.call("archive_notes", {"prefix": "todo", "dry_run": True})
    assert refused.error is not None and refused.error.kind == "invalid_arguments"
    assert "dry_run" in refused.error.message  # an API argument the code does not take is refused, by name
    assert session.hash() == before


def test_an_authored_write_that_breaks_the_model_is_an_execution_error(tmp_path: Path, pool: SandboxPool) -> None:
    broken = GOOD.replace('{**note, "archived": True}', '{**note, "archived": True, "text": "x" * 80}')
    env = load_env(hybrid(tmp_path, broken), sandbox=pool)
    session = open_session(env, None)
    session.call("create_note", {"text": "todo: milk"})
    before = session.hash()
    result = session.call("archive_notes", {"prefix": "todo"})
    assert result.error is not None and result.error.kind == "execution_error"
    assert "breaks the environment's model" in result.error.message and "longer than 40 characters" in result.error.message
    assert session.hash() == before


def test_hostile_authored_code_is_confined(tmp_path: Path, pool: SandboxPool) -> None:
    thief = GOOD.replace('done = []', 'done = [open("/etc/hostname").read()]')
    env = load_env(hybrid(tmp_path, thief), sandbox=pool)
    session = open_session(env, None)
    session.call("create_note", {"text": "todo: milk"})
    result = session.call("archive_notes", {"prefix": "todo"})
    assert result.error is not None and result.error.kind == "execution_error"
    assert session.state_json()["collections"].get("archive_log", {}) == {}


@pytest.mark.parametrize(("body", "unsupported", "problem"), [
    (GOOD.replace('effect="write"', 'effect="read"'), None, "declared write but the authored method is read"),
    (GOOD, [], "unsupported_arguments must list ['dry_run']"),
    (GOOD.replace("prefix: str)", "prefix: str, limit: int = 3)"), None, "arguments the API does not have ['limit']"),
    (GOOD.replace("def archive_notes(self, prefix: str)", "def archive_notes(self, dry_run: bool = False)")
     .replace("prefix: the start", "dry_run: unused").replace("startswith(prefix)", "startswith('')")
     .replace("{prefix!r}", "''"), ["prefix"], "lacks required API arguments ['prefix']"),
])
def test_parity_between_the_api_and_the_authored_methods_is_checked_at_load(
        tmp_path: Path, pool: SandboxPool, body: str, unsupported: list[str] | None, problem: str) -> None:
    with pytest.raises(SpecError) as caught:
        load_env(hybrid(tmp_path, body, unsupported=unsupported), sandbox=pool)
    assert problem in str(caught.value)


def test_an_edited_spec_does_not_load(tmp_path: Path, pool: SandboxPool) -> None:
    directory = hybrid(tmp_path)
    document = json.loads((directory / "spec.json").read_text())
    document["implementation"]["authored"]["source"] = document["implementation"]["authored"]["source"].replace(
        "not note.get", "note.get")
    (directory / "spec.json").write_text(json.dumps(document))
    with pytest.raises(SpecError, match="content_hash"):
        load_env(directory, sandbox=pool)


def test_a_hybrid_environment_serves_over_http(tmp_path: Path, pool: SandboxPool) -> None:
    from envfactory.serve.catalog import EnvCatalog
    from envfactory.serve.client import EnvClient
    from envfactory.serve.config import ServeConfig
    from envfactory.serve.runner import BackgroundServer, build_http

    catalog = EnvCatalog.of([load_env(hybrid(tmp_path), sandbox=pool)])
    served = build_http(catalog, ServeConfig())
    with BackgroundServer(served.app) as server, EnvClient(server.url) as client:
        session = client.create_session(envs=["notes_hybrid"], naming="plain")
        assert {t.name for t in session.tools()} == {"create_note", "get_note", "archive_notes"}
        assert session.call("create_note", {"text": "todo: call Ann"}).ok
        archived = session.call("archive_notes", {"prefix": "todo"})
        assert archived.ok and archived.output == {"archived": ["note_001"]}
        missing = session.call("archive_notes", {"prefix": "todo"})  # nothing left to archive
        assert missing.error is not None and missing.error.kind == "not_found"
