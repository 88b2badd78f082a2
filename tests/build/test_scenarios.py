"""Scenario tests from source examples (`build.scenarios`): the expectation comes from the example's
output (never from running our env), inputs are mapped through `ToolSource.field_names`, unmappable
examples are skipped, and the scenarios run through `verify_environment` with a per-oracle tally.
Operations are built here with examples shaped like the awscli/AWS ones (hand-written data; no LLM);
one test reads the real catalog when `envfactory resources setup` has fetched the awscli examples."""

from __future__ import annotations

from pathlib import Path

import pytest

from envfactory.build.scenarios import scenarios_from_examples
from envfactory.resources import Catalog
from envfactory.runtime import load_env
from envfactory.spec import Operation, OperationExample, dump_scenarios, load_scenarios
from envfactory.verify.envchecks import verify_environment

SQS = Path(__file__).parents[1] / "fixtures" / "differential" / "sqs"
V = "aws:sqs:2012-11-05"


def operations(create_output: dict | None = None) -> dict[str, Operation]:
    create = Operation(
        id=f"{V}:CreateQueue", provider="aws", service="sqs", name="CreateQueue",
        examples=[
            OperationExample(title="create", source="awscli:sqs/create-queue.rst",
                             input={"QueueName": "Orders", "Attributes": {"VisibilityTimeout": "45"}},
                             output=create_output or {"QueueUrl": "https://queue.example/0000/Orders"}),
            # a field our tool does not map: skipped, never half-translated
            OperationExample(title="tags", source="examples-1.json",
                             input={"QueueName": "Tagged", "tags": {"team": "a"}}, output={"QueueUrl": "u"}),
        ],
    )
    get = Operation(
        id=f"{V}:GetQueueAttributes", provider="aws", service="sqs", name="GetQueueAttributes",
        examples=[OperationExample(source="awscli:sqs/get-queue-attributes.rst",
                                   input={"QueueUrl": "https://queue.example/0000/Nowhere", "AttributeNames": ["All"]},
                                   output={"Attributes": {"VisibilityTimeout": "30"}})],
    )
    send = Operation(
        id=f"{V}:SendMessage", provider="aws", service="sqs", name="SendMessage",
        examples=[OperationExample(source="examples-1.json",
                                   input={"QueueUrl": "queue_0001", "MessageBody": "hello"},
                                   output={"MessageId": "5fea7756-0ea4-451a-a703-a558b933e274", "MD5OfMessageBody": "x"})],
    )
    return {op.id: op for op in (create, get, send)}


def test_examples_become_scenarios_with_expectations_from_the_example_output() -> None:
    env = load_env(SQS)
    scenarios = scenarios_from_examples(env.spec, operations(), env.seeds)
    by_id = {s.id: s for s in scenarios}
    assert sorted(by_id) == ["create_queue-ex0"]  # tags example unmappable; get/send need records no seed holds
    create = by_id["create_queue-ex0"]
    assert create.oracle == "awscli_example" and create.source.startswith(f"{V}:CreateQueue awscli:sqs/create-queue.rst")
    step = create.steps[0]
    assert step.arguments == {"queue_name": "Orders", "attributes": {"VisibilityTimeout": "45"}}
    assert step.expect_output == {"queue_url": "https://queue.example/0000/Orders"}
    assert step.volatile == ["queue_url"]  # our env generates the url: presence only
    assert create.state_assertions[0].collection == "queues"
    assert create.state_assertions[0].filter == {"queue_name": "Orders", "attributes": {"VisibilityTimeout": "45"}}
    assert load_scenarios(dump_scenarios(scenarios)) == scenarios


def test_scenarios_pass_on_the_env_and_an_oracle_disagreement_fails_naming_the_tool() -> None:
    env = load_env(SQS)
    good = scenarios_from_examples(env.spec, operations(), env.seeds)
    report = verify_environment(env, good, fuzz_calls=20)
    assert report.check("scenarios").status == "passed"  # type: ignore[union-attr]
    assert report.scenarios_by_oracle["awscli_example"].passed == 1
    # An example whose output states a field value our env would not produce (the queue name).
    bad = scenarios_from_examples(env.spec, operations({"QueueUrl": "u", "QueueName": "Other"}), env.seeds)
    assert bad[0].steps[0].expect_output == {"queue_url": "u", "queue_name": "Other"}
    report = verify_environment(env, bad, fuzz_calls=20)
    assert report.verdict == "rejected" and report.failing_tools() == ["create_queue"]


def test_real_catalog_examples_for_sqs(small_catalog: Catalog) -> None:
    """The build tests' small catalog (botocore + awscli example pages when set up)."""
    ops = {e.id: small_catalog.operation(e.id) for e in small_catalog.operations("aws:sqs")}
    if not any(op.examples for op in ops.values()):
        pytest.skip("no SQS examples in the catalog (envfactory resources setup adds the awscli pages)")
    env = load_env(SQS)
    scenarios = scenarios_from_examples(env.spec, ops, env.seeds)
    assert "create_queue" in {s.steps[0].tool for s in scenarios}
    report = verify_environment(env, scenarios, fuzz_calls=20)
    assert sum(t.total for t in report.scenarios_by_oracle.values()) == len(scenarios)
    assert report.check("scenarios").status == "passed", report.check("scenarios")  # type: ignore[union-attr]
