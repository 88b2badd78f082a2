"""Adapter toolkits: BFCL v3 multi-turn backend classes as envfactory python toolkits.

Contract:
- One `Toolkit` subclass per backend class (`GorillaFileSystemToolkit`, ...), generated at import from
  the benchmark's installed data: each method described in `bfcl/data/multi_turn_func_doc/*.json`
  becomes a `write` tool whose typed signature and docstring come from that description. Nothing of
  the benchmark is vendored; this module reads the installed `bfcl` package.
- The state (`BfclState`) is JSON: the class's scenario (what `_load_scenario` takes, as JSON text so that its key order survives), the calls made so
  far, and `attributes`, the backend instance's public attributes as JSON (what BFCL's state checker
  compares). Private attributes (the file system's current directory, seeded `random.Random`s, login
  flags kept under `_`) are not JSON, so an instance is never rebuilt from `attributes`: a call runs on
  the instance that has seen exactly the state's scenario and calls. That is the one the previous call
  left in this module's memo under that exact history (taken out, so no two sessions ever share one),
  or else a fresh instance from `_load_scenario(scenario)` with the recorded calls replayed. The backend
  is deterministic given its scenario and calls, so both give its full state, private parts included.
  In a sandbox worker the memo is per session (module globals are, `runtime.sandbox.isolation`); the
  in-process live environments (`eval.bfcl_live`) hold the instance in the session's state handle.
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

import orjson
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
    """A backend value as JSON: objects become their public attributes; back-references (to a value among
    `path`, the ids of the containers above it) become `{"$ref": "ancestor"}`.

    A dict or list that holds only JSON data (str-keyed dicts, lists, tuples, str, int, bool, finite
    floats; no None, no object, no subclass of a builtin, nothing orjson cannot write) is converted by an
    orjson round trip, which gives what the general walk gives, in C. orjson would also write
    `enum.Enum` and `uuid.UUID` members itself (the walk does not): no BFCL 26.3 backend holds either,
    and call arguments are JSON or Python literals, which never are.
    """
    if type(value) is dict or type(value) is list:
        fast = _json_data(value)
        if fast is not None:
            return fast
    return _to_json(value, set(path))


def _json_data(value: dict[str, Any] | list[Any]) -> Any:
    """A copy of `value` by orjson round trip when it holds only JSON data and no None (see `to_json`), else None."""
    try:
        encoded = orjson.dumps(value, default=_refuse, option=_FAST_JSON)
    except TypeError:  # orjson's JSONEncodeError: an object, a subclass, a cycle, a huge int
        return None
    # NaN and infinities come out as null: the walk writes them as their repr.
    return None if b"null" in encoded else orjson.loads(encoded)


_FAST_JSON = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_SUBCLASS


def _refuse(value: Any) -> Any:
    """orjson's `default`: anything it cannot write as JSON itself goes to the general walk."""
    raise TypeError(type(value).__name__)


_ATOMS = frozenset({str, int, bool, type(None)})
_FLOAT_EDGES = (float("inf"), float("-inf"))


_LEAVES = frozenset({str, int, bool, type(None), float})


def _plain(items: Any) -> bool:
    """Whether every item is a str, int, bool, None or finite float (exactly those types)."""
    kinds = set(map(type, items))
    if not kinds <= _LEAVES:
        return False
    return float not in kinds or all(item == item and item not in _FLOAT_EDGES for item in items if type(item) is float)


# Classes whose instances take the walk's object branch (no builtin base among those tested before it),
# recorded when first met: their instances skip the type tests on the way there.
_OBJECT_KINDS: set[type] = set()
_NOT_OBJECTS = (int, str, float, decimal.Decimal, datetime.date, datetime.time, dict, list, tuple, set, frozenset)


def _object(value: Any, attributes: dict[str, Any], ancestors: set[int]) -> Any:
    """The object branch of the walk: the public attributes, converted (`$ref` for an ancestor)."""
    key = id(value)
    if key in ancestors:
        return {"$ref": "ancestor"}
    public = {name: item for name, item in attributes.items() if not name.startswith("_")}
    if _plain(public.values()):
        return public
    ancestors.add(key)
    out = {name: _to_json(item, ancestors) for name, item in public.items()}
    ancestors.discard(key)
    return out


def _to_json(value: Any, ancestors: set[int]) -> Any:
    kind = type(value)
    if kind in _ATOMS:
        return value
    if kind in _OBJECT_KINDS:
        attributes = getattr(value, "__dict__", None)
        if attributes is not None:
            return _object(value, attributes, ancestors)
    if kind is float:
        return value if value == value and value not in _FLOAT_EDGES else repr(value)
    if isinstance(value, bool | int | str):  # subclasses (str enums among them) stay as they are
        return value
    if isinstance(value, float):
        return value if value == value and value not in _FLOAT_EDGES else repr(value)
    if isinstance(value, decimal.Decimal | datetime.date | datetime.time | datetime.datetime):
        return str(value)
    key = id(value)
    if key in ancestors:
        return {"$ref": "ancestor"}
    # A dict or list of plain leaves: what the general case below gives for it, without a call per item.
    if kind is dict and _plain(value.values()) and set(map(type, value)) <= {str}:
        return dict(value)
    if kind is list and _plain(value):
        return list(value)
    ancestors.add(key)
    if isinstance(value, dict):
        out: Any = {str(name): _to_json(item, ancestors) for name, item in value.items()}
    elif isinstance(value, list | tuple):
        out = [_to_json(item, ancestors) for item in value]
    elif isinstance(value, set | frozenset):
        out = sorted((_to_json(item, ancestors) for item in value), key=repr)
    elif hasattr(value, "__dict__"):
        if not issubclass(kind, _NOT_OBJECTS):
            _OBJECT_KINDS.add(kind)
        ancestors.discard(key)
        return _object(value, vars(value), ancestors)
    else:
        out = repr(value)
    ancestors.discard(key)
    return out


def _fresh(arguments: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of JSON arguments (a JSON round trip; `copy.deepcopy` for anything JSON cannot carry)."""
    try:
        copied: dict[str, Any] = orjson.loads(orjson.dumps(arguments))
    except TypeError:
        return copy.deepcopy(arguments)
    return copied


def new_instance(backend: str, scenario: dict[str, Any], long_context: bool, *, owned: bool = False) -> Any:
    """A fresh backend instance loaded with `scenario` (the way BFCL's executor builds one). The instance
    gets a deep copy of `scenario` unless `owned` says the caller hands over an object nobody else holds
    (one just parsed from JSON)."""
    _, _, stateless = BACKENDS[backend]
    instance = _CLASSES[backend]()
    if not stateless:
        instance._load_scenario(scenario if owned else copy.deepcopy(scenario), long_context=long_context)
    return instance


def parse_scenario(scenario: str) -> Any:
    """A state's scenario JSON text as Python data: orjson where it reads it (the same values in the same key
    order), `json` for what only `json` reads (NaN and infinities as `json.dumps` writes them, integers
    past 64 bits)."""
    try:
        return orjson.loads(scenario)
    except orjson.JSONDecodeError:
        return json.loads(scenario)


def run_call(instance: Any, name: str, arguments: dict[str, Any]) -> str:
    """One call on a live instance (on a copy of `arguments`), rendered as BFCL renders results."""
    try:
        result = getattr(instance, name)(**_fresh(arguments))
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
    state): all of them in one orjson round trip when they are JSON data (`to_json`), else one by one."""
    public = {key: value for key, value in vars(instance).items() if not key.startswith("_")}
    fast = _json_data(public)
    if fast is not None:
        return typing.cast(dict[str, Any], fast)
    return {key: value if type(value) in _ATOMS else to_json(value) for key, value in public.items()}


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


# Live instances left by the latest calls, each under the exact history it has seen: (backend, scenario,
# long-context flag, the calls as canonical JSON). A call whose state has that history takes the instance
# out (no one else can reach it then) instead of rebuilding it by replay; the backend is deterministic
# given its scenario and calls, so the two are indistinguishable. JSON text, not the values, makes the
# key exact (`1 == 1.0 == True` in Python). In a sandbox worker this module's globals are per session
# (`runtime.sandbox.isolation`), so a session keeps at most one entry; in-process it is bounded by
# `_LIVE_LIMIT`, oldest dropped first. Calls JSON cannot carry exactly (integers past 64 bits) are
# never memoised.
_History = tuple[str, str, bool, bytes]
_LIVE: dict[_History, Any] = {}
_LIVE_LIMIT = 16


def _history(state: BfclState) -> _History | None:
    try:
        calls = orjson.dumps([[call.name, call.arguments] for call in state.calls], option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return None
    return state.backend, state.scenario, state.long_context, calls


def live_instance(state: BfclState) -> Any:
    """The backend instance in `state`: taken from the memo of live instances, or rebuilt from the scenario
    by replaying the recorded calls."""
    key = _history(state)
    instance = _LIVE.pop(key, None) if key is not None else None
    if instance is None:
        instance = new_instance(state.backend, parse_scenario(state.scenario), state.long_context, owned=True)
        for past in state.calls:
            run_call(instance, past.name, past.arguments)
    return instance


def keep_live(state: BfclState, instance: Any) -> None:
    """Leave `instance`, which has seen exactly the history of `state`, for the next call on that history."""
    key = _history(state)
    if key is None:
        return
    while len(_LIVE) >= _LIVE_LIMIT:
        try:  # another thread may change the memo meanwhile: a memo, never a correctness matter
            _LIVE.pop(next(iter(_LIVE)), None)
        except (RuntimeError, StopIteration):
            break
    _LIVE[key] = instance


class BfclToolkit(Toolkit[BfclState]):
    """Base of the generated toolkits: take the live instance (or rebuild it), run one call, record it."""

    def invoke(self, name: str, arguments: dict[str, Any]) -> str:
        """Run backend method `name` with `arguments` on the instance in the state (`live_instance`), record
        the call in the state, leave the instance for the next call, and return the call's output.

        A state that is not a `BfclState` is a live handle's working copy (`eval.bfcl_live`, in-process
        only), which runs the call on the instance it holds: `state.run(name, arguments)`.
        """
        state = self.state
        if not isinstance(state, BfclState):
            output: str = typing.cast(Any, state).run(name, arguments)
            return output
        instance = live_instance(state)
        output = run_call(instance, name, arguments)
        state.calls.append(BfclCall(name=name, arguments=arguments))
        state.attributes = public_attributes(instance)
        keep_live(state, instance)
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
