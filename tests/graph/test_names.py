"""Reading names and descriptions: words, (entity, attribute) references, entity compatibility."""

from __future__ import annotations

import pytest

from envfactory.graph.names import (
    Ref,
    caller_chosen,
    container_entity,
    description_refs,
    entities_compatible,
    name_ref,
    operation_entity,
    words,
)


@pytest.mark.parametrize(("name", "expected"), [
    ("KMSKeyArn", ("kms", "key", "arn")),
    ("iCalUID", ("i", "cal", "uid")),
    ("logGroups", ("log", "group")),
    ("customer_id", ("customer", "id")),
    ("policies", ("policy",)),
    ("aliases", ("alias",)),
    ("S3Bucket", ("s3", "bucket")),
])
def test_words(name: str, expected: tuple[str, ...]) -> None:
    assert words(name) == expected


@pytest.mark.parametrize(("name", "expected"), [
    ("TopicArn", Ref(("topic",), "arn")),
    ("QueueUrl", Ref(("queue",), "url")),
    ("id", Ref((), "id")),
    ("tasklist", Ref(("tasklist",), "value")),
    ("MD5OfMessageBody", Ref(("message", "body"), "digest")),
    ("emailAddress", Ref((), "email")),
])
def test_name_ref(name: str, expected: Ref) -> None:
    assert name_ref(name) == expected


def test_description_refs_read_alternatives_and_entities() -> None:
    refs = set(description_refs("The ARN or name of the secret. For an ARN, we recommend a complete ARN."))
    assert refs == {Ref(("secret",), "arn"), Ref(("secret",), "name")}
    kms = set(description_refs("Identifies the KMS key. To specify a KMS key, use its key ID, key ARN, alias name, or alias ARN."))
    assert {Ref(("key",), "id"), Ref(("key",), "arn"), Ref(("alias",), "name"), Ref(("alias",), "arn")} <= kms
    assert Ref(("task", "list"), "id") in description_refs("Task list identifier.")
    assert Ref(("execution", "role"), "arn") in description_refs("The Amazon Resource Name (ARN) of the function's execution role.")


def test_containers_and_operations_name_entities() -> None:
    assert container_entity("KeyMetadata") == ("key",)
    assert container_entity("BackupSummaries") == ("backup",)
    assert container_entity("Configuration") == ()
    assert operation_entity("CreateQueue") == ("queue",)
    assert operation_entity("tasks.tasklists.insert") == ("tasklist",)
    assert operation_entity("get_order") == ("order",)


def test_entity_compatibility() -> None:
    assert entities_compatible(("tasklist",), ("task", "list"), same_service=False) == 1.0
    assert entities_compatible(("role",), ("execution", "role"), same_service=False) == 0.75
    assert entities_compatible(("group",), ("log", "group"), same_service=False) == 0.0
    assert entities_compatible(("group",), ("log", "group"), same_service=True) == 0.75
    assert entities_compatible(("task",), ("task", "list"), same_service=True) == 0.0


def test_caller_chosen_identifiers() -> None:
    assert caller_chosen("Id", "An identifier for this particular receipt handle used to communicate the result.")
    assert caller_chosen("ClientToken", "")
    assert not caller_chosen("TaskHandle", "An identifier associated with a message movement task.")
