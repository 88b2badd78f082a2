"""Status transitions and counter effects that the compiler infers from the specs (docs/envgen.md,
"Compiling operations"): real botocore services (Braket, MediaLive, WorkDocs) and a hand-written
OpenAPI-style spec. Every environment is written, loaded and driven through the runtime; the real
ones are also verified. No LLM is involved."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.build.helpers import ok

from envfactory.build.compile import CompiledEnv, compile_proposal
from envfactory.build.envdir import write_env_dir
from envfactory.build.propose import proposals_for_resource
from envfactory.build.scenarios import scenarios_from_examples
from envfactory.build.shapes import shape_of
from envfactory.resources import AwsSource, Catalog
from envfactory.runtime import Session, load_env, open_session
from envfactory.spec import Operation, Proposal, Provenance
from envfactory.spec.build import ProposedOperation
from envfactory.spec.declarative import AdjustEffect
from envfactory.verify.envchecks import verify_environment


@pytest.fixture(scope="module")
def aws_catalog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Catalog]:
    with Catalog([AwsSource(["braket", "medialive", "workdocs"])], tmp_path_factory.mktemp("rules-catalog")) as catalog:
        yield catalog


def _compiled(catalog: Catalog, service: str, operation: str) -> tuple[CompiledEnv, dict[str, Operation]]:
    resource = catalog.resource(service)
    proposals, why = proposals_for_resource(resource, None, "utilities")
    matching = [p for p in proposals if any(o.name == operation for o in p.operations)]
    assert matching, f"no proposal of {service} has {operation}: {why}"
    ops = {op.id: op for op in resource.operations}
    return compile_proposal(matching[0], ops), ops


def _seeded_session(compiled: CompiledEnv, directory: Path) -> Session:
    write_env_dir(compiled, directory)
    return open_session(load_env(directory), compiled.seeds["default"])


def _error(session: Session, tool: str, args: dict[str, Any]) -> tuple[str, str]:
    result = session.call(tool, args)
    assert result.error is not None, f"{tool} {args} should fail, gave {result.output}"
    return result.error.kind, result.error.message


def test_braket_cancel_moves_status_once(aws_catalog: Catalog, tmp_path: Path) -> None:
    compiled, ops = _compiled(aws_catalog, "aws:braket", "CancelQuantumTask")
    transitions = compiled.source.collections["quantum_tasks"].transitions
    assert [t.field for t in transitions] == ["status"]
    assert transitions[0].initial == ["CREATED"]  # the first "created"-like value of the spec's enum
    allowed = transitions[0].allowed
    assert allowed["CANCELLED"] == [] and all(to == ["CANCELLED"] for value, to in allowed.items() if value != "CANCELLED")
    cancel = next(t for t in compiled.source.tools if t.name == "cancel_quantum_task")
    assert cancel.operation.kind == "patch" and not cancel.operation.fields_from_args
    assert "Sets status to 'CANCELLED'" in cancel.description
    assert any(c.endswith(":CancelQuantumTask") for c in compiled.compiled)

    s = _seeded_session(compiled, tmp_path)
    tasks = s.state_json()["collections"]["quantum_tasks"]
    key = next(k for k, r in sorted(tasks.items()) if r.get("status") != "CANCELLED")
    assert ok(s, "cancel_quantum_task", {"quantumTaskArn": key})["status"] == "CANCELLED"  # type: ignore[index]
    kind, message = _error(s, "cancel_quantum_task", {"quantumTaskArn": key})
    assert kind == "rule_violation" and "CANCELLED" in message
    assert _error(s, "cancel_quantum_task", {"quantumTaskArn": "no-such-task"})[0] == "not_found"
    report = verify_environment(tmp_path, scenarios_from_examples(load_env(tmp_path).spec, ops, compiled.seeds), operations=ops)
    assert report.verdict == "verified", [(c.name, c.status, c.detail) for c in report.checks if c.status == "failed"]


def test_workdocs_activate_and_deactivate_user(aws_catalog: Catalog, tmp_path: Path) -> None:
    compiled, _ = _compiled(aws_catalog, "aws:workdocs", "ActivateUser")
    (transition,) = compiled.source.collections["users"].transitions
    assert transition.field == "Status" and transition.initial == ["PENDING"]
    write_env_dir(compiled, tmp_path)
    s = open_session(load_env(tmp_path), {"collections": {}, "counters": {}})
    created = ok(s, "create_user", {"Username": "ada", "GivenName": "Ada", "Surname": "Lovelace", "Password": "pw-123456"})
    assert isinstance(created, dict) and created["Status"] == "PENDING"  # assigned: CreateUser takes no status
    user = created["UserId"]
    assert ok(s, "activate_user", {"UserId": user})["Status"] == "ACTIVE"  # type: ignore[index]
    assert _error(s, "activate_user", {"UserId": user})[0] == "rule_violation"
    assert ok(s, "deactivate_user", {"UserId": user})["Status"] == "INACTIVE"  # type: ignore[index]
    assert _error(s, "deactivate_user", {"UserId": user})[0] == "rule_violation"
    assert ok(s, "activate_user", {"UserId": user})["Status"] == "ACTIVE"  # type: ignore[index]


def test_medialive_multiplex_counts_programs_and_runs(aws_catalog: Catalog, tmp_path: Path) -> None:
    compiled, ops = _compiled(aws_catalog, "aws:medialive", "CreateMultiplexProgram")
    seed: Any = compiled.seeds["default"]["collections"]
    assert seed["multiplexes"] and seed["multiplex_programs"]
    for key, multiplex in seed["multiplexes"].items():
        children = [p for p in seed["multiplex_programs"].values() if p["MultiplexId"] == key]
        assert multiplex["ProgramCount"] == len(children)
    create = next(t for t in compiled.source.tools if t.name == "create_multiplex_program")
    (effect,) = create.operation.effects
    assert isinstance(effect, AdjustEffect) and (effect.collection, effect.field) == ("multiplexes", "ProgramCount")

    s = _seeded_session(compiled, tmp_path)
    made = ok(s, "create_multiplex", {"AvailabilityZones": ["us-east-1a", "us-east-1b"], "Name": "news",
                                      "RequestId": "r-1", "MultiplexSettings": {"TransportStreamBitrate": 1000000,
                                                                               "TransportStreamId": 1}})
    assert isinstance(made, dict) and made["ProgramCount"] == 0 and made["State"] == "CREATING"
    mux = made["MultiplexId"]
    settings = {"ProgramNumber": 1, "PreferredChannelPipeline": "PIPELINE_0"}
    for name in ("morning", "evening"):
        ok(s, "create_multiplex_program", {"MultiplexId": mux, "ProgramName": name, "RequestId": name,
                                           "MultiplexProgramSettings": settings})
    assert ok(s, "describe_multiplex", {"MultiplexId": mux})["ProgramCount"] == 2  # type: ignore[index]
    programs = [k for k, p in s.state_json()["collections"]["multiplex_programs"].items() if p["MultiplexId"] == mux]
    ok(s, "delete_multiplex_program", {"MultiplexId": mux, "ProgramName": programs[0]})
    assert ok(s, "describe_multiplex", {"MultiplexId": mux})["ProgramCount"] == 1  # type: ignore[index]
    assert ok(s, "start_multiplex", {"MultiplexId": mux})["State"] == "RUNNING"  # type: ignore[index]
    assert _error(s, "start_multiplex", {"MultiplexId": mux})[0] == "rule_violation"
    assert ok(s, "stop_multiplex", {"MultiplexId": mux})["State"] == "IDLE"  # type: ignore[index]
    assert _error(s, "stop_multiplex", {"MultiplexId": mux})[0] == "rule_violation"
    report = verify_environment(tmp_path, scenarios_from_examples(load_env(tmp_path).spec, ops, compiled.seeds), operations=ops)
    assert report.verdict == "verified", [(c.name, c.status, c.detail) for c in report.checks if c.status == "failed"]


# ---------------------------------------------------------------------------------------------------
# a hand-written OpenAPI-style shop: orders with a status enum and an item counter
# ---------------------------------------------------------------------------------------------------

_ORDER = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "customer": {"type": "string"},
        "status": {"type": "string", "enum": ["pending", "paid", "shipped", "cancelled"]},
        "item_count": {"type": "integer", "minimum": 0},
        "approximate_items": {"type": "integer"},
    },
}
_ITEM = {"type": "object", "properties": {"id": {"type": "string"}, "sku": {"type": "string"}, "quantity": {"type": "integer"}}}


def _path_op(name: str, method: str, path: str, *, body: dict[str, Any] | None = None, output: dict[str, Any] | None = None) -> Operation:
    props: dict[str, Any] = {p.strip("{}"): {"type": "string", "x-in": "path"} for p in path.split("/") if p.startswith("{")}
    required = list(props)
    if body is not None:
        props["body"] = {**body, "x-in": "body"}
        required.append("body")
    return Operation(
        id=f"openapi:shop.example:1.0:{name}", provider="openapi:shop.example", service="shop.example", name=name,
        description=f"{method} {path}", http_method=method, http_path=path,
        input_schema={"type": "object", "properties": props, "required": required},
        output_schema=output or {},
    )


def _shop() -> tuple[Proposal, dict[str, Operation]]:
    order_body = {"type": "object", "properties": {"customer": {"type": "string"}}, "required": ["customer"]}
    item_body = {"type": "object", "properties": {"sku": {"type": "string"}, "quantity": {"type": "integer"}}, "required": ["sku"]}
    ops = [
        _path_op("createOrder", "POST", "/orders", body=order_body, output=_ORDER),
        _path_op("getOrder", "GET", "/orders/{order_id}", output=_ORDER),
        _path_op("listOrders", "GET", "/orders", output={"type": "array", "items": _ORDER}),
        _path_op("cancelOrder", "POST", "/orders/{order_id}/cancel", output=_ORDER),
        _path_op("payOrder", "POST", "/orders/{order_id}/pay", output=_ORDER),
        _path_op("addItem", "POST", "/orders/{order_id}/items", body=item_body, output=_ITEM),
        _path_op("getItem", "GET", "/orders/{order_id}/items/{item_id}", output=_ITEM),
        _path_op("deleteItem", "DELETE", "/orders/{order_id}/items/{item_id}"),
    ]
    proposed = [ProposedOperation(operation_id=op.id, name=op.name, role=shape_of(op).role,
                                  collection="orders" if "item" not in op.name.lower() else "items") for op in ops]
    provenance = Provenance(resource="openapi:shop.example", provider="openapi:shop.example", service="shop.example",
                            licence="MIT", operations=[op.id for op in ops])
    proposal = Proposal(name="shop_example", domain="commerce", title="Shop", provenance=[provenance],
                        operations=proposed, statefulness=0.8, usefulness=0.5).with_id()
    return proposal, {op.id: op for op in ops}


def test_path_action_shape_joins_its_record() -> None:
    _, ops = _shop()
    cancel = shape_of(ops["openapi:shop.example:1.0:cancelOrder"])
    assert (cancel.noun, cancel.role, cancel.item_param, cancel.verb) == ("orders", "action", "order_id", "cancel")
    create_item = shape_of(ops["openapi:shop.example:1.0:addItem"])
    assert (create_item.noun, create_item.role) == ("orders/items", "create")  # a plural noun is a collection, not a verb


def test_hand_written_shop_cancel_and_item_counter(tmp_path: Path) -> None:
    proposal, ops = _shop()
    compiled = compile_proposal(proposal, ops)
    orders = compiled.source.collections["orders"]
    (transition,) = orders.transitions
    # nothing writes status from arguments, so every value may only move to the one action target
    assert transition.allowed == {"pending": ["cancelled"], "paid": ["cancelled"], "shipped": ["cancelled"], "cancelled": []}
    assert transition.initial == ["pending"]
    dropped = {d.operation_id.rsplit(":", 1)[-1]: d.reason for d in compiled.dropped}
    assert "payOrder" in dropped and "'pay' sets no known status" in dropped["payOrder"]
    assert "cancelOrder" not in dropped

    write_env_dir(compiled, tmp_path)
    s = open_session(load_env(tmp_path), {"collections": {}, "counters": {}})
    order = ok(s, "create_order", {"customer": "ada"})
    assert isinstance(order, dict) and order["status"] == "pending" and order["item_count"] == 0
    assert "approximate_items" not in order  # `Approximate…` is never a counter
    key = order["id"]
    first = ok(s, "add_item", {"order_id": key, "sku": "tea"})
    ok(s, "add_item", {"order_id": key, "sku": "cake", "quantity": 2})
    assert ok(s, "get_order", {"order_id": key})["item_count"] == 2  # type: ignore[index]
    ok(s, "delete_item", {"order_id": key, "item_id": first["id"]})  # type: ignore[index]
    assert ok(s, "get_order", {"order_id": key})["item_count"] == 1  # type: ignore[index]
    assert ok(s, "cancel_order", {"order_id": key})["status"] == "cancelled"  # type: ignore[index]
    kind, message = _error(s, "cancel_order", {"order_id": key})
    assert kind == "rule_violation" and "cancelled" in message
    assert s.call("create_order", {"customer": "bo", "item_count": 7}).error is not None  # the counter is not an argument


def test_unmatched_enum_leaves_the_action_dropped() -> None:
    proposal, ops = _shop()
    no_cancel = {**_ORDER, "properties": {**_ORDER["properties"], "status": {"type": "string", "enum": ["open", "done"]}}}  # type: ignore[dict-item]
    changed = {k: (op.model_copy(update={"output_schema": no_cancel}) if op.output_schema == _ORDER else op) for k, op in ops.items()}
    compiled = compile_proposal(proposal, changed)
    assert compiled.source.collections["orders"].transitions == []
    reason = next(d.reason for d in compiled.dropped if d.operation_id.endswith("cancelOrder"))
    assert "no status value of order fits 'cancel'" in reason and "open, done" in reason


def test_compiling_rules_is_deterministic(aws_catalog: Catalog) -> None:
    first, _ = _compiled(aws_catalog, "aws:medialive", "CreateMultiplexProgram")
    second, _ = _compiled(aws_catalog, "aws:medialive", "CreateMultiplexProgram")
    assert first.to_json_bytes() == second.to_json_bytes()
    proposal, ops = _shop()
    assert compile_proposal(proposal, ops).to_json_bytes() == compile_proposal(proposal, dict(reversed(ops.items()))).to_json_bytes()
