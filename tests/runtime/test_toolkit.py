"""Python toolkits: spec derivation, load-time refusals, trust, calls through sessions, atomic writes,
forks, snapshots, determinism, and the bundled `calendar` environment."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import BaseModel, Field

from envfactory.errors import SandboxRequiredError, SpecError, ToolError
from envfactory.runtime import Environment, load_env, open_session
from envfactory.runtime.sources import CallContext, ClockConfig
from envfactory.runtime.toolkit import PythonBackend, PythonState, Toolkit, python_environment, tool
from envfactory.spec import EnvMeta, PythonImplementation, ToolResult

# -- a small toolkit exercising every feature ----------------------------------------------------------


class NoteMeta(BaseModel):
    """Extra facts about a note."""

    pinned: bool = False
    colour: Literal["red", "green", "blue"] = "red"


class Note(BaseModel):
    """A note."""

    id: str
    title: str
    body: str = ""
    tags: list[str] = Field(default_factory=list)
    meta: NoteMeta = Field(default_factory=NoteMeta)
    created_at: str = ""


class NotesState(BaseModel):
    notes: dict[str, Note] = Field(default_factory=dict)
    next_number: int = Field(default=1, ge=1)
    scratch: dict[str, Any] = Field(default_factory=dict)


class NotesToolkit(Toolkit[NotesState]):
    def _note(self, note_id: str) -> Note:
        note = self.state.notes.get(note_id)
        if note is None:
            raise self.not_found(f"no note {note_id!r}", "/note_id")
        return note

    @tool(effect="write")
    def add_note(
        self, title: str, body: str = "", tags: list[str] | None = None, meta: NoteMeta | None = None
    ) -> Note:
        """Add a note.

        The id comes from a counter in the state.

        Args:
            title: what the note is about.
            body: the text.
            tags: labels to file it under.
            meta: display options.

        Returns:
            the stored note.
        """
        note = Note(
            id=f"n{self.state.next_number}",
            title=title,
            body=body,
            tags=tags or [],
            meta=meta or NoteMeta(),
            created_at=self.ctx.now_iso(),
        )
        self.state.notes[note.id] = note
        self.state.next_number += 1
        return note

    @tool(effect="read")
    def get_note(self, note_id: str) -> Note:
        """Get one note.

        Args:
            note_id: the note's id.
        """
        return self._note(note_id)

    @tool(effect="read")
    def list_notes(self, tag: str | None = None) -> list[Note]:
        """List notes, optionally only those with a tag."""
        return [n for n in self.state.notes.values() if tag is None or tag in n.tags]

    @tool(effect="read")
    def count(self) -> int:
        """Count the notes."""
        return len(self.state.notes)

    @tool(effect="write", idempotent=True)
    def clear(self) -> None:
        """Delete every note."""
        self.state.notes.clear()

    @tool(effect="write")
    def explode(self) -> int:
        """Change the state, then crash."""
        self.state.notes.clear()
        self.state.next_number = 99
        raise RuntimeError("boom")

    @tool(effect="write")
    def refuse(
        self, kind: Literal["not_found", "rule_violation", "invalid_arguments", "execution_error"]
    ) -> None:
        """Change the state, then fail with an anticipated error of the given kind.

        Args:
            kind: the error kind to raise.
        """
        self.state.notes.clear()
        raise ToolError(kind, f"refused with {kind}", "/kind")

    @tool(effect="read")
    def unserialisable(self) -> int:
        """Return something that is not the declared type."""
        return object()  # type: ignore[return-value]

    @tool(effect="read")
    def loose_dict(self) -> Note:
        """Return a dict shaped like a Note instead of a Note."""
        return {"id": "n0", "title": "looks right"}  # type: ignore[return-value]

    @tool(effect="write")
    def corrupt(self) -> None:
        """Break the state model's constraints (assignments are not validated)."""
        self.state.next_number = -5

    @tool(effect="write")
    def stash(self, key: str, value: dict[str, Any]) -> dict[str, Any]:
        """Keep free-form data in the scratch area.

        Args:
            key: where to keep it.
            value: any JSON object.
        """
        self.state.scratch[key] = value
        return {"stored": key}

    @tool(effect="read")
    def awkward_names(self, json: int, model_id: str = "m", copy: bool = False) -> dict[str, Any]:
        """Echo parameters whose names clash with pydantic's BaseModel attributes.

        Args:
            json: a number.
            model_id: a string.
            copy: a flag.
        """
        return {"json": json, "model_id": model_id, "copy": copy}

    @tool(effect="write")
    def roll(self) -> int:
        """Draw a number from the session's seeded RNG and remember it."""
        value = self.ctx.rng.randint(0, 10**9)
        self.state.scratch[f"roll{len(self.state.scratch)}"] = value
        return value


META = EnvMeta(name="notes", domain="office", description="Notes for tests.")


def ok(result: ToolResult) -> Any:
    """The output of a call that must have succeeded."""
    assert result.error is None, result.error
    return result.output


SEED = {"notes": {"n1": {"id": "n1", "title": "first", "tags": ["a"]}}, "next_number": 2}


@pytest.fixture(scope="module")
def notes_env() -> Environment:
    return python_environment(NotesToolkit, META, seeds={"default": SEED})


# -- spec derivation -----------------------------------------------------------------------------------


def test_input_schema_comes_from_signature_and_docstring(notes_env: Environment) -> None:
    spec = notes_env.spec.tool("add_note")
    assert spec is not None
    assert spec.description == "Add a note.\n\nThe id comes from a counter in the state."
    schema = spec.input_schema
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["title"]
    props = schema["properties"]
    assert isinstance(props, dict)
    assert list(props) == ["title", "body", "tags", "meta"]
    assert props["title"] == {"type": "string", "description": "what the note is about."}
    assert props["body"] == {"type": "string", "default": "", "description": "the text."}
    # The nested model is referenced through $defs kept inside the same schema.
    assert "NoteMeta" in schema["$defs"]
    assert json.dumps(props["meta"]).count("#/$defs/NoteMeta") == 1
    assert spec.effect == "write" and spec.idempotent is False
    assert spec.source is not None and spec.source.provider == "python"
    assert spec.source.operation_id == "NotesToolkit.add_note"


def test_output_schemas_come_from_return_annotations(notes_env: Environment) -> None:
    tools = {t.name: t for t in notes_env.spec.tools}
    assert tools["add_note"].output_schema["title"] == "Note"
    assert tools["add_note"].output_schema["description"] == "A note."
    assert tools["list_notes"].output_schema["type"] == "array"
    assert tools["count"].output_schema == {"type": "integer"}
    assert tools["clear"].output_schema == {"type": "null"}
    assert tools["awkward_names"].output_schema == {"type": "object", "additionalProperties": True}
    # The `Returns:` text describes outputs that have no description of their own.
    assert tools["list_notes"].output_schema.get("description") is None
    assert tools["clear"].idempotent is True
    assert tools["count"].idempotent is True  # reads default to idempotent


def test_no_args_section_means_no_descriptions_but_still_a_schema(notes_env: Environment) -> None:
    spec = notes_env.spec.tool("list_notes")
    assert spec is not None
    assert spec.input_schema["required"] == []
    assert "description" not in spec.input_schema["properties"]["tag"]
    assert spec.description == "List notes, optionally only those with a tag."


def test_spec_is_sealed_with_state_schema(notes_env: Environment) -> None:
    spec = notes_env.spec
    assert spec.content_hash == spec.compute_hash()
    assert set(spec.state_schema["properties"]) == {"notes", "next_number", "scratch"}
    assert spec.implementation.kind == "python"
    assert isinstance(spec.implementation, PythonImplementation) and spec.implementation.trusted
    # Deriving twice gives the same spec (no process-dependent content).
    assert (
        PythonBackend(NotesToolkit, META).spec.content_hash
        == PythonBackend(NotesToolkit, META).spec.content_hash
    )


# -- load-time refusals ----------------------------------------------------------------------------------


class _State(BaseModel):
    n: int = 0


def _expect_spec_error(cls: type[Toolkit[Any]], *fragments: str) -> None:
    with pytest.raises(SpecError) as info:
        PythonBackend(cls, META)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_missing_parameter_annotation_is_refused() -> None:
    class Bad(Toolkit[_State]):
        @tool(effect="read")
        def peek(self, x) -> int:  # type: ignore[no-untyped-def]
            """Peek."""
            return 0

    _expect_spec_error(Bad, "Bad.peek", "'x' has no type annotation")


def test_missing_return_annotation_is_refused() -> None:
    class Bad(Toolkit[_State]):
        @tool(effect="read")
        def peek(self, x: int):  # type: ignore[no-untyped-def]
            """Peek."""
            return 0

    _expect_spec_error(Bad, "Bad.peek", "no return type annotation")


def test_star_args_and_kwargs_are_refused() -> None:
    class Star(Toolkit[_State]):
        @tool(effect="read")
        def peek(self, *values: int) -> int:
            """Peek."""
            return 0

    class StarStar(Toolkit[_State]):
        @tool(effect="read")
        def peek(self, **values: int) -> int:
            """Peek."""
            return 0

    _expect_spec_error(Star, "Star.peek", "*values")
    _expect_spec_error(StarStar, "StarStar.peek", "**values")


def test_toolkit_without_tools_is_refused() -> None:
    class Empty(Toolkit[_State]):
        def helper(self) -> int:
            return 1

    _expect_spec_error(Empty, "Empty", "defines no tools")


def test_tool_name_outside_the_pattern_is_refused() -> None:
    class Accents(Toolkit[_State]):
        @tool(effect="read")
        def café(self) -> int:
            """Coffee."""
            return 0

    _expect_spec_error(Accents, "Accents.café", "must match")


def test_docstring_problems_are_refused() -> None:
    class NoDoc(Toolkit[_State]):
        @tool(effect="read")
        def peek(self) -> int:
            return 0

    class Drift(Toolkit[_State]):
        @tool(effect="read")
        def peek(self, x: int) -> int:
            """Peek.

            Args:
                y: a parameter that no longer exists.
            """
            return x

    _expect_spec_error(NoDoc, "NoDoc.peek", "no docstring")
    _expect_spec_error(Drift, "Drift.peek", "does not have: y")


def test_reserved_names_sets_and_unknown_effects_are_refused() -> None:
    class Shadow(Toolkit[_State]):
        @tool(effect="read")
        def bind(self) -> int:  # type: ignore[override]
            """Shadows Toolkit.bind."""
            return 0

    class SetState(BaseModel):
        tags: set[str] = Field(default_factory=set)

    class Unordered(Toolkit[SetState]):
        @tool(effect="read")
        def peek(self) -> int:
            """Peek."""
            return 0

    _expect_spec_error(Shadow, "Shadow.bind", "taken by Toolkit")
    _expect_spec_error(Unordered, "set or frozenset")
    with pytest.raises(SpecError, match="effect must be"):
        tool(effect="delete")  # type: ignore[arg-type]


def test_state_model_must_be_known_and_stated_once() -> None:
    class NoModel(Toolkit):  # type: ignore[type-arg]
        @tool(effect="read")
        def peek(self) -> int:
            """Peek."""
            return 0

    _expect_spec_error(NoModel, "has no state model")
    with pytest.raises(SpecError, match="contradicts"):

        class Twice(Toolkit[_State]):
            state_model = NotesState  # type: ignore[assignment]

    class Explicit(Toolkit):  # type: ignore[type-arg]
        state_model = _State

        @tool(effect="read")
        def peek(self) -> int:
            """Peek."""
            return int(self.state.n)

    assert PythonBackend(Explicit, META).state_model is _State


# -- loading from a directory, and trust -------------------------------------------------------------------

TOOLKIT_SOURCE = textwrap.dedent(
    '''
    from pydantic import BaseModel
    from envfactory.runtime.toolkit import Toolkit, tool

    class CounterState(BaseModel):
        value: int = 0

    class Counter(Toolkit[CounterState]):
        @tool(effect="write")
        def bump(self, by: int = 1) -> int:
            """Add to the counter.

            Args:
                by: how much to add.
            """
            self.state.value += by
            return self.state.value
    '''
)


def write_env(
    directory: Path,
    *,
    trusted: bool,
    source: str = TOOLKIT_SOURCE,
    module: str = "toolkit.py",
    class_name: str = "Counter",
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    document = {
        "schema_version": 1,
        "format": "envfactory.python",
        "meta": {"name": "counter", "description": "A counter."},
        "implementation": {"kind": "python", "module": module, "class_name": class_name, "trusted": trusted},
    }
    (directory / "env.json").write_text(json.dumps(document))
    (directory / "toolkit.py").write_text(source)
    return directory


def test_trusted_toolkit_loads_from_its_directory(tmp_path: Path) -> None:
    env = load_env(write_env(tmp_path / "counter", trusted=True), trusted=True)
    with open_session(env) as session:
        assert session.call("bump", {"by": 3}).output == 3
        assert session.call("bump").output == 4
    backend = env.backend
    assert isinstance(backend, PythonBackend)
    module = backend.toolkit.__module__
    assert module.startswith("envfactory_toolkit_counter_") and module in sys.modules
    assert "toolkit" not in sys.modules
    # The same content (from anywhere) shares one module; other content gets its own.
    again = load_env(write_env(tmp_path / "copy", trusted=True), trusted=True).backend
    edited = load_env(
        write_env(tmp_path / "edited", trusted=True, source=TOOLKIT_SOURCE + "# edited\n"),
        trusted=True,
    ).backend
    assert isinstance(again, PythonBackend) and isinstance(edited, PythonBackend)
    assert again.toolkit is backend.toolkit and again.spec.content_hash == env.spec.content_hash
    assert edited.toolkit is not backend.toolkit and edited.toolkit.__module__ != module


def test_untrusted_toolkit_is_never_imported(tmp_path: Path) -> None:
    source = "raise RuntimeError('this module must not be imported')\n"
    with pytest.raises(SandboxRequiredError, match="only run in sandbox workers"):
        load_env(write_env(tmp_path / "counter", trusted=False, source=source))


def test_an_environment_cannot_grant_itself_trust(tmp_path: Path) -> None:
    source = "raise RuntimeError('this module must not be imported')\n"
    directory = write_env(tmp_path / "counter", trusted=True, source=source)
    with pytest.raises(SandboxRequiredError):
        load_env(directory)


@pytest.mark.parametrize(
    ("source", "module", "class_name", "fragment"),
    [
        ("import not_a_module_anywhere\n", "toolkit.py", "Counter", "ModuleNotFoundError"),
        ("def broken(:\n", "toolkit.py", "Counter", "SyntaxError"),
        (TOOLKIT_SOURCE, "toolkit.py", "Missing", "defines no Missing"),
        (
            TOOLKIT_SOURCE,
            "toolkit.py",
            "CounterState",
            "not a subclass of envfactory.runtime.toolkit.Toolkit",
        ),
        (TOOLKIT_SOURCE, "other.py", "Counter", "cannot read the toolkit module"),
        (TOOLKIT_SOURCE, "sub/../../outside.py", "Counter", "outside the environment directory"),
    ],
)
def test_bad_toolkit_modules_are_spec_errors_naming_the_problem(
    tmp_path: Path, source: str, module: str, class_name: str, fragment: str
) -> None:
    (tmp_path / "outside.py").write_text(TOOLKIT_SOURCE)
    directory = write_env(
        tmp_path / "counter", trusted=True, source=source, module=module, class_name=class_name
    )
    with pytest.raises(SpecError) as info:
        load_env(directory, trusted=True)
    assert fragment in str(info.value)


# -- calls through sessions ------------------------------------------------------------------------------


def test_arguments_are_validated_then_converted(notes_env: Environment) -> None:
    with open_session(notes_env) as session:
        bad_type = session.call("add_note", {"title": 5})
        assert bad_type.error is not None and bad_type.error.kind == "invalid_arguments"
        extra = session.call("add_note", {"title": "x", "colour": "red"})
        assert extra.error is not None and extra.error.kind == "invalid_arguments"
        missing = session.call("add_note", {})
        assert missing.error is not None and "title" in missing.error.message
        nested = session.call("add_note", {"title": "x", "meta": {"colour": "purple"}})
        assert nested.error is not None and nested.error.kind == "invalid_arguments"
        added = session.call("add_note", {"title": "x", "tags": ["t"], "meta": {"pinned": True}})
        assert ok(added) == {
            "id": "n2",
            "title": "x",
            "body": "",
            "tags": ["t"],
            "meta": {"pinned": True, "colour": "red"},
            "created_at": "2026-01-01T00:00:00Z",
        }
        echo = session.call("awkward_names", {"json": 7, "copy": True})
        assert ok(echo) == {"json": 7, "model_id": "m", "copy": True}


def test_pydantic_only_constraints_become_invalid_arguments() -> None:
    env = load_env("calendar")
    with open_session(env) as session:
        naive = session.call(
            "list_events",
            {"user_id": "usr_001", "start": "2026-01-05T00:00:00", "end": "2026-01-06T00:00:00Z"},
        )
        assert naive.error is not None
        assert naive.error.kind == "invalid_arguments"
        assert naive.error.path == "/start"
        assert "timezone" in naive.error.message and "list_events" in naive.error.message


@pytest.mark.parametrize("kind", ["not_found", "rule_violation", "invalid_arguments", "execution_error"])
def test_tool_errors_keep_their_kind_and_leave_state_untouched(notes_env: Environment, kind: str) -> None:
    with open_session(notes_env) as session:
        before = session.hash()
        result = session.call("refuse", {"kind": kind})
        assert result.error is not None
        assert (result.error.kind, result.error.message, result.error.path) == (
            kind,
            f"refused with {kind}",
            "/kind",
        )
        assert session.hash() == before
        assert session.snapshot().clock_step == 0


def test_not_found_helper(notes_env: Environment) -> None:
    with open_session(notes_env) as session:
        result = session.call("get_note", {"note_id": "n404"})
        assert result.error is not None
        assert (result.error.kind, result.error.path) == ("not_found", "/note_id")


def test_crashing_write_is_execution_error_and_changes_nothing(notes_env: Environment) -> None:
    with open_session(notes_env) as session:
        before = session.hash()
        result = session.call("explode")
        assert result.error is not None and result.error.kind == "execution_error"
        assert "explode" in result.error.message and "boom" in result.error.message
        assert session.hash() == before
        assert session.call("count").output == 1


def test_unserialisable_output_is_execution_error_naming_the_tool(notes_env: Environment) -> None:
    with open_session(notes_env) as session:
        result = session.call("unserialisable")
        assert result.error is not None and result.error.kind == "execution_error"
        assert "unserialisable returned object" in result.error.message
        assert "int" in result.error.message


def test_output_of_another_type_is_execution_error_even_if_it_looks_right(notes_env: Environment) -> None:
    with open_session(notes_env) as session:
        result = session.call("loose_dict")
        assert result.error is not None and result.error.kind == "execution_error"
        assert "loose_dict returned dict" in result.error.message and "Note" in result.error.message


def test_write_leaving_an_invalid_state_is_rolled_back(notes_env: Environment) -> None:
    with open_session(notes_env) as session:
        before = session.hash()
        result = session.call("corrupt")
        assert result.error is not None and result.error.kind == "execution_error"
        assert "corrupt left the state invalid" in result.error.message
        assert "next_number" in result.error.message
        assert session.hash() == before
        assert session.state_json()["next_number"] == 2


def test_reads_do_not_commit_or_advance_the_clock(notes_env: Environment) -> None:
    with open_session(notes_env) as session:
        session.call("count")
        session.call("get_note", {"note_id": "n1"})
        assert session.snapshot().clock_step == 0
        session.call("add_note", {"title": "a"})
        second = session.call("add_note", {"title": "b"})
        assert session.snapshot().clock_step == 2
        assert ok(second)["created_at"] == "2026-01-01T00:00:01Z"


def test_outputs_and_inputs_do_not_alias_the_state(notes_env: Environment) -> None:
    with open_session(notes_env) as session:
        value: dict[str, Any] = {"deep": {"list": [1, 2]}}
        session.call("stash", {"key": "k", "value": value})
        before = session.hash()
        value["deep"]["list"].append(3)
        got = session.call("get_note", {"note_id": "n1"})
        ok(got)["tags"].append("mutated")
        assert session.hash() == before
        assert session.state_json()["scratch"] == {"k": {"deep": {"list": [1, 2]}}}


# -- forks, snapshots, determinism ---------------------------------------------------------------------------


def test_session_forks_are_isolated(notes_env: Environment) -> None:
    with open_session(notes_env) as parent:
        parent.call("stash", {"key": "shared", "value": {"a": [1]}})
        child = parent.fork()
        assert child.hash() == parent.hash()
        child.call("add_note", {"title": "child only"})
        child.call("stash", {"key": "shared", "value": {"a": [2]}})
        parent.call("clear")
        assert parent.call("count").output == 0
        assert child.call("count").output == 2
        assert parent.state_json()["scratch"]["shared"] == {"a": [1]}
        assert child.state_json()["scratch"]["shared"] == {"a": [2]}


def test_state_handle_fork_is_a_deep_copy(notes_env: Environment) -> None:
    handle = notes_env.backend.load_state(SEED)
    assert isinstance(handle, PythonState)
    copy = handle.fork()
    copy.model.notes["n1"].tags.append("b")
    copy.model.scratch["x"] = {"y": [1]}
    assert handle.model.notes["n1"].tags == ["a"]
    assert handle.model.scratch == {}
    assert handle.state_hash() != copy.state_hash()
    assert handle.to_json() is not handle.to_json()


def test_hash_is_canonical(notes_env: Environment) -> None:
    backend = notes_env.backend
    one = backend.load_state({"notes": {}, "next_number": 3, "scratch": {"a": 1, "b": 2}})
    two = backend.load_state({"scratch": {"b": 2, "a": 1}, "next_number": 3})
    three = backend.load_state({"scratch": {"b": 2, "a": 1}, "next_number": 4})
    assert one.state_hash() == two.state_hash() != three.state_hash()


def test_snapshot_restore_round_trip(notes_env: Environment) -> None:
    with open_session(notes_env) as session:
        session.call("add_note", {"title": "kept"})
        snapshot = session.snapshot()
        session.call("clear")
        assert session.hash() != snapshot.state_hash
        session.restore(snapshot)
        assert session.hash() == snapshot.state_hash
        assert session.call("count").output == 2
        reopened = open_session(notes_env, snapshot)
        assert reopened.hash() == snapshot.state_hash
        assert ok(reopened.call("add_note", {"title": "next"}))["created_at"] == "2026-01-01T00:00:01Z"


def test_diff_names_changed_paths(notes_env: Environment) -> None:
    with open_session(notes_env) as session:
        other = session.fork()
        other.call("add_note", {"title": "new"})
        paths = {change.path for change in session.diff(other).changes}
        assert paths == {"/notes/n2", "/next_number"}


def test_same_seed_and_calls_give_same_results_and_hash(notes_env: Environment) -> None:
    def episode(seed: int) -> tuple[list[Any], str]:
        with open_session(notes_env, seed=seed) as session:
            outputs = [session.call("roll").output for _ in range(3)]
            outputs.append(session.call("add_note", {"title": "t"}).output)
            return outputs, session.hash()

    assert episode(7) == episode(7)
    assert episode(7) != episode(8)


class DiceState(BaseModel):
    rolls: list[int] = []


class Dice(Toolkit[DiceState]):
    @tool(effect="write")
    def roll(self, keep: bool) -> int:
        """Roll a die; the roll is kept only when asked to.

        Args:
            keep: whether to record the roll (a refused roll raises a rule violation).
        """
        value = self.ctx.rng.randint(1, 6)
        if not keep:
            raise self.rule_violation("roll discarded")
        self.state.rolls.append(value)
        return value

    @tool(effect="read")
    def peek(self) -> int:
        """Draw a number without recording it (a read must not move the RNG)."""
        return self.ctx.rng.randint(1, 6)


def test_failed_calls_and_reads_do_not_move_the_rng() -> None:
    env = python_environment(Dice, EnvMeta(name="dice"))
    noisy = open_session(env, seed=4)
    for keep in (False, True, False, False, True, True):
        noisy.call("peek")
        noisy.call("roll", {"keep": keep})
    clean = open_session(env, seed=4)
    for call, result in noisy.log:
        if result.ok and call.tool == "roll":
            assert clean.call("roll", call.arguments).output == result.output
    assert clean.hash() == noisy.hash()


def test_load_state_errors_are_readable(notes_env: Environment) -> None:
    with pytest.raises(SpecError, match=r"next_number"):
        notes_env.backend.load_state({"next_number": 0})
    with pytest.raises(SpecError, match="not JSON data"):
        notes_env.backend.load_state({"scratch": {"x": object()}})
    assert notes_env.backend.load_state(None).to_json() == {"notes": {}, "next_number": 1, "scratch": {}}
    model = NotesState(next_number=5)
    handle = notes_env.backend.load_state(model)
    assert isinstance(handle, PythonState) and handle.model is not model and handle.model == model


def test_python_environment_checks_its_seeds() -> None:
    with pytest.raises(SpecError, match="seed 'broken'"):
        python_environment(NotesToolkit, META, seeds={"broken": {"next_number": "many"}})


def test_bind_runs_a_tool_directly() -> None:
    state = NotesState()
    toolkit = NotesToolkit.bind(state, CallContext(0, ClockConfig()))
    note = toolkit.add_note("direct")
    assert note.id == "n1" and state.notes["n1"] is note


# -- the bundled calendar ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def calendar() -> Environment:
    return load_env("calendar")


def test_calendar_loads_with_typed_tools(calendar: Environment) -> None:
    spec = calendar.spec
    assert spec.meta.name == "calendar" and spec.meta.domain == "office"
    assert spec.implementation.kind == "python"
    writes = {t.name for t in spec.tools if t.effect == "write"}
    assert writes == {"create_event", "reschedule_event", "cancel_event", "respond_to_event", "add_attendees"}
    assert 6 <= len(spec.tools) <= 10
    for t in spec.tools:
        assert t.description and t.input_schema["additionalProperties"] is False
    assert "toolkit" not in sys.modules  # imported under a unique name only
    backend = calendar.backend
    assert isinstance(backend, PythonBackend)
    assert backend.toolkit.__module__.startswith("envfactory_toolkit_calendar_")


def test_calendar_scenario(calendar: Environment) -> None:
    with open_session(calendar) as s:
        busy = s.call(
            "find_conflicts",
            {"user_id": "usr_002", "start": "2026-01-05T14:30:00Z", "end": "2026-01-05T15:30:00Z"},
        )
        assert [e["id"] for e in ok(busy)] == ["evt_0002"]
        clash = s.call(
            "create_event",
            {
                "calendar_id": "cal_002",
                "title": "Retro",
                "start": "2026-01-05T14:30:00Z",
                "end": "2026-01-05T15:30:00Z",
            },
        )
        assert (
            clash.error is not None
            and clash.error.kind == "rule_violation"
            and "evt_0002" in clash.error.message
        )
        created = s.call(
            "create_event",
            {
                "calendar_id": "cal_002",
                "title": "Retro",
                "start": "2026-01-05T15:00:00Z",
                "end": "2026-01-05T16:00:00Z",
                "attendee_ids": ["usr_001", "usr_003", "usr_001"],
            },
        )
        assert created.error is None, created.error
        event = created.output
        assert isinstance(event, dict)
        assert event["id"] == "evt_0008" and event["organizer_id"] == "usr_002"
        assert [a["user_id"] for a in event["attendees"]] == ["usr_001", "usr_003"]
        assert event["created_at"] == "2026-01-01T00:00:00Z"
        accepted = s.call(
            "respond_to_event", {"event_id": "evt_0008", "user_id": "usr_001", "response": "accepted"}
        )
        assert ok(accepted)["attendees"][0]["response"] == "accepted"
        moved = s.call(
            "reschedule_event",
            {"event_id": "evt_0008", "start": "2026-01-06T09:00:00Z", "end": "2026-01-06T09:45:00Z"},
        )
        assert {a["response"] for a in ok(moved)["attendees"]} == {"needs_action"}
        listed = s.call(
            "list_events",
            {"user_id": "usr_003", "start": "2026-01-05T00:00:00Z", "end": "2026-01-07T00:00:00Z"},
        )
        assert [e["id"] for e in ok(listed)] == ["evt_0001", "evt_0008", "evt_0003"]
        cancelled = s.call("cancel_event", {"event_id": "evt_0008", "reason": "Not needed"})
        assert ok(cancelled)["status"] == "cancelled"
        again = s.call("cancel_event", {"event_id": "evt_0008"})
        assert again.error is not None and again.error.kind == "rule_violation"
        past = s.call(
            "create_event",
            {
                "calendar_id": "cal_001",
                "title": "Yesterday",
                "start": "2025-12-31T09:00:00Z",
                "end": "2025-12-31T10:00:00Z",
            },
        )
        assert past.error is not None and past.error.kind == "rule_violation" and "past" in past.error.message
        unknown = s.call("get_event", {"event_id": "evt_9999"})
        assert unknown.error is not None and unknown.error.kind == "not_found"
        state = s.state_json()
        assert state["next_event_number"] == 9
        assert s.snapshot().clock_step == 4


def test_calendar_seed_round_trips(calendar: Environment) -> None:
    seed = calendar.default_state()
    handle = calendar.backend.load_state(seed)
    assert handle.to_json() == seed
    assert calendar.backend.load_state(handle.to_json()).state_hash() == handle.state_hash()
