"""Binding: a chain step's binding plan turned into real arguments (DESIGN §5–6).

Contract:
- `bind_step(...)` returns the arguments of one step and, per top-level argument, where its value came
  from (`user` or `step:<k>`). A `StepOutput` binding takes the value at the output path of that earlier
  step's recorded result; when the path crosses an array, one element is chosen (with `rng`) and every
  binding of the same step that crosses the same array takes the same element, so `items[].id` and
  `items[].name` describe one record.
- A value the user states comes from the state where the argument identifies something: the target
  key of a get/update/patch/delete, a key of a referenced collection, or the value of the field a
  listing filters on (so the listing finds something). Records grounded for the task are preferred.
  A shared user-level entity of a multi-environment task (email, date, person, place, amount) goes
  into every argument of that kind. Anything else is generated from the argument's schema.
- Writes get a little more than their required arguments: a patch or update always changes at least
  one record field; a create sets up to two optional fields. Transition fields are left alone (their
  allowed values depend on the record), as are masked arguments (paging, sorting).
- Everything comes from `rng`; `BindError` says why a step cannot be bound.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from envfactory.spec import ChainStep, StepOutput
from envfactory.spec.schema_sample import generate_value
from envfactory.synth.envs import SynthEnv, ToolFacts, shared_for
from envfactory.verify.argsgen import harvest_values

PREFER_TASK_RECORDS = 0.8
OPTIONAL_FIELD_PROBABILITY = 0.4
MAX_OPTIONAL_FIELDS = 2
_MISSING = object()


class BindError(ValueError):
    """A step's arguments cannot be bound; `reason` is short and id-free, the message specific."""

    def __init__(self, reason: str, message: str) -> None:
        """`reason`: the short, id-free cause (funnels count it); `message`: the full explanation."""
        super().__init__(message)
        self.reason = reason


@dataclass(slots=True)
class BindContext:
    """What binding one step may read: the environment's current state and the task's own records."""

    state: Any
    task_keys: Mapping[str, list[str]]
    shared: Mapping[str, Any]
    rng: random.Random
    pool: dict[str, list[str]] = field(default_factory=dict)
    filter_record: dict[str, Any] | None = None
    """the record whose field values every filter of one listing takes (chosen once per step)"""


@dataclass(frozen=True, slots=True)
class BoundStep:
    """One step's bound call: the environment's tool name, its arguments, and per top-level argument where
    its value came from (`user`: stated by the user; `step:<k>`: the output of chain step k)."""

    tool: str
    arguments: dict[str, Any]
    sources: dict[str, str]


def top_name(path: str) -> str:
    """The top-level argument of a field path (`items[].id` → `items`)."""
    return path.split(".", 1)[0].removesuffix("[]")


def resolve_output(output: Any, path: str, memo: dict[tuple[int, str], int], step: int,
                   rng: random.Random) -> Any:
    """The value at `path` of an output; arrays are crossed at one chosen element (see the contract)."""
    return _resolve(output, path.split("."), "", memo, step, rng)


def _resolve(value: Any, parts: list[str], prefix: str, memo: dict[tuple[int, str], int], step: int,
             rng: random.Random) -> Any:
    for position, part in enumerate(parts):
        name = part.removesuffix("[]")
        prefix = f"{prefix}.{name}" if prefix else name
        if name:
            if not isinstance(value, dict) or name not in value:
                return _MISSING
            value = value[name]
        if part.endswith("[]"):
            if not isinstance(value, list) or not value:
                return _MISSING
            rest = parts[position + 1:]
            index = memo.get((step, prefix))
            if index is not None and index < len(value):
                return _resolve(value[index], rest, prefix, memo, step, rng)
            order = list(range(len(value)))
            rng.shuffle(order)
            for index in order:  # an element where the rest of the path exists
                found = _resolve(value[index], rest, prefix, memo, step, rng)
                if found is not _MISSING and found is not None:
                    memo[(step, prefix)] = index
                    return found
            return _MISSING
    return value


def set_path(arguments: dict[str, Any], path: str, value: Any) -> None:
    """Set `value` at an input field path, creating objects and one-element arrays on the way."""
    node: Any = arguments
    parts = path.split(".")
    for position, part in enumerate(parts):
        name, crosses = part.removesuffix("[]"), part.endswith("[]")
        last = position == len(parts) - 1
        if last and not crosses:
            node[name] = value
            return
        if crosses:
            items = node.get(name)
            if not isinstance(items, list) or not items:
                items = [value] if last else [{}]
                node[name] = items
            elif last:
                items[0] = value
            if last:
                return
            if not isinstance(items[0], dict):
                items[0] = {}
            node = items[0]
        else:
            child = node.get(name)
            if not isinstance(child, dict):
                child = {}
                node[name] = child
            node = child


def _resolve_ref(root: Mapping[str, Any], schema: Any) -> Any:
    for _ in range(16):
        if not isinstance(schema, dict) or "$ref" not in schema:
            return schema
        ref = str(schema["$ref"])
        target: Any = root
        for token in ref.removeprefix("#/").split("/") if ref.startswith("#/") else []:
            target = target.get(token) if isinstance(target, dict) else None
        schema = target if isinstance(target, dict) else {}
    return schema


def _branch(root: Mapping[str, Any], schema: Any, want_object: bool) -> Any:
    schema = _resolve_ref(root, schema)
    if not isinstance(schema, dict):
        return {}
    for key in ("anyOf", "oneOf"):
        branches = schema.get(key)
        if isinstance(branches, list) and branches:
            resolved = [_resolve_ref(root, b) for b in branches]
            usable = [b for b in resolved if isinstance(b, dict) and b.get("type") != "null"]
            objects = [b for b in usable if "properties" in b or "items" in b]
            pick = (objects if want_object and objects else usable) or [{}]
            return pick[0]
    return schema


def leaf_schema(root: Mapping[str, Any], path: str) -> Any:
    """The schema of the value at an input field path (`{}` when the schema does not say)."""
    node: Any = root
    parts = path.split(".")
    for position, part in enumerate(parts):
        more = position < len(parts) - 1 or part.endswith("[]")
        node = _branch(root, node, True)
        props = node.get("properties") if isinstance(node, dict) else None
        node = props.get(part.removesuffix("[]"), {}) if isinstance(props, dict) else {}
        if part.endswith("[]"):
            node = _branch(root, node, True)
            node = node.get("items", {}) if isinstance(node, dict) else {}
        node = _branch(root, node, more and position < len(parts) - 1)
    return node if isinstance(node, dict) else {}


def _records(ctx: BindContext, collection: str) -> dict[str, Any]:
    state = ctx.state if isinstance(ctx.state, dict) else {}
    records = state.get("collections", {}).get(collection, {})
    return records if isinstance(records, dict) else {}


def _pick_key(ctx: BindContext, collection: str) -> str:
    records = _records(ctx, collection)
    if not records:
        raise BindError("no record to refer to", f"{collection} has no records")
    own = [k for k in ctx.task_keys.get(collection, []) if k in records]
    if own and ctx.rng.random() < PREFER_TASK_RECORDS:
        return ctx.rng.choice(own)
    return ctx.rng.choice(sorted(records))


def _field_value(ctx: BindContext, collection: str, path: str) -> Any:
    """The value of `path` in the record the step's filters describe (one record for every filter)."""
    if ctx.filter_record is None:
        records = _records(ctx, collection)
        if not records:
            return _MISSING
        own = [k for k in ctx.task_keys.get(collection, []) if k in records]
        key = ctx.rng.choice(own) if own else ctx.rng.choice(sorted(records))
        ctx.filter_record = records[key] if isinstance(records[key], dict) else {}
    value: Any = ctx.filter_record
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if value is None or isinstance(value, dict | list):
        return _MISSING
    return value


def _fits(value: Any, schema: Mapping[str, Any]) -> bool:
    enum = schema.get("enum")
    if isinstance(enum, list):
        return value in enum
    kind = schema.get("type")
    if kind is None:
        return isinstance(value, str | int | float) and not isinstance(value, bool)
    if kind == "string":
        return isinstance(value, str)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return False


def user_value(senv: SynthEnv, facts: ToolFacts, path: str, root: Mapping[str, Any], ctx: BindContext) -> Any:
    """A value the user states for input `path` (see the module contract)."""
    schema = leaf_schema(root, path)
    name = top_name(path)
    if path == name:
        if name == facts.key_arg and facts.kind not in (None, "create") and facts.collection:
            return _pick_key(ctx, facts.collection)
        if name in facts.filters and facts.collection:
            value = _field_value(ctx, facts.collection, facts.filters[name])
            if value is not _MISSING and _fits(value, schema):
                return value
        if name in facts.references:
            return _pick_key(ctx, facts.references[name])
        value = shared_for(name, facts.entities.get(name), ctx.shared)
        if value is not None and _fits(value, schema):
            return value
    leaf = path.rsplit(".", 1)[-1].removesuffix("[]")
    return generate_value(schema, ctx.rng, ctx.pool, name=leaf)


def _transition_fields(senv: SynthEnv, facts: ToolFacts) -> set[str]:
    if senv.model is None or facts.collection is None:
        return set()
    return {t.field for t in senv.model.collections[facts.collection].transitions}


def _extras(senv: SynthEnv, facts: ToolFacts, root: Mapping[str, Any], arguments: dict[str, Any],
            sources: dict[str, str], ctx: BindContext) -> None:
    properties = root.get("properties")
    props: dict[str, Any] = properties if isinstance(properties, dict) else {}
    blocked = _transition_fields(senv, facts) | set(facts.masked) | set(facts.references)
    if facts.key_arg:
        blocked.add(facts.key_arg)
    open_fields = sorted(p for p in props if p not in arguments and p not in blocked)
    for name in open_fields:
        value = shared_for(name, facts.entities.get(name), ctx.shared)
        if value is not None and _fits(value, leaf_schema(root, name)):
            arguments[name] = value
            sources[name] = "user"
    record_fields = [p for p in open_fields if p not in arguments and (p in facts.record_fields or facts.kind is None)]
    changes = [p for p in arguments if p in facts.record_fields]
    if facts.kind in ("update", "patch") and not changes and not facts.assigns:
        if not record_fields:
            raise BindError("nothing to change", f"{facts.name}: no record field can be changed")
        chosen = [ctx.rng.choice(record_fields)]
    else:
        chosen = [p for p in record_fields if ctx.rng.random() < OPTIONAL_FIELD_PROBABILITY][:MAX_OPTIONAL_FIELDS]
    for name in chosen:
        arguments[name] = user_value(senv, facts, name, root, ctx)
        sources[name] = "user"


def bind_step(senv: SynthEnv, step: ChainStep, outputs: list[Any], ctx: BindContext) -> BoundStep:
    """Arguments for one chain step from its binding plan, earlier outputs and the state."""
    tool = senv.tool_name(step.tool)
    facts = senv.facts[tool]
    root = senv.env.tools[tool].spec.input_schema
    if senv.model is None and not ctx.pool:
        harvest_values(ctx.state, ctx.pool)
    arguments: dict[str, Any] = {}
    sources: dict[str, str] = {}
    memo: dict[tuple[int, str], int] = {}
    for binding in step.bindings:
        source = binding.source
        if isinstance(source, StepOutput):
            if source.step >= len(outputs):
                raise BindError("step output missing", f"{tool}: step {source.step} has not run")
            value = resolve_output(outputs[source.step], source.output, memo, source.step, ctx.rng)
            if value is _MISSING:
                if binding.required:
                    raise BindError("step output missing",
                                    f"{tool}.{binding.input}: step {source.step} returned no {source.output}")
                continue
            set_path(arguments, binding.input, value)
            sources[top_name(binding.input)] = f"step:{source.step}"
        else:
            set_path(arguments, binding.input, user_value(senv, facts, binding.input, root, ctx))
            sources.setdefault(top_name(binding.input), "user")
    required = root.get("required")
    for name in required if isinstance(required, list) else []:
        if isinstance(name, str) and name not in arguments:
            arguments[name] = user_value(senv, facts, name, root, ctx)
            sources[name] = "user"
    if facts.writes and facts.kind in (None, "create", "update", "patch"):
        _extras(senv, facts, root, arguments, sources, ctx)
    return BoundStep(tool=tool, arguments=arguments, sources=sources)
