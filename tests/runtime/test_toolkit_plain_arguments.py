"""A python toolkit's arguments skip pydantic when conversion is the identity (`plain_arguments`): the kwargs
are then the schema-checked arguments as they are, and equal what `model_validate` gives; tools with types
pydantic converts (datetimes, ints, nested models) or with constraints keep the pydantic pass."""

from __future__ import annotations

import dataclasses
import random
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from envfactory.runtime import Environment, load_env, open_session
from envfactory.runtime.toolkit import Toolkit, python_environment, tool
from envfactory.spec import EnvMeta
from envfactory.verify.argsgen import generate_arguments


class Empty(BaseModel):
    pass


class Mixed(Toolkit[Empty]):
    @tool(effect="read")
    def plain(self, name: str, mode: Literal["a", "b"] = "a", flag: bool = False, note: str | None = None) -> str:
        """Echo plain arguments.

        Args:
            name: a name.
            mode: a mode.
            flag: a flag.
            note: a note.
        """
        return f"{name}|{mode}|{flag}|{note}"

    @tool(effect="read")
    def counted(self, count: int) -> int:
        """An int is converted (an integral float becomes an int).

        Args:
            count: how many.
        """
        return count

    @tool(effect="read")
    def constrained(self, code: Annotated[str, Field(min_length=2)]) -> str:
        """A constraint keeps the pydantic pass.

        Args:
            code: a code.
        """
        return code


def _tools(env: Environment) -> dict[str, Any]:
    return env.backend._tools  # type: ignore[attr-defined, no-any-return]


def test_only_identity_conversions_are_plain() -> None:
    tools = _tools(python_environment(Mixed, EnvMeta(name="mixed")))
    assert {name: compiled.plain for name, compiled in tools.items()} == {
        "plain": True, "counted": False, "constrained": False}
    calendar = _tools(load_env("calendar"))
    assert calendar["get_event"].plain and calendar["respond_to_event"].plain
    assert not calendar["list_events"].plain  # AwareDatetime arguments are converted


def test_plain_kwargs_equal_the_pydantic_conversion_on_schema_valid_arguments() -> None:
    checked = 0
    for env in (python_environment(Mixed, EnvMeta(name="mixed")), load_env("calendar")):
        for name, compiled in _tools(env).items():
            if not compiled.plain:
                continue
            pydantic_path = dataclasses.replace(compiled, plain=False)
            rng = random.Random(name)
            for _ in range(30):
                arguments = generate_arguments(compiled.spec.input_schema, rng, {})
                assert env.tools[name].input.check(arguments) is None
                fast, slow = compiled.convert(arguments), pydantic_path.convert(arguments)
                # omitted parameters: the signature's default (the field's default) applies
                slow = {k: v for k, v in slow.items() if k in arguments}
                assert fast == slow and [type(v) for v in fast.values()] == [type(v) for v in slow.values()]
                checked += 1
    assert checked >= 150


def test_a_plain_tool_called_through_a_session_behaves_as_before() -> None:
    session = open_session(python_environment(Mixed, EnvMeta(name="mixed")))
    assert session.call("plain", {"name": "x"}).output == "x|a|False|None"
    assert session.call("plain", {"name": "x", "mode": "b", "flag": True, "note": None}).output == "x|b|True|None"
    refused = session.call("plain", {"name": "x", "extra": 1})
    assert refused.error is not None and refused.error.kind == "invalid_arguments"
    assert session.call("counted", {"count": 2.0}).output == 2
