"""Python toolkits: typed methods over a session's pydantic state, run in-process (trusted only).

Contract:
- A toolkit is a `Toolkit[State]` subclass whose tools are methods decorated with
  `@tool(effect="read"|"write", idempotent=...)`. The state model comes from the generic parameter
  (or an explicit `state_model` class attribute; both must agree when both are given).
- Each tool's `ToolSpec` is derived from the method alone (one source of truth): the input schema from
  the signature (types, defaults) and the Google-style docstring (`Args:` descriptions), the output
  schema from the return annotation, the description from the docstring's summary and body. Anything
  that cannot be derived faithfully is refused at load time with a `SpecError` naming the method.
- A tool sees `self.state` (the session's state model) and `self.ctx` (the `CallContext`: clock, seed,
  RNG). A fresh toolkit object is bound for every call, so toolkits hold nothing between calls; ids,
  counters and everything else that must persist live in the state.
- Arguments reach a tool checked against the input schema by the session (the call's one validation
  pass). A tool whose parameters are all `str`, `bool`, string literals or `None`, unconstrained
  (`toolkit_schemas.plain_arguments`), gets them as they are: pydantic would return the same values. Other
  tools convert them with one pydantic model per tool, compiled at load: datetimes from ISO strings,
  enums, nested models, `int` from an integral float, validators an annotation adds beyond JSON Schema;
  pydantic has no convert-only mode, so that pass re-reads the types it converts. A value the schema admits
  and the conversion refuses is `invalid_arguments`. Figures: `benchmarks/call_passes.py` (README,
  "Performance"). The return value is
  serialised with one compiled `TypeAdapter` per tool; a value that does not serialise as declared is a
  `ToolCrash` (a bug, reported as `execution_error`).
- Read tools run on the live state and must not mutate it. Write tools run on a private copy that is
  revalidated against the state model when the tool returns; the copy replaces the session's state only
  on commit, so a tool error, a crash or an invalid result leaves the state untouched.
- The state must be plain data that round-trips through `model_dump`/`model_validate` (no excluded
  fields, private attributes or sets): forks, snapshots and restores all rely on it.
- Untrusted toolkits (`PythonImplementation.trusted == False`) never run here: loading one raises
  `SandboxRequiredError`; they belong to sandbox workers, which build their backend with
  `derive_python_backend` (from the module's bytes) and run tools with `PythonBackend.run_tool`.

Layout: reading and importing a toolkit's module is `toolkit_modules.py`, the JSON Schema helpers
`toolkit_schemas.py`; both are re-exported here where they were public (`read_toolkit_source`).
"""

# Length: just over 600 lines because the toolkit contract (decorator, state wrapper, backend) reads as
# one unit; its schema and module-loading parts already live in toolkit_schemas / toolkit_modules.
from __future__ import annotations

import inspect
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Generic, Self, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError, create_model
from pydantic.errors import PydanticUserError
from pydantic_core import PydanticSerializationError

from envfactory.errors import SandboxRequiredError, SpecError, ToolCrash, ToolError
from envfactory.runtime.backend import PreparedCall, StateHandle
from envfactory.runtime.diff import diff_states
from envfactory.runtime.environment import Environment
from envfactory.runtime.sources import CallContext
from envfactory.runtime.toolkit_modules import import_toolkit_module, read_toolkit_source
from envfactory.runtime.toolkit_schemas import (
    ToolSchemaGenerator,
    argument_fields,
    plain_arguments,
    refuse_sets,
    tool_docstring,
    tool_json_schema,
    type_name,
)
from envfactory.spec import (
    EnvMeta,
    EnvSpec,
    PythonImplementation,
    StateDiff,
    ToolEffect,
    ToolSource,
    ToolSpec,
    content_hash,
)
from envfactory.spec.tool import TOOL_NAME_PATTERN

__all__ = [
    "PythonBackend",
    "PythonState",
    "Toolkit",
    "derive_python_backend",
    "load_python_backend",
    "python_environment",
    "read_toolkit_source",
    "tool",
]

StateT = TypeVar("StateT", bound=BaseModel)
_F = TypeVar("_F", bound=Callable[..., Any])

_TOOL_NAME = re.compile(TOOL_NAME_PATTERN)
_MARK = "__envfactory_tool__"
_EFFECTS: frozenset[str] = frozenset({"read", "write"})


# -- declaring tools ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _ToolMark:
    effect: ToolEffect
    idempotent: bool


def tool(*, effect: ToolEffect, idempotent: bool | None = None) -> Callable[[_F], _F]:
    """Mark a `Toolkit` method as a tool.

    Args:
        effect: `"read"` for tools that only look at the state, `"write"` for tools that change it.
        idempotent: whether repeating the call with the same arguments changes nothing further
            (default: true for reads, false for writes).
    """
    if effect not in _EFFECTS:
        raise SpecError(f"@tool(effect={effect!r}): effect must be 'read' or 'write'")
    repeatable = effect == "read" if idempotent is None else bool(idempotent)

    def mark(func: _F) -> _F:
        setattr(func, _MARK, _ToolMark(effect=effect, idempotent=repeatable))
        return func

    return mark


class Toolkit(Generic[StateT]):
    """Base of python toolkits. Subclass as `class MyToolkit(Toolkit[MyState])` and decorate tools.

    Inside a tool, `self.state` is the session's state (a `MyState`) and `self.ctx` the call's
    `CallContext`. Raise `ToolError` (or `self.not_found(...)` and friends) for anticipated failures.
    """

    __slots__ = ("ctx", "state")

    state_model: type[StateT]
    state: StateT
    ctx: CallContext

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        inferred = _state_model_from_bases(cls)
        explicit = cls.__dict__.get("state_model")
        if explicit is not None:
            if inferred is not None and inferred is not explicit:
                raise SpecError(
                    f"toolkit {cls.__qualname__}: state_model = {type_name(explicit)} contradicts its "
                    f"generic parameter {type_name(inferred)}; state the model once"
                )
        elif inferred is not None:
            setattr(cls, "state_model", inferred)  # noqa: B010 (the generic parameter is not StateT-typed here)

    @classmethod
    def bind(cls, state: StateT, ctx: CallContext) -> Self:
        """A toolkit object over `state` for one call (what the backend does before every call)."""
        toolkit = object.__new__(cls)
        toolkit.state = state
        toolkit.ctx = ctx
        return toolkit

    # Helpers for anticipated failures; use as `raise self.not_found(...)`.
    @staticmethod
    def not_found(message: str, path: str | None = None) -> ToolError:
        """A `not_found` `ToolError` (raise it); `path` points at the argument at fault."""
        return ToolError("not_found", message, path)

    @staticmethod
    def rule_violation(message: str, path: str | None = None) -> ToolError:
        """A `rule_violation` `ToolError` (raise it); `path` points at the argument at fault."""
        return ToolError("rule_violation", message, path)

    @staticmethod
    def invalid_arguments(message: str, path: str | None = None) -> ToolError:
        """An `invalid_arguments` `ToolError` (raise it); `path` points at the argument at fault."""
        return ToolError("invalid_arguments", message, path)


def _state_model_from_bases(cls: type) -> type[BaseModel] | None:
    for base in cls.__dict__.get("__orig_bases__", ()):
        origin = typing.get_origin(base)
        if isinstance(origin, type) and issubclass(origin, Toolkit):
            args = typing.get_args(base)
            if args and isinstance(args[0], type) and issubclass(args[0], BaseModel):
                return args[0]
    return None


_RESERVED_NAMES: frozenset[str] = frozenset(dir(Toolkit)) | {"state", "ctx", "state_model"}


# -- deriving tool specs --------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _CompiledTool:
    """One tool ready to run: its spec, method, argument model and return adapter (built once)."""

    name: str
    spec: ToolSpec
    function: Callable[..., Any]
    writes: bool
    arguments: type[BaseModel]
    parameters: tuple[tuple[str, str], ...]  # (argument-model field, method parameter)
    returns: TypeAdapter[Any]
    returns_name: str
    plain: bool = False  # `toolkit_schemas.plain_arguments`: schema-checked arguments are the kwargs as they are
    returns_str: bool = False  # declared `-> str`: a result of exactly type str is its own JSON dump

    def convert(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """JSON arguments (already schema-checked) → keyword arguments of the python types (the same
        values, without a pydantic pass, when the tool's arguments are `plain`)."""
        if self.plain:  # omitted parameters take the signature's defaults, which are the fields' defaults
            return {parameter: arguments[parameter] for _, parameter in self.parameters if parameter in arguments}
        try:
            model = self.arguments.model_validate(arguments)
        except ValidationError as exc:
            error = exc.errors(include_url=False)[0]
            loc = [str(part) for part in error["loc"]]
            path = "".join("/" + part.replace("~", "~0").replace("/", "~1") for part in loc)
            where = f" at {path}" if path else ""
            raise ToolError(
                "invalid_arguments", f"invalid arguments for {self.name}: {error['msg']}{where}", path
            ) from None
        values = model.__dict__
        return {parameter: values[field] for field, parameter in self.parameters}

    def run(self, toolkit: Toolkit[Any], kwargs: dict[str, Any]) -> Any:
        result = self.function(toolkit, **kwargs)
        if self.returns_str and type(result) is str:
            return result
        try:
            return self.returns.dump_python(result, mode="json", by_alias=True, warnings="error")
        except PydanticSerializationError as exc:
            raise ToolCrash(
                f"{self.name} returned {type(result).__name__}, which does not serialise as its declared "
                f"return type {self.returns_name}: {exc}"
            ) from exc


def _check_tool_function(where: str, name: str, func: Callable[..., Any]) -> None:
    """`SpecError` for a tool name that is invalid or taken by `Toolkit`, or a function that is async or a generator."""
    if not _TOOL_NAME.match(name):
        raise SpecError(f"{where}: tool names must match {TOOL_NAME_PATTERN}")
    if name in _RESERVED_NAMES:
        raise SpecError(f"{where}: the name {name!r} is taken by Toolkit itself; rename the method")
    if (
        inspect.iscoroutinefunction(func)
        or inspect.isgeneratorfunction(func)
        or inspect.isasyncgenfunction(func)
    ):
        raise SpecError(
            f"{where}: tools must be plain functions returning their result (not async or generators)"
        )


def _compile_tool(
    cls: type[Toolkit[Any]], name: str, func: Callable[..., Any], mark: _ToolMark, env: str
) -> _CompiledTool:
    where = f"tool {cls.__qualname__}.{name}"
    _check_tool_function(where, name, func)
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError) as exc:
        raise SpecError(f"{where}: cannot read the signature: {exc}") from exc
    try:
        hints = typing.get_type_hints(func, localns=dict(vars(cls)), include_extras=True)
    except Exception as exc:  # NameError and friends from unresolvable string annotations
        raise SpecError(f"{where}: cannot resolve type annotations: {type(exc).__name__}: {exc}") from exc

    parameters = list(signature.parameters.values())
    if not parameters or parameters[0].kind not in (
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
    ):
        raise SpecError(f"{where}: a tool must be a plain method taking self first")
    parameters = parameters[1:]

    parsed, description, documented = tool_docstring(where, func)

    names = [p.name for p in parameters]
    unknown = sorted(set(documented) - set(names))
    if unknown:
        raise SpecError(f"{where}: the docstring documents parameters it does not have: {', '.join(unknown)}")

    fields, mapping = argument_fields(where, parameters, hints, documented)
    if signature.return_annotation is inspect.Signature.empty or "return" not in hints:
        raise SpecError(f"{where}: no return type annotation (write `-> None` for tools that return nothing)")
    return_type = hints["return"]

    try:
        arguments = create_model(
            f"{name}_arguments",
            __config__=ConfigDict(extra="forbid", populate_by_name=False, arbitrary_types_allowed=False),
            **fields,
        )
        returns: TypeAdapter[Any] = TypeAdapter(return_type)
    except (PydanticUserError, TypeError, ValueError) as exc:
        raise SpecError(f"{where}: unsupported type annotation: {exc}") from exc
    model: type[BaseModel] = arguments

    input_schema = tool_json_schema(lambda: model.model_json_schema(schema_generator=ToolSchemaGenerator), where)
    input_schema.pop("title", None)
    input_schema.setdefault("properties", {})
    input_schema.setdefault("required", [])
    output_schema = tool_json_schema(
        lambda: returns.json_schema(mode="serialization", schema_generator=ToolSchemaGenerator), where
    )
    refuse_sets(output_schema, f"{where}: return type")
    if parsed.returns is not None and parsed.returns.description and "description" not in output_schema:
        output_schema["description"] = parsed.returns.description.strip()

    spec = ToolSpec(
        name=name,
        description=description,
        input_schema=input_schema,
        output_schema=output_schema,
        effect=mark.effect,
        idempotent=mark.idempotent,
        source=ToolSource(provider="python", service=env, operation_id=f"{cls.__qualname__}.{name}"),
    )
    return _CompiledTool(
        name=name,
        spec=spec,
        function=func,
        writes=mark.effect == "write",
        arguments=model,
        parameters=tuple(mapping),
        returns=returns,
        returns_name=type_name(return_type),
        plain=plain_arguments(model, input_schema),
        returns_str=return_type is str,
    )


def _tool_mark(value: Any) -> _ToolMark | None:
    mark = getattr(value, _MARK, None)
    return mark if isinstance(mark, _ToolMark) else None


def _discover_tools(cls: type[Toolkit[Any]]) -> dict[str, tuple[Callable[..., Any], _ToolMark]]:
    """Tools in definition order; a subclass may override a tool (or un-tool it with a plain method)."""
    found: dict[str, tuple[Callable[..., Any], _ToolMark]] = {}
    for klass in reversed(cls.__mro__):
        for name, value in vars(klass).items():
            if isinstance(value, staticmethod | classmethod | property):
                inner = value.fget if isinstance(value, property) else value.__func__
                if _tool_mark(inner) is not None or _tool_mark(value) is not None:
                    raise SpecError(f"tool {cls.__qualname__}.{name}: tools must be plain methods")
                found.pop(name, None)
                continue
            mark = _tool_mark(value)
            if mark is not None and callable(value):
                found[name] = (value, mark)
            else:
                found.pop(name, None)
    return found


# -- state ------------------------------------------------------------------------------------------------
def _copy_model(model: BaseModel) -> Any:
    # Dump + validate runs in pydantic-core and is ~3.5x faster than `model_copy(deep=True)` (which is
    # `copy.deepcopy`) on the calendar seed; it relies only on the state round-tripping through its
    # model, which snapshots and restores need anyway.
    return type(model).model_validate(model.model_dump(round_trip=True))


class PythonState(Generic[StateT]):
    """The `StateHandle` of python toolkits: one pydantic state model, replaced (never edited) on commit."""

    __slots__ = ("_model",)

    def __init__(self, model: StateT) -> None:
        """A handle over `model`, which it owns from now on."""
        self._model = model

    @property
    def model(self) -> StateT:
        """The live state model (read it; do not mutate it)."""
        return self._model

    def _replace(self, model: StateT) -> None:
        self._model = model

    def copy_model(self) -> StateT:
        """A deep, independent copy of the state model."""
        copied: StateT = _copy_model(self._model)
        return copied

    def fork(self) -> PythonState[StateT]:
        """A handle over a deep copy of the model."""
        return PythonState(self.copy_model())

    def to_json(self) -> Any:
        """The model as JSON (by alias; a fresh structure)."""
        return self._model.model_dump(mode="json", by_alias=True)

    def state_hash(self) -> str:
        """The content hash of `to_json()`."""
        return content_hash(self.to_json())


def _describe(exc: ValidationError, limit: int = 10) -> str:
    lines = []
    for err in exc.errors(include_url=False)[:limit]:
        loc = ".".join(str(part) for part in err["loc"]) or "(top level)"
        lines.append(f"  - {loc}: {err['msg']}")
    if exc.error_count() > limit:
        lines.append(f"  … and {exc.error_count() - limit} more")
    return f"{exc.error_count()} problem(s):\n" + "\n".join(lines)


# -- the backend ----------------------------------------------------------------------------------------
class PythonBackend(Generic[StateT]):
    """Runs one trusted toolkit class in-process; shared by every session of the environment."""

    def __init__(
        self,
        toolkit: type[Toolkit[StateT]],
        meta: EnvMeta,
        implementation: PythonImplementation | None = None,
    ) -> None:
        """Derive the spec from `toolkit`'s state model and tool methods (signatures and docstrings); `SpecError`
        when it is not a `Toolkit` subclass with a state model, or a tool cannot be described."""
        if not (isinstance(toolkit, type) and issubclass(toolkit, Toolkit)):
            raise SpecError(f"{meta.name}: {toolkit!r} is not a Toolkit subclass")
        model = getattr(toolkit, "state_model", None)
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise SpecError(
                f"{meta.name}: toolkit {toolkit.__qualname__} has no state model; subclass "
                "Toolkit[YourState] or set state_model = YourState"
            )
        self._toolkit = toolkit
        self._model: type[StateT] = toolkit.state_model
        declared = _discover_tools(toolkit)
        if not declared:
            raise SpecError(
                f"{meta.name}: toolkit {toolkit.__qualname__} defines no tools (decorate methods with @tool)"
            )
        self._tools = {
            name: _compile_tool(toolkit, name, func, mark, meta.name)
            for name, (func, mark) in declared.items()
        }
        state_schema = tool_json_schema(
            lambda: model.model_json_schema(schema_generator=ToolSchemaGenerator),
            f"{meta.name}: state model {model.__qualname__}",
        )
        refuse_sets(state_schema, f"{meta.name}: state model {model.__qualname__}")
        if implementation is None:
            implementation = PythonImplementation(
                module=_module_file_name(toolkit), class_name=toolkit.__name__, trusted=True
            )
        try:
            self._spec = EnvSpec(
                meta=meta,
                state_schema=state_schema,
                tools=[compiled.spec for compiled in self._tools.values()],
                implementation=implementation,
            ).seal()
        except ValidationError as exc:
            raise SpecError(f"{meta.name}: the derived spec is invalid: {_describe(exc)}") from exc

    @property
    def spec(self) -> EnvSpec:
        """The spec derived from the toolkit."""
        return self._spec

    @property
    def toolkit(self) -> type[Toolkit[StateT]]:
        """The toolkit class."""
        return self._toolkit

    @property
    def state_model(self) -> type[StateT]:
        """The toolkit's pydantic state model."""
        return self._model

    def load_state(self, state: Any) -> PythonState[StateT]:
        """A handle over state JSON (`None`: the model's defaults; a model instance is accepted too)."""
        name = self._spec.meta.name
        if isinstance(state, BaseModel):
            state = state.model_dump(mode="json", by_alias=True)
        try:
            # Through JSON bytes: the state must own its data (python-mode validation would keep
            # `Any`-typed values by reference) and it is JSON by contract.
            model = self._model() if state is None else self._model.model_validate_json(orjson.dumps(state))
        except TypeError as exc:
            raise SpecError(f"the state given to {name} is not JSON data: {exc}") from exc
        except ValidationError as exc:
            what = "the empty state (no seed given)" if state is None else "the state"
            raise SpecError(
                f"{what} does not fit {name} ({self._model.__qualname__}): {_describe(exc)}"
            ) from exc
        return PythonState(model)

    def execute(
        self, state: StateHandle, tool: str, arguments: dict[str, Any], ctx: CallContext
    ) -> PreparedCall:
        """Run `tool`: reads on the live model, writes on a copy that `commit()` installs after it revalidates.
        `ToolError` for an unknown tool or the toolkit's anticipated failures, `ToolCrash` when a write leaves an
        invalid state."""
        compiled = self._tools.get(tool)
        if compiled is None:
            raise ToolError("unknown_tool", f"{tool} is not a tool of {self._spec.meta.name}")
        if not isinstance(state, PythonState):
            raise TypeError(f"{self._spec.meta.name} cannot run on a {type(state).__name__}")
        handle: PythonState[StateT] = state
        kwargs = compiled.convert(arguments)
        if not compiled.writes:
            return PreparedCall(output=compiled.run(self._toolkit.bind(handle.model, ctx), kwargs))
        work = handle.copy_model()
        output = compiled.run(self._toolkit.bind(work, ctx), kwargs)
        new = self._revalidate(work, tool)
        return PreparedCall(output=output, commit=partial(handle._replace, new))

    def run_tool(
        self, model: StateT, tool: str, arguments: dict[str, Any], ctx: CallContext
    ) -> tuple[Any, StateT | None]:
        """Run one tool on a state model the caller owns and will not reuse (no defensive copy).

        Returns the JSON output and, for write tools, the revalidated new state (`None` for reads).
        Used by sandbox workers, which build a fresh model for every call; raises like `execute`.
        """
        compiled = self._tools.get(tool)
        if compiled is None:
            raise ToolError("unknown_tool", f"{tool} is not a tool of {self._spec.meta.name}")
        kwargs = compiled.convert(arguments)
        output = compiled.run(self._toolkit.bind(model, ctx), kwargs)
        if not compiled.writes:
            return output, None
        return output, self._revalidate(model, tool)

    def _revalidate(self, model: StateT, tool: str) -> StateT:
        """The state a write left behind, checked against the state model (assignments are not)."""
        try:
            # warnings=False: a wrongly typed assignment is reported by the validation, not as a warning.
            return self._model.model_validate(
                model.model_dump(by_alias=True, round_trip=True, warnings=False)
            )
        except (ValidationError, PydanticSerializationError) as exc:
            detail = _describe(exc) if isinstance(exc, ValidationError) else str(exc)
            raise ToolCrash(f"{tool} left the state invalid (the call was rolled back): {detail}") from exc

    def diff(self, before: StateHandle, after: StateHandle) -> StateDiff:
        """The JSON diff of two states."""
        return diff_states(before.to_json(), after.to_json())


def _module_file_name(cls: type) -> str:
    stem = cls.__module__.rsplit(".", 1)[-1]
    name = f"{stem}.py"
    return name if re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\.py", name) else "toolkit.py"


# -- loading ----------------------------------------------------------------------------------------------
def load_python_backend(meta: EnvMeta, impl: PythonImplementation, directory: Path) -> PythonBackend[Any]:
    """Import a trusted toolkit module from an environment directory and build its backend.

    Raises:
        SandboxRequiredError: the toolkit is not marked trusted (it may only run in a sandbox worker).
        SpecError: the module is missing, fails to import, or does not define a usable toolkit class.
    """
    if not impl.trusted:
        raise SandboxRequiredError(
            f"{meta.name}: toolkit {impl.module} is not trusted; untrusted python toolkits only run in "
            "sandbox workers, never in-process"
        )
    path, source = read_toolkit_source(meta, impl, directory)
    module = import_toolkit_module(meta.name, path, source)
    return _backend_from_module(module, path, meta, impl)


def derive_python_backend(
    meta: EnvMeta, impl: PythonImplementation, path: Path, source: bytes
) -> PythonBackend[Any]:
    """Execute toolkit source (as the module at `path`) and build its backend, with no trust check.

    Only sandbox workers call this for untrusted code: it runs the module in the calling process.
    Raises `SpecError` naming the problem when the module fails to import or defines no usable toolkit.
    """
    module = import_toolkit_module(meta.name, path, source)
    return _backend_from_module(module, path, meta, impl)


def _backend_from_module(
    module: types.ModuleType, path: Path, meta: EnvMeta, impl: PythonImplementation
) -> PythonBackend[Any]:
    cls = getattr(module, impl.class_name, None)
    if cls is None:
        raise SpecError(f"{path}: defines no {impl.class_name} (implementation.class_name)")
    if not (isinstance(cls, type) and issubclass(cls, Toolkit)):
        raise SpecError(f"{path}: {impl.class_name} is not a subclass of envfactory.runtime.toolkit.Toolkit")
    return PythonBackend(cls, meta, impl)


def python_environment(
    toolkit: type[Toolkit[Any]], meta: EnvMeta, *, seeds: dict[str, Any] | None = None
) -> Environment:
    """An environment over a toolkit class defined in this process (trusted by construction)."""
    backend = PythonBackend(toolkit, meta)
    environment = Environment.create(backend, seeds=seeds)
    for name, state in (seeds or {}).items():
        try:
            backend.load_state(state)
        except SpecError as exc:
            raise SpecError(f"seed {name!r}: {exc}") from exc
    return environment
