"""Multi-step differential scenarios for an AWS environment, generated from its source operations (the
botocore service model's input shapes) and its declarative collections: the oracle side of the library's
differential suite (`build.differential_suite`).

Contract:
- `generate_scenarios(env, service)` gives, for each collection with a create tool, scenarios of these
  categories (`CATEGORIES`): lifecycle (create, every get, every list, delete, get after delete, list),
  optional_fields (create with the optional scalar members, read back), duplicate (the same create
  twice), read_missing / delete_missing / update_missing (an id nothing created), delete_twice, update
  (create, patch, read back), update_field (one optional member changed), missing_required (a required
  member left out; not an idempotency token, which the SDK fills in), invalid_value (an enum value the shape does not list, a string past its `max`),
  missing_reference (a parent id nothing created), list_many (three creates, list, delete one, list),
  parent_in_use (delete a parent that still has a child), state_sequence (every argument-free patch in
  turn, each read back), and create_variant (more variants of the create, read back) until the
  environment has at least `MIN_SCENARIOS`. Every scenario is at least two calls: a refused create is
  followed by the collection's listings (or repeated when it has none), a call on a missing id comes
  after a create of another record. Arguments come from `build.differential_values`, never
  from our environment's behaviour; each call is filtered to the members our tool declares.
- A step argument `{"$ref": i}` stands for the key of the record created at step i: the key argument
  when the create takes one (`key_arg`), else the id our environment generated (`resolve_scenario` runs
  our environment from the empty state to read it; the differential harness then binds the reference to
  its own id). A reference that cannot be resolved (our create failed) becomes the text `unresolved-i`.
- Parents: an argument of a create that names another collection's key (`ServiceId`, `RuleSetName`;
  or `<singular collection>Id`/`Name`: `NamespaceId`) refers to that collection; the scenario creates
  the parent first and passes its key to every call on the child.
Deterministic: the same environment and service model give the same scenarios.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from envfactory.build.differential import ScriptCall
from envfactory.build.differential_compare import original_operation
from envfactory.build.differential_values import invalid_value, shape_value, structure_value
from envfactory.runtime import Environment, open_session
from envfactory.spec import declarative_model

__all__ = ["CATEGORIES", "MIN_SCENARIOS", "SuiteScenario", "SuiteStep", "generate_scenarios", "resolve_scenario"]

MIN_SCENARIOS = 20
CATEGORIES = (
    "lifecycle", "optional_fields", "duplicate", "read_missing", "delete_missing", "update_missing",
    "delete_twice", "update", "update_field", "missing_required", "invalid_value", "missing_reference",
    "list_many", "parent_in_use", "state_sequence", "create_variant",
)
_CAP = 4  # scenarios per (category, tool) where a category could make many


@dataclass(frozen=True)
class SuiteStep:
    """One call in our environment's terms; `{"$ref": i}` values are resolved by `resolve_scenario`."""

    tool: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class SuiteScenario:
    """A named multi-step scenario of one category over one collection."""

    id: str
    category: str
    collection: str
    steps: tuple[SuiteStep, ...]


@dataclass
class _Collection:
    name: str
    key: str
    creates: list[str] = field(default_factory=list)
    gets: list[str] = field(default_factory=list)
    lists: list[str] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)
    patches: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Handle:
    """A record a scenario created: its key (literal or `$ref`) and its parents' keys by argument."""

    key: Any
    parents: dict[str, Any]


def _squash(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


class _Builder:
    """Scenario generation for one environment (see the module contract)."""

    def __init__(self, env: Environment, service: str) -> None:
        import botocore.session

        self.env = env
        self.service = service
        self.model = botocore.session.get_session().get_service_model(service)
        declarative = declarative_model(env.spec)
        if declarative is None:
            raise ValueError(f"{env.name} has no declarative model")
        self.ops = declarative.operations
        self.collections: dict[str, _Collection] = {
            name: _Collection(name, c.key) for name, c in declarative.collections.items()
        }
        for tool, op in sorted(self.ops.items()):
            if self._shape(tool) is None and op.kind != "list":
                continue
            bucket = {"create": "creates", "get": "gets", "list": "lists", "delete": "deletes", "patch": "patches"}
            if op.kind in bucket:
                getattr(self.collections[op.collection], bucket[op.kind]).append(tool)
        self.variant = 0

    # -- shapes and arguments -----------------------------------------------------------------------
    def _shape(self, tool: str) -> Any:
        operation = original_operation(self.env.tools[tool].spec)
        if operation is None or operation not in self.model.operation_names:
            return None
        return self.model.operation_model(operation).input_shape

    def _properties(self, tool: str) -> set[str]:
        props = self.env.tools[tool].spec.input_schema.get("properties")
        return set(props) if isinstance(props, dict) else set()

    def _generated(self, tool: str, variant: int, *, optional: bool = False) -> dict[str, Any]:
        shape = self._shape(tool)
        if shape is None:
            return {}
        value = structure_value(shape, variant, self.service, optional=optional)
        return {k: v for k, v in value.items() if k in self._properties(tool)}

    def _missing(self, tool: str, arg: str) -> Any:
        shape = self._shape(tool)
        member = shape.members.get(arg) if shape is not None else None
        return shape_value(member, arg, 990, self.service) if member is not None else f"missing-{arg}"

    def _parent(self, arg: str, own: str) -> str | None:
        for name, coll in self.collections.items():
            if name == own or not coll.creates:
                continue
            singular = name.removesuffix("s")
            if _squash(arg) == _squash(coll.key) and _squash(coll.key) not in {"id", "arn", "name"}:
                return name
            if _squash(arg) in {_squash(singular + suffix) for suffix in ("id", "name", "arn")}:
                return name
        return None

    def _key_arg(self, tool: str) -> str:
        op = self.ops[tool]
        return op.key_arg or self.collections[op.collection].key

    def _next(self) -> int:
        self.variant += 1
        return self.variant

    # -- building blocks ----------------------------------------------------------------------------
    def create(self, steps: list[SuiteStep], coll: str, *, tool: str | None = None, variant: int | None = None,
               optional: bool = False, depth: int = 0, parents: dict[str, Any] | None = None) -> _Handle:
        """Append the parents' creates (unless `parents` gives their keys) and this create; the handle."""
        target = self.collections[coll]
        tool = tool or target.creates[0]
        variant = self._next() if variant is None else variant
        args = self._generated(tool, variant, optional=optional)
        if parents is None:
            parents = {}
            for arg in sorted(self._properties(tool)):
                parent = self._parent(arg, coll)
                if parent is not None and depth < 3:
                    handle = self.create(steps, parent, depth=depth + 1)
                    parents[arg] = handle.key
                    parents.update({k: v for k, v in handle.parents.items() if k not in parents})
        args.update({k: v for k, v in parents.items() if k in self._properties(tool)})
        steps.append(SuiteStep(tool, args))
        key_arg = self.ops[tool].key_arg
        key = _at_path(args, key_arg) if key_arg else {"$ref": len(steps) - 1}
        return _Handle(key, parents)

    def parents_only(self, steps: list[SuiteStep], coll: str) -> dict[str, Any]:
        """Create the parents a record of `coll` would need; their keys by argument."""
        tool = self.collections[coll].creates[0]
        parents: dict[str, Any] = {}
        for arg in sorted(self._properties(tool)):
            parent = self._parent(arg, coll)
            if parent is not None:
                handle = self.create(steps, parent, depth=1)
                parents[arg] = handle.key
                parents.update({k: v for k, v in handle.parents.items() if k not in parents})
        return parents

    def on(self, tool: str, key: Any, parents: dict[str, Any], variant: int | None = None,
           extra: dict[str, Any] | None = None) -> SuiteStep:
        """A call of a get/delete/patch/list tool on one record (list: `key` None)."""
        args = self._generated(tool, self._next() if variant is None else variant)
        props = self._properties(tool)
        args.update({k: v for k, v in parents.items() if k in props})
        if key is not None and self._key_arg(tool) in props:
            args[self._key_arg(tool)] = key
        args.update(extra or {})
        return SuiteStep(tool, args)


def _read_back(b: _Builder, c: _Collection, h: _Handle, *, every: bool = False) -> list[SuiteStep]:
    """Read a record back: its get tools (the first, or `every` one), else the collection's listings."""
    if c.gets:
        return [b.on(t, h.key, h.parents) for t in (c.gets if every else c.gets[:1])]
    return [b.on(t, None, h.parents) for t in c.lists]


def _scenario(category: str, coll: str, tool: str, index: int, steps: list[SuiteStep]) -> SuiteScenario:
    return SuiteScenario(f"{category}:{tool}:{index}", category, coll, tuple(steps))


def _lifecycles(b: _Builder, c: _Collection) -> Iterator[SuiteScenario]:
    for create in c.creates:
        steps: list[SuiteStep] = []
        h = b.create(steps, c.name, tool=create)
        steps += [b.on(t, h.key, h.parents) for t in c.gets] + [b.on(t, None, h.parents) for t in c.lists]
        if c.deletes:
            steps.append(b.on(c.deletes[0], h.key, h.parents))
            steps += [b.on(t, h.key, h.parents) for t in c.gets[:1]] + [b.on(t, None, h.parents) for t in c.lists]
        yield _scenario("lifecycle", c.name, create, 0, steps)
        steps = []
        h = b.create(steps, c.name, tool=create, optional=True)
        yield _scenario("optional_fields", c.name, create, 0, steps + _read_back(b, c, h, every=True))
        steps = []
        variant = b._next()
        b.create(steps, c.name, tool=create, variant=variant)
        steps.append(steps[-1])
        yield _scenario("duplicate", c.name, create, 0, steps)


def _missing(b: _Builder, c: _Collection) -> Iterator[SuiteScenario]:
    for category, tools in (("read_missing", c.gets), ("delete_missing", c.deletes), ("update_missing", c.patches)):
        for tool in tools[:_CAP]:
            steps: list[SuiteStep] = []
            h = b.create(steps, c.name)  # another record exists: the missing id must not find it
            steps.append(b.on(tool, b._missing(tool, b._key_arg(tool)), h.parents))
            steps += [b.on(t, h.key, h.parents) for t in c.gets[:1]]
            yield _scenario(category, c.name, tool, 0, steps)
    if c.deletes:
        steps = []
        h = b.create(steps, c.name)
        steps += [b.on(c.deletes[0], h.key, h.parents)] * 2
        yield _scenario("delete_twice", c.name, c.deletes[0], 0, steps)


def _updates(b: _Builder, c: _Collection) -> Iterator[SuiteScenario]:
    for tool in c.patches:
        steps: list[SuiteStep] = []
        h = b.create(steps, c.name)
        steps += [b.on(tool, h.key, h.parents)] + [b.on(t, h.key, h.parents) for t in c.gets[:1]]
        yield _scenario("update", c.name, tool, 0, steps)
        shape = b._shape(tool)
        optional = [n for n in b._generated(tool, 2, optional=True)
                    if shape is not None and n not in shape.required_members and n != b._key_arg(tool)]
        for index, name in enumerate(optional[:_CAP]):
            steps = []
            h = b.create(steps, c.name)
            value = b._generated(tool, index + 3, optional=True)[name]
            steps += [b.on(tool, h.key, h.parents, extra={name: value})] + [b.on(t, h.key, h.parents) for t in c.gets[:1]]
            yield _scenario("update_field", c.name, tool, index, steps)
    bare = sorted((t for t in c.patches if not (_required(b, t) - {b._key_arg(t), *b.parents_only([], c.name)})),
                  key=_lifecycle_rank)
    if len(bare) >= 2:
        steps = []
        h = b.create(steps, c.name)
        for tool in bare:
            steps += [b.on(tool, h.key, h.parents)] + [b.on(t, h.key, h.parents) for t in c.gets]
        yield _scenario("state_sequence", c.name, bare[0], 0, steps)


def _list_after(b: _Builder, c: _Collection, steps: list[SuiteStep]) -> list[SuiteStep]:
    """After a refused create: the collection's listings (with the arguments its last call had), which
    must show that nothing was created; a scenario is always at least two calls."""
    last = steps[-1].arguments
    calls = [SuiteStep(t, {k: v for k, v in last.items() if k in b._properties(t) and b._parent(k, c.name)})
             for t in c.lists]
    return calls or [steps[-1]]


_VERBS = ("create", "start", "activate", "enable", "pause", "suspend", "resume", "stop", "disable", "deactivate")


def _lifecycle_rank(tool: str) -> tuple[int, str]:
    """Patches in the order a lifecycle meets them (start, pause, resume, stop), others after."""
    verb = tool.split("_", 1)[0]
    return (_VERBS.index(verb) if verb in _VERBS else len(_VERBS), tool)


def _required(b: _Builder, tool: str) -> set[str]:
    required = b.env.tools[tool].spec.input_schema.get("required")
    return {str(r) for r in required} if isinstance(required, list) else set()


def _invalid(b: _Builder, c: _Collection) -> Iterator[SuiteScenario]:
    for create in c.creates[:2]:
        shape = b._shape(create)
        base = b._generated(create, 0)
        # an idempotency token the SDK fills in is not the caller's to leave out
        required = [n for n in shape.required_members if n in base
                    and not shape.members[n].metadata.get("idempotencyToken")]
        for index, name in enumerate(required[:_CAP]):
            steps: list[SuiteStep] = []
            b.create(steps, c.name, tool=create)
            args = {k: v for k, v in steps[-1].arguments.items() if k != name}
            steps[-1] = SuiteStep(create, args)
            yield _scenario("missing_required", c.name, create, index, steps + _list_after(b, c, steps))
        candidates = [(n, invalid_value(m, n)) for n, m in shape.members.items() if n in b._properties(create)]
        for index, (name, bad) in enumerate([(n, v) for n, v in candidates if v is not None][:_CAP]):
            steps = []
            b.create(steps, c.name, tool=create)
            steps[-1] = SuiteStep(create, {**steps[-1].arguments, name: bad})
            yield _scenario("invalid_value", c.name, create, index, steps + _list_after(b, c, steps))
        parent_args = [a for a in sorted(b._properties(create)) if b._parent(a, c.name)]
        for index, arg in enumerate(parent_args[:_CAP]):
            steps = []
            b.create(steps, c.name, tool=create)
            steps[-1] = SuiteStep(create, {**steps[-1].arguments, arg: b._missing(create, arg)})
            yield _scenario("missing_reference", c.name, create, index, steps + _list_after(b, c, steps))


def _lists(b: _Builder, c: _Collection) -> Iterator[SuiteScenario]:
    if not c.lists:
        return
    steps: list[SuiteStep] = []
    parents = b.parents_only(steps, c.name)
    handles = []
    for _ in range(3):
        handles.append(b.create(steps, c.name, parents=parents))
    steps += [b.on(t, None, parents) for t in c.lists]
    if c.deletes:
        steps.append(b.on(c.deletes[0], handles[0].key, parents))
        steps += [b.on(t, None, parents) for t in c.lists]
    yield _scenario("list_many", c.name, c.lists[0], 0, steps)


def _parents_in_use(b: _Builder, c: _Collection) -> Iterator[SuiteScenario]:
    for index, child in enumerate(b.collections.values()):
        if child.name == c.name or not child.creates or not c.deletes:
            continue
        args = [a for a in sorted(b._properties(child.creates[0])) if b._parent(a, child.name) == c.name]
        if not args:
            continue
        steps: list[SuiteStep] = []
        h = b.create(steps, child.name)
        parent_key = h.parents[args[0]]
        steps.append(b.on(c.deletes[0], parent_key, {}))
        steps += [b.on(t, parent_key, {}) for t in c.gets[:1]]
        yield _scenario("parent_in_use", c.name, c.deletes[0], index, steps)


def generate_scenarios(env: Environment, service: str) -> list[SuiteScenario]:
    """The scenarios of `env` against the botocore model of `service` (module contract)."""
    b = _Builder(env, service)
    out: list[SuiteScenario] = []
    usable = [c for c in b.collections.values() if c.creates]
    for c in usable:
        for family in (_lifecycles, _missing, _updates, _invalid, _lists, _parents_in_use):
            out.extend(family(b, c))
    index = 0
    while len(out) < MIN_SCENARIOS and usable and index < 4 * MIN_SCENARIOS:
        c = usable[index % len(usable)]
        create = c.creates[index % len(c.creates)]
        steps: list[SuiteStep] = []
        h = b.create(steps, c.name, tool=create, optional=index % 2 == 0)
        steps += _read_back(b, c, h)
        out.append(_scenario("create_variant", c.name, create, index, steps))
        index += 1
    return out


def resolve_scenario(env: Environment, scenario: SuiteScenario, seed: int = 0) -> list[ScriptCall]:
    """The scenario's calls with every `{"$ref": i}` replaced (module contract); runs our environment
    from the empty state with `seed`, as the differential harness does, so generated ids agree."""
    model = declarative_model(env.spec)
    session = open_session(env, env.backend.load_state(None).to_json(), seed=seed)
    keys: dict[int, Any] = {}
    calls: list[ScriptCall] = []
    try:
        for index, step in enumerate(scenario.steps):
            args = {name: _deref(value, keys, index) for name, value in step.arguments.items()}
            result = session.call(step.tool, args)
            calls.append(ScriptCall(step.tool, args))
            op = model.operations.get(step.tool) if model is not None else None
            if result.ok and op is not None and op.kind == "create" and isinstance(result.output, dict):
                keys[index] = result.output.get(model.collections[op.collection].key) if model else None
    finally:
        session.close()
    return calls


def _deref(value: Any, keys: dict[int, Any], index: int) -> Any:
    if isinstance(value, dict) and set(value) == {"$ref"}:
        step = int(value["$ref"])
        found = keys.get(step)
        return found if found is not None else f"unresolved-{step}"
    return value


def _at_path(args: dict[str, Any], path: str) -> Any:
    """The argument at `path`: a name, or `member.property` (a generation-2 create's key inside an object)."""
    value: Any = args
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value
