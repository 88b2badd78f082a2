"""Environment verification: the checks a built environment must pass before it is accepted (DESIGN §4).

Contract:
- `verify_environment(env_dir_or_env, scenarios, *, seed, fuzz_calls, differential)` returns a
  `VerificationReport` whose verdict is `verified` only when no check failed. Checks, in order:
  `load` (the directory loads; a `spec.json` next to the source matches what the implementation
  derives), `parity` (tools ↔ implementation, schemas usable for argument generation, tool sources
  resolve to the environment's provenance and, when `operations` are given, to the catalog's
  operation and its original field names), `seed_roundtrip` (every seed loads, dumps and reloads to
  the same state and hash; snapshots restore exactly), `determinism` (every call gives the same result
  and state hash when repeated from a fork of the same session, and a fresh replay of the whole call
  sequence reproduces the final state), `isolation` (writes in one session or fork never change
  another's state or read results), `fuzz` (schema-guided valid and corrupted arguments yield typed
  agent-visible errors only: no crash, no framework failure, no output violating its schema),
  `scenarios` (each `ScenarioTest` passes; tallied per oracle) and `differential` (precomputed
  `DifferentialResult`s, e.g. from `build.differential`, have no mismatch).
- Every failed check names the tools it blames in `CheckResult.failing_tools`.
- Deterministic: all call plans come from `random.Random(seed)` and live state, so verifying the same
  environment with the same scenarios and seed gives the same report and `evidence_digest`. Wall
  timings are only recorded with `record_timings=True` and never enter the digest.
- Pure with respect to the caller: the environment is only driven through fresh sessions.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from envfactory.errors import EnvFactoryError
from envfactory.runtime import Environment, Session, load_env, open_session
from envfactory.runtime.argsgen import generate_arguments, harvest_values
from envfactory.spec import (
    AGENT_ERROR_KINDS,
    CheckResult,
    DeclarativeImplementation,
    DifferentialResult,
    EnvSpec,
    HybridImplementation,
    Operation,
    OracleTally,
    ScenarioTest,
    ToolResult,
    VerificationReport,
    content_hash,
    declarative_model,
)
from envfactory.spec.verification import ORACLE_KINDS
from envfactory.verify.scenario_run import ScenarioOutcome, run_scenario

if TYPE_CHECKING:
    from envfactory.runtime.sandbox import SandboxPool

__all__ = ["DEFAULT_FUZZ_CALLS", "crash_message", "verify_environment"]

DEFAULT_FUZZ_CALLS = 240
DETERMINISM_CALLS = 60
ISOLATION_WRITES = 16
SOURCE_FREE_PROVIDERS = frozenset({"python", "manual", ""})
CORRUPTIONS = ("drop_required", "extra_argument", "wrong_type", "unknown_id", "malformed_json", "not_object")
CORRUPT_PROBABILITY = 0.35

# Messages the session uses for implementation bugs it caught (session.py, toolkit.py, sandbox): they
# arrive as `execution_error` results, but they are defects of the environment, not answers to a call.
_CRASH_MARKERS = ("internal error in ", "violates its declared output schema", "left the state invalid")


def crash_message(result: ToolResult) -> str | None:
    """Why `result` shows an implementation defect (crash, framework failure, invalid output), or None."""
    error = result.error
    if error is None:
        return None
    if error.kind not in AGENT_ERROR_KINDS:
        return f"{error.kind}: {error.message}"
    if error.kind == "execution_error" and any(marker in error.message for marker in _CRASH_MARKERS):
        return error.message
    return None


def verify_environment(
    env_dir_or_env: str | Path | Environment,
    scenarios: Sequence[ScenarioTest] = (),
    *,
    seed: int = 0,
    fuzz_calls: int = DEFAULT_FUZZ_CALLS,
    differential: Sequence[DifferentialResult] = (),
    operations: Mapping[str, Operation] | None = None,
    sandbox: SandboxPool | None = None,
    trusted: bool = False,
    record_timings: bool = False,
) -> VerificationReport:
    """Run every check on one environment; see the module contract.

    `env_dir_or_env`: an environment directory, file, bundled name or a loaded `Environment`.
    `operations`: catalog operations keyed by `ToolSource.operation_id` (or operation name), used to
    check that tool sources and their original field names resolve. `sandbox`/`trusted` are passed to
    `load_env` (untrusted python toolkits only run in sandbox workers).
    """
    timings: dict[str, float] = {}
    checks: list[CheckResult] = []

    def timed(name: str, run: Callable[[], CheckResult]) -> CheckResult:
        started = time.perf_counter()
        result = run()
        if record_timings:
            timings[name] = round((time.perf_counter() - started) * 1000, 3)
        checks.append(result)
        return result

    env_holder: list[Environment] = []
    load = timed("load", lambda: _check_load(env_dir_or_env, sandbox, trusted, env_holder))
    if load.status == "failed" or not env_holder:
        name = Path(str(env_dir_or_env)).name if not isinstance(env_dir_or_env, Environment) else env_dir_or_env.name
        for check in ("parity", "seed_roundtrip", "determinism", "isolation", "fuzz", "scenarios", "differential"):
            checks.append(CheckResult(name=check, status="skipped", detail="the environment did not load"))
        return VerificationReport(
            env_name=name, spec_hash="", seed=seed, verdict="rejected", checks=checks, timings_ms=timings,
            differential=list(differential),
        ).sealed()
    env = env_holder[0]
    planner = _Planner(env)
    timed("parity", lambda: _check_parity(env, planner, operations, seed))
    timed("seed_roundtrip", lambda: _check_seeds(env, planner, seed))
    timed("determinism", lambda: _check_determinism(env, planner, seed))
    timed("isolation", lambda: _check_isolation(env, planner, seed))
    worked: Counter[str] = Counter()
    timed("fuzz", lambda: _check_fuzz(env, planner, seed, fuzz_calls, worked))
    outcomes: list[ScenarioOutcome] = []
    timed("scenarios", lambda: _check_scenarios(env, scenarios, seed, outcomes))
    timed("differential", lambda: _check_differential(differential))
    if isinstance(env.spec.implementation, HybridImplementation):
        timed("authored_exercised",
              lambda: _check_authored_exercised(env, planner, seed, worked, outcomes, differential))
    tallies = {oracle: OracleTally() for oracle in ORACLE_KINDS}
    for outcome in outcomes:
        tally = tallies[outcome.scenario.oracle]
        tallies[outcome.scenario.oracle] = OracleTally(
            passed=tally.passed + outcome.passed, total=tally.total + 1
        )
    verdict = "rejected" if any(c.status == "failed" for c in checks) else "verified"
    return VerificationReport(
        env_name=env.name,
        spec_hash=env.spec.content_hash,
        seed=seed,
        verdict=verdict,
        checks=checks,
        scenarios_by_oracle={k: v for k, v in tallies.items() if v.total},
        differential=list(differential),
        timings_ms=timings,
    ).sealed()


# ---------------------------------------------------------------------------------------------------
# results


def _result(
    name: str,
    problems: list[tuple[str, str]],
    evidence: Any,
    counts: Mapping[str, int],
    *,
    skipped: str | None = None,
) -> CheckResult:
    """A check result from (tool, problem) pairs: failed when there is any, tools named."""
    if skipped is not None:
        return CheckResult(name=name, status="skipped", detail=skipped, evidence_digest=content_hash(evidence),
                           counts=dict(counts))
    unique = sorted(set(problems))
    tools = sorted({tool for tool, _ in unique if tool})
    lines = [f"{tool}: {text}" if tool else text for tool, text in unique]
    detail = (
        f"{len(unique)} problem(s); blamed tools: {', '.join(tools) or '(none)'}" if unique else "ok"
    )
    return CheckResult(
        name=name,
        status="failed" if unique else "passed",
        detail=detail,
        evidence_digest=content_hash(evidence),
        counts=dict(sorted(counts.items())),
        failing_tools=tools,
        problems=lines[:50],
    )


def _outcome(result: ToolResult) -> Any:
    """What a call observably did, for evidence and comparison (kind + message on failure)."""
    if result.error is not None:
        return {"error": result.error.kind, "message": result.error.message}
    return {"output": result.output}


# ---------------------------------------------------------------------------------------------------
# load and parity


def _check_load(
    ref: str | Path | Environment, sandbox: SandboxPool | None, trusted: bool, holder: list[Environment]
) -> CheckResult:
    if isinstance(ref, Environment):
        holder.append(ref)
        return _result("load", [], {"spec": ref.spec.content_hash}, {"tools": len(ref.tools)})
    try:
        env = load_env(ref, trusted=trusted, sandbox=sandbox)
    except EnvFactoryError as exc:
        return _result("load", [("", f"does not load: {exc}")], {"error": str(exc)}, {})
    holder.append(env)
    problems: list[tuple[str, str]] = []
    directory = env.directory
    spec_file = directory / "spec.json" if directory is not None else None
    if spec_file is not None and spec_file.is_file() and (directory / "env.json").is_file():  # type: ignore[operator]
        try:
            written = EnvSpec.model_validate_json(spec_file.read_bytes())
        except ValueError as exc:
            problems.append(("", f"spec.json is not a valid sealed EnvSpec: {exc}"))
        else:
            if written.content_hash != env.spec.content_hash:
                problems.extend(_spec_differences(written, env.spec))
    return _result(
        "load", problems, {"spec": env.spec.content_hash, "seeds": sorted(env.seeds)},
        {"tools": len(env.tools), "seeds": len(env.seeds)},
    )


def _spec_differences(written: EnvSpec, derived: EnvSpec) -> list[tuple[str, str]]:
    ours = {t.name: t for t in derived.tools}
    theirs = {t.name: t for t in written.tools}
    problems = [(name, "in spec.json but not implemented") for name in sorted(set(theirs) - set(ours))]
    problems += [(name, "implemented but missing from spec.json") for name in sorted(set(ours) - set(theirs))]
    problems += [
        (name, "spec.json differs from the implementation's tool spec")
        for name in sorted(set(ours) & set(theirs)) if ours[name] != theirs[name]
    ]
    return problems or [("", "spec.json differs from the implementation outside the tools (meta or state schema)")]


def _check_parity(
    env: Environment, planner: _Planner, operations: Mapping[str, Operation] | None, seed: int
) -> CheckResult:
    problems: list[tuple[str, str]] = []
    spec = env.spec
    impl = spec.implementation
    names = {t.name for t in spec.tools}
    if isinstance(impl, DeclarativeImplementation | HybridImplementation):
        ops = set(impl.model.operations) | (set(impl.authored.tools) if isinstance(impl, HybridImplementation) else set())
        problems += [(n, "tool has no declarative operation") for n in sorted(names - ops)]
        problems += [(n, "operation has no tool spec") for n in sorted(ops - names)]
    problems += [(n, "tool is not compiled by the runtime") for n in sorted(names - set(env.tools))]
    rng = random.Random(seed)
    generable = 0
    for tool in spec.tools:
        if tool.input_schema.get("type") != "object":
            problems.append((tool.name, "input schema is not an object schema"))
            continue
        try:
            generate_arguments(tool.input_schema, rng, {})
            generable += 1
        except (ValueError, RecursionError) as exc:
            problems.append((tool.name, f"arguments cannot be generated from the input schema: {exc}"))
    problems += _source_problems(spec, operations)
    sourced = sum(1 for t in spec.tools if t.source is not None and t.source.provider not in SOURCE_FREE_PROVIDERS)
    evidence = {"tools": sorted(names), "problems": sorted(problems)}
    return _result("parity", problems, evidence, {"tools": len(names), "generable": generable, "sourced": sourced})


def _source_problems(spec: EnvSpec, operations: Mapping[str, Operation] | None) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    for tool in spec.tools:
        source = tool.source
        if source is None or source.provider in SOURCE_FREE_PROVIDERS:
            continue
        if not source.operation_id:
            problems.append((tool.name, f"source of provider {source.provider} names no operation"))
            continue
        short = source.operation_id.rsplit(":", 1)[-1]
        listed = any(
            p.provider == source.provider and (source.operation_id in p.operations or short in p.operations)
            for p in spec.meta.provenance
        )
        if not listed:
            problems.append((tool.name, f"operation {source.operation_id} is not listed in meta.provenance"))
        ours = _property_names(tool.input_schema) | _property_names(tool.output_schema)
        for param in sorted(set(source.field_names) - ours):
            problems.append((tool.name, f"field_names maps {param!r}, which is not a field of the tool"))
        if operations is None:
            continue
        operation = resolve_operation(operations, source.operation_id)
        if operation is None:
            problems.append((tool.name, f"operation {source.operation_id} is not in the catalog"))
            continue
        original = _property_names(operation.input_schema) | _property_names(operation.output_schema)
        for param, field in sorted(source.field_names.items()):
            # A dotted original name is either one top-level name (Google query parameters such as
            # `regionsVersion.version`) or a path whose last step is a nested property.
            if field not in original and field.split(".")[-1] not in original:
                problems.append((tool.name, f"{param!r} maps to {field!r}, which {operation.name} does not have"))
    return problems


def resolve_operation(operations: Mapping[str, Operation], operation_id: str) -> Operation | None:
    """The catalog operation a `ToolSource.operation_id` names: by full id, else by source name."""
    if operation_id in operations:
        return operations[operation_id]
    short = operation_id.rsplit(":", 1)[-1]
    matches = [op for op in operations.values() if op.name == short or op.id.endswith(f":{short}")]
    return matches[0] if len(matches) == 1 else None


def _property_names(schema: Any, depth: int = 0) -> set[str]:
    """Every property name in a JSON Schema, at any depth (original names may be nested)."""
    names: set[str] = set()
    if depth > 12 or not isinstance(schema, Mapping):
        return names
    props = schema.get("properties")
    if isinstance(props, Mapping):
        for key, sub in props.items():
            names.add(str(key))
            names |= _property_names(sub, depth + 1)
    for keyword in ("items", "additionalProperties"):
        names |= _property_names(schema.get(keyword), depth + 1)
    for keyword in ("anyOf", "oneOf", "allOf", "prefixItems"):
        branches = schema.get(keyword)
        if isinstance(branches, list):
            for branch in branches:
                names |= _property_names(branch, depth + 1)
    defs = schema.get("$defs")
    if isinstance(defs, Mapping):
        for sub in defs.values():
            names |= _property_names(sub, depth + 1)
    return names


# ---------------------------------------------------------------------------------------------------
# call planning (shared by determinism, isolation and fuzz)


class _Planner:
    """Seeded, state-aware argument generation for one environment.

    Declarative environments tell which argument holds keys of which collection, so those are drawn
    from live keys; for any environment every string seen in state and outputs feeds the pool.
    """

    def __init__(self, env: Environment) -> None:
        self.env = env
        self.tools = sorted(env.tools)
        self.reads = [t for t in self.tools if not env.tools[t].writes]
        self.writes = [t for t in self.tools if env.tools[t].writes]
        self.key_args = _key_arguments(env)
        impl = env.spec.implementation
        self.unsupported: dict[str, frozenset[str]] = (
            {t: frozenset(a) for t, a in impl.authored.unsupported_arguments.items()}
            if isinstance(impl, HybridImplementation) else {}
        )

    def pool(self, session: Session, seen: Mapping[str, list[str]]) -> dict[str, list[str]]:
        pool = {k: list(v) for k, v in seen.items()}
        state = session.state_json()
        _harvest_state(state, pool)
        collections = state.get("collections") if isinstance(state, dict) else None
        if isinstance(collections, dict):
            for arg, collection in self.key_args.items():
                keys = sorted(collections.get(collection) or {})
                if keys:
                    pool[arg] = keys
        return pool

    def arguments(self, tool: str, session: Session, seen: Mapping[str, list[str]], rng: random.Random,
                  *, supported_only: bool = False) -> dict[str, Any]:
        schema = self.env.tools[tool].spec.input_schema
        unsupported = self.unsupported.get(tool)
        if unsupported and (supported_only or rng.random() < 0.75):
            # Authored tools refuse the API arguments their code does not take: mostly leave them out,
            # so the fuzz exercises what the code does, and sometimes pass them, to check the refusal.
            declared = schema.get("properties")
            if isinstance(declared, dict):
                schema = {**schema, "properties": {k: v for k, v in declared.items() if k not in unsupported}}
        try:
            return generate_arguments(schema, rng, self.pool(session, seen))
        except (ValueError, RecursionError):
            return {}


def _key_arguments(env: Environment) -> dict[str, str]:
    model = declarative_model(env.spec)
    if model is None:
        return {}
    mapping: dict[str, str] = {}
    for op in model.operations.values():
        collection = model.collections[op.collection]
        if op.kind != "create" or op.key_arg is not None:
            mapping.setdefault(op.key_arg or collection.key, op.collection)
        for ref in collection.references:
            mapping.setdefault(ref.field.split(".")[-1].removesuffix("[]"), ref.collection)
    return mapping


def _harvest_state(state: Any, pool: dict[str, list[str]]) -> None:
    """Strings under their field names, and the keys of id-keyed maps under `<singular>_id`."""
    harvest_values(state, pool)
    stack = [state]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for name, value in node.items():
                if isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
                    bucket = pool.setdefault(f"{name.removesuffix('s')}_id", [])
                    bucket.extend(k for k in sorted(value) if k not in bucket)
                stack.append(value)
        elif isinstance(node, list):
            stack.extend(node)


def _remember(result: ToolResult, seen: dict[str, list[str]]) -> None:
    if result.error is None:
        harvest_values(result.output, seen)
        token = result.output.get("next_page_token") if isinstance(result.output, dict) else None
        if isinstance(token, str):
            seen.setdefault("page_token", []).append(token)


def _plan_tool(planner: _Planner, rng: random.Random, *, write_bias: float = 0.6) -> str:
    if planner.writes and (not planner.reads or rng.random() < write_bias):
        return rng.choice(planner.writes)
    return rng.choice(planner.reads or planner.tools)


# ---------------------------------------------------------------------------------------------------
# seeds


def _check_seeds(env: Environment, planner: _Planner, seed: int) -> CheckResult:
    problems: list[tuple[str, str]] = []
    evidence: dict[str, Any] = {}
    states: list[tuple[str, Any]] = [("(empty)", None), *sorted(env.seeds.items())]
    for name, state in states:
        try:
            handle = env.backend.load_state(state)
            dumped = handle.to_json()
            again = env.backend.load_state(dumped)
        except EnvFactoryError as exc:
            problems.append(("", f"seed {name} does not load: {exc}"))
            continue
        if again.to_json() != dumped or again.state_hash() != handle.state_hash():
            problems.append(("", f"seed {name} does not reload to the same state"))
        if state is not None and not _contains(dumped, state):
            problems.append(("", f"seed {name} is not preserved by loading (records or fields lost)"))
        session = open_session(env, state, seed=seed)
        rng = random.Random(f"{seed}:seed:{name}")
        seen: dict[str, list[str]] = {}
        for _ in range(8):
            tool = _plan_tool(planner, rng)
            _remember(session.call(tool, planner.arguments(tool, session, seen, rng)), seen)
        snapshot = session.snapshot()
        reopened = open_session(env, snapshot, seed=seed)
        if reopened.hash() != session.hash() or reopened.state_json() != session.state_json():
            problems.append(("", f"a snapshot taken after calls on seed {name} does not restore exactly"))
        evidence[name] = {"loaded": handle.state_hash(), "after_calls": session.hash()}
    return _result("seed_roundtrip", problems, evidence, {"seeds": len(states)})


def _contains(actual: Any, expected: Any) -> bool:
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(k in actual and _contains(actual[k], v) for k, v in expected.items())
    if isinstance(expected, list):
        return isinstance(actual, list) and len(actual) == len(expected) and all(
            _contains(a, e) for a, e in zip(actual, expected, strict=True)
        )
    return bool(actual == expected)


# ---------------------------------------------------------------------------------------------------
# determinism


def _check_determinism(env: Environment, planner: _Planner, seed: int) -> CheckResult:
    """Each call is repeated on a fork taken just before it (same state, clock, RNG): results and state
    hashes must agree, which blames exactly the tool that is nondeterministic. Then the whole sequence is
    replayed in a fresh session, which must end in the same state."""
    problems: list[tuple[str, str]] = []
    rng = random.Random(f"{seed}:determinism")
    session = open_session(env, seed=seed)
    seen: dict[str, list[str]] = {}
    calls: list[tuple[str, dict[str, Any]]] = []
    evidence: list[Any] = []
    counts: Counter[str] = Counter()
    for _ in range(DETERMINISM_CALLS):
        tool = _plan_tool(planner, rng)
        args = planner.arguments(tool, session, seen, rng)
        twin = session.fork()
        result = session.call(tool, args)
        repeat = twin.call(tool, args)
        counts["calls"] += 1
        counts["ok"] += result.ok
        if _outcome(result) != _outcome(repeat) or session.hash() != twin.hash():
            problems.append((tool, "the same call on the same state gave a different result or state"))
        calls.append((tool, args))
        evidence.append([tool, content_hash(_outcome(result)), session.hash()])
        _remember(result, seen)
    replay = open_session(env, seed=seed)
    for index, (tool, args) in enumerate(calls):
        again = replay.call(tool, args)
        if content_hash(_outcome(again)) != evidence[index][1] or replay.hash() != evidence[index][2]:
            problems.append((tool, f"a fresh replay of the call sequence diverged at call {index}"))
            break
    return _result("determinism", problems, evidence, counts)


# ---------------------------------------------------------------------------------------------------
# isolation


def _check_isolation(env: Environment, planner: _Planner, seed: int) -> CheckResult:
    """Writes go to `writer`; `observer` (another session) and `frozen` (a fork of the writer) must not
    change, neither in state nor in what their read tools return. A read whose answer changes blames the
    write that changed it and the read that showed it."""
    problems: list[tuple[str, str]] = []
    counts: Counter[str] = Counter()
    if not planner.writes:
        return _result("isolation", [], {}, counts, skipped="the environment has no write tools")
    rng = random.Random(f"{seed}:isolation")
    writer = open_session(env, seed=seed)
    observer = open_session(env, seed=seed)
    observer_hash = observer.hash()
    seen: dict[str, list[str]] = {}
    probes = [(tool, planner.arguments(tool, observer, seen, rng)) for tool in planner.reads for _ in range(2)]
    baseline = [_outcome(observer.call(tool, args)) for tool, args in probes]
    frozen: Session | None = None
    frozen_hash = ""
    evidence: list[Any] = []
    for index in range(ISOLATION_WRITES):
        tool = rng.choice(planner.writes)
        result = writer.call(tool, planner.arguments(tool, writer, seen, rng))
        _remember(result, seen)
        counts["writes"] += 1
        counts["committed"] += result.ok
        if observer.hash() != observer_hash:
            problems.append((tool, "a write in one session changed another session's state"))
        for position, ((probe, args), before) in enumerate(zip(probes, baseline, strict=True)):
            counts["probes"] += 1
            now = _outcome(observer.call(probe, args))
            if now != before:
                problems.append((tool, f"after it ran in another session, {probe} returned something else"))
                problems.append((probe, f"returned something else after {tool} ran in another session"))
                baseline[position] = now  # blame only the write that caused each change
        if frozen is not None and frozen.hash() != frozen_hash:
            problems.append((tool, "a write in a session changed a fork taken earlier"))
        if index == ISOLATION_WRITES // 2:
            frozen = writer.fork()
            frozen_hash = frozen.hash()
            writer_hash = writer.hash()
            fork_tool = rng.choice(planner.writes)
            frozen.call(fork_tool, planner.arguments(fork_tool, frozen, seen, rng))
            if writer.hash() != writer_hash:
                problems.append((fork_tool, "a write in a fork changed its parent session"))
            frozen_hash = frozen.hash()
        evidence.append([tool, result.ok, writer.hash()])
    return _result("isolation", problems, evidence, counts)


# ---------------------------------------------------------------------------------------------------
# fuzz


def _corrupt(kind: str, args: dict[str, Any], schema: Mapping[str, Any], rng: random.Random) -> Any:
    if kind == "malformed_json":
        return orjson.dumps(args).decode()[:-1]
    if kind == "not_object":
        return orjson.dumps([args]).decode()
    required = [r for r in schema.get("required", []) if r in args]
    if kind == "drop_required" and required:
        return {k: v for k, v in args.items() if k != rng.choice(required)}
    if kind == "extra_argument":
        return {**args, "zz_unexpected": 1}
    if kind == "wrong_type" and args:
        name = rng.choice(sorted(args))
        return {**args, name: [args[name]] if not isinstance(args[name], list) else {"x": 1}}
    if kind == "unknown_id":
        ids = [k for k, v in args.items() if isinstance(v, str) and (k == "id" or k.endswith(("_id", "Id", "Url", "Name")))]
        if ids:
            return {**args, rng.choice(sorted(ids)): "zz_missing_0000"}
    return args


def _check_fuzz(env: Environment, planner: _Planner, seed: int, calls: int,
                worked: Counter[str] | None = None) -> CheckResult:
    problems: list[tuple[str, str]] = []
    counts: Counter[str] = Counter()
    evidence: list[Any] = []
    rng = random.Random(f"{seed}:fuzz")
    session = open_session(env, seed=seed)
    seen: dict[str, list[str]] = {}
    for index in range(calls):
        if index and index % 60 == 0:  # fresh sessions now and then, so small seeds do not saturate
            session = open_session(env, seed=seed + index)
        tool = _plan_tool(planner, rng, write_bias=0.5)
        args = planner.arguments(tool, session, seen, rng)
        mode = rng.choice(CORRUPTIONS) if rng.random() < CORRUPT_PROBABILITY else "valid"
        payload = args if mode == "valid" else _corrupt(mode, args, env.tools[tool].spec.input_schema, rng)
        try:
            result = session.call(tool, payload)
        except Exception as exc:  # the framework must never raise for a call; report, do not stop
            problems.append((tool, f"the call raised {type(exc).__name__}: {exc}"))
            counts["raised"] += 1
            continue
        counts["calls"] += 1
        counts[f"mode:{mode}"] += 1
        if result.ok:
            counts["ok"] += 1
            if worked is not None and mode == "valid":
                worked[tool] += 1
        else:
            assert result.error is not None
            counts[f"error:{result.error.kind}"] += 1
            defect = crash_message(result)
            if defect is not None:
                problems.append((tool, f"{mode} arguments: {defect}"))
            elif mode in ("malformed_json", "not_object") and result.error.kind != "invalid_arguments":
                problems.append((tool, f"{mode} arguments gave {result.error.kind}, not invalid_arguments"))
        _remember(result, seen)
        evidence.append([tool, mode, result.error.kind if result.error else "ok"])
    return _result("fuzz", problems, evidence, counts)


# ---------------------------------------------------------------------------------------------------
# scenarios and differential


def _check_scenarios(
    env: Environment, scenarios: Sequence[ScenarioTest], seed: int, outcomes: list[ScenarioOutcome]
) -> CheckResult:
    if not scenarios:
        return _result("scenarios", [], [], {}, skipped="no scenario tests were given")
    problems: list[tuple[str, str]] = []
    for scenario in scenarios:
        outcome = run_scenario(env, scenario, seed=seed)
        outcomes.append(outcome)
        problems.extend((outcome.failing_tool or "", f"scenario {scenario.id}: {text}") for text in outcome.problems)
    passed = sum(o.passed for o in outcomes)
    evidence = [[o.scenario.id, o.passed, o.problems] for o in outcomes]
    return _result("scenarios", problems, evidence, {"scenarios": len(outcomes), "passed": passed})


EXERCISE_ROUNDS = 8


def _check_authored_exercised(
    env: Environment, planner: _Planner, seed: int, worked: Counter[str], outcomes: Sequence[ScenarioOutcome],
    differential: Sequence[DifferentialResult],
) -> CheckResult:
    """Authored (LLM-written) tools must show they work: each succeeded on valid fuzzed arguments, in a
    passing scenario, against a reference implementation, or in a short run from the default seed state
    that calls every authored tool in turn for `EXERCISE_ROUNDS` rounds with generated arguments (the
    ones its code takes), each call drawing on the values earlier outputs returned (a receive's receipt
    handle feeds a delete). A tool that only ever answers with errors would pass every other check while
    doing nothing."""
    impl = env.spec.implementation
    assert isinstance(impl, HybridImplementation)
    names = sorted(impl.authored.tools)
    in_scenarios = Counter(step.tool for o in outcomes if o.passed for step in o.scenario.steps)
    compared = {op for d in differential for op in d.operations_compared}
    disagreed = {tool for d in differential for tool in d.failing_tools()}
    agreed: dict[str, bool] = {}
    for name in names:
        tool = env.spec.tool(name)
        operation = tool.source.operation_id.rsplit(":", 1)[-1] if tool is not None and tool.source else ""
        agreed[name] = operation in compared and name not in disagreed

    def shown(name: str) -> bool:
        return bool(worked[name] or in_scenarios[name] or agreed[name])

    tries: Counter[str] = Counter()
    if not all(shown(n) for n in names):
        rng = random.Random(f"{seed}:exercise")
        session = open_session(env, seed=seed)
        seen: dict[str, list[str]] = {}
        for _ in range(EXERCISE_ROUNDS):
            for name in names:
                result = session.call(name, planner.arguments(name, session, seen, rng, supported_only=True))
                tries[name] += 1
                worked[name] += result.ok
                _remember(result, seen)
            if all(shown(n) for n in names):
                break
    problems = [
        (name, "never succeeded on valid fuzzed arguments, in a passing scenario, against a reference or in "
               f"{tries[name]} exercise calls: no evidence that it works")
        for name in names if not shown(name)
    ]
    evidence = [[n, worked[n], in_scenarios[n], agreed[n], tries[n]] for n in names]
    return _result("authored_exercised", problems, evidence, {"authored": len(names), "shown_working": len(names) - len(problems)})


def _check_differential(results: Iterable[DifferentialResult]) -> CheckResult:
    results = list(results)
    if not results:
        return _result("differential", [], [], {}, skipped="no differential results were given")
    problems = [
        (m.tool, f"{r.reference} {m.operation} step {m.step} ({m.aspect}): {m.detail}")
        for r in results for m in r.mismatches
    ]
    counts = {
        "references": len(results),
        "calls": sum(r.calls_compared for r in results),
        "matched": sum(r.matched for r in results),
        "dropped_ops": sum(len(r.dropped_ops_not_compared) for r in results),
    }
    return _result("differential", problems, [r.model_dump(mode="json") for r in results], counts)
