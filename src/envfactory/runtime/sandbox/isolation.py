"""Per-session module globals of a toolkit inside one sandbox worker.

A worker imports its toolkit module once and serves many sessions (state handles). A toolkit that
keeps anything in module globals (`CACHE = {}`, `COUNTER += 1`) or in data attributes of the classes
it defines (`class Shop(Toolkit): calls = 0`) would otherwise carry it from one session into another.
`SessionGlobals` gives every handle its own copy of that namespace:

- right after the import, a copy of the namespace that only `SessionGlobals` can reach is recorded as
  the pristine one (nothing changes it, so how each of its values is copied is decided once);
- before a call on a handle, the namespace of the handle that ran last is put aside and the handle's
  own is put in place (on its first call, a copy of the pristine one: values that cannot change are
  shared, a dict, list or set holding only such values is copied one level deep, anything else deeply);
- a fork starts from a deep copy of its source's namespace; a released or reloaded handle's is dropped.

What is isolated: every module global whose name is not a dunder, and the data attributes (plain
values and containers, not functions or descriptors) of classes the module defines (pydantic models
and enums excepted: their class attributes are their schema). Values that cannot
be deep-copied (open files, locks, modules, functions, classes) are shared, as is anything the toolkit
stores outside its module (other modules' attributes, builtins): CPython has no in-process boundary.
Swapping costs a dictionary copy per switch, and a scan of each class whose dict changed since the
previous switch (a class nothing was set on or deleted from, with no data attributes, is left alone);
a call on the handle already in place costs nothing.
"""

from __future__ import annotations

import contextlib
import copy
import enum
import operator
import types
from typing import Any, NamedTuple

_PLAIN = (bool, int, float, complex, str, bytes, type(None), list, dict, set, frozenset, tuple, bytearray)

Namespace = tuple[dict[str, Any], dict[type, dict[str, Any]]]


class SessionGlobals:
    """The per-handle namespaces of one toolkit module (see the module docstring). Not thread-safe:
    the worker serves one request at a time."""

    def __init__(self, module: types.ModuleType) -> None:
        """Record the module's own classes (not enums or pydantic models), whose class attributes are kept per
        handle along with the module's globals, and a private copy of the namespace as the pristine one."""
        self._module = module
        self._classes = [value for value in vars(module).values()
                         if isinstance(value, type) and value.__module__ == module.__name__
                         and not issubclass(value, enum.Enum) and not hasattr(value, "__pydantic_fields__")]
        # Each class's dict as the latest install (or capture) left it, with the data attributes it then had.
        self._seen: dict[type, _ClassRecord] = {}
        # A copy only this object can reach: nothing mutates it, so how to copy each value is decided once.
        self._pristine = self._copied(self._capture())
        self._to_copy = [(key, value, _flat(value)) for key, value in self._pristine[0].items() if not _immutable(value)]
        self._saved: dict[int, Namespace] = {}
        self._current: int | None = None

    def _capture(self) -> Namespace:
        names = {key: value for key, value in vars(self._module).items() if not key.startswith("__")}
        classes = {}
        for cls in self._classes:
            seen = self._seen.get(cls)
            if seen is not None and _unchanged(cls, seen):
                classes[cls] = dict(seen.attributes)  # the very values installed, still in place
            else:
                classes[cls] = {key: value for key, value in vars(cls).items()
                                if not key.startswith("__") and isinstance(value, _PLAIN)}
                self._seen[cls] = _record(cls, classes[cls])
        return names, classes

    @staticmethod
    def _copied(space: Namespace) -> Namespace:
        names, classes = space
        memo: dict[int, Any] = {}
        copied_names = {key: _copied_value(value, memo) for key, value in names.items()}
        copied_classes = {cls: {key: _copied_value(value, memo) for key, value in attrs.items()}
                          for cls, attrs in classes.items()}
        return copied_names, copied_classes

    def _fresh(self) -> Namespace:
        """A new session's copy of the pristine namespace: what `_copied` gives, with the values that cannot
        change shared in place and the containers of such values copied one level deep."""
        names, classes = self._pristine
        memo: dict[int, Any] = {}
        copied_names = dict(names)
        for key, value, flat in self._to_copy:
            copied_names[key] = _flat_copy(value, memo) if flat else _copied_value(value, memo)
        copied_classes = {cls: {key: _copied_value(value, memo) for key, value in attrs.items()}
                          for cls, attrs in classes.items()}
        return copied_names, copied_classes

    def _install(self, space: Namespace) -> None:
        names, classes = space
        namespace = vars(self._module)
        for key in [key for key in namespace if not key.startswith("__")]:
            del namespace[key]
        namespace.update(names)
        for cls, attrs in classes.items():
            seen = self._seen.get(cls)
            if not attrs and seen is not None and not seen.attributes and _unchanged(cls, seen):
                continue  # no data attributes there, none to put there
            for key in [key for key, value in vars(cls).items()
                        if not key.startswith("__") and isinstance(value, _PLAIN) and key not in attrs]:
                _try(delattr, cls, key)
            for key, value in attrs.items():
                _try(setattr, cls, key, value)
            self._seen[cls] = _record(cls, attrs)

    def enter(self, handle: int) -> None:
        """Put `handle`'s namespace in place (before a call on it)."""
        if self._current == handle:
            return
        if self._current is not None:
            self._saved[self._current] = self._capture()
        space = self._saved.pop(handle, None)
        self._install(space if space is not None else self._fresh())
        self._current = handle

    def fork(self, source: int, handle: int) -> None:
        """`handle` starts with a copy of `source`'s namespace."""
        self.drop(handle)
        if source == self._current:
            self._saved[handle] = self._copied(self._capture())
        elif source in self._saved:
            self._saved[handle] = self._copied(self._saved[source])

    def drop(self, handle: int) -> None:
        """Forget `handle`'s namespace (released, or loaded with a new state: a new session)."""
        self._saved.pop(handle, None)
        if self._current == handle:
            self._current = None  # what is in place now belongs to nobody; the next `enter` replaces it


# Values of these types cannot be changed in place, so a session may share them: `copy.deepcopy` gives
# back the same object for most of them anyway (for modules it fails, and then the value is shared too),
# and typing's generic aliases and unions are immutable and hashable, only slower to rebuild.
_IMMUTABLE = frozenset({
    bool, int, float, complex, str, bytes, type(None), type(Ellipsis), range, type, types.FunctionType,
    types.BuiltinFunctionType, types.ModuleType, types.GenericAlias, types.UnionType,
})


# Typing constructs are immutable and hashable; `__future__` features (`annotations`, in nearly every
# toolkit module) are constants describing compiler flags.
_CONSTANT_MODULES = frozenset({"typing", "__future__"})


def _immutable(value: Any) -> bool:
    """Whether `value` is of an immutable type above, a class (whatever its metaclass: `deepcopy` shares
    classes too), a typing construct, a `__future__` feature, or a tuple or frozenset of such."""
    kind = type(value)
    if kind in _IMMUTABLE or kind.__module__ in _CONSTANT_MODULES or isinstance(value, type):
        return True
    return (kind is tuple or kind is frozenset) and all(_immutable(item) for item in value)


def _copied_value(value: Any, memo: dict[int, Any]) -> Any:
    """A session's own copy of a namespace value (shared where it cannot change or cannot be copied)."""
    if _immutable(value):
        return value
    try:
        return copy.deepcopy(value, memo)
    except Exception:
        return value


def _flat(value: Any) -> bool:
    """Whether `value` is exactly a dict, list or set holding only values (and keys) `_immutable` accepts: a
    copy one level deep is then as independent as a deep one."""
    kind = type(value)
    if kind is dict:
        return all(_immutable(key) and _immutable(item) for key, item in value.items())
    return (kind is list or kind is set) and all(_immutable(item) for item in value)


def _flat_copy(value: Any, memo: dict[int, Any]) -> Any:
    """`_copied_value` of a `_flat` container (same memo, so values shared between globals stay shared)."""
    key = id(value)
    copied = memo.get(key)
    if copied is None:
        copied = memo[key] = type(value)(value)
    return copied


class _ClassRecord(NamedTuple):
    """A class's dict as last seen (its keys and the identities of its values) and the data attributes it
    had then."""

    keys: tuple[str, ...]
    values: tuple[Any, ...]
    attributes: dict[str, Any]


def _record(cls: type, attributes: dict[str, Any]) -> _ClassRecord:
    space = vars(cls)
    return _ClassRecord(tuple(space), tuple(space.values()), attributes)


def _unchanged(cls: type, seen: _ClassRecord) -> bool:
    """Whether nothing was set on or deleted from `cls` since `seen` (same keys, the very same values)."""
    space = vars(cls)
    return len(space) == len(seen.keys) and tuple(space) == seen.keys and all(map(operator.is_, space.values(), seen.values))


def _try(fn: Any, *args: Any) -> None:
    with contextlib.suppress(AttributeError, TypeError):  # a metaclass that refuses: that attribute stays shared
        fn(*args)
