"""Adapter toolkits: BFCL v3 multi-turn backend classes as envfactory python toolkits.

Contract:
- One `Toolkit` subclass per backend class (`GorillaFileSystemToolkit`, ...), generated at import from
  the benchmark's installed data: each method described in `bfcl/data/multi_turn_func_doc/*.json`
  becomes a `write` tool whose typed signature and docstring come from that description. Nothing of
  the benchmark is vendored; this module reads the installed `bfcl` package.
- The state (`BfclState`) is JSON: the class's scenario (what `_load_scenario` takes, as JSON text so that its key order survives), the calls made so
  far, and `attributes`, the backend instance's public attributes as JSON (what BFCL's state checker
  compares). Private attributes (the file system's current directory, seeded `random.Random`s, login
  flags kept under `_`) are not JSON, so an instance is never rebuilt from `attributes`: every call builds
  a fresh instance with `_load_scenario(scenario)` and replays the recorded calls, then runs the new one.
  The backend is deterministic given its scenario, so this reproduces its full state, private parts
  included, and no instance outlives a call (no process globals, sessions cannot leak into each other).
- A tool's output is the string BFCL's executor would produce: strings as they are, dicts as JSON,
  anything else through `str`, and an exception as `"Error during execution: <message>"` (BFCL shows
  backend exceptions to the model as results, not errors). Every call is recorded, failed ones too,
  since a backend may change state before it raises.
- Each backend also has a `<backend>CompatToolkit`: the same tools plus `raw_call_<backend, lower
  case>(method, arguments)` (`raw_call_tool(backend)`), which runs a documented method with its
  arguments unchecked (no types, no unknown-key refusal), as BFCL's executor does when it `eval`s a
  call string. It exists for official-compat scoring
  replays (`eval.bfcl.execute(official_compat=True)`); it is never offered to an agent.
- This module runs benchmark code that evaluates model-provided values; load it through a sandbox
  worker unless the caller explicitly trusts it (envfactory.eval.bfcl decides).
"""

from __future__ import annotations

import copy
import datetime
import decimal
import importlib
import inspect
import json
import typing
from collections.abc import Callable
from importlib import resources
from types import MappingProxyType
from typing import Any

from pydantic import BaseModel, Field

from envfactory.runtime.toolkit import Toolkit, tool

# backend class -> (module under bfcl's func_source_code, function-doc file, stateless)
BACKENDS: dict[str, tuple[str, str, bool]] = {
    "GorillaFileSystem": ("gorilla_file_system", "gorilla_file_system.json", False),
    "MathAPI": ("math_api", "math_api.json", True),
    "MessageAPI": ("message_api", "message_api.json", False),
    "TwitterAPI": ("posting_api", "posting_api.json", False),
    "TicketAPI": ("ticket_api", "ticket_api.json", False),
    "TradingBot": ("trading_bot", "trading_bot.json", False),
    "TravelAPI": ("travel_booking", "travel_booking.json", False),
    "VehicleControlAPI": ("vehicle_control", "vehicle_control.json", False),
}
_SOURCE_PACKAGE = "bfcl.eval_checker.multi_turn_eval.func_source_code"
_ERROR_PREFIX = "Error during execution: "


# Unions that backend methods build at call time (`GorillaFileSystem.du` annotates a nested function with
# `Union[File, Directory]`). Building a new Union calls `sys._getframe` (typing_extensions patches
# typing), which a sandbox worker refuses during calls; built once at import, typing's cache serves it.
_CALL_TIME_UNIONS: dict[str, tuple[tuple[str, ...], ...]] = {"GorillaFileSystem": (("File", "Directory"),)}


def _backend_class(backend: str) -> type:
    module = importlib.import_module(f"{_SOURCE_PACKAGE}.{BACKENDS[backend][0]}")
    for members in _CALL_TIME_UNIONS.get(backend, ()):
        typing.Union[tuple(getattr(module, name) for name in members)]  # noqa: UP007 (typing's own cache)
    cls: type = getattr(module, backend)
    return cls


# Imported when this module loads (in a sandbox worker: before its guard is armed), never during a call.
_CLASSES: MappingProxyType[str, type] = MappingProxyType({name: _backend_class(name) for name in BACKENDS})


class BfclCall(BaseModel):
    """One call replayed on a BFCL backend: the method name and its keyword arguments."""
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class BfclState(BaseModel):
    """A BFCL backend instance as data: its scenario, the calls replayed on it, its public attributes."""

    backend: str
    # JSON text, not an object: key order is the backend's iteration order (e.g. `find` lists a
    # directory in insertion order), and canonical JSON on the way through a sandbox would sort it.
    scenario: str = "{}"
    long_context: bool = False
    calls: list[BfclCall] = Field(default_factory=list)
    attributes: dict[str, Any] = Field(default_factory=dict)


def to_json(value: Any, path: tuple[int, ...] = ()) -> Any:
    """A backend value as JSON: objects become their public attributes; back-references are cut."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else repr(value)
    if isinstance(value, decimal.Decimal | datetime.date | datetime.time | datetime.datetime):
        return str(value)
    if id(value) in path:
        return {"$ref": "ancestor"}
    inner = (*path, id(value))
    if isinstance(value, dict):
        return {str(key): to_json(item, inner) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(item, inner) for item in value]
    if isinstance(value, set | frozenset):
        return sorted((to_json(item, inner) for item in value), key=repr)
    if hasattr(value, "__dict__"):
        return {
            key: to_json(item, inner) for key, item in vars(value).items() if not key.startswith("_")
        }
    return repr(value)


def new_instance(backend: str, scenario: dict[str, Any], long_context: bool) -> Any:
    """A fresh backend instance loaded with `scenario` (the way BFCL's executor builds one)."""
    _, _, stateless = BACKENDS[backend]
    instance = _CLASSES[backend]()
    if not stateless:
        instance._load_scenario(copy.deepcopy(scenario), long_context=long_context)
    return instance


def run_call(instance: Any, name: str, arguments: dict[str, Any]) -> str:
    """One call on a live instance, rendered as BFCL renders results."""
    try:
        result = getattr(instance, name)(**copy.deepcopy(arguments))
    except Exception as exc:  # the benchmark reports every backend exception to the model as text
        return f"{_ERROR_PREFIX}{exc}"
    if isinstance(result, str):
        return result
    if isinstance(result, dict):
        try:
            return json.dumps(result)
        except (TypeError, ValueError):
            return str(result)
    return str(result)


def public_attributes(instance: Any) -> dict[str, Any]:
    """An instance's attributes not starting with `_`, as JSON values (BFCL compares these as the backend's
    state)."""
    return {key: to_json(value) for key, value in vars(instance).items() if not key.startswith("_")}


def initial_state(backend: str, scenario: dict[str, Any], long_context: bool = False) -> dict[str, Any]:
    """The JSON state of a session that starts from `scenario`."""
    instance = new_instance(backend, scenario, long_context)
    return BfclState(
        backend=backend, scenario=json.dumps(scenario), long_context=long_context, attributes=public_attributes(instance)
    ).model_dump(mode="json")


def function_docs(backend: str) -> list[dict[str, Any]]:
    """The benchmark's description of each tool of `backend` (from the installed package)."""
    _, doc_file, _ = BACKENDS[backend]
    text = resources.files("bfcl").joinpath("data", "multi_turn_func_doc", doc_file).read_text("utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


_TYPES: dict[str, Any] = {
    "string": str,
    "integer": int,
    # A float parameter keeps an int as int: BFCL passes literals through, and `8` and `8.0` print differently.
    "float": int | float,
    "boolean": bool,
    "dict": dict[str, Any],
    "any": Any,
}


def _annotation(schema: dict[str, Any]) -> Any:
    kind = schema.get("type", "any")
    if kind in ("array", "tuple"):
        items = schema.get("items") or {}
        return list.__class_getitem__(_TYPES.get(items.get("type", "any"), Any))
    return _TYPES.get(kind, Any)


def _docstring(doc: dict[str, Any], names: list[str]) -> str:
    lines = [" ".join(str(doc.get("description", doc["name"])).split()) or doc["name"]]
    properties = doc.get("parameters", {}).get("properties", {})
    if names:
        lines += ["", "Args:"]
        for name in names:
            text = " ".join(str(properties[name].get("description", "")).split()) or name
            lines.append(f"    {name}: {text}")
    return "\n".join(lines)


def _make_tool(backend: str, doc: dict[str, Any]) -> Callable[..., str]:
    name = doc["name"]
    parameters = doc.get("parameters", {})
    properties: dict[str, Any] = parameters.get("properties", {})
    required = set(parameters.get("required", []))
    ordered = [p for p in properties if p in required] + [p for p in properties if p not in required]
    signature_params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    annotations: dict[str, Any] = {}
    for param in ordered:
        annotation = _annotation(properties[param])
        if param in required:
            signature_params.append(
                inspect.Parameter(param, inspect.Parameter.KEYWORD_ONLY, annotation=annotation)
            )
        else:
            annotation = annotation | None
            signature_params.append(
                inspect.Parameter(param, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=None)
            )
        annotations[param] = annotation
    annotations["return"] = str

    def call(self: BfclToolkit, **arguments: Any) -> str:
        # An optional argument left out arrives as None; the backend then uses its own default.
        given = {key: value for key, value in arguments.items() if not (key not in required and value is None)}
        return self.invoke(name, given)

    call.__name__ = call.__qualname__ = name
    call.__doc__ = _docstring(doc, ordered)
    call.__signature__ = inspect.Signature(signature_params, return_annotation=str)  # type: ignore[attr-defined]
    call.__annotations__ = annotations
    return tool(effect="write", idempotent=False)(call)


class BfclToolkit(Toolkit[BfclState]):
    """Base of the generated toolkits: rebuild the instance, replay, run one call, record it."""

    def invoke(self, name: str, arguments: dict[str, Any]) -> str:
        """Run backend method `name` with `arguments` on an instance rebuilt from the scenario and the
        calls recorded so far (replayed in order), record the call in the state, and return its output."""
        state = self.state
        instance = new_instance(state.backend, json.loads(state.scenario), state.long_context)
        for past in state.calls:
            run_call(instance, past.name, past.arguments)
        output = run_call(instance, name, arguments)
        state.calls.append(BfclCall(name=name, arguments=arguments))
        state.attributes = public_attributes(instance)
        return output


def raw_call_tool(backend: str) -> str:
    """The name of `backend`'s unchecked-call tool (compat toolkits only; unique across backends)."""
    return f"raw_call_{backend.lower()}"


def _raw_call_tool(backend: str) -> Callable[..., str]:
    documented = frozenset(doc["name"] for doc in function_docs(backend))

    def bfcl_raw_call(self: BfclToolkit, method: str, arguments: dict[str, Any]) -> str:
        """Run a documented backend method with its arguments as given, unchecked (official-compat scoring).

        Args:
            method: the method's name (one of this backend's documented tools)
            arguments: keyword arguments, passed to the method as they are
        """
        if method not in documented:
            raise self.invalid_arguments(f"{method!r} is not a tool of {backend}", "/method")
        return self.invoke(method, dict(arguments))

    bfcl_raw_call.__name__ = bfcl_raw_call.__qualname__ = raw_call_tool(backend)
    return tool(effect="write", idempotent=False)(bfcl_raw_call)


def _toolkit_class(backend: str) -> type[BfclToolkit]:
    namespace: dict[str, Any] = {"__module__": __name__, "__doc__": f"BFCL {backend}, adapted."}
    for doc in function_docs(backend):
        namespace[doc["name"]] = _make_tool(backend, doc)
    return type(f"{backend}Toolkit", (BfclToolkit,), namespace)


GorillaFileSystemToolkit = _toolkit_class("GorillaFileSystem")
MathAPIToolkit = _toolkit_class("MathAPI")
MessageAPIToolkit = _toolkit_class("MessageAPI")
TwitterAPIToolkit = _toolkit_class("TwitterAPI")
TicketAPIToolkit = _toolkit_class("TicketAPI")
TradingBotToolkit = _toolkit_class("TradingBot")
TravelAPIToolkit = _toolkit_class("TravelAPI")
VehicleControlAPIToolkit = _toolkit_class("VehicleControlAPI")

def _compat_class(base: type[BfclToolkit], backend: str) -> type[BfclToolkit]:
    namespace = {"__module__": __name__, raw_call_tool(backend): _raw_call_tool(backend)}
    return type(f"{backend}CompatToolkit", (base,), namespace)


GorillaFileSystemCompatToolkit = _compat_class(GorillaFileSystemToolkit, "GorillaFileSystem")
MathAPICompatToolkit = _compat_class(MathAPIToolkit, "MathAPI")
MessageAPICompatToolkit = _compat_class(MessageAPIToolkit, "MessageAPI")
TwitterAPICompatToolkit = _compat_class(TwitterAPIToolkit, "TwitterAPI")
TicketAPICompatToolkit = _compat_class(TicketAPIToolkit, "TicketAPI")
TradingBotCompatToolkit = _compat_class(TradingBotToolkit, "TradingBot")
TravelAPICompatToolkit = _compat_class(TravelAPIToolkit, "TravelAPI")
VehicleControlAPICompatToolkit = _compat_class(VehicleControlAPIToolkit, "VehicleControlAPI")
