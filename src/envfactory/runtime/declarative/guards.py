"""Capacities, idempotency tokens and search filters of the declarative engine (compiler generation 2; part of `engine.py`).

Contract:
- `check_capacity(coll, record, records)`: `rule_violation` when adding `record` to a collection that
  declares a `CapacityDecl` would hold more than `max_records` records (with `per`: more records sharing
  `record[per]`). `records` are the collection's records as the transaction would leave them, the new
  one excluded. A record without a value of `per` counts against no limit.
- `replayed(plan, txn, arguments)`: for an operation with an `IdempotencyDecl` whose token argument is
  given, the first call's stored result when the tool already saw that token with the same arguments
  (the caller answers it without writing); `rule_violation` when the arguments differ; None otherwise.
- `remember(plan, txn, arguments, output)` stages the token record of a successful call in the same
  transaction as its writes: `{token: "<tool>:<token>", tool, arguments_digest, result}`.
- `search_match(record, filters, fields)` (list filter match `search`): whether `record` satisfies every
  filter of an AWS-style search argument, a list of `{name, operator, values}` (Braket `SearchJobs`):
  `name` a record field, `operator` EQUAL (the value is one of `values`), CONTAINS (a string containing
  one), LT/LTE/GT/GTE (against the first value) or BETWEEN (from the first to the second value). A
  filter naming no field of `fields` matches nothing; `invalid_arguments` for a filter that is not such
  an object, an unknown operator or too few values.
- The arguments' digest is the sha256 of their canonical JSON (sorted keys), the token argument left
  out, first 16 hex digits. Deterministic; nothing here reads a clock or a random source.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import orjson

from envfactory.errors import ToolError
from envfactory.runtime.declarative.expressions import ordered
from envfactory.runtime.declarative.plan import CompiledCollection, Plan, Transaction

__all__ = ["TOKEN_KEY", "arguments_digest", "check_capacity", "remember", "replayed", "search_match"]

TOKEN_KEY = "token"
"""The key field of a collection of idempotency tokens."""


def check_capacity(coll: CompiledCollection, record: dict[str, Any], records: Iterable[dict[str, Any]]) -> None:
    """Refuse a record past the collection's declared capacity (module contract)."""
    capacity = coll.capacity
    if capacity is None:
        return
    if capacity.per is None:
        held = sum(1 for _ in records)
        where = ""
    else:
        value = record.get(capacity.per)
        if value is None:
            return
        held = sum(1 for other in records if other.get(capacity.per) == value)
        where = f" with {capacity.per}={value!r}"
    if held >= capacity.max_records:
        raise ToolError("rule_violation", f"{coll.name} holds at most {capacity.max_records} records{where}"
                        f" ({held} already)" + (f": {capacity.quote}" if capacity.quote else ""))


def arguments_digest(arguments: dict[str, Any], token_arg: str) -> str:
    """The digest identifying a call's arguments, its token left out (module contract)."""
    rest = {k: v for k, v in arguments.items() if k != token_arg}
    return hashlib.sha256(orjson.dumps(rest, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def _token(plan: Plan, arguments: dict[str, Any]) -> str | None:
    decl = plan.idempotency
    if decl is None:
        return None
    value = arguments.get(decl.arg)
    return f"{plan.tool}:{value}" if isinstance(value, str) and value else None


def replayed(plan: Plan, txn: Transaction, arguments: dict[str, Any]) -> Any | None:
    """The first result for a repeated token with the same arguments; a conflict otherwise (module contract)."""
    token = _token(plan, arguments)
    if token is None or plan.idempotency is None:
        return None
    seen = txn.get(plan.idempotency.collection, token)
    if seen is None:
        return None
    if seen.get("arguments_digest") != arguments_digest(arguments, plan.idempotency.arg):
        raise ToolError("rule_violation", f"{plan.idempotency.arg} {arguments[plan.idempotency.arg]!r} was already "
                        f"used by {plan.tool} with other arguments (idempotency token conflict)", f"/{plan.idempotency.arg}")
    return orjson.loads(orjson.dumps(seen.get("result")))


def remember(plan: Plan, txn: Transaction, arguments: dict[str, Any], output: Any) -> None:
    """Stage the token record of a successful call (module contract)."""
    token = _token(plan, arguments)
    if token is None or plan.idempotency is None:
        return
    txn.put(plan.idempotency.collection, token, {
        TOKEN_KEY: token, "tool": plan.tool,
        "arguments_digest": arguments_digest(arguments, plan.idempotency.arg),
        "result": orjson.loads(orjson.dumps(output)),
    })


_SEARCH_ORDER = {"LT": "lt", "LTE": "le", "GT": "gt", "GTE": "ge"}


def search_match(record: dict[str, Any], filters: Any, fields: Iterable[str]) -> bool:
    """Whether `record` satisfies every search filter (module contract)."""
    known = set(fields)
    for number, flt in enumerate(filters if isinstance(filters, list) else [filters]):
        where = f"/filters/{number}"
        if not isinstance(flt, dict) or not isinstance(flt.get("name"), str):
            raise ToolError("invalid_arguments", f"filter {number} must be an object with a name", where)
        name, operator, values = flt["name"], flt.get("operator", "EQUAL"), flt.get("values")
        if not isinstance(values, list) or not values or (operator == "BETWEEN" and len(values) < 2):
            raise ToolError("invalid_arguments", f"filter {number}: values must hold what {operator} compares with", where)
        value = record.get(name) if name in known else None
        if operator == "EQUAL":
            kept = name in known and any(value == v or str(value) == str(v) for v in values)
        elif operator == "CONTAINS":
            kept = isinstance(value, str) and any(str(v) in value for v in values)
        elif operator in _SEARCH_ORDER:
            kept = ordered(_SEARCH_ORDER[operator], value, values[0])
        elif operator == "BETWEEN":
            kept = ordered("ge", value, values[0]) and ordered("le", value, values[1])
        else:
            raise ToolError("invalid_arguments", f"filter {number}: unknown operator {operator!r}", where)
        if not kept:
            return False
    return True
