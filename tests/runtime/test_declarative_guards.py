"""The declarative engine's generation-2 declarations (`runtime/declarative/guards.py`, `keep_transitions`):
capacities, idempotency tokens, and full updates that keep their state. Each is off unless declared, so an
environment without them (every shipped one) behaves as before; the tests show both sides."""

from __future__ import annotations

from typing import Any

import pytest
from tests.runtime.test_declarative import INT, STR, build, err, obj, ok, records, source, tool

from envfactory.errors import SpecError
from envfactory.runtime import open_session
from envfactory.runtime.declarative import compile_source

_TOKENS = {"key": "token", "record_schema": obj({"token": STR, "tool": STR, "arguments_digest": STR, "result": {}},
                                                ("token", "tool", "arguments_digest"))}
_ORDERS = {"key": "id", "id_prefix": "o", "record_schema": obj({"id": STR, "item": STR, "qty": INT, "token": STR}, ("id",))}


def _shop(idempotent: bool = True) -> Any:
    op: dict[str, Any] = {"kind": "create", "collection": "orders"}
    if idempotent:
        op["idempotency"] = {"arg": "token", "collection": "tokens"}
    return build({"orders": _ORDERS, "tokens": _TOKENS},
                 [tool("create_order", op, {"item": STR, "qty": INT, "token": STR}, ("item",))])


def test_a_repeated_token_answers_the_first_result_and_other_arguments_conflict() -> None:
    s = open_session(_shop(), {})
    first = ok(s.call("create_order", {"item": "tea", "qty": 1, "token": "t-1"}))
    before = s.hash()
    assert ok(s.call("create_order", {"item": "tea", "qty": 1, "token": "t-1"})) == first  # same result, no write
    assert s.hash() == before and list(records(s, "orders")) == [first["id"]]
    err(s.call("create_order", {"item": "tea", "qty": 2, "token": "t-1"}), "rule_violation", "idempotency token conflict")
    assert s.hash() == before
    second = ok(s.call("create_order", {"item": "tea", "qty": 1, "token": "t-2"}))  # a new token: a new order
    assert second["id"] != first["id"]
    assert ok(s.call("create_order", {"item": "tea", "qty": 1}))["id"] not in (first["id"], second["id"])  # no token
    assert sorted(records(s, "tokens")) == ["create_order:t-1", "create_order:t-2"]


def test_without_the_declaration_a_token_is_just_an_argument() -> None:
    s = open_session(_shop(idempotent=False), {})
    a = ok(s.call("create_order", {"item": "tea", "qty": 1, "token": "t-1"}))
    b = ok(s.call("create_order", {"item": "tea", "qty": 1, "token": "t-1"}))
    assert a["id"] != b["id"] and records(s, "tokens") == {}


def test_the_token_survives_snapshot_and_restore() -> None:
    s = open_session(_shop(), {})
    first = ok(s.call("create_order", {"item": "tea", "token": "t-1"}))
    snap = s.snapshot()
    ok(s.call("create_order", {"item": "tea", "token": "t-9"}))
    s.restore(snap)
    assert ok(s.call("create_order", {"item": "tea", "token": "t-1"})) == first


_TAGS = {"key": "id", "id_prefix": "t", "record_schema": obj({"id": STR, "queue": STR, "name": STR}, ("id", "queue"))}


@pytest.mark.parametrize("per", [None, "queue"])
def test_a_capacity_refuses_the_create_past_it(per: str | None) -> None:
    tags = {**_TAGS, "capacity": {"max_records": 2, "per": per, "quote": "A queue can have at most 2 tags."}}
    env = build({"tags": tags}, [tool("add_tag", {"kind": "create", "collection": "tags"}, {"queue": STR, "name": STR}, ("queue",)),
                                 tool("remove_tag", {"kind": "delete", "collection": "tags"}, {"id": STR}, ("id",))])
    s = open_session(env, {})
    first = ok(s.call("add_tag", {"queue": "q1", "name": "a"}))
    ok(s.call("add_tag", {"queue": "q1", "name": "b"}))
    before = s.hash()
    err(s.call("add_tag", {"queue": "q1", "name": "c"}), "rule_violation", "at most 2 .*at most 2 tags")
    assert s.hash() == before
    other = s.call("add_tag", {"queue": "q2", "name": "c"})
    if per is None:
        err(other, "rule_violation", "at most 2")
    else:
        ok(other)  # the limit counts one queue's tags
    ok(s.call("remove_tag", {"id": first["id"]}))
    ok(s.call("add_tag", {"queue": "q1", "name": "d"}))  # room again after a delete


_JOBS = {"key": "id", "id_prefix": "j", "record_schema": obj({"id": STR, "title": STR, "state": {"type": "string", "enum": ["open", "done"]}}, ("id",)),
         "transitions": [{"field": "state", "allowed": {"open": ["done"], "done": []}}]}


@pytest.mark.parametrize("keep", [True, False])
def test_a_full_update_keeps_the_state_only_when_declared(keep: bool) -> None:
    update: dict[str, Any] = {"kind": "update", "collection": "jobs", "key_arg": "id"}
    if keep:
        update["keep_transitions"] = True
    env = build({"jobs": _JOBS}, [tool("create_job", {"kind": "create", "collection": "jobs"}, {"title": STR, "state": STR}),
                                  tool("update_job", update, {"id": STR, "title": STR, "state": STR}, ("id",))])
    s = open_session(env, {})
    key = ok(s.call("create_job", {"title": "a", "state": "open"}))["id"]
    updated = s.call("update_job", {"id": key, "title": "b"})
    if keep:
        assert ok(updated)["state"] == "open"
    else:  # without it the update would clear the state, a move the machine does not allow
        err(updated, "rule_violation", "cannot change from 'open' to None")
    ok(s.call("update_job", {"id": key, "title": "b", "state": "done"}))
    if keep:  # out of the final state: refused even by a full update that leaves the state out
        err(s.call("update_job", {"id": key, "title": "c", "state": "open"}), "rule_violation", "final")
        assert ok(s.call("update_job", {"id": key, "title": "c"}))["state"] == "done"


def test_the_format_compiler_checks_the_new_declarations() -> None:
    bad_token = tool("create_order", {"kind": "create", "collection": "orders", "idempotency": {"arg": "nope", "collection": "orders"}},
                     {"item": STR})
    bad_keep = tool("get_order", {"kind": "get", "collection": "orders", "keep_transitions": True}, {"id": STR}, ("id",))
    capped = {**_ORDERS, "capacity": {"max_records": 1, "per": "missing"}}
    with pytest.raises(SpecError) as caught:
        compile_source(source({"orders": capped}, [bad_token, bad_keep]))
    message = str(caught.value)
    for expected in ("argument 'nope' is not in the input schema", "must be keyed by 'token'",
                     "keep_transitions: only an update", "capacity: per 'missing' is not a record field"):
        assert expected in message, message


def test_declarations_left_out_keep_the_file_as_before() -> None:
    plain = source({"orders": _ORDERS}, [tool("create_order", {"kind": "create", "collection": "orders"}, {"item": STR})])
    dumped = plain.model_dump(mode="json")
    assert "capacity" not in dumped["collections"]["orders"]
    assert not {"keep_transitions", "idempotency", "envelope"} & set(dumped["tools"][0]["operation"])
