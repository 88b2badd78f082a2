"""Call planning shared by the behaviour checks (determinism, isolation, fuzz, seeds, authored tools):
`CallPlanner` draws seeded, state-aware arguments for one environment, and the helpers pick the next
tool and remember the values outputs return.

Deterministic: every choice comes from the `random.Random` passed in and from live session state.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from envfactory.runtime import Environment, Session
from envfactory.spec import HybridImplementation, ToolResult, declarative_model
from envfactory.verify.argsgen import generate_arguments, harvest_values


class CallPlanner:
    """Seeded, state-aware argument generation for one environment.

    Declarative environments tell which argument holds keys of which collection, so those are drawn
    from live keys; for any environment every string seen in state and outputs feeds the pool.
    """

    def __init__(self, env: Environment) -> None:
        """Read the tools (split into reads and writes), key arguments and unsupported arguments of `env`; no
        session is opened."""
        self.env = env
        self.tools = sorted(env.tools)
        self.reads = [t for t in self.tools if not env.tools[t].writes]
        self.writes = [t for t in self.tools if env.tools[t].writes]
        self.key_args = key_arguments(env)
        impl = env.spec.implementation
        self.unsupported: dict[str, frozenset[str]] = (
            {t: frozenset(a) for t, a in impl.authored.unsupported_arguments.items()}
            if isinstance(impl, HybridImplementation) else {}
        )

    def pool(self, session: Session, seen: Mapping[str, list[str]]) -> dict[str, list[str]]:
        """Values to draw arguments from: `seen` plus strings and keys of `session`'s live state."""
        pool = {k: list(v) for k, v in seen.items()}
        state = session.state_json()
        harvest_state(state, pool)
        collections = state.get("collections") if isinstance(state, dict) else None
        if isinstance(collections, dict):
            for arg, collection in self.key_args.items():
                keys = sorted(collections.get(collection) or {})
                if keys:
                    pool[arg] = keys
        return pool

    def arguments(self, tool: str, session: Session, seen: Mapping[str, list[str]], rng: random.Random,
                  *, supported_only: bool = False) -> dict[str, Any]:
        """Generated arguments for `tool` from its input schema and the value pool ({} when none can be)."""
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


def key_arguments(env: Environment) -> dict[str, str]:
    """Argument name -> the collection whose keys it holds, from a declarative model (empty otherwise)."""
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


def harvest_state(state: Any, pool: dict[str, list[str]]) -> None:
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


def remember_outputs(result: ToolResult, seen: dict[str, list[str]]) -> None:
    """Feed a successful result's strings (and its next page token) into `seen` for later arguments."""
    if result.error is None:
        harvest_values(result.output, seen)
        token = result.output.get("next_page_token") if isinstance(result.output, dict) else None
        if isinstance(token, str):
            seen.setdefault("page_token", []).append(token)


def plan_tool(planner: CallPlanner, rng: random.Random, *, write_bias: float = 0.6) -> str:
    """The next tool to call: a write with probability `write_bias` (when there are writes and reads), else a read."""
    if planner.writes and (not planner.reads or rng.random() < write_bias):
        return rng.choice(planner.writes)
    return rng.choice(planner.reads or planner.tools)
