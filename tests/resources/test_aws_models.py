"""AWS service models from botocore: real operations, shapes as JSON Schema, errors, examples."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest

from envfactory.resources import AwsSource, Catalog
from envfactory.resources.aws import ShapeConverter, recursive_shapes


def props(schema: dict[str, Any]) -> dict[str, Any]:
    properties = schema["properties"]
    assert isinstance(properties, dict)
    return properties


def test_sqs_create_queue(small_catalog: Catalog) -> None:
    op = small_catalog.operation("aws:sqs:CreateQueue")
    assert op.id == "aws:sqs:2012-11-05:CreateQueue"
    assert (op.provider, op.service, op.service_version, op.name) == ("aws", "sqs", "2012-11-05", "CreateQueue")
    assert op.http_method == "POST"
    schema = op.input_schema
    assert schema["required"] == ["QueueName"]
    assert set(props(schema)) == {"QueueName", "Attributes", "tags"}
    attributes = props(schema)["Attributes"]
    assert attributes["type"] == "object"
    assert {"VisibilityTimeout", "FifoQueue", "RedrivePolicy"} <= set(attributes["propertyNames"]["enum"])
    assert props(op.output_schema)["QueueUrl"]["type"] == "string"
    codes = {e.code for e in op.errors}
    assert {"QueueNameExists", "QueueDeletedRecently", "InvalidAttributeName"} <= codes
    assert "FIFO" in op.description and "<p>" not in op.description
    assert op.source.package == "botocore" and op.source.licence == "Apache-2.0"
    assert op.source.file == "botocore/data/sqs/2012-11-05/service-2.json"


def test_sqs_send_and_receive(small_catalog: Catalog) -> None:
    send = small_catalog.operation("aws:sqs:SendMessage")
    assert send.input_schema["required"] == ["QueueUrl", "MessageBody"]
    receive = small_catalog.operation("aws:sqs:ReceiveMessage")
    wait = props(receive.input_schema)["WaitTimeSeconds"]
    assert wait["type"] == "integer"
    messages = props(receive.output_schema)["Messages"]
    assert messages["type"] == "array"
    assert {"MessageId", "ReceiptHandle", "Body"} <= set(props(messages["items"]))


def test_dynamodb_recursive_attribute_value(small_catalog: Catalog) -> None:
    op = small_catalog.operation("aws:dynamodb:PutItem")
    schema = op.input_schema
    assert schema["required"] == ["TableName", "Item"]
    table = props(schema)["TableName"]
    assert (table["minLength"], table["maxLength"]) == (1, 1024)
    assert props(schema)["Item"]["additionalProperties"] == {"$ref": "#/$defs/AttributeValue"}
    value = schema["$defs"]["AttributeValue"]
    assert {"S", "N", "B", "SS", "M", "L", "NULL", "BOOL"} <= set(props(value))
    assert props(value)["L"]["$ref"] == "#/$defs/ListAttributeValue"
    assert props(value)["M"]["$ref"] == "#/$defs/MapAttributeValue"
    assert props(schema)["ReturnValues"]["enum"] == ["NONE", "ALL_OLD", "UPDATED_OLD", "ALL_NEW", "UPDATED_NEW"]
    assert "ConditionalCheckFailedException" in {e.code for e in op.errors}
    validator = jsonschema_rs.validator_for(schema)
    item = {"TableName": "Music", "Item": {"Artist": {"S": "Acme"}, "Tags": {"L": [{"M": {"x": {"N": "1"}}}]}}}
    assert validator.is_valid(item)
    assert not validator.is_valid({"TableName": "Music"})
    assert not validator.is_valid({**item, "Unknown": 1})
    assert not validator.is_valid({"TableName": "Music", "Item": {"Artist": {"S": 1}}})


def test_examples_from_the_model(small_catalog: Catalog) -> None:
    op = small_catalog.operation("aws:dynamodb:PutItem")
    model_examples = [e for e in op.examples if e.source.startswith("botocore:dynamodb/examples-1.json")]
    assert model_examples
    first = model_examples[0]
    assert first.title == "To add an item to a table"
    assert isinstance(first.input, dict) and first.input["TableName"] == "Music"


@pytest.mark.parametrize("service", ["dynamodb", "ses"])
def test_every_model_example_validates_against_its_input_schema(small_catalog: Catalog, service: str) -> None:
    resource = small_catalog.resource(f"aws:{service}")
    checked = 0
    for op in resource.operations:
        validator = jsonschema_rs.validator_for(op.input_schema)
        for example in op.examples:
            if example.source.startswith("botocore:") and isinstance(example.input, dict):
                assert validator.is_valid(example.input), (op.id, example.title)
                checked += 1
    assert checked >= 10


def test_ses_send_email(small_catalog: Catalog) -> None:
    op = small_catalog.operation("aws:ses:SendEmail")
    assert op.input_schema["required"] == ["Source", "Destination", "Message"]
    message = props(op.input_schema)["Message"]
    assert message["required"] == ["Subject", "Body"]
    assert "MessageRejected" in {e.code for e in op.errors}
    assert op.domains == ["office"]
    v2 = small_catalog.operation("aws:sesv2:SendEmail")
    assert v2.http_method == "POST" and v2.http_path == "/v2/email/outbound-emails"
    assert v2.input_schema["required"] == ["Content"]


def test_every_operation_of_the_services_has_compiling_schemas(small_catalog: Catalog) -> None:
    for service in ("aws:sqs", "aws:dynamodb", "aws:ses", "aws:sesv2"):
        resource = small_catalog.resource(service)
        assert not resource.skipped
        assert len(resource.operations) == small_catalog.service(service).operations
        for op in resource.operations:
            jsonschema_rs.validator_for(op.input_schema)
            jsonschema_rs.validator_for(op.output_schema)


def test_awscli_example_pages(awscli: Path, tmp_path: Path) -> None:
    with Catalog([AwsSource(["sqs", "dynamodb"], awscli_wheel=awscli)], tmp_path) as catalog:
        create = catalog.operation("aws:sqs:CreateQueue")
        cli = [e for e in create.examples if e.source == "awscli:sqs/create-queue.rst"]
        assert cli and cli[0].title == "To create a queue"
        assert isinstance(cli[0].input, dict) and cli[0].input["QueueName"] == "MyQueue"
        assert isinstance(cli[0].input["Attributes"], dict)  # read from the page's file://create-queue.json
        assert cli[0].output == {"QueueUrl": "https://queue.amazonaws.com/80398EXAMPLE/MyQueue"}
        receive = catalog.operation("aws:sqs:ReceiveMessage")
        page = next(e for e in receive.examples if e.source.startswith("awscli:"))
        assert isinstance(page.input, dict) and page.input["MaxNumberOfMessages"] == 10  # typed by the shape
        assert page.input["AttributeNames"] == ["All"]


def test_recursive_shapes_and_depth() -> None:
    shapes = {
        "Root": {"type": "structure", "members": {"child": {"shape": "Node"}, "leaf": {"shape": "Leaf"}}},
        "Node": {"type": "structure", "members": {"kids": {"shape": "Nodes"}, "name": {"shape": "Leaf"}}},
        "Nodes": {"type": "list", "member": {"shape": "Node"}},
        "Leaf": {"type": "string", "enum": ["a", "b"], "min": 1},
        "Self": {"type": "map", "key": {"shape": "Leaf"}, "value": {"shape": "Self"}},
    }
    assert recursive_shapes(shapes) == frozenset({"Node", "Nodes", "Self"})
    converter = ShapeConverter(shapes, recursive_shapes(shapes))
    schema = converter.root("Root")
    assert props(schema)["child"] == {"$ref": "#/$defs/Node"}
    assert props(schema)["leaf"] == {"type": "string", "enum": ["a", "b"], "minLength": 1}
    assert set(schema["$defs"]) == {"Node", "Nodes"}
    jsonschema_rs.validator_for(schema)
    assert jsonschema_rs.validator_for(schema).is_valid({"child": {"kids": [{"kids": [], "name": "a"}]}})
