"""Compiler generation 2 on real botocore services, from the shipped library's own proposals (MTurk bonuses
and worker blocks, Braket quantum tasks): a key shared with a collection it does not name is no reference,
final states and idempotency tokens. Generation 1 compiles them as shipped. No LLM."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.build.helpers import ok, recorded_proposal

from envfactory.build.compile import CompiledEnv, compile_proposal
from envfactory.build.envdir import write_env_dir
from envfactory.resources import AwsSource, Catalog
from envfactory.runtime import Session, load_env, open_session


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Catalog]:
    with Catalog([AwsSource(["mturk", "braket"])], tmp_path_factory.mktemp("gen2-catalog")) as built:
        yield built


def _compiled(catalog: Catalog, env: str, generation: int) -> CompiledEnv:
    proposal = recorded_proposal(env)
    operations = {o.operation_id: catalog.operation(o.operation_id) for o in proposal.operations}
    return compile_proposal(proposal, operations, generation=generation)


def _empty(compiled: CompiledEnv, directory: Path) -> Session:
    write_env_dir(compiled, directory)
    return open_session(load_env(directory), {"collections": {}, "counters": {}})


def test_a_bonus_goes_to_any_worker_not_only_a_blocked_one(catalog: Catalog, tmp_path: Path) -> None:
    shipped = _compiled(catalog, "mturk_bonuses_worker_blocks", 1)
    assert [(r.field, r.collection) for r in shipped.source.collections["bonuses"].references] == [("WorkerId", "worker_blocks")]
    compiled = _compiled(catalog, "mturk_bonuses_worker_blocks", 2)
    assert compiled.source.collections["bonuses"].references == []
    s = _empty(compiled, tmp_path)
    bonus: dict[str, Any] = {"WorkerId": "A1WORKER", "BonusAmount": "1.00", "AssignmentId": "a-1", "Reason": "thanks"}
    ok(s, "send_bonus", bonus)  # generation 1: not_found, the worker has no block
    ok(s, "create_worker_block", {"WorkerId": "A1WORKER", "Reason": "spam"})
    ok(s, "delete_worker_block", {"WorkerId": "A1WORKER"})  # a bonus sent does not pin the block


def test_braket_tasks_keep_their_final_states_and_client_tokens(catalog: Catalog, tmp_path: Path) -> None:
    shipped = _compiled(catalog, "braket_quantum_tasks", 1)
    assert all(t.operation.idempotency is None for t in shipped.source.tools)
    compiled = _compiled(catalog, "braket_quantum_tasks", 2)
    (transition,) = compiled.source.collections["quantum_tasks"].transitions
    finals = {v for v, to in transition.allowed.items() if to == []}
    assert finals == {"CANCELLED", "COMPLETED", "FAILED"}
    create = next(t for t in compiled.source.tools if t.operation.kind == "create")
    assert create.operation.idempotency is not None and create.operation.idempotency.arg == "clientToken"
    s = _empty(compiled, tmp_path)
    args: dict[str, Any] = {"action": "{}", "clientToken": "tok-1", "deviceArn": "arn:aws:braket:::device/qpu/x",
                            "outputS3Bucket": "bucket", "outputS3KeyPrefix": "out", "shots": 10}
    first = ok(s, create.name, args)
    assert ok(s, create.name, args) == first
    result = s.call(create.name, {**args, "shots": 20})
    assert result.error is not None and result.error.kind == "rule_violation" and "conflict" in result.error.message


@pytest.fixture(scope="module")
def cloudmap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Catalog]:
    with Catalog([AwsSource(["servicediscovery"])], tmp_path_factory.mktemp("gen2-cloudmap")) as built:
        yield built


def test_cloud_map_services_are_keyed_by_the_id_the_create_answers(cloudmap: Catalog, tmp_path: Path) -> None:
    shipped = _compiled(cloudmap, "servicediscovery", 1)
    create1 = next(t for t in shipped.source.tools if t.name == "create_service")
    assert create1.operation.key_arg == "Name"  # generation 1: the one required string was taken for the key
    compiled = _compiled(cloudmap, "servicediscovery", 2)
    create = next(t for t in compiled.source.tools if t.name == "create_service")
    assert create.operation.key_arg is None  # CreateService answers {"Service": {"Id": ...}}: the key is generated
    s = _empty(compiled, tmp_path)
    namespace = ok(s, "create_http_namespace", {"Name": "ns-a", "CreatorRequestId": "r-0"})
    ns_id = namespace.get("OperationId") or next(iter(s.state_json()["collections"]["namespaces"]))  # type: ignore[union-attr]
    made = ok(s, "create_service", {"Name": "web", "NamespaceId": ns_id, "CreatorRequestId": "r-1"})
    service = made["Service"]  # type: ignore[index]
    # the key is generated (answered as `ServiceId`, the request's spelling, not the response's `Id` yet)
    assert service["Name"] == "web" and service["ServiceId"] != "web"
    assert list(s.state_json()["collections"]["services"]) == [service["ServiceId"]]
    # a list under a service that does not exist is ServiceNotFound, not an empty page
    assert ok(s, "list_instances", {"ServiceId": service["ServiceId"]})["Instances"] == []  # type: ignore[index]
    missing = s.call("list_instances", {"ServiceId": "srv-missing"})
    assert missing.error is not None and missing.error.kind == "not_found"


@pytest.fixture(scope="module")
def blockchain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Catalog]:
    with Catalog([AwsSource(["managedblockchain"])], tmp_path_factory.mktemp("gen2-blockchain")) as built:
        yield built


def test_a_member_joins_only_by_an_invitation_that_exists(blockchain: Catalog, tmp_path: Path) -> None:
    env = "managedblockchain_members_networks"
    assert "invitations" not in _compiled(blockchain, env, 1).source.collections
    compiled = _compiled(blockchain, env, 2)
    invitations = compiled.source.collections["invitations"]  # the service holds them; no tool manages them
    assert invitations.key == "InvitationId" and not any(t.operation.collection == "invitations" for t in compiled.source.tools)
    assert ("InvitationId", "invitations") in [(r.field, r.collection) for r in compiled.source.collections["members"].references]
    write_env_dir(compiled, tmp_path)
    seed = compiled.seeds["default"]["collections"]
    s = open_session(load_env(tmp_path), compiled.seeds["default"])
    network, invitation = next(iter(seed["networks"])), next(iter(seed["invitations"]))
    config = {"Name": "m-new", "FrameworkConfiguration": {"Fabric": {"AdminUsername": "admin", "AdminPassword": "Passw0rd1"}}}
    args: dict[str, Any] = {"NetworkId": network, "MemberConfiguration": config, "ClientRequestToken": "t-1"}
    before = s.hash()
    refused = s.call("create_member", {**args, "InvitationId": "in-missing"})
    assert refused.error is not None and refused.error.kind == "not_found" and s.hash() == before
    ok(s, "create_member", {**args, "ClientRequestToken": "t-2", "InvitationId": invitation})


@pytest.fixture(scope="module")
def ses(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Catalog]:
    with Catalog([AwsSource(["ses"])], tmp_path_factory.mktemp("gen2-ses")) as built:
        yield built


def test_receipt_rules_are_keyed_by_the_rules_own_name(ses: Catalog, tmp_path: Path) -> None:
    env = "ses_receipt_rules_receipt_rule_sets"
    shipped = next(t for t in _compiled(ses, env, 1).source.tools if t.name == "create_receipt_rule")
    assert shipped.operation.key_arg is None  # generation 1: a generated id the API never answers
    compiled = _compiled(ses, env, 2)
    create = next(t for t in compiled.source.tools if t.name == "create_receipt_rule")
    assert create.operation.key_arg == "Rule.Name" and "Rule" in create.input_schema["required"]
    s = _empty(compiled, tmp_path)
    ok(s, "create_receipt_rule_set", {"RuleSetName": "set-a"})
    ok(s, "create_receipt_rule", {"RuleSetName": "set-a", "Rule": {"Name": "rule-1", "Enabled": True}})
    assert list(s.state_json()["collections"]["receipt_rules"]) == ["rule-1"]
    again = s.call("create_receipt_rule", {"RuleSetName": "set-a", "Rule": {"Name": "rule-1"}})
    assert again.error is not None and again.error.kind == "rule_violation" and again.error.path == "/Rule/Name"
    ok(s, "describe_receipt_rule", {"RuleSetName": "set-a", "RuleName": "rule-1"})
