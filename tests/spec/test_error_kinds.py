"""The error kinds are one vocabulary, written out once in `envfactory.spec.tool`: the derived sets,
the wire schema, the narrowing of foreign kinds and the layers' error classes all follow it."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest
from pydantic import ValidationError

import envfactory
import envfactory.errors as core_errors
from envfactory.errors import SandboxError
from envfactory.spec import (
    AGENT_ERROR_KINDS,
    ERROR_KINDS,
    FRAMEWORK_ERROR_KINDS,
    SANDBOX_FAILURE_KINDS,
    ErrorInfo,
    ToolResult,
)
from envfactory.spec.tool import agent_error_kind


def test_kinds_are_the_agent_kinds_then_the_framework_kinds() -> None:
    assert ERROR_KINDS == ("invalid_arguments", "unknown_tool", "not_found", "rule_violation", "execution_error",
                           "timeout", "sandbox_failure", "session_closed", "resource_limit")
    assert set(ERROR_KINDS) == AGENT_ERROR_KINDS | FRAMEWORK_ERROR_KINDS
    assert not AGENT_ERROR_KINDS & FRAMEWORK_ERROR_KINDS
    assert SANDBOX_FAILURE_KINDS == {"timeout", "sandbox_failure", "resource_limit"} < FRAMEWORK_ERROR_KINDS


def test_the_wire_schema_lists_every_kind_and_refuses_others() -> None:
    schema = ErrorInfo.model_json_schema()
    assert schema["properties"]["kind"]["enum"] == list(ERROR_KINDS)
    assert ErrorInfo(kind="resource_limit", message="disk quota").kind == "resource_limit"
    with pytest.raises(ValidationError):
        ErrorInfo.model_validate({"kind": "bad_kind", "message": "x"})
    result_schema = ToolResult.model_json_schema()
    assert result_schema["$defs"]["ErrorInfo"]["properties"]["kind"]["enum"] == list(ERROR_KINDS)


@pytest.mark.parametrize(("given", "reported"), [
    ("not_found", "not_found"), ("invalid_arguments", "invalid_arguments"),
    ("timeout", "execution_error"),  # a framework kind is never the agent's to claim
    ("made_up", "execution_error"), (None, "execution_error"),
])
def test_a_foreign_tool_failure_kind_is_narrowed(given: str | None, reported: str) -> None:
    assert agent_error_kind(given) == reported


def test_a_sandbox_error_keeps_only_sandbox_failure_kinds() -> None:
    assert SandboxError("x", "resource_limit").kind == "resource_limit"
    assert SandboxError("x", "timeout").kind == "timeout"
    assert SandboxError("x", "session_closed").kind == "sandbox_failure"
    assert SandboxError("x", "made_up").kind == "sandbox_failure"


def test_no_layer_error_class_shadows_a_core_error_class() -> None:
    """A layer's `errors` module never defines a class named like one of `envfactory.errors`'s (the
    server's closed-session error is `SessionGoneError`, not a second `SessionClosedError`)."""
    core = {name for name, obj in vars(core_errors).items() if inspect.isclass(obj) and issubclass(obj, Exception)}
    shadows = []
    for info in pkgutil.walk_packages(envfactory.__path__, "envfactory."):
        if not info.name.endswith(".errors"):
            continue
        module = importlib.import_module(info.name)
        shadows += [f"{info.name}.{name}" for name, obj in vars(module).items()
                    if name in core and inspect.isclass(obj) and obj is not getattr(core_errors, name)]
    assert shadows == []


def test_reference_error_codes_map_to_agent_kinds() -> None:
    """The differential tests' table of AWS error codes uses the one vocabulary (agent kinds only)."""
    from envfactory.build.differential import AWS_ERROR_KINDS

    assert AWS_ERROR_KINDS and set(AWS_ERROR_KINDS.values()) <= AGENT_ERROR_KINDS
