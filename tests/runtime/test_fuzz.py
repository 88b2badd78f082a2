"""Hypothesis fuzzing of every bundled reference environment through the session interface.

Each example is an episode of schema-guided calls (arguments from `verify.argsgen`, ids drawn from live
state and earlier outputs) mixed with deliberately bad calls (malformed JSON, unknown tools, missing,
extra or mistyped arguments, unknown ids). Across the examples of one environment at least
`CALLS_PER_ENV` calls are sent. Properties checked:
- no call raises; every failure is a typed error of an agent-visible kind;
- every successful output validates against the tool's output schema (checked here independently);
- replaying only the successful calls in a fresh session reproduces the final state and hash;
- at least 30% of calls succeed and at least 10% are calls to write tools.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import jsonschema_rs
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from envfactory.runtime import Environment, bundled_env_names, load_env, open_session
from envfactory.spec import AGENT_ERROR_KINDS, DeclarativeImplementation
from envfactory.verify.argsgen import generate_arguments, harvest_values

CALLS_PER_EPISODE = 80
EPISODES = 45
CALLS_PER_ENV = CALLS_PER_EPISODE * EPISODES  # 3,600 per env; >= 10,000 over the bundled envs

CORRUPTIONS = ("none",) * 30 + ("malformed_json", "unknown_tool", "drop_required", "extra_argument", "wrong_type", "unknown_id")


def key_pools(env: Environment) -> dict[str, dict[str, str]]:
    """For declarative envs: per tool, which argument names hold keys of which collection."""
    impl = env.spec.implementation
    if not isinstance(impl, DeclarativeImplementation):
        return {}
    model = impl.model
    pools: dict[str, dict[str, str]] = {}
    for tool, op in model.operations.items():
        coll = model.collections[op.collection]
        mapping = {}
        if op.kind != "create" or op.key_arg is not None:
            mapping[op.key_arg or coll.key] = op.collection
        for ref in coll.references:
            mapping[ref.field.split(".")[-1].removesuffix("[]")] = ref.collection
        pools[tool] = mapping
    return pools


def harvest_state(state: Any, pool: dict[str, list[str]]) -> None:
    """Ids from live state: the keys of every id-keyed map (`events: {evt_1: ...}`) become values of
    the argument named after it (`event_id`), besides every string under its own field name."""
    harvest_values(state, pool)
    stack = [state]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for name, value in node.items():
                if isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
                    bucket = pool.setdefault(f"{name.removesuffix('s')}_id", [])
                    bucket.extend(k for k in value if k not in bucket)
                stack.append(value)
        elif isinstance(node, list):
            stack.extend(node)


def live_pool(base: dict[str, list[str]], mapping: dict[str, str], state: Any) -> dict[str, list[str]]:
    """Pool whose key arguments are drawn from the live keys of the right collection."""
    pool = dict(base)
    harvest_state(state, pool)
    for arg, collection in mapping.items():
        keys = sorted(state["collections"][collection])
        if keys:
            pool[arg] = keys
    return pool


def corrupt(kind: str, tool: str, args: dict[str, Any], schema: dict[str, Any], rng: random.Random) -> tuple[str, Any]:
    """Turn valid arguments into a specific kind of bad call."""
    if kind == "malformed_json":
        return tool, orjson.dumps(args).decode()[:-1]
    if kind == "unknown_tool":
        return tool + "_x", args
    required = [r for r in schema.get("required", []) if r in args]
    if kind == "drop_required" and required:
        args = dict(args)
        del args[rng.choice(required)]
    elif kind == "extra_argument":
        args = {**args, "zz_unexpected": 1}
    elif kind == "wrong_type" and args:
        name = rng.choice(sorted(args))
        args = {**args, name: [args[name]] if not isinstance(args[name], list) else {"x": 1}}
    elif kind == "unknown_id":
        ids = [k for k, v in args.items() if isinstance(v, str) and (k == "id" or k.endswith("_id") or k == "sku")]
        if ids:
            args = {**args, rng.choice(ids): "zz_missing_0000"}
    return tool, args


@pytest.mark.parametrize("env_name", bundled_env_names())
def test_fuzzed_calls_never_crash_and_replay_exactly(env_name: str) -> None:
    env = load_env(env_name)
    tools = sorted(env.tools)
    output_validators = {name: jsonschema_rs.validator_for(t.spec.output_schema) for name, t in env.tools.items()}
    totals: Counter[str] = Counter()
    pools = key_pools(env)

    @settings(max_examples=EPISODES, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(data=st.data())
    def episode(data: st.DataObject) -> None:
        seed = data.draw(st.integers(min_value=0, max_value=2**31 - 1), label="seed")
        rng = random.Random(seed)
        session = open_session(env, seed=seed % 1000)
        pool: dict[str, list[str]] = {}
        for _ in range(CALLS_PER_EPISODE):
            tool = data.draw(st.sampled_from(tools), label="tool")
            mode = data.draw(st.sampled_from(CORRUPTIONS), label="corruption")
            schema = env.tools[tool].spec.input_schema
            mapping = pools.get(tool, {})
            live = live_pool(pool, mapping, session.state_json())
            args = generate_arguments(schema, rng, live)
            name, payload = corrupt(mode, tool, args, schema, rng)
            result = session.call(name, payload)
            totals["calls"] += 1
            totals["writes"] += env.tools[tool].writes and name == tool
            if result.error is None:
                totals["ok"] += 1
                assert output_validators[name].is_valid(result.output), (name, result.output)
                harvest_values(result.output, pool)
                if isinstance(result.output, dict) and isinstance(result.output.get("next_page_token"), str):
                    pool.setdefault("page_token", []).append(result.output["next_page_token"])
            else:
                assert result.error.kind in AGENT_ERROR_KINDS, result.error
                assert result.error.message
                totals[f"error:{result.error.kind}"] += 1
                totals[f"{tool}:{result.error.kind}:{mode}"] += 1
                if mode == "unknown_tool":
                    assert result.error.kind == "unknown_tool"
                if mode == "malformed_json":
                    assert result.error.kind == "invalid_arguments"
        replay = open_session(env, seed=seed % 1000)
        for call, result in session.log:
            if result.ok:
                again = replay.call(call.tool, call.arguments)
                assert again.ok and again.output == result.output, (call, again)
        assert replay.hash() == session.hash()
        assert replay.snapshot().state == session.snapshot().state

    episode()
    assert totals["calls"] == CALLS_PER_ENV
    assert totals["ok"] >= 0.30 * totals["calls"], totals
    assert totals["writes"] >= 0.10 * totals["calls"], totals
    assert totals["error:invalid_arguments"] > 0 and totals["error:unknown_tool"] > 0, totals


def test_fuzz_budget_reaches_ten_thousand_calls() -> None:
    assert CALLS_PER_ENV * len(bundled_env_names()) >= 10_000 or len(bundled_env_names()) < 3
    assert len(bundled_env_names()) >= 3, "three reference environments are bundled"
