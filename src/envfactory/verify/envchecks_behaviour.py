"""The environment checks that drive the environment through fresh sessions (`envchecks.py`):
`seed_roundtrip`, `determinism`, `isolation`, `fuzz`, `scenarios`, `differential` (precomputed
results) and, for hybrid environments, `authored_exercised`.

Each check returns a `CheckResult` naming the tools it blames. Deterministic: call plans come from
`random.Random` seeded with the check's name and `seed`, and from live state.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson

from envfactory.errors import EnvFactoryError
from envfactory.runtime import Environment, Session, open_session
from envfactory.spec import CheckResult, DifferentialResult, HybridImplementation, ScenarioTest, content_hash
from envfactory.verify.envchecks_planner import CallPlanner, plan_tool, remember_outputs
from envfactory.verify.envchecks_results import call_outcome, check_result, crash_message
from envfactory.verify.scenario_run import ScenarioOutcome, run_scenario

DETERMINISM_CALLS = 60
ISOLATION_WRITES = 16
CORRUPTIONS = ("drop_required", "extra_argument", "wrong_type", "unknown_id", "malformed_json", "not_object")
CORRUPT_PROBABILITY = 0.35


def check_seeds(env: Environment, planner: CallPlanner, seed: int) -> CheckResult:
    """The `seed_roundtrip` check: every seed loads, dumps and reloads to the same state; snapshots restore exactly."""
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
            tool = plan_tool(planner, rng)
            remember_outputs(session.call(tool, planner.arguments(tool, session, seen, rng)), seen)
        snapshot = session.snapshot()
        reopened = open_session(env, snapshot, seed=seed)
        if reopened.hash() != session.hash() or reopened.state_json() != session.state_json():
            problems.append(("", f"a snapshot taken after calls on seed {name} does not restore exactly"))
        evidence[name] = {"loaded": handle.state_hash(), "after_calls": session.hash()}
    return check_result("seed_roundtrip", problems, evidence, {"seeds": len(states)})


def _contains(actual: Any, expected: Any) -> bool:
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(k in actual and _contains(actual[k], v) for k, v in expected.items())
    if isinstance(expected, list):
        return isinstance(actual, list) and len(actual) == len(expected) and all(
            _contains(a, e) for a, e in zip(actual, expected, strict=True)
        )
    return bool(actual == expected)


def check_determinism(env: Environment, planner: CallPlanner, seed: int) -> CheckResult:
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
        tool = plan_tool(planner, rng)
        args = planner.arguments(tool, session, seen, rng)
        twin = session.fork()
        result = session.call(tool, args)
        repeat = twin.call(tool, args)
        counts["calls"] += 1
        counts["ok"] += result.ok
        if call_outcome(result) != call_outcome(repeat) or session.hash() != twin.hash():
            problems.append((tool, "the same call on the same state gave a different result or state"))
        calls.append((tool, args))
        evidence.append([tool, content_hash(call_outcome(result)), session.hash()])
        remember_outputs(result, seen)
    replay = open_session(env, seed=seed)
    for index, (tool, args) in enumerate(calls):
        again = replay.call(tool, args)
        if content_hash(call_outcome(again)) != evidence[index][1] or replay.hash() != evidence[index][2]:
            problems.append((tool, f"a fresh replay of the call sequence diverged at call {index}"))
            break
    return check_result("determinism", problems, evidence, counts)


def check_isolation(env: Environment, planner: CallPlanner, seed: int) -> CheckResult:
    """Writes go to `writer`; `observer` (another session) and `frozen` (a fork of the writer) must not
    change, neither in state nor in what their read tools return. A read whose answer changes blames the
    write that changed it and the read that showed it."""
    problems: list[tuple[str, str]] = []
    counts: Counter[str] = Counter()
    if not planner.writes:
        return check_result("isolation", [], {}, counts, skipped="the environment has no write tools")
    rng = random.Random(f"{seed}:isolation")
    writer = open_session(env, seed=seed)
    observer = open_session(env, seed=seed)
    observer_hash = observer.hash()
    seen: dict[str, list[str]] = {}
    probes = [(tool, planner.arguments(tool, observer, seen, rng)) for tool in planner.reads for _ in range(2)]
    baseline = [call_outcome(observer.call(tool, args)) for tool, args in probes]
    frozen: Session | None = None
    frozen_hash = ""
    evidence: list[Any] = []
    for index in range(ISOLATION_WRITES):
        tool = rng.choice(planner.writes)
        result = writer.call(tool, planner.arguments(tool, writer, seen, rng))
        remember_outputs(result, seen)
        counts["writes"] += 1
        counts["committed"] += result.ok
        if observer.hash() != observer_hash:
            problems.append((tool, "a write in one session changed another session's state"))
        for position, ((probe, args), before) in enumerate(zip(probes, baseline, strict=True)):
            counts["probes"] += 1
            now = call_outcome(observer.call(probe, args))
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
    return check_result("isolation", problems, evidence, counts)


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


def check_fuzz(env: Environment, planner: CallPlanner, seed: int, calls: int,
                worked: Counter[str] | None = None) -> CheckResult:
    """The `fuzz` check: valid and corrupted arguments yield typed agent-visible errors only (`worked` counts valid successes per tool)."""
    problems: list[tuple[str, str]] = []
    counts: Counter[str] = Counter()
    evidence: list[Any] = []
    rng = random.Random(f"{seed}:fuzz")
    session = open_session(env, seed=seed)
    seen: dict[str, list[str]] = {}
    for index in range(calls):
        if index and index % 60 == 0:  # fresh sessions now and then, so small seeds do not saturate
            session = open_session(env, seed=seed + index)
        tool = plan_tool(planner, rng, write_bias=0.5)
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
        remember_outputs(result, seen)
        evidence.append([tool, mode, result.error.kind if result.error else "ok"])
    return check_result("fuzz", problems, evidence, counts)


def check_scenarios(
    env: Environment, scenarios: Sequence[ScenarioTest], seed: int, outcomes: list[ScenarioOutcome]
) -> CheckResult:
    """The `scenarios` check: each scenario test passes (outcomes appended to `outcomes`)."""
    if not scenarios:
        return check_result("scenarios", [], [], {}, skipped="no scenario tests were given")
    problems: list[tuple[str, str]] = []
    for scenario in scenarios:
        outcome = run_scenario(env, scenario, seed=seed)
        outcomes.append(outcome)
        problems.extend((outcome.failing_tool or "", f"scenario {scenario.id}: {text}") for text in outcome.problems)
    passed = sum(o.passed for o in outcomes)
    evidence = [[o.scenario.id, o.passed, o.problems] for o in outcomes]
    return check_result("scenarios", problems, evidence, {"scenarios": len(outcomes), "passed": passed})


EXERCISE_ROUNDS = 8


def check_authored_exercised(
    env: Environment, planner: CallPlanner, seed: int, worked: Counter[str], outcomes: Sequence[ScenarioOutcome],
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
                remember_outputs(result, seen)
            if all(shown(n) for n in names):
                break
    problems = [
        (name, "never succeeded on valid fuzzed arguments, in a passing scenario, against a reference or in "
               f"{tries[name]} exercise calls: no evidence that it works")
        for name in names if not shown(name)
    ]
    evidence = [[n, worked[n], in_scenarios[n], agreed[n], tries[n]] for n in names]
    return check_result("authored_exercised", problems, evidence, {"authored": len(names), "shown_working": len(names) - len(problems)})


def check_differential(results: Iterable[DifferentialResult]) -> CheckResult:
    """The `differential` check: precomputed differential results have no mismatch."""
    results = list(results)
    if not results:
        return check_result("differential", [], [], {}, skipped="no differential results were given")
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
    return check_result("differential", problems, [r.model_dump(mode="json") for r in results], counts)
