"""Differential tests (`build.differential`) against moto 5.2.1 (in a subprocess) and the npm MCP memory
server (over stdio with the official SDK): hand-written test-fixture environments for SQS, SES,
DynamoDB tables and the memory graph (tests/fixtures/differential, with real `ToolSource`s) run the same
scripts as the references; agreement is measured modulo generated ids (bijection) and timestamps, and
real disagreements are reported with the tool named. No LLM is involved."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from tests.build.helpers import proposal_with

from envfactory.build.differential import ScriptCall, moto_run, run_memory_server, run_moto
from envfactory.build.envdir import write_env_dir
from envfactory.cli.resources import default_cache_dir
from envfactory.resources import Catalog, known_servers
from envfactory.runtime import load_env
from envfactory.verify.envchecks import verify_environment

pytest.importorskip("moto", reason="moto is part of the test extra: pip install -e '.[test]'")

FIXTURES = Path(__file__).parents[1] / "fixtures" / "differential"
KEY = [{"AttributeName": "pk", "KeyType": "HASH"}]
ATTRS = [{"AttributeName": "pk", "AttributeType": "S"}]
MAIL = {"Subject": {"Data": "hi"}, "Body": {"Text": {"Data": "hello"}}}

SQS_SCRIPT = [
    ScriptCall("create_queue", {"queue_name": "orders", "attributes": {"VisibilityTimeout": "45"}}),
    ScriptCall("create_queue", {"queue_name": "billing"}),
    ScriptCall("get_queue_attributes", {"queue_url": "queue_0001", "attribute_names": ["All"]}),
    ScriptCall("send_message", {"queue_url": "queue_0001", "message_body": "hello"}),
    ScriptCall("send_message", {"queue_url": "queue_0002", "message_body": "again"}),
    ScriptCall("send_message", {"queue_url": "queue_0009", "message_body": "lost"}),
    ScriptCall("list_queues", {"queue_name_prefix": "ord"}),
    ScriptCall("delete_queue", {"queue_url": "queue_0002"}),
    ScriptCall("get_queue_attributes", {"queue_url": "queue_0002", "attribute_names": ["All"]}),
]
SQS_DROPPED = {
    "ReceiveMessage": "returns receipt handles and hides messages for a visibility timeout: not CRUD over records",
    "DeleteMessage": "takes a receipt handle from ReceiveMessage, which is not compiled",
}


@pytest.mark.slow
def test_sqs_agrees_with_moto_modulo_generated_ids() -> None:
    result = run_moto(FIXTURES / "sqs", "sqs", SQS_SCRIPT, dropped=SQS_DROPPED)
    assert result.reference == "moto==5.2.1:sqs"
    assert result.mismatches == [], result.mismatches
    assert result.calls_compared == len(SQS_SCRIPT) + 1  # + the list_queues state probe
    assert result.matched == result.calls_compared
    assert result.operations_compared == ["CreateQueue", "DeleteQueue", "GetQueueAttributes", "ListQueues", "SendMessage"]
    # the URLs, message ids, the VisibilityTimeout attribute, and the listed queues were really compared
    assert result.values_compared >= 6
    assert [d.operation for d in result.dropped_ops_not_compared] == ["DeleteMessage", "ReceiveMessage"]


@pytest.mark.slow
def test_a_real_disagreement_is_reported_with_the_tool_named(tmp_path: Path) -> None:
    # CreateQueue with an existing name and the same attributes returns the existing queue in AWS; the
    # fixture declares queue names unique, so it refuses: a genuine semantic difference.
    script = [ScriptCall("create_queue", {"queue_name": "orders"}), ScriptCall("create_queue", {"queue_name": "orders"})]
    result = run_moto(FIXTURES / "sqs", "sqs", script)
    assert [(m.step, m.tool, m.aspect) for m in result.mismatches] == [(1, "create_queue", "outcome")]
    assert "rule_violation" in result.mismatches[0].detail
    # A wrong attribute value is a field mismatch: the env always stores VisibilityTimeout 30. CreateQueue
    # answers only the URL, so the disagreement shows where the attributes are read back.
    target = tmp_path / "sqs"
    shutil.copytree(FIXTURES / "sqs", target)
    document = json.loads((target / "env.json").read_text())
    create = next(t for t in document["tools"] if t["name"] == "create_queue")
    create["operation"]["assign"]["attributes"] = {"op": "const", "value": {"VisibilityTimeout": "30"}}
    (target / "env.json").write_text(json.dumps(document))
    result = run_moto(target, "sqs", SQS_SCRIPT[:3])
    assert {(m.tool, m.aspect) for m in result.mismatches} == {("get_queue_attributes", "field")}
    assert any("VisibilityTimeout" in m.detail for m in result.mismatches)
    report = verify_environment(target, fuzz_calls=20, differential=[result])
    assert report.verdict == "rejected" and report.failing_tools() == ["get_queue_attributes"]


@pytest.mark.slow
def test_dynamodb_tables_agree_with_moto() -> None:
    script = [
        ScriptCall("create_table", {"table_name": "orders", "key_schema": KEY, "attribute_definitions": ATTRS,
                                    "billing_mode": "PAY_PER_REQUEST"}),
        ScriptCall("create_table", {"table_name": "orders", "key_schema": KEY, "attribute_definitions": ATTRS,
                                    "billing_mode": "PAY_PER_REQUEST"}),
        ScriptCall("describe_table", {"table_name": "orders"}),
        ScriptCall("describe_table", {"table_name": "missing"}),
        ScriptCall("list_tables", {}),
        ScriptCall("delete_table", {"table_name": "orders"}),
        ScriptCall("describe_table", {"table_name": "orders"}),
    ]
    dropped = {op: "items are keyed by each table's KeySchema; the compiled env holds no per-table item collections"
               for op in ("PutItem", "GetItem", "DeleteItem", "UpdateItem")}
    result = run_moto(FIXTURES / "dynamodb_tables", "dynamodb", script, dropped=dropped)
    assert result.mismatches == [], result.mismatches
    assert result.matched == result.calls_compared == len(script) + 1
    assert result.values_compared >= 8  # KeySchema, AttributeDefinitions, TableStatus, names
    assert len(result.dropped_ops_not_compared) == 4


@pytest.mark.slow
def test_ses_agrees_except_the_documented_unverified_sender_kind() -> None:
    script = [
        ScriptCall("verify_email_identity", {"email_address": "ann@example.org"}),
        ScriptCall("verify_email_identity", {"email_address": "bob@example.org"}),
        ScriptCall("list_identities", {}),
        ScriptCall("send_email", {"source": "ann@example.org", "destination": {"ToAddresses": ["x@example.org"]},
                                  "message": MAIL}),
        ScriptCall("delete_identity", {"identity": "bob@example.org"}),
        ScriptCall("send_email", {"source": "eve@example.org", "destination": {"ToAddresses": ["x@example.org"]},
                                  "message": MAIL}),
    ]
    result = run_moto(FIXTURES / "ses", "ses", script,
                      dropped={"GetSendQuota": "a quota computed from sending history, not a stored record"})
    # SES refuses an unverified sender with MessageRejected (a rule); the declarative reference check
    # answers not_found for a dangling reference: the harness reports exactly that call.
    assert [(m.step, m.tool, m.aspect) for m in result.mismatches] == [(5, "send_email", "outcome")]
    assert "MessageRejected" in result.mismatches[0].detail
    assert result.matched == result.calls_compared - 1
    assert [d.operation for d in result.dropped_ops_not_compared] == ["GetSendQuota"]


def test_fixture_envs_pass_every_local_check() -> None:
    for name in ("sqs", "ses", "dynamodb_tables", "memory"):
        report = verify_environment(load_env(FIXTURES / name), fuzz_calls=60)
        assert report.verdict == "verified", (name, [c.problems for c in report.checks if c.status == "failed"])


# -- the MCP memory server (npm @modelcontextprotocol/server-memory, started over stdio with the SDK) ---

MEMORY_DROPPED = {
    "add_observations": "appends to an array field; declarative operations replace whole fields",
    "delete_observations": "removes array elements; declarative operations replace whole fields",
    "delete_relations": "deletes by matching record content, not by key",
    "search_nodes": "full-text search over names, types and observations: computed, not a record lookup",
}


def _memory_cache() -> Path:
    if shutil.which("node") is None:
        pytest.skip("node is not installed: the MCP memory server is a node program")
    cache = default_cache_dir()
    servers, _ = known_servers(cache)
    if not any(s.name == "memory" for s in servers):
        pytest.skip("the npm memory server is not set up; run: envfactory resources setup --only mcp-memory")
    return cache


@pytest.mark.slow
def test_memory_server_agrees_on_entities_relations_and_the_graph() -> None:
    script = [
        ScriptCall("create_entity", {"name": "Ada", "entityType": "person", "observations": ["wrote notes"]}),
        ScriptCall("create_entity", {"name": "Engine", "entityType": "machine", "observations": []}),
        ScriptCall("create_relation", {"from": "Ada", "to": "Engine", "relationType": "programmed"}),
        ScriptCall("get_entity", {"name": "Ada"}),
        ScriptCall("create_entity", {"name": "Babbage", "entityType": "person", "observations": ["designed it"]}),
        ScriptCall("create_relation", {"from": "Babbage", "to": "Engine", "relationType": "designed"}),
        ScriptCall("delete_entity", {"name": "Babbage"}),  # its relation goes too, on both sides
    ]
    result = run_memory_server(FIXTURES / "memory", script, cache_dir=_memory_cache(), dropped=MEMORY_DROPPED)
    assert result.reference == "npm:@modelcontextprotocol/server-memory@2026.8.31"
    assert result.mismatches == [], result.mismatches
    assert result.calls_compared == len(script) + 2  # + read_graph probes for entities and relations
    assert result.matched == result.calls_compared
    assert result.values_compared >= 20
    assert "read_graph" in result.operations_compared
    assert len(result.dropped_ops_not_compared) == 4


@pytest.mark.slow
def test_memory_server_semantic_differences_are_reported() -> None:
    script = [
        ScriptCall("create_entity", {"name": "Ada", "entityType": "person", "observations": []}),
        ScriptCall("create_entity", {"name": "Ada", "entityType": "person", "observations": []}),
        ScriptCall("create_relation", {"from": "Ada", "to": "Nobody", "relationType": "knows"}),
    ]
    result = run_memory_server(FIXTURES / "memory", script, cache_dir=_memory_cache())
    found = [(m.step, m.tool, m.aspect) for m in result.mismatches]
    # The server ignores a duplicate entity and accepts a relation to an unknown entity; the fixture
    # refuses both, and the graph read at the end differs by that relation.
    assert found == [(1, "create_entity", "outcome"), (2, "create_relation", "outcome"), (4, "list_relations", "state")]


# -- environments compiled by the build (build.compile) from the real botocore models -----------------


@pytest.mark.slow
def test_compiled_sqs_and_ses_agree_with_moto(small_catalog: Catalog, tmp_path: Path) -> None:
    _, sqs = proposal_with(small_catalog, "aws:sqs", "CreateQueue")
    write_env_dir(sqs, tmp_path / "sqs")
    dropped = {d.operation_id.rsplit(":", 1)[-1]: d.reason for d in sqs.dropped}
    result = run_moto(tmp_path / "sqs", "sqs", [
        ScriptCall("create_queue", {"QueueName": "orders", "Attributes": {"VisibilityTimeout": "45"}}),
        ScriptCall("create_queue", {"QueueName": "billing"}),
        ScriptCall("get_queue_attributes", {"QueueUrl": "queue_0001", "AttributeNames": ["All"]}),
        ScriptCall("send_message", {"QueueUrl": "queue_0001", "MessageBody": "hello"}),
        ScriptCall("send_message", {"QueueUrl": "queue_0009", "MessageBody": "lost"}),
        ScriptCall("list_queues", {"QueueNamePrefix": "ord"}),
        ScriptCall("set_queue_attributes", {"QueueUrl": "queue_0001", "Attributes": {"VisibilityTimeout": "60"}}),
        ScriptCall("get_queue_attributes", {"QueueUrl": "queue_0001", "AttributeNames": ["All"]}),
        ScriptCall("delete_queue", {"QueueUrl": "queue_0002"}),
        ScriptCall("get_queue_attributes", {"QueueUrl": "queue_0002", "AttributeNames": ["All"]}),
    ], dropped=dropped)
    assert result.mismatches == [], result.mismatches
    assert result.matched == result.calls_compared == 11
    assert {"ReceiveMessage", "DeleteMessage"} <= {d.operation for d in result.dropped_ops_not_compared}
    _, ses = proposal_with(small_catalog, "aws:ses", "VerifyEmailIdentity")
    write_env_dir(ses, tmp_path / "ses")
    result = run_moto(tmp_path / "ses", "ses", [
        ScriptCall("verify_email_identity", {"EmailAddress": "ann@example.org"}),
        ScriptCall("verify_domain_identity", {"Domain": "example.org"}),
        ScriptCall("list_identities", {}),
        ScriptCall("delete_identity", {"Identity": "ann@example.org"}),
        ScriptCall("list_identities", {}),
    ])
    assert result.mismatches == [], result.mismatches
    assert result.values_compared >= 3  # the listed identities, before and after the delete


@pytest.mark.slow
def test_a_moto_run_freezes_a_reference_scenario_that_replays_without_moto(tmp_path: Path) -> None:
    run = moto_run(FIXTURES / "sqs", "sqs", SQS_SCRIPT)
    scenario = run.scenario
    assert scenario is not None and scenario.oracle == "reference" and scenario.initial_state is None
    assert len(scenario.steps) == len(SQS_SCRIPT) + 1  # every call agreed, the state probe included
    create, _, attributes, send, _, lost = scenario.steps[:6]
    assert create.volatile == ["queue_url"]  # moto's URL is a generated id: presence only
    assert attributes.expect_output == {"attributes": {"VisibilityTimeout": "45"}}  # moto's value
    assert send.volatile == ["message_id"]
    assert lost.expect_error == "not_found"  # moto's QueueDoesNotExist
    report = verify_environment(FIXTURES / "sqs", [scenario], fuzz_calls=20)
    assert report.scenarios_by_oracle["reference"].passed == 1
    # The frozen expectation is moto's, so an env that stores a different value fails it, without moto.
    target = tmp_path / "sqs"
    shutil.copytree(FIXTURES / "sqs", target)
    document = json.loads((target / "env.json").read_text())
    create_tool = next(t for t in document["tools"] if t["name"] == "create_queue")
    create_tool["operation"]["assign"]["attributes"] = {"op": "const", "value": {"VisibilityTimeout": "30"}}
    (target / "env.json").write_text(json.dumps(document))
    report = verify_environment(target, [scenario], fuzz_calls=20)
    assert report.check("scenarios").failing_tools == ["get_queue_attributes"]  # type: ignore[union-attr]
