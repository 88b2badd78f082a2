"""Scripted + seeded-random episodes of schema-guided calls over one environment (used by `demo`).

An episode opens a session on the environment's default seed state and runs these phases in order:

1. **discover**: every read tool that needs no identifier: tools without required arguments, usually
   the `list_*` tools, and search tools, which get short queries (`""`, then `"e"`, then `"a"`) until one
   succeeds. Their outputs fill the value pool.
2. **sweep**: every tool once, in declaration order, with arguments generated from its input schema.
3. **probes**: an unknown tool name and a malformed-JSON argument string. They must come back as the
   typed errors `unknown_tool` and `invalid_arguments`.
4. **random**: `random_calls` calls. Each picks a tool with the seeded RNG and generates its arguments.
   Halfway through, the session is snapshotted and forked. The fork makes its own calls, and the
   parent must not see them.
5. **checks**: snapshot JSON round trip, then restore back to the midpoint and forward to the end. Then
   a fresh session with the same seed replays the call log, and must give identical results and the
   same final hash.

Identifiers come from live state. Every string in tool outputs is harvested into a pool, by field name
and by record shape. An argument that names a record is drawn from records of the right shape, for
example `get_order(id)` from order records and `customer_id` from customer records. A `*_token` argument
is drawn from `next_*_token` outputs. Other strings are invented. Everything is a function of the seed: nothing here reads the clock or the global RNG.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from envfactory.runtime import Environment, Session, open_session
from envfactory.spec import Snapshot, ToolCall, ToolResult, ToolSpec, content_hash
from envfactory.spec.schema_tools import deref, property_names
from envfactory.verify.argsgen import generate_arguments, harvest_values

FORK_CALLS = 20
DISCOVERY_QUERIES = ("", "e", "a")
UNKNOWN_TOOL = "no_such_tool"
MALFORMED_ARGUMENTS = '{"unterminated": '

Progress = Callable[[int], None]


@dataclass(slots=True)
class EpisodeResult:
    env: str
    ref: str
    seed: int
    initial_hash: str
    final_hash: str
    log: list[tuple[ToolCall, ToolResult]]
    fork_calls: int
    fork_changes: int
    checks: dict[str, bool] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(self.checks.values())

    def error_counts(self) -> dict[str, int]:
        counts = Counter(result.error.kind for _, result in self.log if result.error is not None)
        return dict(sorted(counts.items()))

    def ok_count(self) -> int:
        return sum(1 for _, result in self.log if result.error is None)

    def record(self) -> dict[str, Any]:
        """The episode as one JSON object (a line of episodes.jsonl): counts, hashes and checks only."""
        per_tool: dict[str, dict[str, int]] = {}
        for call, result in self.log:
            entry = per_tool.setdefault(call.tool, {"calls": 0, "ok": 0})
            entry["calls"] += 1
            entry["ok"] += result.error is None
        return {
            "env": self.env,
            "ref": self.ref,
            "seed": self.seed,
            "calls": len(self.log),
            "ok": self.ok_count(),
            "errors": self.error_counts(),
            "tools": dict(sorted(per_tool.items())),
            "fork": {"calls": self.fork_calls, "changes": self.fork_changes},
            "initial_hash": self.initial_hash,
            "final_hash": self.final_hash,
            "log_hash": content_hash([call_record(call, result) for call, result in self.log]),
            "checks": dict(sorted(self.checks.items())),
        }


def call_record(call: ToolCall, result: ToolResult) -> dict[str, Any]:
    """One call and its result as JSON data (a line of calls/<env>.jsonl)."""
    return {"call": call.model_dump(mode="json"), "result": result.model_dump(mode="json")}


def planned_calls(env: Environment, random_calls: int) -> int:
    """About how many tool calls `run_episode` makes (for progress bars): the log, the fork and the replay
    of the log. Discovery may retry a search with another query, so the real number can be higher."""
    pool = ValuePool(env.spec.tools)
    log = len(discovery_calls(env.spec.tools, pool)) + len(env.spec.tools) + 2 + random_calls
    return 2 * log + FORK_CALLS


def discovery_calls(tools: list[ToolSpec], pool: ValuePool) -> list[tuple[ToolSpec, list[dict[str, Any]]]]:
    """Read tools callable without knowing any identifier, each with the argument sets to try in order.

    Tools without required arguments are called with `{}`. Search-like tools whose required arguments
    are plain strings get the short queries of `DISCOVERY_QUERIES`, until one succeeds.
    """
    plans: list[tuple[ToolSpec, list[dict[str, Any]]]] = []
    for tool in tools:
        if tool.effect != "read":
            continue
        required = tool.input_schema.get("required")
        names = [str(n) for n in required] if isinstance(required, list) else []
        properties = tool.input_schema.get("properties")
        schemas = properties if isinstance(properties, dict) else {}
        if not names:
            plans.append((tool, [{}]))
            continue
        if any(pool.is_identifier(name) for name in names):
            continue
        fixed: dict[str, Any] = {}
        free: list[str] = []
        for name in names:
            sub = schemas.get(name)
            enum = sub.get("enum") if isinstance(sub, dict) else None
            if isinstance(enum, list) and enum:
                fixed[name] = enum[0]
            elif isinstance(sub, dict) and sub.get("type") == "string" and "format" not in sub:
                free.append(name)
            else:
                break
        else:
            plans.append((tool, [{**fixed, **dict.fromkeys(free, query)} for query in DISCOVERY_QUERIES]))
    return plans


# -- the value pool ------------------------------------------------------------------------------------

_LIST = "[]"
"""Record path meaning: the output itself is a list of records."""

_NAME_KEYWORDS = ("properties", "items", "anyOf", "oneOf", "allOf")
"""Where the value pool looks for property names in an input schema (`$ref`s followed, 8 levels deep)."""


def _shape_id(record: Mapping[str, Any]) -> str:
    """Records of one type share a shape: the schema's `title` when it has one (pydantic), else a hash."""
    title = record.get("title")
    if isinstance(title, str) and title:
        return "title:" + re.sub(r"(?<!^)(?=[A-Z])", "_", title).lower()
    return content_hash({k: v for k, v in record.items() if k not in ("$defs", "description")})


def _fields(record: Mapping[str, Any]) -> frozenset[str]:
    properties = record.get("properties")
    return frozenset(properties) if isinstance(properties, Mapping) else frozenset()


def _records_of(schema: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(where the records are in an output, their shape): the output itself (None), a list (`_LIST`),
    or the list under one property of a small envelope object such as `{"items": [...], "next_page_token"}`."""
    top = deref(schema, schema)
    if not isinstance(top, Mapping):
        return None, None
    if top.get("type") == "array":
        items = deref(top.get("items"), schema)
        if isinstance(items, Mapping) and items.get("type") == "object":
            return _LIST, _shape_id(items)
        return None, None
    properties = top.get("properties")
    if top.get("type") != "object" or not isinstance(properties, Mapping):
        return None, None
    for name, sub in properties.items():
        sub = deref(sub, schema)
        items = deref(sub.get("items"), schema) if isinstance(sub, Mapping) and sub.get("type") == "array" else None
        if isinstance(items, Mapping) and items.get("type") == "object" and len(properties) <= 3:
            return str(name), _shape_id(items)
    return None, _shape_id(top)


def _noun(name: str) -> str | None:
    """`customer_id` → `customer`, `user_ids` → `user`; None for other names."""
    for suffix in ("_ids", "_id"):
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return None


class ValuePool:
    """Live string values harvested from tool outputs, by field name and by record shape."""

    def __init__(self, tools: list[ToolSpec]) -> None:
        self.by_name: dict[str, list[str]] = {}
        self.by_shape: dict[str, dict[str, list[str]]] = {}
        self._records: dict[str, tuple[str | None, str | None]] = {t.name: _records_of(t.output_schema) for t in tools}
        fields: dict[str, frozenset[str]] = {}
        for tool in tools:
            where, shape = self._records[tool.name]
            if shape is not None and where is None:
                fields[shape] = _fields(deref(tool.output_schema, tool.output_schema))
        # nouns addressable by key. Declarative: get_order(id) returns order records keyed by `id`.
        # Pydantic: records titled "User" are keyed by `id`, so `user_id` names one.
        self._keys: dict[str, tuple[str, str]] = {}
        for tool in tools:
            required = tool.input_schema.get("required")
            where, shape = self._records[tool.name]
            if tool.effect != "read" or where is not None or shape is None or "_" not in tool.name:
                continue
            if isinstance(required, list) and len(required) == 1:
                noun, key = tool.name.split("_", 1)[1], str(required[0])
                if key not in fields.get(shape, frozenset()) and key == f"{noun}_id":
                    key = "id"  # get_event(event_id) returns the record whose `id` it is
                if key in fields.get(shape, frozenset()):
                    self._keys.setdefault(noun, (shape, key))
        for _, shape in self._records.values():
            if shape is not None and shape.startswith("title:"):
                self._keys.setdefault(shape.removeprefix("title:"), (shape, "id"))
        self._key_fields = {key for _, key in self._keys.values()} | {"id"}

    def copy(self) -> ValuePool:
        other = ValuePool.__new__(ValuePool)
        other.by_name = {k: list(v) for k, v in self.by_name.items()}
        other.by_shape = {s: {k: list(v) for k, v in fields.items()} for s, fields in self.by_shape.items()}
        other._records, other._keys, other._key_fields = self._records, self._keys, self._key_fields
        return other

    def is_identifier(self, name: str) -> bool:
        return name in self._key_fields or _noun(name) is not None

    def harvest(self, tool: str, output: Any) -> None:
        harvest_values(output, self.by_name)
        where, shape = self._records.get(tool, (None, None))
        if shape is None:
            return
        if where is None:
            records = [output]
        elif where == _LIST:
            records = output if isinstance(output, list) else []
        else:
            records = output.get(where, []) if isinstance(output, dict) else []
        bucket = self.by_shape.setdefault(shape, {})
        for record in records if isinstance(records, list) else []:
            if isinstance(record, dict):
                harvest_values({k: v for k, v in record.items() if isinstance(v, str)}, bucket)

    def view(self, tool: ToolSpec) -> dict[str, list[str]]:
        """The pool `generate_arguments` gets for `tool`: identifier-like names only, each drawn from
        records of the right shape where that is known."""
        _, own_shape = self._records.get(tool.name, (None, None))
        own = self.by_shape.get(own_shape, {}) if own_shape is not None else {}
        required = tool.input_schema.get("required")
        required_names = {str(r) for r in required} if isinstance(required, list) else set()
        view: dict[str, list[str]] = {}
        names = property_names(tool.input_schema, root=tool.input_schema, through=_NAME_KEYWORDS, max_depth=8)
        for name in dict.fromkeys(names):
            values: list[str] = []
            noun = _noun(name)
            if name in self._key_fields and name in required_names and name in own:
                values = own[name]  # the record this tool addresses: get_order(id) → order ids
            elif noun is not None:
                shape, key = self._keys.get(noun, (None, None))
                if shape is not None and key is not None:
                    values = list(self.by_shape.get(shape, {}).get(key, []))
                values += [v for v in self.by_name.get(name, []) if v not in values]
            elif name in self._key_fields:
                values = self.by_name.get(name, [])
            elif name.endswith("_token"):
                values = self.by_name.get(f"next_{name}", [])  # page_token ← next_page_token
            if values:
                view[name] = values
        return view


# -- the episode ----------------------------------------------------------------------------------------


def _rng(seed: int, env: str, stream: str) -> random.Random:
    # str seeds are hashed with SHA-512 by `random`, so this is stable across processes
    return random.Random(f"envfactory-demo:{seed}:{env}:{stream}")


def _random_calls(
    session: Session, pool: ValuePool, rng: random.Random, count: int, progress: Progress | None
) -> None:
    tools = session.tools
    for _ in range(count):
        tool = tools[rng.randrange(len(tools))]
        _call(session, pool, tool.name, generate_arguments(tool.input_schema, rng, pool.view(tool)), progress)


def _call(session: Session, pool: ValuePool, tool: str, arguments: Any, progress: Progress | None) -> ToolResult:
    result = session.call(tool, arguments)
    if result.error is None:
        pool.harvest(tool, result.output)
    if progress is not None:
        progress(1)
    return result


def run_episode(env: Environment, seed: int, random_calls: int, progress: Progress | None = None) -> EpisodeResult:
    """Run one episode (see the module docstring) and return its log, hashes and checks."""
    rng = _rng(seed, env.name, "main")
    checks: dict[str, bool] = {}
    tools = env.spec.tools
    pool = ValuePool(tools)
    with open_session(env, None, seed=seed) as session:
        initial_hash = session.hash()
        for tool, attempts in discovery_calls(tools, pool):
            for arguments in attempts:
                if _call(session, pool, tool.name, arguments, progress).error is None:
                    break
        for tool in tools:
            _call(session, pool, tool.name, generate_arguments(tool.input_schema, rng, pool.view(tool)), progress)
        unknown = _call(session, pool, UNKNOWN_TOOL, {}, progress)
        malformed = _call(session, pool, tools[0].name, MALFORMED_ARGUMENTS, progress)
        checks["typed_errors"] = (
            unknown.error is not None and unknown.error.kind == "unknown_tool"
            and malformed.error is not None and malformed.error.kind == "invalid_arguments"
        )

        first_half = random_calls // 2
        _random_calls(session, pool, rng, first_half, progress)
        midpoint = session.snapshot()
        with session.fork() as fork:
            _random_calls(fork, pool.copy(), _rng(seed, env.name, "fork"), FORK_CALLS, progress)
            fork_changes = len(session.diff(fork).changes)
        checks["fork_isolated"] = session.hash() == midpoint.state_hash
        _random_calls(session, pool, rng, random_calls - first_half, progress)

        final_hash = session.hash()
        final = Snapshot.model_validate_json(session.snapshot().to_json_bytes())
        middle = Snapshot.model_validate_json(midpoint.to_json_bytes())
        checks["snapshot_roundtrip"] = final.state_hash == final_hash and middle == midpoint
        session.restore(middle)
        rewound = session.hash() == midpoint.state_hash
        session.restore(final)
        checks["restore"] = rewound and session.hash() == final_hash
        log = session.log

    checks["replay_identical"] = _replays(env, seed, log, final_hash, progress)
    return EpisodeResult(
        env=env.name, ref=env.spec.ref, seed=seed, initial_hash=initial_hash, final_hash=final_hash,
        log=log, fork_calls=FORK_CALLS, fork_changes=fork_changes, checks=checks,
    )


def _replays(
    env: Environment, seed: int, log: list[tuple[ToolCall, ToolResult]], final_hash: str, progress: Progress | None
) -> bool:
    """Same calls + same seed ⇒ same results and the same final state (DESIGN §4)."""
    identical = True
    with open_session(env, None, seed=seed) as replay:
        for call, original in log:
            arguments = call.raw_arguments if call.raw_arguments is not None else call.arguments
            again = replay.call(call.tool, arguments, call.id)
            if progress is not None:
                progress(1)
            same_error = (again.error is None) == (original.error is None) and (
                again.error is None or (original.error is not None and again.error.kind == original.error.kind)
            )
            identical = identical and same_error and again.output == original.output
        return identical and replay.hash() == final_hash
