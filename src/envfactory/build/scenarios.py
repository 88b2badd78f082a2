"""Scenario tests as data, from oracles independent of our implementation (docs/verification.md).

Contract:
- `scenarios_from_examples(spec, operations, seeds)` reads the examples the sources themselves ship
  (`Operation.examples`: AWS `examples-1.json`, awscli pages, OpenAPI/Google examples) and turns each
  one it can map faithfully into a `ScenarioTest`. The expectation is read from the example's output,
  never from running our environment. Oracle: `awscli_example` when the example's `source` starts with
  `awscli`, else `spec_example`.
- Mapping: the tool's `ToolSource.operation_id` names the catalog operation (`operations` keyed by
  operation id; the short operation name also resolves); `field_names` (ours -> original) is inverted to
  turn the example input into our arguments. An example is skipped when an input field has no mapping
  or a required argument of the tool stays unset: a partial translation would test something the
  example does not say.
- Expected output: the example output, unwrapped when it is an object with one object member (AWS
  wraps records: `{"TableDescription": {...}}`), renamed to our field names and restricted to fields our
  output schema declares. Fields that hold ids our environment generates, and timestamps, are marked
  `volatile` (present, value not compared). Identifiers the service assigns in the example's own
  account — fields named `…Id`, `…Arn`, `…Url` (and snake-case forms) whose value the example input does
  not contain and that our env does not generate — are left out: they are facts about that account, not
  about the operation.
- State: after a create with an example, a `StateAssertion` says the record exists with the input's
  record fields. Examples that read or change an existing record are used only when a seed holds that
  record (the scenario then starts from that seed); otherwise they are skipped, not faked.
- Deterministic: output order follows tool order then example order; ids are `<tool>-ex<n>`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from envfactory.spec import (
    EnvSpec,
    Operation,
    ScenarioStep,
    ScenarioTest,
    StateAssertion,
    ToolSpec,
    declarative_model,
)

__all__ = ["scenarios_from_examples"]

_TIMESTAMP_NAME = re.compile(r"(_at|Date|Time|Timestamp|DateTime|_time|_date)$")
_ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")
_IDENTIFIER_NAME = re.compile(r"(Id|ID|Arn|ARN|Url|URL|_id|_arn|_url)$")


def _resolve(operations: Mapping[str, Operation], operation_id: str) -> Operation | None:
    if operation_id in operations:
        return operations[operation_id]
    short = operation_id.rsplit(":", 1)[-1]
    matches = [op for op in operations.values() if op.name == short]
    return matches[0] if len(matches) == 1 else None


def _output_properties(tool: ToolSpec) -> set[str]:
    props = tool.output_schema.get("properties")
    return set(props) if isinstance(props, dict) else set()


def _records(state: Any, collection: str) -> Mapping[str, Any]:
    if isinstance(state, dict):
        container = state.get("collections", state)
        if isinstance(container, dict) and isinstance(container.get(collection), dict):
            return container[collection]  # type: ignore[no-any-return]
    return {}


def scenarios_from_examples(
    spec: EnvSpec, operations: Mapping[str, Operation], seeds: Mapping[str, Any] | None = None
) -> list[ScenarioTest]:
    """Scenario tests from the source examples of every tool of `spec` (see the module contract)."""
    model = declarative_model(spec)
    scenarios: list[ScenarioTest] = []
    for tool in spec.tools:
        source = tool.source
        if source is None or not source.operation_id:
            continue
        operation = _resolve(operations, source.operation_id)
        if operation is None:
            continue
        decl = model.operations.get(tool.name) if model is not None else None
        for index, example in enumerate(operation.examples):
            scenario = _scenario(spec, tool, operation, index, example.input, example.output, example.source,
                                 decl, model, seeds or {})
            if scenario is not None:
                scenarios.append(scenario)
    return scenarios


def _scenario(
    spec: EnvSpec, tool: ToolSpec, operation: Operation, index: int, example_input: Any, example_output: Any,
    example_source: str, decl: Any, model: Any, seeds: Mapping[str, Any],
) -> ScenarioTest | None:
    assert tool.source is not None
    inverse = {original: ours for ours, original in tool.source.field_names.items()}
    if not isinstance(example_input, dict):
        return None
    arguments: dict[str, Any] = {}
    for original, value in example_input.items():
        if original not in inverse:
            return None
        arguments[inverse[original]] = value
    required = tool.input_schema.get("required")
    if isinstance(required, list) and any(name not in arguments for name in required):
        return None
    generated: set[str] = set()
    collection: str | None = None
    initial: str | None = "default" if "default" in seeds else None
    if decl is not None:
        collection = decl.collection
        key = model.collections[decl.collection].key
        if decl.kind == "create":
            if decl.key_arg is None:
                generated.add(key)
            initial = _seed_holding_references(model, decl.collection, arguments, seeds)
            if initial == "":
                return None  # it refers to records no seed holds
        elif decl.key_arg is not None:
            wanted = arguments.get(decl.key_arg)
            holders = sorted(name for name, state in seeds.items() if wanted in _records(state, decl.collection))
            if not holders:
                return None  # the example acts on a record no seed holds: skip rather than invent it
            initial = holders[0]
    elif tool.effect == "write" or any(isinstance(v, str) for v in arguments.values()):
        return None  # python toolkits: no declared key to check the example's preconditions against
    echoed = {v for v in example_input.values() if isinstance(v, str)}
    expected, volatile = _expected_output(tool, example_output, inverse, generated, echoed, getattr(decl, "kind", None),
                                          getattr(decl, "envelope", None))
    oracle = "awscli_example" if example_source.lower().startswith("awscli") else "spec_example"
    step = ScenarioStep(tool=tool.name, arguments=arguments, expect_output=expected, volatile=volatile)
    assertions: list[StateAssertion] = []
    if decl is not None and decl.kind == "create" and collection is not None:
        fields = set(model.collections[collection].record_schema.get("properties") or {})
        facts = {k: v for k, v in arguments.items() if k in fields}
        if decl.key_arg is not None and decl.key_arg in arguments:
            assertions.append(StateAssertion(collection=collection, key=str(arguments[decl.key_arg]), expect=facts))
        elif facts:
            assertions.append(StateAssertion(collection=collection, filter=facts, expect={}))
    return ScenarioTest(
        id=f"{tool.name}-ex{index}",
        title=f"{operation.name} as in its {oracle.replace('_', ' ')}",
        oracle=oracle,
        source=f"{operation.id} {example_source or 'examples'}#{index}",
        initial_state=initial,
        steps=[step],
        state_assertions=assertions,
    )


def _seed_holding_references(
    model: Any, collection: str, arguments: Mapping[str, Any], seeds: Mapping[str, Any]
) -> str | None:
    """The first seed holding every record the create's arguments refer to; None when it refers to
    nothing (start empty); "" when no seed holds them all."""
    wanted = [
        (ref.collection, arguments[ref.field]) for ref in model.collections[collection].references
        if ref.field in arguments and isinstance(arguments[ref.field], str)
    ]
    if not wanted:
        return None
    for name in sorted(seeds):
        if all(key in _records(seeds[name], target) for target, key in wanted):
            return name
    return ""


def _expected_output(
    tool: ToolSpec, output: Any, inverse: Mapping[str, str], generated: set[str], echoed: set[str],
    kind: str | None = None, envelope: Any = None,
) -> tuple[dict[str, Any] | None, list[str]]:
    """The part of an example's output the tool must reproduce, and its volatile paths. A list's page
    (under its envelope's names too) depends on the state: never expected. A record under an envelope
    (`{"GameServerGroup": {...}}`) is compared field by field inside it."""
    if not isinstance(output, dict) or not output:
        return None, []
    if len(output) == 1:
        ((name, only),) = output.items()
        if isinstance(only, dict) and name not in inverse:
            output = only
    declared = _output_properties(tool)
    wrapped = envelope is not None and kind != "list"
    if wrapped:
        props = tool.output_schema.get("properties")
        inner = props.get(envelope.records) if isinstance(props, dict) else None
        inner_props = inner.get("properties") if isinstance(inner, dict) else None
        declared = set(inner_props) if isinstance(inner_props, dict) else set()
    elif envelope is not None:
        declared -= {envelope.records, envelope.next_token, envelope.total}
    expected: dict[str, Any] = {}
    volatile: list[str] = []
    for original, value in output.items():
        ours = inverse.get(original, original)
        if ours not in declared:
            continue
        if ours not in generated and _IDENTIFIER_NAME.search(original) and value not in echoed:
            continue  # assigned by the service in the example's account: says nothing about the operation
        expected[ours] = value
        if ours in generated or _TIMESTAMP_NAME.search(ours) or (isinstance(value, str) and _ISO_DATETIME.match(value)):
            volatile.append(ours)
    if wrapped and expected:
        return {envelope.records: expected}, sorted(f"{envelope.records}.{v}" for v in volatile)
    return (expected or None), sorted(volatile)
