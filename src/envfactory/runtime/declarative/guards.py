"""Capacities and idempotency tokens of the declarative engine (compiler generation 2; part of `engine.py`).

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
- The arguments' digest is the sha256 of their canonical JSON (sorted keys), the token argument left
  out, first 16 hex digits. Deterministic; nothing here reads a clock or a random source.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import orjson

from envfactory.errors import ToolError
from envfactory.runtime.declarative.plan import CompiledCollection, Plan, Transaction

__all__ = ["TOKEN_KEY", "arguments_digest", "check_capacity", "remember", "replayed"]

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
