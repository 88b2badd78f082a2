"""Work functions and their wire format, shared by every executor.

Contract:
- A work function is a module-level function `f(item: I) -> R` whose annotations name two `SpecModel`
  types; it is importable by its reference `"package.module:function"` in any worker (a process of
  the pool, a Ray worker on another machine), so nothing but that string and JSON bytes crosses the
  process boundary — no pickled objects.
- `run_encoded(reference, payload)` is what a worker runs: it imports the function, validates the item
  from JSON, calls it and answers `(True, result JSON bytes, "")` or, when the function raised,
  `(False, b"", reason)` with `reason` saying whether a retry may help (see `PERMANENT_PREFIX`).
- Deliberate errors (`EnvFactoryError`: bad input, a spec violated) are permanent: the same item fails
  the same way again. Anything else (an OSError such as a full disk, MemoryError, a crashed library)
  is transient and retried up to the executor's bound.
"""

from __future__ import annotations

import importlib
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, get_type_hints

from envfactory.errors import EnvFactoryError
from envfactory.spec import SpecModel

ItemT = TypeVar("ItemT", bound=SpecModel)
ResultT = TypeVar("ResultT", bound=SpecModel)

PERMANENT_PREFIX = "permanent: "
"""Reasons starting with this are not retried (the item itself is at fault)."""

WorkFunction = Callable[[ItemT], ResultT]


class ExecutorError(EnvFactoryError):
    """An executor cannot be used as asked (Ray not installed, a cluster unreachable, a bad function)."""


@dataclass(frozen=True, slots=True)
class Outcome(Generic[ResultT]):
    """What became of one item: `result` when `ok`, else `error` (the last reason) after `attempts` tries."""

    index: int
    key: str
    attempts: int
    result: ResultT | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the item gave a result."""
        return self.result is not None


@dataclass(frozen=True, slots=True)
class WorkSpec(Generic[ItemT, ResultT]):
    """A work function's reference and its item and result types, read from its annotations."""

    reference: str
    item_type: type[ItemT]
    result_type: type[ResultT]


def describe(function: Callable[..., Any]) -> WorkSpec[Any, Any]:
    """The `WorkSpec` of `function`; an `ExecutorError` when it is not a module-level typed function."""
    module = getattr(function, "__module__", None)
    qualname = getattr(function, "__qualname__", "")
    if not module or not qualname or "<" in qualname or "." in qualname:
        raise ExecutorError(f"{function!r} is not a module-level function; workers import work functions by name")
    if module == "__main__":
        raise ExecutorError(f"{qualname} is defined in the __main__ script; workers import work functions by "
                            "name, so define it in an importable module")
    try:
        hints = get_type_hints(function)
    except Exception as exc:  # annotations that do not resolve
        raise ExecutorError(f"{module}:{qualname}: cannot read its annotations: {exc}") from exc
    params = [name for name in hints if name != "return"]
    item_type, result_type = (hints.get(params[0]) if len(params) == 1 else None), hints.get("return")
    for what, kind in (("its one parameter", item_type), ("its return value", result_type)):
        if not (isinstance(kind, type) and issubclass(kind, SpecModel)):
            raise ExecutorError(f"{module}:{qualname}: {what} must be annotated with a SpecModel type")
    assert item_type is not None and result_type is not None
    return WorkSpec(f"{module}:{qualname}", item_type, result_type)


def resolve(reference: str) -> Callable[..., Any]:
    """Import the function named by `"package.module:function"`."""
    module_name, _, name = reference.partition(":")
    try:
        function = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as exc:
        raise ExecutorError(f"cannot import work function {reference!r} in this worker: {exc}") from exc
    if not callable(function):
        raise ExecutorError(f"{reference!r} is not callable")
    return function  # type: ignore[no-any-return]


def _reason(exc: BaseException) -> str:
    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" (at {last[0].filename.rsplit('/', 1)[-1]}:{last[0].lineno})" if last else ""
    message = str(exc).strip().splitlines()[0][:500] if str(exc).strip() else ""
    text = f"{type(exc).__name__}: {message}{where}"
    return PERMANENT_PREFIX + text if isinstance(exc, EnvFactoryError) else text


def run_encoded(reference: str, payload: bytes) -> tuple[bool, bytes, str]:
    """Run one item in this process (a worker's entry point); never raises for the function's errors."""
    try:
        spec = describe(resolve(reference))
        item = spec.item_type.model_validate_json(payload)
        result = resolve(reference)(item)
        if not isinstance(result, spec.result_type):
            raise ExecutorError(f"{reference} returned {type(result).__name__}, not {spec.result_type.__name__}")
        return True, result.to_json_bytes(), ""
    except Exception as exc:
        return False, b"", _reason(exc)


def is_permanent(reason: str) -> bool:
    """Whether a failure reason says the item itself is at fault (no retry)."""
    return reason.startswith(PERMANENT_PREFIX)


def item_key(item: SpecModel) -> str:
    """An item's key for records: its canonical hash (items carry no identity of their own)."""
    return item.canonical_hash()[:16]
