"""Interpreter for the declarative expression and condition vocabulary.

Expressions are compiled once per environment into small Python closures over a `Scope`; the closures
only read JSON data and call fixed helpers, so nothing from a specification ever runs as code.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from typing import Any

import orjson

from envfactory.errors import ToolError
from envfactory.spec.declarative import (
    AllCond,
    AnyCond,
    ArgExpr,
    ArithExpr,
    CompareCond,
    ConstExpr,
    FieldExpr,
    ItemExpr,
    KeyExpr,
    LookupExpr,
    NotCond,
    NowExpr,
    PresenceCond,
    SumExpr,
)

_MISSING = object()


class Scope:
    """Everything an expression may read during one call (`now` is called only when an expression needs it)."""

    __slots__ = ("args", "item", "key", "lookup", "now", "target")

    def __init__(
        self,
        args: dict[str, Any],
        target: dict[str, Any] | None,
        key: str | None,
        now: Callable[[], str],
        lookup: Callable[[str, str], dict[str, Any] | None],
    ) -> None:
        """The call's arguments, the target record and its key (None before the target is read), a clock
        read lazily, and `lookup(collection, key)` for references."""
        self.args = args
        self.target = target
        self.key = key
        self.now = now
        self.lookup = lookup
        self.item: Any = None

    def with_item(self, item: Any) -> Scope:
        """A copy of this scope with `item` bound (the element a `for_each` is at)."""
        scope = Scope(self.args, self.target, self.key, self.now, self.lookup)
        scope.item = item
        return scope


def get_path(value: Any, path: str) -> Any:
    """Follow a dotted path through objects; `None` when any step is missing."""
    if not path:
        return value
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
        if value is None:
            return None
    return value


CompiledExpr = Callable[[Scope], Any]
CompiledCond = Callable[[Scope], bool]


def _number(value: Any, what: str) -> float | int:
    if type(value) is int or type(value) is float:
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    raise ToolError("invalid_arguments", f"{what} must be a number, got {value!r}")


_INT_MIN, _INT_MAX = -(1 << 63), (1 << 64) - 1  # the integers a state can hold (orjson's range)


def in_range(value: float | int, what: str) -> float | int:
    """A computed number, refused when a state cannot hold it: a float that overflowed to infinity
    (or NaN) or an integer beyond 64 bits would corrupt the hash or fail half-way through a commit."""
    if type(value) is float:
        if value - value == 0.0:  # false for infinities and NaN
            return value
    elif _INT_MIN <= value <= _INT_MAX:
        return value
    raise ToolError("invalid_arguments", f"{what} is out of range: {value!r}")


def compile_expr(expr: Any) -> CompiledExpr:
    """An expression of the declarative format as a function of the call's scope."""
    if isinstance(expr, ArgExpr):
        path, default = expr.path, expr.default
        if "." not in path:
            return lambda s: s.args.get(path, default)

        def arg_path(s: Scope) -> Any:
            found = get_path(s.args, path)
            return default if found is None else found

        return arg_path
    if isinstance(expr, ConstExpr):
        value = expr.value
        return lambda s: value
    if isinstance(expr, FieldExpr):
        fpath = expr.path
        if "." not in fpath:
            return lambda s: s.target.get(fpath) if s.target is not None else None
        return lambda s: get_path(s.target, fpath) if s.target is not None else None
    if isinstance(expr, ItemExpr):
        ipath = expr.path
        if ipath and "." not in ipath:
            return lambda s: s.item.get(ipath) if type(s.item) is dict else None
        return lambda s: get_path(s.item, ipath)
    if isinstance(expr, NowExpr):
        return lambda s: s.now()
    if isinstance(expr, KeyExpr):
        return lambda s: s.key
    if isinstance(expr, LookupExpr):
        coll, key_fn, lpath = expr.collection, compile_expr(expr.key), expr.path
        simple = "." not in lpath

        def lookup(s: Scope) -> Any:
            key = key_fn(s)
            record = s.lookup(coll, key) if isinstance(key, str) else None
            if record is None:
                raise ToolError("not_found", f"{coll} {key!r} not found")
            return record.get(lpath) if simple else get_path(record, lpath)

        return lookup
    if isinstance(expr, ArithExpr):
        return _compile_arith(expr.op, [compile_expr(a) for a in expr.args])
    if isinstance(expr, SumExpr):
        over, inner = compile_expr(expr.over), compile_expr(expr.expr)

        def total(s: Scope) -> Any:
            items = over(s) or []
            if not isinstance(items, list):
                raise ToolError("invalid_arguments", f"sum over a non-array value {items!r}")
            return in_range(sum(_number(inner(s.with_item(i)), "summed value") for i in items), "sum")

        return total
    raise TypeError(f"unsupported expression {type(expr).__name__}")  # unreachable for validated specs


def _compile_arith(op: str, parts: list[CompiledExpr]) -> CompiledExpr:
    what, result = f"operand of {op}", f"result of {op}"
    if len(parts) == 2:
        # The common binary case, without building a list per evaluation.
        left, right = parts
        if op == "add":
            return lambda s: in_range(_number(left(s), what) + _number(right(s), what), result)
        if op == "sub":
            return lambda s: in_range(_number(left(s), what) - _number(right(s), what), result)
        return lambda s: in_range(_number(left(s), what) * _number(right(s), what), result)

    def arith(s: Scope) -> Any:
        values = [_number(p(s), what) for p in parts]
        if op == "add":
            return in_range(sum(values), result)
        if op == "sub":
            return in_range(values[0] - sum(values[1:]), result)
        product: float | int = 1
        for v in values:
            product *= v
        return in_range(product, result)

    return arith


def _compare(op: str, left: Any, right: Any) -> bool:
    if op == "eq":
        return bool(left == right)
    if op == "ne":
        return bool(left != right)
    if op == "in":
        return isinstance(right, list) and left in right
    if op == "not_in":
        return not (isinstance(right, list) and left in right)
    if op == "contains":
        if isinstance(left, str) and isinstance(right, str):
            return right in left
        return isinstance(left, list) and right in left
    if op in _ORDERINGS:
        return ordered(op, left, right)
    raise TypeError(f"unsupported comparison {op}")


_ORDERINGS: dict[str, Callable[[Any, Any], Any]] = {
    "lt": operator.lt, "le": operator.le, "gt": operator.gt, "ge": operator.ge,
}


def ordered(op: str, left: Any, right: Any) -> bool:
    """`lt`/`le`/`gt`/`ge` over JSON values: false when either side is null or they do not compare
    (a number and a string), never an exception."""
    if left is None or right is None:
        return False
    try:
        return bool(_ORDERINGS[op](left, right))
    except TypeError:
        return False


def compile_cond(cond: Any) -> CompiledCond:
    """A condition of the declarative format as a predicate over the call's scope."""
    if isinstance(cond, CompareCond):
        op, left, right = cond.op, compile_expr(cond.left), compile_expr(cond.right)
        return lambda s: _compare(op, left(s), right(s))
    if isinstance(cond, PresenceCond):
        value = compile_expr(cond.value)
        if cond.op == "exists":
            return lambda s: value(s) is not None
        return lambda s: value(s) is None
    if isinstance(cond, AllCond):
        parts = [compile_cond(c) for c in cond.conditions]
        return lambda s: all(p(s) for p in parts)
    if isinstance(cond, AnyCond):
        parts = [compile_cond(c) for c in cond.conditions]
        return lambda s: any(p(s) for p in parts)
    if isinstance(cond, NotCond):
        inner = compile_cond(cond.condition)
        return lambda s: not inner(s)
    raise TypeError(f"unsupported condition {type(cond).__name__}")


_PLACEHOLDER = re.compile(r"\{(arg|field|item)(?:\.([A-Za-z_][A-Za-z0-9_.]*))?\}|\{key\}")


def render_message(template: str, scope: Scope) -> str:
    """Fill `{arg.x}`, `{field.x}`, `{item.x}` and `{key}` placeholders with values (data only)."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "{key}":
            return str(scope.key)
        source = {"arg": scope.args, "field": scope.target, "item": scope.item}[match.group(1)]
        value = get_path(source, match.group(2) or "")
        # JSON spelling (null, true, {"a": 1}) is what agents see everywhere else; strings stay bare.
        return value if isinstance(value, str) else orjson.dumps(value).decode()

    return _PLACEHOLDER.sub(replace, template)
