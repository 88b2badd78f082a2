"""Behaviour of the declarative engine (`envfactory.runtime.declarative`) through sessions.

Most tests build a small environment in the test itself (a `DeclarativeEnvSource` dict →
`compile_source` → `DeclarativeBackend` → `Environment.create`) so that the rule under test is the
only thing in view; the end-to-end flows use the bundled `shop` and `tracker` environments and the
`library` fixture environment of `docs/declarative-format.md` (`tests/fixtures/envs/library`).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from envfactory.errors import SpecError
from envfactory.runtime import ClockConfig, Environment, Session, load_env, open_session
from envfactory.runtime.declarative import DeclarativeBackend, compile_source
from envfactory.runtime.declarative.expressions import Scope, compile_cond, compile_expr, render_message
from envfactory.spec import DeclarativeEnvSource, Snapshot, ToolResult
from envfactory.spec.declarative import RequirementDecl

REPO = Path(__file__).resolve().parents[2]
LIBRARY_DIR = REPO / "tests" / "fixtures" / "envs" / "library"
DOC = REPO / "docs" / "declarative-format.md"

# ---------------------------------------------------------------------------------------------------
# Building fixture environments
# ---------------------------------------------------------------------------------------------------

STR: dict[str, Any] = {"type": "string"}
INT: dict[str, Any] = {"type": "integer"}
NUM: dict[str, Any] = {"type": "number"}


def obj(props: dict[str, Any], required: tuple[str, ...] | list[str] = (), closed: bool = True) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": props, "required": list(required)}
    if closed:
        schema["additionalProperties"] = False
    return schema


def tool(name: str, operation: dict[str, Any], props: dict[str, Any] | None = None,
         required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"name": name, "description": f"{name} (test tool)", "input_schema": obj(props or {}, required),
            "operation": operation}


def source(collections: dict[str, Any], tools: list[dict[str, Any]], name: str = "fixture") -> DeclarativeEnvSource:
    return DeclarativeEnvSource.model_validate(
        {"format": "envfactory.declarative", "meta": {"name": name}, "collections": collections, "tools": tools}
    )


def build(collections: dict[str, Any], tools: list[dict[str, Any]], seed: Any = None, name: str = "fixture") -> Environment:
    backend = DeclarativeBackend(compile_source(source(collections, tools, name)))
    return Environment.create(backend, seeds={"default": seed} if seed is not None else {})


# expression shorthands
def arg(path: str, default: Any = None) -> dict[str, Any]:
    return {"op": "arg", "path": path, "default": default}


def const(value: Any) -> dict[str, Any]:
    return {"op": "const", "value": value}


def field(path: str) -> dict[str, Any]:
    return {"op": "field", "path": path}


def item(path: str = "") -> dict[str, Any]:
    return {"op": "item", "path": path}


def now() -> dict[str, Any]:
    return {"op": "now"}


def key() -> dict[str, Any]:
    return {"op": "key"}


def lookup(collection: str, key_expr: dict[str, Any], path: str) -> dict[str, Any]:
    return {"op": "lookup", "collection": collection, "key": key_expr, "path": path}


def arith(op: str, *args: dict[str, Any]) -> dict[str, Any]:
    return {"op": op, "args": list(args)}


def total(over: dict[str, Any], expr: dict[str, Any]) -> dict[str, Any]:
    return {"op": "sum", "over": over, "expr": expr}


def ok(result: ToolResult) -> Any:
    assert result.error is None, result.error
    return result.output


def err(result: ToolResult, kind: str, pattern: str = "") -> str:
    assert result.error is not None, f"expected {kind}, got output {result.output!r}"
    assert result.error.kind == kind, result.error
    assert re.search(pattern, result.error.message), result.error.message
    return result.error.message


def records(session: Session, collection: str) -> dict[str, Any]:
    result: dict[str, Any] = session.state_json()["collections"][collection]
    return result


def counters(session: Session) -> dict[str, int]:
    result: dict[str, int] = session.state_json()["counters"]
    return result


# ---------------------------------------------------------------------------------------------------
# The "inventory" fixture: owners ← items, with unique names, a status workflow and list options
# ---------------------------------------------------------------------------------------------------

OWNERS = {
    "id_prefix": "ow_",
    "id_width": 2,
    "record_schema": obj({"id": STR, "email": STR, "name": STR}, ["id", "email"]),
    "unique": [["email"]],
}

ITEMS = {
    "id_prefix": "it_",
    "id_width": 3,
    "record_schema": obj(
        {
            "id": STR,
            "name": {"type": "string", "minLength": 1},
            "qty": {"type": "integer", "minimum": 0},
            "price": {"type": "number", "minimum": 0},
            "tags": {"type": "array", "items": STR},
            "note": {"type": "string", "maxLength": 10},
            "owner_id": {"type": ["string", "null"]},
            "status": {"type": "string", "enum": ["draft", "active", "archived"]},
            "created_at": STR,
        },
        ["id", "name", "qty", "status"],
    ),
    "unique": [["name"]],
    "references": [{"field": "owner_id", "collection": "owners"}],
    "transitions": [
        {"field": "status", "initial": ["draft"],
         "allowed": {"draft": ["active"], "active": ["archived", "draft"], "archived": []}}
    ],
}

ITEM_ARGS = {
    "name": STR, "qty": INT, "price": NUM, "tags": {"type": "array", "items": STR}, "note": STR,
    "owner_id": {"type": ["string", "null"]}, "status": STR, "extra": STR,
}

LIST_FILTERS = [
    {"arg": "name", "field": "name"},
    {"arg": "name_ne", "field": "name", "match": "ne"},
    {"arg": "qty_lt", "field": "qty", "match": "lt"},
    {"arg": "qty_le", "field": "qty", "match": "le"},
    {"arg": "qty_gt", "field": "qty", "match": "gt"},
    {"arg": "qty_ge", "field": "qty", "match": "ge"},
    {"arg": "text", "field": "name", "match": "contains"},
    {"arg": "tag", "field": "tags", "match": "contains"},
    {"arg": "prefix", "field": "name", "match": "prefix"},
    {"arg": "status_in", "field": "status", "match": "in"},
]

INVENTORY_TOOLS = [
    tool("create_owner", {"kind": "create", "collection": "owners"}, {"email": STR, "name": STR}, ("email",)),
    tool("delete_owner", {"kind": "delete", "collection": "owners"}, {"id": STR}, ("id",)),
    tool("create_item",
         {"kind": "create", "collection": "items",
          "assign": {"status": arg("status", "draft"), "created_at": now()}},
         ITEM_ARGS, ("name", "qty")),
    tool("create_item_keyed", {"kind": "create", "collection": "items", "key_arg": "id",
                               "assign": {"status": const("draft")}},
         {"id": STR, "name": STR, "qty": INT}, ("name", "qty")),
    tool("create_item_bare", {"kind": "create", "collection": "items", "fields_from_args": False,
                              "assign": {"name": arg("label"), "qty": const(1), "status": const("draft")}},
         {"label": STR, "qty": INT, "note": STR}, ("label",)),
    tool("get_item", {"kind": "get", "collection": "items"}, {"id": STR}, ("id",)),
    tool("update_item", {"kind": "update", "collection": "items"}, {"id": STR, **ITEM_ARGS}, ("id",)),
    tool("patch_item", {"kind": "patch", "collection": "items"}, {"id": STR, **ITEM_ARGS}, ("id",)),
    tool("delete_item", {"kind": "delete", "collection": "items"}, {"id": STR}, ("id",)),
    tool("list_items",
         {"kind": "list", "collection": "items",
          "listing": {"filters": LIST_FILTERS, "sort_arg": "sort", "descending_arg": "desc",
                      "page_size_arg": "page_size", "page_token_arg": "page_token",
                      "default_page_size": 2, "max_page_size": 3}},
         {"name": STR, "name_ne": STR, "qty_lt": INT, "qty_le": INT, "qty_gt": INT, "qty_ge": INT,
          "text": STR, "tag": STR, "prefix": STR, "status_in": {"type": "array", "items": STR},
          "sort": STR, "desc": {"type": "boolean"}, "page_size": INT, "page_token": STR}),
    tool("list_items_by_price", {"kind": "list", "collection": "items", "listing": {"sort_by": "price"}}),
]


def item_record(key: str, name: str, qty: int, status: str = "draft", **extra: Any) -> dict[str, Any]:
    return {"id": key, "name": name, "qty": qty, "status": status, **extra}


INVENTORY_SEED = {
    "collections": {
        "owners": {"ow_01": {"id": "ow_01", "email": "a@x.test"}},
        "items": {
            "it_001": item_record("it_001", "Alpha widget", 5, "active", price=2.5, tags=["red", "big"], owner_id="ow_01"),
            "it_002": item_record("it_002", "beta Gadget", 0, price=10, tags=["blue"]),
            "it_003": item_record("it_003", "Gamma widget", 12, "archived", price=7, tags=[]),
            "it_004": item_record("it_004", "alpha mini", 5, price=1, note="tiny"),
        },
    },
    "counters": {"owners": 1, "items": 4},
}


@pytest.fixture(scope="module")
def inventory() -> Environment:
    return build({"owners": OWNERS, "items": ITEMS}, INVENTORY_TOOLS, INVENTORY_SEED, name="inventory")


@pytest.fixture
def inv(inventory: Environment) -> Session:
    return open_session(inventory)


@pytest.fixture
def empty_inv(inventory: Environment) -> Session:
    return open_session(inventory, {})


# ---------------------------------------------------------------------------------------------------
# create: generated ids, given keys, fields
# ---------------------------------------------------------------------------------------------------


def test_generated_ids_are_prefix_plus_zero_padded_counter(empty_inv: Session) -> None:
    first = ok(empty_inv.call("create_item", {"name": "a", "qty": 1}))
    second = ok(empty_inv.call("create_item", {"name": "b", "qty": 1}))
    owner = ok(empty_inv.call("create_owner", {"email": "o@x.test"}))
    assert (first["id"], second["id"], owner["id"]) == ("it_001", "it_002", "ow_01")
    assert counters(empty_inv) == {"owners": 1, "items": 2}
    assert set(records(empty_inv, "items")) == {"it_001", "it_002"}


def test_generated_ids_skip_keys_already_taken(inventory: Environment) -> None:
    state = orjson.loads(orjson.dumps(INVENTORY_SEED))
    state["counters"]["items"] = 1  # it_002 .. it_004 are taken although the counter says 1
    session = open_session(inventory, state)
    assert ok(session.call("create_item", {"name": "new", "qty": 1}))["id"] == "it_005"
    assert counters(session)["items"] == 5
    assert ok(session.call("create_item", {"name": "newer", "qty": 1}))["id"] == "it_006"


def test_ids_without_prefix_or_width_and_beyond_the_width() -> None:
    env = build(
        {"plain": {"record_schema": obj({"id": STR}, ["id"])},
         "narrow": {"id_prefix": "n-", "id_width": 2, "record_schema": obj({"id": STR}, ["id"])}},
        [tool("new_plain", {"kind": "create", "collection": "plain"}),
         tool("new_narrow", {"kind": "create", "collection": "narrow"})],
    )
    session = open_session(env, {"counters": {"narrow": 99}})
    assert ok(session.call("new_plain"))["id"] == "1"
    assert ok(session.call("new_plain"))["id"] == "2"
    assert ok(session.call("new_narrow"))["id"] == "n-100"


def test_missing_counters_start_at_zero(inventory: Environment) -> None:
    state = {"collections": {"items": {"it_007": item_record("it_007", "x", 1)}}}
    session = open_session(inventory, state)
    assert counters(session) == {"owners": 0, "items": 0}
    assert ok(session.call("create_item", {"name": "y", "qty": 1}))["id"] == "it_001"


def test_create_with_given_key(inv: Session) -> None:
    created = ok(inv.call("create_item_keyed", {"id": "custom", "name": "c", "qty": 1}))
    assert created == {"id": "custom", "name": "c", "qty": 1, "status": "draft"}
    assert records(inv, "items")["custom"] == created
    assert counters(inv)["items"] == 4  # a given key does not use the counter
    # the key argument is optional in this tool: without it the key is generated
    assert ok(inv.call("create_item_keyed", {"name": "d", "qty": 1}))["id"] == "it_005"


def test_create_with_a_key_that_exists_is_a_rule_violation(inv: Session) -> None:
    before = inv.hash()
    result = inv.call("create_item_keyed", {"id": "it_001", "name": "dup", "qty": 1})
    err(result, "rule_violation", r"items 'it_001' already exists")
    assert result.error is not None and result.error.path == "/id"
    assert inv.hash() == before


def test_create_copies_argument_fields_but_not_the_key_or_unknown_arguments(inv: Session) -> None:
    created = ok(inv.call("create_item", {"name": "n", "qty": 2, "extra": "ignored", "tags": ["t"]}))
    assert created == {"id": "it_005", "name": "n", "qty": 2, "tags": ["t"], "status": "draft",
                       "created_at": "2026-01-01T00:00:00Z"}


def test_create_without_fields_from_args_takes_only_assigned_fields(inv: Session) -> None:
    created = ok(inv.call("create_item_bare", {"label": "only label", "qty": 50, "note": "dropped"}))
    assert created == {"id": "it_005", "name": "only label", "qty": 1, "status": "draft"}


def test_assign_overrides_an_argument_of_the_same_name(inv: Session) -> None:
    env = build(
        {"owners": OWNERS, "items": ITEMS},
        [tool("create", {"kind": "create", "collection": "items",
                         "assign": {"qty": const(7), "status": const("draft")}}, {"name": STR, "qty": INT})],
    )
    session = open_session(env)
    assert ok(session.call("create", {"name": "x", "qty": 1}))["qty"] == 7


# ---------------------------------------------------------------------------------------------------
# get
# ---------------------------------------------------------------------------------------------------


def test_get_returns_a_private_copy_of_the_record(inv: Session) -> None:
    got = ok(inv.call("get_item", {"id": "it_001"}))
    assert got == INVENTORY_SEED["collections"]["items"]["it_001"]  # type: ignore[index]
    got["tags"].append("mutated")
    assert ok(inv.call("get_item", {"id": "it_001"}))["tags"] == ["red", "big"]


def test_get_unknown_key_is_not_found(inv: Session) -> None:
    result = inv.call("get_item", {"id": "it_999"})
    err(result, "not_found", r"items 'it_999' not found")
    assert result.error is not None and result.error.path == "/id"


def test_arguments_are_validated_against_the_input_schema_first(inv: Session) -> None:
    result = inv.call("get_item", {"id": 5})
    err(result, "invalid_arguments", r"invalid arguments for get_item")
    assert result.error is not None and result.error.path == "/id"
    err(inv.call("get_item", {}), "invalid_arguments", "id")
    err(inv.call("get_itme", {"id": "it_001"}), "unknown_tool", "get_item")


# ---------------------------------------------------------------------------------------------------
# list: filters, sorting, pagination
# ---------------------------------------------------------------------------------------------------


def keys_of(output: Any) -> list[str]:
    return [r["id"] for r in output["items"]]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ({}, ["it_001", "it_002", "it_003", "it_004"]),
        ({"name": "Alpha widget"}, ["it_001"]),
        ({"name_ne": "Alpha widget"}, ["it_002", "it_003", "it_004"]),
        ({"qty_lt": 5}, ["it_002"]),
        ({"qty_le": 5}, ["it_001", "it_002", "it_004"]),
        ({"qty_gt": 5}, ["it_003"]),
        ({"qty_ge": 5}, ["it_001", "it_003", "it_004"]),
        ({"text": "WIDGET"}, ["it_001", "it_003"]),  # string contains ignores case
        ({"tag": "red"}, ["it_001"]),  # array contains: membership; records without tags never match
        ({"tag": "RED"}, []),  # ... and membership is exact
        ({"prefix": "alpha"}, ["it_004"]),  # prefix is case-sensitive
        ({"status_in": ["draft", "archived"]}, ["it_002", "it_003", "it_004"]),
        ({"status_in": []}, []),
        ({"qty_ge": 5, "text": "widget"}, ["it_001", "it_003"]),  # filters combine with AND
    ],
    ids=lambda v: json.dumps(v) if isinstance(v, dict) else None,
)
def test_list_filters(inv: Session, args: dict[str, Any], expected: list[str]) -> None:
    output = ok(inv.call("list_items", {**args, "page_size": 3}))
    assert output["total"] == len(expected)
    assert keys_of(output)[:3] == expected[:3]


def test_list_filter_comparing_incomparable_values_matches_nothing() -> None:
    env = build(
        {"owners": OWNERS, "items": ITEMS},
        [tool("list", {"kind": "list", "collection": "items",
                       "listing": {"filters": [{"arg": "v", "field": "name", "match": "gt"}]}}, {"v": INT})],
        {"collections": {"items": {"it_001": item_record("it_001", "a", 1)}}},
    )
    assert ok(open_session(env).call("list", {"v": 3}))["total"] == 0


def test_list_sorts_by_key_by_default_and_by_sort_by(inv: Session) -> None:
    assert keys_of(ok(inv.call("list_items", {"page_size": 3}))) == ["it_001", "it_002", "it_003"]
    by_price = ok(inv.call("list_items_by_price"))
    assert keys_of(by_price) == ["it_004", "it_001", "it_003", "it_002"]  # 1, 2.5, 7, 10


def test_list_sort_arg_ties_break_by_key_and_descending_reverses_both(inv: Session) -> None:
    ascending = ok(inv.call("list_items", {"sort": "qty", "page_size": 3}))
    assert keys_of(ascending) == ["it_002", "it_001", "it_004"]  # 0, 5, 5 (tie by key)
    descending = ok(inv.call("list_items", {"sort": "qty", "desc": True, "page_size": 3}))
    assert keys_of(descending) == ["it_003", "it_004", "it_001"]  # 12, 5, 5 (tie reversed too)


def test_list_sort_puts_missing_values_first(inv: Session) -> None:
    output = ok(inv.call("list_items", {"sort": "note", "page_size": 3}))
    assert keys_of(output) == ["it_001", "it_002", "it_003"]  # no note; it_004 ('tiny') last
    output = ok(inv.call("list_items", {"sort": "note", "desc": True, "page_size": 1}))
    assert keys_of(output) == ["it_004"]


def test_list_sort_by_unknown_field_is_invalid_arguments(inv: Session) -> None:
    result = inv.call("list_items", {"sort": "colour"})
    err(result, "invalid_arguments", r"cannot sort items by unknown field 'colour'")
    assert result.error is not None and result.error.path == "/sort"


def test_list_pages_follow_tokens_to_the_end(inv: Session) -> None:
    first = ok(inv.call("list_items", {}))  # default_page_size 2
    assert keys_of(first) == ["it_001", "it_002"]
    assert (first["next_page_token"], first["total"]) == ("2", 4)
    second = ok(inv.call("list_items", {"page_token": first["next_page_token"]}))
    assert keys_of(second) == ["it_003", "it_004"]
    assert second["next_page_token"] is None
    three = ok(inv.call("list_items", {"page_size": 3, "page_token": "3"}))
    assert keys_of(three) == ["it_004"] and three["next_page_token"] is None
    end = ok(inv.call("list_items", {"page_token": "4"}))
    assert end == {"items": [], "next_page_token": None, "total": 4}
    # an empty token is no token
    assert keys_of(ok(inv.call("list_items", {"page_token": ""}))) == ["it_001", "it_002"]


@pytest.mark.parametrize("token", ["abc", "-1", "5", "1.5", " 1", "²", "٣", "9" * 30, "1" * 5000])
def test_list_rejects_tokens_it_did_not_return(inv: Session, token: str) -> None:
    result = inv.call("list_items", {"page_token": token})
    err(result, "invalid_arguments", r"page_token .* is not a token this tool returned")
    assert result.error is not None and result.error.path == "/page_token"


@pytest.mark.parametrize("size", [0, -1, 4])
def test_list_page_size_outside_1_to_max_is_invalid_arguments(inv: Session, size: int) -> None:
    err(inv.call("list_items", {"page_size": size}), "invalid_arguments", r"page_size must be an integer from 1 to 3")


def test_list_output_is_a_copy(inv: Session) -> None:
    output = ok(inv.call("list_items", {"name": "Alpha widget"}))
    output["items"][0]["tags"].clear()
    assert ok(inv.call("get_item", {"id": "it_001"}))["tags"] == ["red", "big"]


# ---------------------------------------------------------------------------------------------------
# update vs patch
# ---------------------------------------------------------------------------------------------------


def test_patch_changes_only_the_given_fields(inv: Session) -> None:
    patched = ok(inv.call("patch_item", {"id": "it_001", "qty": 9}))
    expected = {**INVENTORY_SEED["collections"]["items"]["it_001"], "qty": 9}  # type: ignore[index]
    assert patched == expected
    assert records(inv, "items")["it_001"] == expected


def test_update_replaces_every_non_key_field(inv: Session) -> None:
    updated = ok(inv.call("update_item", {"id": "it_001", "name": "Renamed", "qty": 1, "status": "active"}))
    assert updated == {"id": "it_001", "name": "Renamed", "qty": 1, "status": "active"}  # price, tags... gone
    assert records(inv, "items")["it_001"] == updated


def test_update_missing_a_required_field_is_invalid_arguments_and_changes_nothing(inv: Session) -> None:
    before = inv.hash()
    result = inv.call("update_item", {"id": "it_002", "name": "no qty", "status": "draft"})
    err(result, "invalid_arguments", r"the items record would be invalid: .*qty")
    assert inv.hash() == before


def test_update_and_patch_of_unknown_key_are_not_found(inv: Session) -> None:
    err(inv.call("patch_item", {"id": "nope", "qty": 1}), "not_found", r"items 'nope' not found")
    err(inv.call("update_item", {"id": "nope", "name": "x", "qty": 1, "status": "draft"}), "not_found")


# ---------------------------------------------------------------------------------------------------
# record-schema violations: arguments → invalid_arguments, effects → rule_violation
# ---------------------------------------------------------------------------------------------------


def test_argument_that_makes_the_target_record_invalid_is_invalid_arguments(inv: Session) -> None:
    before = inv.hash()
    result = inv.call("create_item", {"name": "n", "qty": 1, "note": "far too long for ten"})
    err(result, "invalid_arguments", r"the items record would be invalid")
    assert result.error is not None and result.error.path == "/note"
    err(inv.call("patch_item", {"id": "it_001", "qty": -1}), "invalid_arguments", r"would be invalid")
    assert inv.hash() == before
    assert counters(inv)["items"] == 4


def test_effect_that_leaves_another_record_invalid_is_a_rule_violation() -> None:
    env = build(
        {"owners": OWNERS, "items": ITEMS, "moves": {"id_prefix": "mv_", "record_schema": obj({"id": STR, "item_id": STR, "n": INT})}},
        [tool("take", {"kind": "create", "collection": "moves",
                       "effects": [{"op": "adjust", "collection": "items", "key": arg("item_id"),
                                    "field": "qty", "by": arith("sub", const(0), arg("n"))}]},
              {"item_id": STR, "n": INT}, ("item_id", "n"))],
        {"collections": {"items": {"it_001": item_record("it_001", "a", 3)}}},
    )
    session = open_session(env)
    ok(session.call("take", {"item_id": "it_001", "n": 2}))
    before = session.hash()
    err(session.call("take", {"item_id": "it_001", "n": 2}), "rule_violation",
        r"take would leave items 'it_001' invalid: .*minimum")
    assert session.hash() == before
    assert records(session, "items")["it_001"]["qty"] == 1


# ---------------------------------------------------------------------------------------------------
# unique
# ---------------------------------------------------------------------------------------------------


def test_unique_field_refuses_duplicates_on_create_and_patch(inv: Session) -> None:
    before = inv.hash()
    err(inv.call("create_item", {"name": "Alpha widget", "qty": 1}), "rule_violation",
        r"items 'it_005' duplicates name='Alpha widget' of items 'it_001' \(must be unique\)")
    err(inv.call("patch_item", {"id": "it_002", "name": "Gamma widget"}), "rule_violation", r"of items 'it_003'")
    assert inv.hash() == before
    # re-writing a record with its own value is no duplicate
    ok(inv.call("patch_item", {"id": "it_001", "name": "Alpha widget"}))
    # uniqueness is exact (case matters)
    ok(inv.call("create_item", {"name": "ALPHA WIDGET", "qty": 1}))


def test_unique_field_sets_compare_all_fields_and_ignore_nulls() -> None:
    seats = {
        "id_prefix": "s",
        "record_schema": obj({"id": STR, "row": STR, "num": INT, "holder": {"type": ["string", "null"]}}, ["id"]),
        "unique": [["row", "num"], ["holder"]],
    }
    env = build({"seats": seats}, [tool("add", {"kind": "create", "collection": "seats"},
                                        {"row": STR, "num": INT, "holder": {"type": ["string", "null"]}})])
    session = open_session(env)
    ok(session.call("add", {"row": "A", "num": 1, "holder": None}))
    ok(session.call("add", {"row": "A", "num": 2, "holder": None}))  # null holders never collide
    ok(session.call("add", {"row": "B", "num": 1}))  # same num, other row
    err(session.call("add", {"row": "A", "num": 1}), "rule_violation", r"duplicates row='A', num=1 of seats 's1'")


def test_unique_is_checked_between_records_written_by_one_call() -> None:
    env = build(
        {"boxes": {"id_prefix": "b", "record_schema": obj({"id": STR}, ["id"])},
         "tags": {"id_prefix": "t", "record_schema": obj({"id": STR, "label": STR}, ["id", "label"]),
                  "unique": [["label"]]}},
        [tool("box", {"kind": "create", "collection": "boxes",
                      "effects": [{"op": "create", "collection": "tags", "values": {"label": item()},
                                   "for_each": arg("labels")}]},
              {"labels": {"type": "array", "items": STR}})],
    )
    session = open_session(env)
    ok(session.call("box", {"labels": ["a", "b"]}))
    before = session.hash()
    err(session.call("box", {"labels": ["c", "c"]}), "rule_violation", r"duplicates label='c'")
    assert session.hash() == before


# ---------------------------------------------------------------------------------------------------
# references and delete
# ---------------------------------------------------------------------------------------------------


def test_reference_to_a_missing_record_is_not_found(inv: Session) -> None:
    before = inv.hash()
    err(inv.call("create_item", {"name": "n", "qty": 1, "owner_id": "ow_99"}), "not_found",
        r"items 'it_005' refers to missing owners 'ow_99' \(owner_id\)")
    err(inv.call("patch_item", {"id": "it_002", "owner_id": "ow_99"}), "not_found", r"missing owners 'ow_99'")
    assert inv.hash() == before
    ok(inv.call("patch_item", {"id": "it_002", "owner_id": "ow_01"}))
    ok(inv.call("patch_item", {"id": "it_002", "owner_id": None}))  # null refers to nothing


def test_references_through_arrays() -> None:
    env = build(
        {"products": {"key": "sku", "record_schema": obj({"sku": STR}, ["sku"])},
         "carts": {"id_prefix": "c", "record_schema": obj(
             {"id": STR, "lines": {"type": "array", "items": obj({"sku": STR, "n": INT})}}, ["id"]),
                   "references": [{"field": "lines[].sku", "collection": "products"}]}},
        [tool("cart", {"kind": "create", "collection": "carts"},
              {"lines": {"type": "array", "items": obj({"sku": STR, "n": INT})}}),
         tool("drop", {"kind": "delete", "collection": "products"}, {"sku": STR}, ("sku",))],
        {"collections": {"products": {"P1": {"sku": "P1"}, "P2": {"sku": "P2"}}}},
    )
    session = open_session(env)
    ok(session.call("cart", {"lines": [{"sku": "P1", "n": 1}]}))
    err(session.call("cart", {"lines": [{"sku": "P1", "n": 1}, {"sku": "P9", "n": 1}]}), "not_found",
        r"refers to missing products 'P9' \(lines\[\]\.sku\)")
    err(session.call("drop", {"sku": "P1"}), "rule_violation", r"carts 'c1' refers to it \(lines\[\]\.sku\)")
    assert ok(session.call("drop", {"sku": "P2"})) == {"deleted": "P2"}


def test_delete_output_and_restrict(inv: Session) -> None:
    before = inv.hash()
    err(inv.call("delete_owner", {"id": "ow_01"}), "rule_violation",
        r"cannot delete owners 'ow_01': items 'it_001' refers to it \(owner_id\)")
    assert inv.hash() == before
    assert ok(inv.call("delete_item", {"id": "it_001"})) == {"deleted": "it_001"}
    assert ok(inv.call("delete_owner", {"id": "ow_01"})) == {"deleted": "ow_01"}
    assert records(inv, "owners") == {}
    err(inv.call("delete_item", {"id": "it_001"}), "not_found", r"items 'it_001' not found")


def cascade_env() -> Environment:
    """folders ← docs (cascade) ← notes (cascade); docs ← pins (restrict)."""
    rec = obj({"id": STR, "parent": STR}, ["id"])
    return build(
        {"folders": {"record_schema": rec},
         "docs": {"record_schema": rec, "references": [{"field": "parent", "collection": "folders", "on_delete": "cascade"}]},
         "notes": {"record_schema": rec, "references": [{"field": "parent", "collection": "docs", "on_delete": "cascade"}]},
         "pins": {"record_schema": rec, "references": [{"field": "parent", "collection": "docs"}]}},
        [tool("delete_folder", {"kind": "delete", "collection": "folders"}, {"id": STR}, ("id",)),
         tool("delete_pin", {"kind": "delete", "collection": "pins"}, {"id": STR}, ("id",))],
        {"collections": {
            "folders": {"f1": {"id": "f1"}, "f2": {"id": "f2"}},
            "docs": {"d1": {"id": "d1", "parent": "f1"}, "d2": {"id": "d2", "parent": "f1"},
                     "d3": {"id": "d3", "parent": "f2"}},
            "notes": {"n1": {"id": "n1", "parent": "d1"}, "n2": {"id": "n2", "parent": "d3"}},
            "pins": {"p1": {"id": "p1", "parent": "d3"}},
        }},
    )


def test_cascade_delete_removes_referencing_records_transitively() -> None:
    session = open_session(cascade_env())
    assert ok(session.call("delete_folder", {"id": "f1"})) == {"deleted": "f1"}
    state = session.state_json()["collections"]
    assert set(state["folders"]) == {"f2"}
    assert set(state["docs"]) == {"d3"}
    assert set(state["notes"]) == {"n2"}


def test_cascade_stops_at_a_restrict_reference_and_deletes_nothing() -> None:
    session = open_session(cascade_env())
    before = session.hash()
    err(session.call("delete_folder", {"id": "f2"}), "rule_violation",
        r"cannot delete docs 'd3': pins 'p1' refers to it \(parent\)")
    assert session.hash() == before
    ok(session.call("delete_pin", {"id": "p1"}))
    ok(session.call("delete_folder", {"id": "f2"}))
    assert session.state_json()["collections"]["notes"] == {"n1": {"id": "n1", "parent": "d1"}}


# ---------------------------------------------------------------------------------------------------
# transitions
# ---------------------------------------------------------------------------------------------------


def test_transition_initial_limits_values_on_create(inv: Session) -> None:
    err(inv.call("create_item", {"name": "n", "qty": 1, "status": "active"}), "rule_violation",
        r"a new items record cannot start with status='active' \(allowed: draft\)")
    assert ok(inv.call("create_item", {"name": "n", "qty": 1, "status": "draft"}))["status"] == "draft"


def test_transitions_allowed_refused_and_final(inv: Session) -> None:
    ok(inv.call("patch_item", {"id": "it_002", "status": "active"}))  # draft → active
    err(inv.call("patch_item", {"id": "it_004", "status": "archived"}), "rule_violation",
        r"items 'it_004': status cannot change from 'draft' to 'archived' \(allowed: active\)")
    ok(inv.call("patch_item", {"id": "it_001", "status": "draft"}))  # active → draft
    err(inv.call("patch_item", {"id": "it_003", "status": "active"}), "rule_violation",
        r"from 'archived' to 'active' \(allowed: none: it is final\)")
    # writing the value a record already has is no transition, even in a final state
    ok(inv.call("patch_item", {"id": "it_003", "status": "archived", "qty": 1}))


def test_transitions_apply_to_update_as_well(inv: Session) -> None:
    err(inv.call("update_item", {"id": "it_003", "name": "n", "qty": 1, "status": "draft"}), "rule_violation",
        r"from 'archived' to 'draft'")


def workflow_env() -> Environment:
    """documents with a review workflow; a review sets the document's status through a `set` effect."""
    return build(
        {"documents": {"record_schema": obj({"id": STR, "status": STR}, ["id", "status"]),
                       "transitions": [{"field": "status", "allowed": {
                           "draft": ["in_review"], "in_review": ["approved", "rejected"],
                           "rejected": ["draft"], "approved": []}}]},
         "reviews": {"id_prefix": "rv", "record_schema": obj({"id": STR, "doc": STR, "verdict": STR}, ["id"]),
                     "references": [{"field": "doc", "collection": "documents"}]}},
        [tool("review", {"kind": "create", "collection": "reviews",
                         "effects": [{"op": "set", "collection": "documents", "key": arg("doc"),
                                      "field": "status", "value": arg("verdict")}]},
              {"doc": STR, "verdict": STR}, ("doc", "verdict")),
         tool("reopen_all", {"kind": "create", "collection": "reviews",
                             "effects": [{"op": "set", "collection": "documents", "key": item(),
                                          "field": "status", "value": const("draft"), "for_each": arg("docs")}],
                             "assign": {"verdict": const("reopen")}},
              {"docs": {"type": "array", "items": STR}}),
         tool("review_twice", {"kind": "create", "collection": "reviews",
                               "effects": [{"op": "set", "collection": "documents", "key": arg("doc"),
                                            "field": "status", "value": const("in_review")},
                                           {"op": "set", "collection": "documents", "key": arg("doc"),
                                            "field": "status", "value": const("approved")}]},
              {"doc": STR}, ("doc",)),
         tool("new_doc", {"kind": "create", "collection": "documents", "key_arg": "id",
                          "effects": [{"op": "set", "collection": "documents", "key": key(), "field": "status",
                                       "value": arg("then")}]},
              {"id": STR, "status": STR, "then": STR}, ("id", "status", "then"))],
        {"collections": {"documents": {
            "a": {"id": "a", "status": "in_review"}, "b": {"id": "b", "status": "approved"},
            "c": {"id": "c", "status": "rejected"}, "d": {"id": "d", "status": "draft"}}}},
    )


def test_transitions_are_enforced_on_set_effects() -> None:
    session = open_session(workflow_env())
    ok(session.call("review", {"doc": "a", "verdict": "approved"}))
    assert records(session, "documents")["a"]["status"] == "approved"
    before = session.hash()
    err(session.call("review", {"doc": "b", "verdict": "rejected"}), "rule_violation",
        r"documents 'b': status cannot change from 'approved' to 'rejected'")
    err(session.call("review", {"doc": "d", "verdict": "approved"}), "rule_violation", r"allowed: in_review")
    assert session.hash() == before
    assert counters(session)["reviews"] == 1  # the refused reviews were not created


def test_set_effect_transition_failure_in_a_for_each_undoes_earlier_elements() -> None:
    session = open_session(workflow_env())
    before = session.hash()
    err(session.call("reopen_all", {"docs": ["c", "b"]}), "rule_violation", r"'approved' to 'draft'")
    assert session.hash() == before
    ok(session.call("reopen_all", {"docs": ["c"]}))
    assert records(session, "documents")["c"]["status"] == "draft"


def test_set_effect_on_a_record_created_in_the_same_call_is_checked_from_its_new_value() -> None:
    # the created record has no stored value to compare with: the effect itself is checked
    session = open_session(workflow_env())
    err(session.call("new_doc", {"id": "e", "status": "draft", "then": "approved"}), "rule_violation",
        r"documents 'e': status cannot change from 'draft' to 'approved'")
    created = ok(session.call("new_doc", {"id": "e", "status": "draft", "then": "in_review"}))
    assert created == records(session, "documents")["e"] == {"id": "e", "status": "in_review"}  # output = as written


def test_each_step_through_the_workflow_in_one_call_is_checked_against_the_stored_value() -> None:
    # draft → in_review → approved by two set effects: each step is allowed, but the record as the call
    # leaves it is also checked against the stored value, and draft → approved is not allowed
    session = open_session(workflow_env())
    err(session.call("review_twice", {"doc": "d"}), "rule_violation", r"from 'draft' to 'approved'")


# ---------------------------------------------------------------------------------------------------
# requirements
# ---------------------------------------------------------------------------------------------------


def requirements_env() -> Environment:
    accounts = {"id_prefix": "acc_", "id_width": 1,
                "record_schema": obj({"id": STR, "owner": STR, "balance": NUM, "frozen": {"type": "boolean"},
                                      "meta": obj({"tier": STR}, closed=False)}, ["id", "balance"])}
    return build(
        {"accounts": accounts},
        [tool("withdraw", {"kind": "patch", "collection": "accounts", "fields_from_args": False,
                           "assign": {"balance": arith("sub", field("balance"), arg("amount"))},
                           "requires": [
                               {"condition": {"op": "ne", "left": field("frozen"), "right": const(True)},
                                "message": "account {key} of {field.owner} is frozen"},
                               {"condition": {"op": "ge", "left": field("balance"), "right": arg("amount")},
                                "message": "cannot withdraw {arg.amount} from {key}: balance is {field.balance}"},
                               {"condition": {"op": "ne", "left": field("meta.tier"), "right": const("closed")},
                                "error": "not_found", "message": "{key} is closed (tier {field.meta.tier})"},
                           ]},
              {"id": STR, "amount": NUM}, ("id", "amount")),
         tool("peek", {"kind": "get", "collection": "accounts",
                       "requires": [{"condition": {"op": "exists", "value": arg("reason")},
                                     "error": "invalid_arguments", "message": "say why you look at {key}"}]},
              {"id": STR, "reason": STR}, ("id",)),
         tool("search", {"kind": "list", "collection": "accounts",
                         "requires": [{"condition": {"op": "in", "left": arg("scope"), "right": const(["all", "mine"])},
                                       "error": "invalid_arguments", "message": "unknown scope {arg.scope}"}]},
              {"scope": STR})],
        {"collections": {"accounts": {
            "acc_1": {"id": "acc_1", "owner": "ann", "balance": 100},
            "acc_2": {"id": "acc_2", "owner": "bob", "balance": 100, "frozen": True},
            "acc_3": {"id": "acc_3", "owner": "cy", "balance": 100, "meta": {"tier": "closed"}}}}},
    )


def test_requirements_fail_with_their_kind_and_rendered_message() -> None:
    session = open_session(requirements_env())
    before = session.hash()
    err(session.call("withdraw", {"id": "acc_2", "amount": 1}), "rule_violation", r"^account acc_2 of bob is frozen$")
    err(session.call("withdraw", {"id": "acc_1", "amount": 150}), "rule_violation",
        r"^cannot withdraw 150 from acc_1: balance is 100$")
    err(session.call("withdraw", {"id": "acc_3", "amount": 1}), "not_found", r"^acc_3 is closed \(tier closed\)$")
    assert session.hash() == before
    assert ok(session.call("withdraw", {"id": "acc_1", "amount": 30}))["balance"] == 70


def test_requirements_run_in_order_and_the_first_failure_wins() -> None:
    session = open_session(requirements_env())
    # acc_2 is frozen and the amount is too high: the first requirement reports
    err(session.call("withdraw", {"id": "acc_2", "amount": 500}), "rule_violation", "frozen")


def test_requirements_on_reads() -> None:
    session = open_session(requirements_env())
    err(session.call("peek", {"id": "acc_1"}), "invalid_arguments", r"^say why you look at acc_1$")
    assert ok(session.call("peek", {"id": "acc_1", "reason": "audit"}))["owner"] == "ann"
    err(session.call("peek", {"id": "acc_9", "reason": "x"}), "not_found")  # the target is found first
    err(session.call("search", {"scope": "theirs"}), "invalid_arguments", r"^unknown scope theirs$")
    assert ok(session.call("search", {"scope": "all"}))["total"] == 3


def test_render_message_placeholders() -> None:
    scope = Scope({"a": 1, "nested": {"b": "x"}}, {"f": "v", "deep": {"g": 2}}, "k1", lambda: "T", lambda c, k: None)
    assert render_message("{arg.a} {arg.nested.b} {field.f} {field.deep.g} {key}", scope) == "1 x v 2 k1"
    assert render_message("{item.name}", scope.with_item({"name": "it"})) == "it"
    assert render_message("{unknown} {arg.a", scope) == "{unknown} {arg.a"  # not placeholders: kept as text


# ---------------------------------------------------------------------------------------------------
# effects
# ---------------------------------------------------------------------------------------------------


def ledger_env() -> Environment:
    """accounts (balance ≥ 0) and a batch operation: one batch record, per transfer an adjust and a ledger line."""
    accounts = {"record_schema": obj({"id": STR, "balance": {"type": "number", "minimum": 0}, "label": STR,
                                      "hits": INT}, ["id"])}
    batches = {"id_prefix": "b", "id_width": 2, "record_schema": obj({"id": STR, "note": STR, "total": NUM}, ["id"])}
    entries = {"id_prefix": "e", "id_width": 2,
               "record_schema": obj({"id": STR, "batch": STR, "account": STR, "amount": NUM, "at": STR},
                                    ["id", "batch", "account", "amount"]),
               "references": [{"field": "batch", "collection": "batches"}, {"field": "account", "collection": "accounts"}]}
    transfers = {"type": "array", "items": obj({"account": STR, "amount": NUM}, ["account", "amount"])}
    return build(
        {"accounts": accounts, "batches": batches, "entries": entries},
        [tool("post", {"kind": "create", "collection": "batches",
                       "assign": {"total": total(arg("transfers"), item("amount"))},
                       "effects": [
                           {"op": "adjust", "collection": "accounts", "key": item("account"), "field": "balance",
                            "by": item("amount"), "for_each": arg("transfers")},
                           {"op": "create", "collection": "entries", "for_each": arg("transfers"),
                            "values": {"batch": key(), "account": item("account"), "amount": item("amount"),
                                       "at": now()}},
                           {"op": "set", "collection": "accounts", "key": arg("label_account", "none"),
                            "field": "label", "value": arg("label"), "for_each": arg("label_only")},
                       ]},
              {"transfers": transfers, "note": STR, "label_account": STR, "label": STR,
               "label_only": {"type": ["array", "null", "string"]}}, ("transfers",)),
         tool("hit", {"kind": "patch", "collection": "accounts", "fields_from_args": False,
                      "effects": [{"op": "adjust", "collection": "accounts", "key": key(), "field": "hits",
                                   "by": arg("by", 1)}]},
              {"id": STR, "by": {}}, ("id",))],
        {"collections": {"accounts": {"x": {"id": "x", "balance": 10}, "y": {"id": "y", "balance": 5},
                                      "z": {"id": "z", "balance": 0, "label": "old"}}}},
    )


def test_effects_adjust_and_create_for_each_element() -> None:
    session = open_session(ledger_env())
    batch = ok(session.call("post", {"transfers": [{"account": "x", "amount": -4}, {"account": "y", "amount": 2.5}]}))
    assert batch == {"id": "b01", "total": -1.5}  # `transfers` is no batch field: not copied
    state = session.state_json()["collections"]
    assert state["accounts"]["x"]["balance"] == 6
    assert state["accounts"]["y"]["balance"] == 7.5
    assert state["entries"] == {
        "e01": {"id": "e01", "batch": "b01", "account": "x", "amount": -4, "at": "2026-01-01T00:00:00Z"},
        "e02": {"id": "e02", "batch": "b01", "account": "y", "amount": 2.5, "at": "2026-01-01T00:00:00Z"},
    }
    assert counters(session) == {"accounts": 0, "batches": 1, "entries": 2}


def test_set_effect_and_null_for_each_is_skipped() -> None:
    session = open_session(ledger_env())
    ok(session.call("post", {"transfers": [], "label_account": "z", "label": "new", "label_only": ["once"]}))
    assert records(session, "accounts")["z"]["label"] == "new"
    ok(session.call("post", {"transfers": [], "label_account": "z", "label": "newer", "label_only": None}))
    assert records(session, "accounts")["z"]["label"] == "new"  # for_each null: the effect did not run
    ok(session.call("post", {"transfers": [], "label_account": "z", "label": "twice", "label_only": [1, 2]}))
    assert records(session, "accounts")["z"]["label"] == "twice"


def test_for_each_over_a_non_array_is_invalid_arguments() -> None:
    session = open_session(ledger_env())
    err(session.call("post", {"transfers": [], "label_only": "oops"}), "invalid_arguments",
        r"expected an array to apply set to each element")


def test_effect_on_a_missing_record_is_not_found() -> None:
    session = open_session(ledger_env())
    err(session.call("post", {"transfers": [], "label_only": [1]}), "not_found", r"accounts 'none' not found")


def test_adjust_treats_a_missing_field_as_zero_and_refuses_non_numbers() -> None:
    session = open_session(ledger_env())
    assert records(session, "accounts")["x"].get("hits") is None
    assert ok(session.call("hit", {"id": "x"}))["hits"] == 1  # the output is the target as the effects left it
    assert ok(session.call("hit", {"id": "x", "by": 2}))["hits"] == 3
    assert records(session, "accounts")["x"]["hits"] == 3
    err(session.call("hit", {"id": "x", "by": "2"}), "invalid_arguments", r"cannot adjust accounts.hits by non-number '2'")
    err(session.call("hit", {"id": "x", "by": True}), "invalid_arguments", r"non-number True")


def test_adjust_of_a_field_that_is_not_a_number_is_a_rule_violation() -> None:
    env = build(
        {"c": {"record_schema": obj({"id": STR, "n": {}}, ["id"])}},
        [tool("bump", {"kind": "patch", "collection": "c", "fields_from_args": False,
                       "effects": [{"op": "adjust", "collection": "c", "key": key(), "field": "n", "by": const(1)}]},
              {"id": STR}, ("id",))],
        {"collections": {"c": {"a": {"id": "a", "n": "one"}, "b": {"id": "b", "n": None}}}},
    )
    session = open_session(env)
    err(session.call("bump", {"id": "a"}), "rule_violation", r"c 'a': n is not a number")
    err(session.call("bump", {"id": "b"}), "rule_violation", r"c 'b': n is not a number")  # null is not missing


def test_arithmetic_that_overflows_what_a_state_can_hold_is_refused() -> None:
    session = open_session(ledger_env())
    before = session.hash()
    err(session.call("post", {"transfers": [{"account": "x", "amount": 1e308}, {"account": "y", "amount": 1e308}]}),
        "invalid_arguments", r"sum is out of range")
    big = 9_000_000_000_000_000_000  # < 2**63; integers up to 2**64 - 1 are stored
    ok(session.call("hit", {"id": "y", "by": big}))
    ok(session.call("hit", {"id": "y", "by": big}))
    err(session.call("hit", {"id": "y", "by": big}), "invalid_arguments",
        r"accounts.hits after adjusting by .* is out of range")
    assert records(session, "accounts")["y"]["hits"] == 2 * big
    assert session.hash() != before


# ---------------------------------------------------------------------------------------------------
# atomicity
# ---------------------------------------------------------------------------------------------------


def test_a_failing_effect_in_the_middle_changes_nothing() -> None:
    session = open_session(ledger_env())
    state_before, hash_before = session.state_json(), session.hash()
    # the first transfer applies, the second drives y below zero, the third is never reached
    result = session.call("post", {"transfers": [{"account": "x", "amount": -1}, {"account": "y", "amount": -6},
                                                 {"account": "z", "amount": 1}]})
    err(result, "rule_violation", r"post would leave accounts 'y' invalid")
    err(session.call("post", {"transfers": [{"account": "x", "amount": -1}, {"account": "nope", "amount": 1}]}),
        "not_found", r"accounts 'nope' not found")
    assert session.hash() == hash_before
    assert session.state_json() == state_before  # no partial writes, counters untouched
    # and the clock did not move: the next successful write is stamped with the first tick
    ok(session.call("post", {"transfers": [{"account": "x", "amount": -1}]}))
    assert records(session, "batches") == {"b01": {"id": "b01", "total": -1}}
    assert records(session, "entries")["e01"]["at"] == "2026-01-01T00:00:00Z"


def test_failed_calls_leave_forks_and_snapshots_consistent() -> None:
    session = open_session(ledger_env())
    snap = session.snapshot()
    err(session.call("post", {"transfers": [{"account": "x", "amount": -100}]}), "rule_violation")
    assert session.snapshot() == snap
    assert session.diff(snap).empty


# ---------------------------------------------------------------------------------------------------
# expressions and conditions
# ---------------------------------------------------------------------------------------------------


def evaluate(expr: dict[str, Any], scope: Scope) -> Any:
    model = RequirementDecl.model_validate(
        {"condition": {"op": "eq", "left": expr, "right": const(None)}, "message": "m"}
    )
    return compile_expr(model.condition.left)(scope)  # type: ignore[union-attr]


def check(cond: dict[str, Any], scope: Scope) -> bool:
    return compile_cond(RequirementDecl.model_validate({"condition": cond, "message": "m"}).condition)(scope)


STORE = {("people", "p1"): {"id": "p1", "age": 40, "address": {"city": "Oslo"}}}


def scope(args: dict[str, Any] | None = None, target: dict[str, Any] | None = None, item_value: Any = None) -> Scope:
    s = Scope(args or {}, target, "k1", lambda: "2026-01-01T00:00:00Z", lambda c, k: STORE.get((c, k)))
    return s.with_item(item_value) if item_value is not None else s


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        (arg("a"), 1),
        (arg("missing", 5), 5),
        (arg("missing"), None),
        (arg("obj.inner"), "deep"),
        (arg("obj.absent", "d"), "d"),
        (arg("obj.inner.deeper", "d"), "d"),  # a path through a non-object is missing
        (const({"any": ["json"]}), {"any": ["json"]}),
        (field("f"), "target"),
        (field("nested.x"), 3),
        (field("absent"), None),
        (item("n"), 7),
        (item(), {"n": 7, "sub": {"m": 8}}),
        (item("sub.m"), 8),
        (now(), "2026-01-01T00:00:00Z"),
        (key(), "k1"),
        (lookup("people", arg("who"), "age"), 40),
        (lookup("people", const("p1"), "address.city"), "Oslo"),
        (lookup("people", const("p1"), "absent"), None),
        (arith("add", const(1), const(2), const(3.5)), 6.5),
        (arith("sub", const(10), const(1), const(2)), 7),
        (arith("sub", const(10)), 10),
        (arith("mul", const(2), const(3), const(4)), 24),
        (arith("mul", arg("a"), const(0.5)), 0.5),
        (total(arg("rows"), arith("mul", item("q"), item("p"))), 2 * 1.5 + 3 * 2),
        (total(arg("missing"), item("q")), 0),
        (total(const([]), item("q")), 0),
    ],
    ids=lambda v: json.dumps(v) if isinstance(v, dict) else None,
)
def test_expressions(expr: dict[str, Any], expected: Any) -> None:
    args = {"a": 1, "obj": {"inner": "deep"}, "who": "p1", "rows": [{"q": 2, "p": 1.5}, {"q": 3, "p": 2}]}
    target = {"f": "target", "nested": {"x": 3}}
    assert evaluate(expr, scope(args, target, {"n": 7, "sub": {"m": 8}})) == expected


def test_top_level_arg_default_applies_only_when_the_argument_is_absent() -> None:
    # documented quirk: an explicit null is returned as null for a plain name, but replaced by the
    # default behind a dotted path
    assert evaluate(arg("a", 5), scope({"a": None})) is None
    assert evaluate(arg("o.a", 5), scope({"o": {"a": None}})) == 5


@pytest.mark.parametrize(
    ("expr", "kind", "pattern"),
    [
        (lookup("people", const("p9"), "age"), "not_found", r"people 'p9' not found"),
        (lookup("people", const(5), "age"), "not_found", r"people 5 not found"),
        (arith("add", const(1), const("2")), "invalid_arguments", r"operand of add must be a number, got '2'"),
        (arith("mul", const(True), const(2)), "invalid_arguments", r"operand of mul must be a number"),
        (arith("sub", const(None), const(1)), "invalid_arguments", r"operand of sub must be a number"),
        (total(const("x"), item()), "invalid_arguments", r"sum over a non-array value"),
        (total(const([1, "a"]), item()), "invalid_arguments", r"summed value must be a number"),
        (arith("mul", const(1e200), const(1e200)), "invalid_arguments", r"result of mul is out of range"),
        (arith("add", const(2**63), const(2**63)), "invalid_arguments", r"result of add is out of range"),
        (arith("mul", const(2), const(3), const(2**63)), "invalid_arguments", r"result of mul is out of range"),
    ],
)
def test_expression_errors(expr: dict[str, Any], kind: str, pattern: str) -> None:
    from envfactory.errors import ToolError

    with pytest.raises(ToolError) as info:
        evaluate(expr, scope())
    assert info.value.kind == kind
    assert re.search(pattern, info.value.message), info.value.message


@pytest.mark.parametrize(
    ("cond", "expected"),
    [
        ({"op": "eq", "left": const(1), "right": const(1.0)}, True),
        ({"op": "eq", "left": const("a"), "right": const("A")}, False),
        ({"op": "eq", "left": const({"a": [1]}), "right": const({"a": [1]})}, True),
        ({"op": "ne", "left": const(1), "right": const(2)}, True),
        ({"op": "lt", "left": const(1), "right": const(2)}, True),
        ({"op": "le", "left": const(2), "right": const(2)}, True),
        ({"op": "gt", "left": const("b"), "right": const("a")}, True),
        ({"op": "ge", "left": const(1), "right": const(2)}, False),
        ({"op": "lt", "left": const(None), "right": const(2)}, False),  # null is not ordered
        ({"op": "gt", "left": const("a"), "right": const(1)}, False),  # incomparable: false, no error
        ({"op": "in", "left": const("b"), "right": const(["a", "b"])}, True),
        ({"op": "in", "left": const("b"), "right": const("abc")}, False),  # right must be an array
        ({"op": "not_in", "left": const("z"), "right": const(["a"])}, True),
        ({"op": "not_in", "left": const("z"), "right": const(None)}, True),
        ({"op": "contains", "left": const("Hello"), "right": const("ell")}, True),
        ({"op": "contains", "left": const("Hello"), "right": const("ELL")}, False),  # case-sensitive
        ({"op": "contains", "left": const([1, 2]), "right": const(2)}, True),
        ({"op": "contains", "left": const(None), "right": const(2)}, False),
        ({"op": "exists", "value": arg("a")}, True),
        ({"op": "exists", "value": arg("zero")}, True),  # 0 and false exist
        ({"op": "exists", "value": arg("nothing")}, False),
        ({"op": "missing", "value": arg("nothing")}, True),
        ({"op": "missing", "value": arg("null")}, True),
        ({"op": "all", "conditions": []}, True),
        ({"op": "any", "conditions": []}, False),
        ({"op": "all", "conditions": [{"op": "exists", "value": arg("a")}, {"op": "missing", "value": arg("a")}]}, False),
        ({"op": "any", "conditions": [{"op": "exists", "value": arg("a")}, {"op": "missing", "value": arg("a")}]}, True),
        ({"op": "not", "condition": {"op": "exists", "value": arg("a")}}, False),
    ],
    ids=lambda v: json.dumps(v) if isinstance(v, dict) else None,
)
def test_conditions(cond: dict[str, Any], expected: bool) -> None:
    assert check(cond, scope({"a": 1, "zero": 0, "null": None})) is expected


def test_expressions_through_the_engine_lookup_sum_and_defaults() -> None:
    env = load_env("shop")
    session = open_session(env)
    order = ok(session.call("create_order", {
        "customer_id": "cus_0001",
        "items": [{"product_id": "BK-001", "quantity": 2}, {"product_id": "HM-010", "quantity": 3}],
        "shipping_address": {"line1": "1 Way", "city": "Paris", "postal_code": "75001", "country": "FR"},
    }))
    assert order["total"] == 2 * 45.5 + 3 * 12.0  # sum over items of quantity × lookup(products).price
    assert order["currency"] == "USD"  # arg default
    assert (order["status"], order["created_at"]) == ("pending", "2026-01-01T00:00:00Z")
    err(session.call("create_order", {
        "customer_id": "cus_0001", "items": [{"product_id": "NOPE-1", "quantity": 1}],
        "shipping_address": {"line1": "1 Way", "city": "Paris", "postal_code": "75001", "country": "FR"},
    }), "not_found", r"products 'NOPE-1' not found")


# ---------------------------------------------------------------------------------------------------
# the clock
# ---------------------------------------------------------------------------------------------------


def test_clock_advances_once_per_committed_write_only(inv: Session) -> None:
    stamps = []
    for i in range(3):
        stamps.append(ok(inv.call("create_item", {"name": f"n{i}", "qty": 1}))["created_at"])
        ok(inv.call("get_item", {"id": "it_001"}))  # reads do not advance it
        ok(inv.call("list_items", {}))
        err(inv.call("create_item", {"name": "Alpha widget", "qty": 1}), "rule_violation")  # nor failures
        err(inv.call("get_item", {"id": 1}), "invalid_arguments")
    assert stamps == ["2026-01-01T00:00:00Z", "2026-01-01T00:00:01Z", "2026-01-01T00:00:02Z"]


def test_clock_start_and_tick_are_configurable(inventory: Environment) -> None:
    clock = ClockConfig(start=datetime(2030, 5, 6, 7, 8, 9, tzinfo=UTC), tick=timedelta(minutes=5))
    session = open_session(inventory, None, clock=clock)
    ok(session.call("patch_item", {"id": "it_001", "qty": 1}))  # a write without `now` still ticks
    assert ok(session.call("create_item", {"name": "n", "qty": 1}))["created_at"] == "2030-05-06T07:13:09Z"


# ---------------------------------------------------------------------------------------------------
# fork, snapshot/restore, hash, diff
# ---------------------------------------------------------------------------------------------------


def test_fork_isolation_both_ways(inv: Session) -> None:
    child = inv.fork()
    ok(inv.call("patch_item", {"id": "it_001", "qty": 100}))
    ok(inv.call("create_item", {"name": "parent only", "qty": 1}))
    assert records(child, "items")["it_001"]["qty"] == 5
    assert "it_005" not in records(child, "items")
    created = ok(child.call("create_item", {"name": "child only", "qty": 1}))
    assert created["id"] == "it_005"  # the child's counter did not see the parent's create
    ok(child.call("delete_item", {"id": "it_002"}))
    assert records(inv, "items")["it_005"]["name"] == "parent only"
    assert "it_002" in records(inv, "items")
    assert inv.hash() != child.hash()


def test_forks_of_forks_are_independent_and_keep_the_clock(inv: Session) -> None:
    ok(inv.call("create_item", {"name": "a", "qty": 1}))
    child = inv.fork()
    grandchild = child.fork()
    assert inv.hash() == child.hash() == grandchild.hash()
    assert ok(grandchild.call("create_item", {"name": "g", "qty": 1}))["created_at"] == "2026-01-01T00:00:01Z"
    ok(child.call("patch_item", {"id": "it_001", "qty": 2}))
    assert records(grandchild, "items")["it_001"]["qty"] == 5
    assert "it_006" not in records(child, "items") and "it_006" not in records(inv, "items")
    assert len({inv.hash(), child.hash(), grandchild.hash()}) == 3
    assert len(grandchild.log) == 2 and len(inv.log) == 1


def test_snapshot_restore_round_trip(inv: Session) -> None:
    ok(inv.call("create_item", {"name": "a", "qty": 1}))
    snap = inv.snapshot()
    assert snap.state_hash == inv.hash() and snap.clock_step == 1 and snap.step == 1
    ok(inv.call("delete_item", {"id": "it_001"}))
    ok(inv.call("create_item", {"name": "b", "qty": 1}))
    inv.restore(snap)
    assert inv.hash() == snap.state_hash
    assert inv.state_json() == snap.state
    # the clock moved back with the state, so the next write is stamped like it was the first time
    assert ok(inv.call("create_item", {"name": "c", "qty": 1}))["created_at"] == "2026-01-01T00:00:01Z"
    # a snapshot survives JSON and opens a new session at the same point
    again = Snapshot.model_validate_json(snap.model_dump_json())
    reopened = open_session(inv.env, again)
    assert reopened.hash() == snap.state_hash
    assert ok(reopened.call("create_item", {"name": "c", "qty": 1}))["created_at"] == "2026-01-01T00:00:01Z"


def test_restore_refuses_a_tampered_snapshot(inv: Session) -> None:
    snap = inv.snapshot()
    state = orjson.loads(orjson.dumps(snap.state))
    state["collections"]["items"]["it_001"]["qty"] = 999
    tampered = snap.model_copy(update={"state": state})
    with pytest.raises(SpecError, match="does not match its recorded hash"):
        inv.restore(tampered)
    assert inv.hash() == snap.state_hash
    other = snap.model_copy(update={"env": "shop@1.0.0#000000000000"})
    with pytest.raises(SpecError, match="cannot be restored into"):
        inv.restore(other)


def test_hash_is_independent_of_insertion_order(inventory: Environment) -> None:
    items = INVENTORY_SEED["collections"]["items"]  # type: ignore[index]
    reordered = {
        "counters": {"items": 4, "owners": 1},
        "collections": {
            "items": {k: dict(reversed(list(items[k].items()))) for k in reversed(list(items))},
            "owners": INVENTORY_SEED["collections"]["owners"],  # type: ignore[index]
        },
    }
    assert open_session(inventory, reordered).hash() == open_session(inventory, INVENTORY_SEED).hash()


def test_same_records_written_in_different_orders_hash_equal(empty_inv: Session) -> None:
    other = empty_inv.fork()
    ok(empty_inv.call("create_item_keyed", {"id": "a", "name": "A", "qty": 1}))
    ok(empty_inv.call("create_item_keyed", {"id": "b", "name": "B", "qty": 2}))
    ok(other.call("create_item_keyed", {"id": "b", "name": "B", "qty": 2}))
    ok(other.call("create_item_keyed", {"id": "a", "name": "A", "qty": 1}))
    assert empty_inv.hash() == other.hash()
    # and a write that is undone by another returns to the same hash
    before = empty_inv.hash()
    ok(empty_inv.call("patch_item", {"id": "a", "qty": 5}))
    assert empty_inv.hash() != before
    ok(empty_inv.call("patch_item", {"id": "a", "qty": 1}))
    assert empty_inv.hash() == before


@pytest.mark.parametrize(
    "change",
    [
        lambda s: s["collections"]["items"]["it_001"].update(qty=6),
        lambda s: s["collections"]["items"]["it_001"].update(price=2.5000001),
        lambda s: s["collections"]["items"]["it_002"].update(qty=0.0),  # 0 and 0.0 are written differently
        lambda s: s["collections"]["items"]["it_001"]["tags"].reverse(),  # array order matters
        lambda s: s["collections"]["items"]["it_004"].pop("note"),
        lambda s: s["collections"]["items"].pop("it_003"),
        lambda s: s["counters"].update(items=5),
    ],
)
def test_different_content_hashes_differently(inventory: Environment, change: Any) -> None:
    state = orjson.loads(orjson.dumps(INVENTORY_SEED))
    change(state)
    assert open_session(inventory, state).hash() != open_session(inventory, INVENTORY_SEED).hash()


def test_diff_reports_pointer_paths(inventory: Environment) -> None:
    base = open_session(inventory)
    after = base.fork()
    ok(after.call("patch_item", {"id": "it_001", "qty": 6, "note": "n"}))
    ok(after.call("delete_item", {"id": "it_002"}))
    ok(after.call("create_item_keyed", {"id": "a/b~c", "name": "slashy", "qty": 1}))
    ok(after.call("create_item", {"name": "new", "qty": 1}))
    changes = [(c.op, c.path, c.old, c.new) for c in base.diff(after).changes]
    assert changes == [
        ("add", "/collections/items/a~1b~0c", None, {"id": "a/b~c", "name": "slashy", "qty": 1, "status": "draft"}),
        ("add", "/collections/items/it_001/note", None, "n"),
        ("replace", "/collections/items/it_001/qty", 5, 6),
        ("remove", "/collections/items/it_002", INVENTORY_SEED["collections"]["items"]["it_002"], None),  # type: ignore[index]
        ("add", "/collections/items/it_005", None, records(after, "items")["it_005"]),
        ("replace", "/counters/items", 4, 5),
    ]
    assert base.diff(base.fork()).empty
    assert after.diff(base.snapshot()).changes[0].op == "remove"  # the other direction, against a snapshot


# ---------------------------------------------------------------------------------------------------
# loading states
# ---------------------------------------------------------------------------------------------------


def bad_state(mutate: Any) -> dict[str, Any]:
    state: dict[str, Any] = orjson.loads(orjson.dumps(INVENTORY_SEED))
    mutate(state)
    return state


@pytest.mark.parametrize(
    ("mutate", "pattern"),
    [
        (lambda s: s["collections"].update(gadgets={}), r"state does not fit inventory: .*gadgets"),
        (lambda s: s["counters"].update(gadgets=1), r"state does not fit inventory: .*gadgets"),
        (lambda s: s["counters"].update(items=-1), r"state does not fit inventory"),
        (lambda s: s.update(extra=1), r"state does not fit inventory"),
        (lambda s: s["collections"]["items"]["it_001"].update(id="it_009"),
         r"state: items record under key 'it_001' has id='it_009'"),
        (lambda s: s["collections"]["items"]["it_002"].update(owner_id="ow_77"),
         r"state: items 'it_002' refers to missing owners 'ow_77' \(owner_id\)"),
        (lambda s: s["collections"]["items"]["it_002"].update(name="Alpha widget"),
         r"state: items 'it_002' and 'it_001' share name \(must be unique\)"),
        (lambda s: s["collections"]["items"]["it_002"].update(qty=-3),
         r"state does not fit inventory: .*/collections/items/it_002/qty"),
        (lambda s: s["collections"]["items"]["it_003"].pop("name"),
         r"state does not fit inventory: .*/collections/items/it_003"),
    ],
)
def test_load_state_errors_name_the_record(inventory: Environment, mutate: Any, pattern: str) -> None:
    with pytest.raises(SpecError, match=pattern):
        open_session(inventory, bad_state(mutate))


def test_load_state_accepts_empty_and_none(inventory: Environment) -> None:
    states: list[dict[str, Any]] = [{}, {"collections": {}}, {"counters": {}}]
    for state in states:
        session = open_session(inventory, state)
        assert session.state_json() == {"collections": {"owners": {}, "items": {}}, "counters": {"owners": 0, "items": 0}}
    assert open_session(inventory).state_json()["counters"] == {"owners": 1, "items": 4}  # None: the default seed


def test_load_env_names_the_seed_file_that_does_not_load(tmp_path: Path) -> None:
    env_dir = tmp_path / "lib"
    (env_dir / "seeds").mkdir(parents=True)
    (env_dir / "env.json").write_bytes((LIBRARY_DIR / "env.json").read_bytes())
    seed = orjson.loads((LIBRARY_DIR / "seeds" / "default.json").read_bytes())
    seed["collections"]["loans"] = {"loan_0001": {"id": "loan_0001", "member_id": "mem_404", "isbn": "9780262510875",
                                                  "status": "open", "opened_at": "x"}}
    (env_dir / "seeds" / "broken.json").write_bytes(orjson.dumps(seed))
    with pytest.raises(SpecError, match=r"seeds/broken\.json: state: loans 'loan_0001' refers to missing members 'mem_404'"):
        load_env(env_dir)


# ---------------------------------------------------------------------------------------------------
# compiling sources
# ---------------------------------------------------------------------------------------------------


def test_compile_reports_every_problem_at_once() -> None:
    collections = {
        "things": {"record_schema": obj({"id": INT, "name": STR}, ["id"]),  # non-string key
                   "references": [{"field": "owner", "collection": "ghosts"}, {"field": "name", "collection": "ghosts"}],
                   "unique": [["colour"]],
                   "transitions": [{"field": "name", "allowed": {"a": ["b"]}}]},
        "other": {"key": "code", "record_schema": obj({"id": STR})},  # key field missing
    }
    tools = [
        tool("in_void", {"kind": "get", "collection": "void"}, {"id": STR}, ("id",)),
        tool("no_key", {"kind": "get", "collection": "things"}, {"name": STR}),
        tool("optional_key", {"kind": "delete", "collection": "things"}, {"id": STR}),
        tool("bad_list", {"kind": "list", "collection": "things",
                          "listing": {"filters": [{"arg": "q", "field": "name"}], "sort_by": "colour",
                                      "page_token_arg": "tok"}}, {"other": STR}),
        tool("bad_effects", {"kind": "create", "collection": "things", "key_arg": "given",
                             "assign": {"colour": const(1), "name": lookup("nowhere", const("a"), "x")},
                             "listing": {},
                             "effects": [{"op": "create", "collection": "limbo", "values": {}},
                                         {"op": "set", "collection": "things", "key": const("a"), "field": "colour",
                                          "value": const(1)}]}),
        tool("in_void", {"kind": "get", "collection": "void"}, {"id": STR}, ("id",)),
    ]
    with pytest.raises(SpecError) as info:
        compile_source(source(collections, tools, name="broken"))
    message = str(info.value)
    expected = [
        "collections.things: key field 'id' must be a record property of type 'string'",
        "collections.things.references: owner points to unknown collection 'ghosts'",
        "collections.things.references: owner is not a record field",
        "collections.things.references: name points to unknown collection 'ghosts'",
        "collections.things.unique: 'colour' is not a record field",
        "collections.things.transitions.name: 'a' -> ['b'] reach states with no entry in 'allowed'",
        "collections.other: key field 'code' must be a record property of type 'string'",
        "tools.in_void.operation: unknown collection 'void'",
        "tools.no_key.operation: get needs argument 'id' (the key) in the input schema",
        "tools.optional_key.operation: key argument 'id' must be required",
        "tools.bad_list.operation.listing.filters: argument 'q' is not in the input schema",
        "tools.bad_list.operation.listing.page_token_arg: argument 'tok' is not in the input schema",
        "tools.bad_list.operation.listing.sort_by: 'colour' is not a field of things",
        "tools.bad_effects.operation: key_arg 'given' is not an argument",
        "tools.bad_effects.operation.assign: 'colour' is not a field of things",
        "tools.bad_effects.operation: 'listing' only applies to list operations",
        "tools.bad_effects.operation.assign.name: lookup in unknown collection 'nowhere'",
        "tools.bad_effects.operation.effects[0]: unknown collection 'limbo'",
        "tools.bad_effects.operation.effects[1]: 'colour' is not a field of things",
        "tools: 'in_void' is defined twice",
    ]
    for line in expected:
        assert f"  - {line}" in message, line
    assert message.startswith(f"broken: {len(expected)} problem(s):")


def test_compile_finds_unknown_lookup_collections_anywhere_in_an_operation() -> None:
    nowhere = lookup("nowhere", const("a"), "x")
    tools = [tool("t", {"kind": "create", "collection": "c",
                        "requires": [{"condition": {"op": "not", "condition": {"op": "all", "conditions": [
                            {"op": "exists", "value": arith("add", const(1), nowhere)}]}}, "message": "m"}],
                        "effects": [{"op": "create", "collection": "c", "for_each": nowhere,
                                     "values": {"id": total(const([]), lookup("limbo", nowhere, "y"))}}]})]
    with pytest.raises(SpecError) as info:
        compile_source(source({"c": {"record_schema": obj({"id": STR})}}, tools))
    message = str(info.value)
    assert "requires[0]: lookup in unknown collection 'nowhere'" in message
    assert "effects[0]: lookup in unknown collection 'limbo'" in message
    assert message.count("lookup in unknown collection 'nowhere'") == 3


def test_compile_refuses_operations_that_would_change_a_key_field() -> None:
    # a record is stored under its key; rewriting the key field would leave it under the old key
    coll = {"record_schema": obj({"id": STR, "n": INT}, ["id"])}
    tools = [
        tool("rename", {"kind": "patch", "collection": "c", "assign": {"id": arg("to")}}, {"id": STR, "to": STR}, ("id",)),
        tool("mk", {"kind": "create", "collection": "c", "assign": {"id": arg("want")}}, {"want": STR}),
        tool("poke", {"kind": "create", "collection": "c",
                      "effects": [{"op": "set", "collection": "c", "key": const("1"), "field": "id", "value": const("2")},
                                  {"op": "adjust", "collection": "c", "key": const("1"), "field": "n", "by": const(1)}]}),
    ]
    with pytest.raises(SpecError) as info:
        compile_source(source({"c": coll}, tools))
    message = str(info.value)
    assert "tools.rename.operation.assign: 'id' is the key of c (use key_arg to choose keys)" in message
    assert "tools.mk.operation.assign: 'id' is the key of c" in message
    assert "tools.poke.operation.effects[0]: 'id' is the key of c and cannot change" in message
    assert message.startswith("fixture: 3 problem(s):")


def test_compile_needs_a_tool_and_object_schemas() -> None:
    with pytest.raises(SpecError, match="an environment needs at least one tool"):
        compile_source(source({"c": {"record_schema": obj({"id": STR})}}, []))
    with pytest.raises(SpecError, match=r"record_schema: must have type 'object'"):
        compile_source(source({"c": {"record_schema": {"type": "array"}}}, [tool("t", {"kind": "list", "collection": "c"})]))


def test_structural_mistakes_are_refused_by_the_document_model() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        source({"c": {"record_schema": obj({"id": STR}), "colour": "red"}}, [])  # unknown field
    with pytest.raises(ValidationError):
        source({"c": {"record_schema": obj({"id": STR})}},
               [tool("t", {"kind": "create", "collection": "c", "assign": {"id": {"op": "random"}}})])


def test_derived_tool_facts() -> None:
    spec = load_env("shop").spec
    facts = {t.name: (t.effect, t.idempotent) for t in spec.tools}
    assert facts["get_customer"] == ("read", True)
    assert facts["list_products"] == ("read", True)
    assert facts["create_customer"] == ("write", False)
    assert facts["top_up_wallet"] == ("write", False)  # wallet += amount: repeating adds again
    assert facts["pay_order"] == ("write", False)  # effects adjust and create
    assert facts["ship_order"] == ("write", False)  # updated_at = now
    tracker = {t.name: (t.effect, t.idempotent) for t in load_env("tracker").spec.tools}
    assert tracker["archive_project"] == ("write", True)  # archived = true: a repeat changes nothing
    assert tracker["delete_task"] == ("write", True)
    list_schema: dict[str, Any] = spec.tool("list_products").output_schema  # type: ignore[union-attr]
    assert list_schema["required"] == ["items", "next_page_token", "total"]
    products = spec.implementation.model.collections["products"]  # type: ignore[union-attr]
    assert list_schema["properties"]["items"]["items"] == products.record_schema
    env = build({"c": {"record_schema": obj({"id": STR, "n": INT}, ["id"])}},
                [tool("rm", {"kind": "delete", "collection": "c"}, {"id": STR}, ("id",)),
                 tool("get", {"kind": "get", "collection": "c"}, {"id": STR}, ("id",)),
                 tool("set_n", {"kind": "patch", "collection": "c"}, {"id": STR, "n": INT}, ("id",))])
    tools = {t.name: t for t in env.spec.tools}
    assert tools["rm"].output_schema == obj({"deleted": STR}, ["deleted"])
    assert tools["get"].output_schema == obj({"id": STR, "n": INT}, ["id"])
    assert tools["set_n"].idempotent is True  # n from the arguments only
    state_schema: dict[str, Any] = env.spec.state_schema
    assert state_schema["properties"]["counters"]["properties"] == {"c": {"type": "integer", "minimum": 0}}
    assert env.spec.content_hash == env.spec.compute_hash()


# ---------------------------------------------------------------------------------------------------
# the shop: business flows end to end
# ---------------------------------------------------------------------------------------------------

ADDRESS = {"line1": "1 Main St", "city": "Leeds", "postal_code": "LS1 1AA", "country": "GB"}


@pytest.fixture
def shop() -> Session:
    return open_session(load_env("shop"))


def customer(session: Session, cid: str) -> dict[str, Any]:
    return ok(session.call("get_customer", {"id": cid}))  # type: ignore[no-any-return]


def stock(session: Session, sku: str) -> int:
    return ok(session.call("get_product", {"sku": sku}))["stock"]  # type: ignore[no-any-return]


def test_shop_order_pay_ship_deliver(shop: Session) -> None:
    order = ok(shop.call("create_order", {"customer_id": "cus_0001", "items": [{"product_id": "BK-002", "quantity": 2}],
                                          "shipping_address": ADDRESS, "currency": "GBP"}))
    assert (order["id"], order["status"], order["total"]) == ("ord_00002", "pending", 2 * 89.99)
    assert stock(shop, "BK-002") == 1  # reserved on ordering
    err(shop.call("ship_order", {"id": "ord_00002"}), "rule_violation",
        r"status cannot change from 'pending' to 'shipped' \(allowed: paid, cancelled\)")
    paid = ok(shop.call("pay_order", {"id": "ord_00002"}))
    assert (paid["status"], paid["updated_at"]) == ("paid", "2026-01-01T00:00:01Z")
    assert customer(shop, "cus_0001")["wallet_balance"] == pytest.approx(250.0 - 179.98)
    payments = ok(shop.call("list_payments", {"order_id": "ord_00002"}))["items"]
    assert payments == [{"id": "pay_00002", "order_id": "ord_00002", "customer_id": "cus_0001", "amount": 179.98,
                         "kind": "charge", "created_at": "2026-01-01T00:00:01Z"}]
    err(shop.call("pay_order", {"id": "ord_00002"}), "rule_violation", r"order ord_00002 is paid; only pending")
    assert customer(shop, "cus_0001")["wallet_balance"] == pytest.approx(250.0 - 179.98)  # not charged twice
    assert ok(shop.call("ship_order", {"id": "ord_00002"}))["status"] == "shipped"
    err(shop.call("refund_order", {"id": "ord_00002"}), "rule_violation", r"is shipped; only paid orders")
    assert ok(shop.call("deliver_order", {"id": "ord_00002"}))["status"] == "delivered"
    err(shop.call("cancel_order", {"id": "ord_00002"}), "rule_violation", r"is delivered")
    assert [o["status"] for o in ok(shop.call("list_orders", {"customer_id": "cus_0001"}))["items"]] == ["paid", "delivered"]


def test_shop_overdraw_is_refused_and_changes_nothing(shop: Session) -> None:
    order = ok(shop.call("create_order", {"customer_id": "cus_0002", "items": [{"product_id": "EL-100", "quantity": 5}],
                                          "shipping_address": ADDRESS}))
    assert order["total"] == pytest.approx(49.95)
    before = shop.hash()
    err(shop.call("pay_order", {"id": order["id"]}), "rule_violation",
        r"^wallet balance of cus_0002 is below the order total 49\.95")
    assert shop.hash() == before
    assert customer(shop, "cus_0002")["wallet_balance"] == 40.0
    ok(shop.call("top_up_wallet", {"id": "cus_0002", "amount": 10}))
    ok(shop.call("pay_order", {"id": order["id"]}))
    assert customer(shop, "cus_0002")["wallet_balance"] == pytest.approx(0.05)


def test_shop_order_beyond_stock_and_for_inactive_customers_is_refused(shop: Session) -> None:
    before = shop.hash()
    err(shop.call("create_order", {"customer_id": "cus_0001", "items": [{"product_id": "EL-200", "quantity": 1}],
                                   "shipping_address": ADDRESS}),
        "rule_violation", r"create_order would leave products 'EL-200' invalid")
    err(shop.call("create_order", {"customer_id": "cus_0003", "items": [{"product_id": "EL-100", "quantity": 1}],
                                   "shipping_address": ADDRESS}),
        "rule_violation", r"^customer cus_0003 is deactivated and cannot order$")
    err(shop.call("create_order", {"customer_id": "cus_0404", "items": [{"product_id": "EL-100", "quantity": 1}],
                                   "shipping_address": ADDRESS}), "not_found", r"customers 'cus_0404' not found")
    assert shop.hash() == before
    assert counters(shop)["orders"] == 1


def test_shop_cancel_returns_stock(shop: Session) -> None:
    order = ok(shop.call("create_order", {"customer_id": "cus_0001", "items": [
        {"product_id": "HM-010", "quantity": 4}, {"product_id": "BK-001", "quantity": 2}], "shipping_address": ADDRESS}))
    assert (stock(shop, "HM-010"), stock(shop, "BK-001")) == (36, 10)
    cancelled = ok(shop.call("cancel_order", {"id": order["id"], "reason": "changed my mind"}))
    assert (cancelled["status"], cancelled["note"]) == ("cancelled", "changed my mind")
    assert (stock(shop, "HM-010"), stock(shop, "BK-001")) == (40, 12)
    err(shop.call("cancel_order", {"id": order["id"]}), "rule_violation", r"is cancelled; only pending")
    assert stock(shop, "HM-010") == 40  # not returned twice
    err(shop.call("cancel_order", {"id": "ord_00001"}), "rule_violation", r"paid orders: refund_order")


def test_shop_refund_credits_wallet_returns_stock_and_writes_a_ledger_record(shop: Session) -> None:
    refunded = ok(shop.call("refund_order", {"id": "ord_00001"}))
    assert refunded["status"] == "cancelled"
    assert customer(shop, "cus_0001")["wallet_balance"] == 250.0 + 45.5
    assert stock(shop, "BK-001") == 13
    ledger = ok(shop.call("list_payments", {"order_id": "ord_00001"}))["items"]
    assert [(p["id"], p["kind"], p["amount"]) for p in ledger] == [("pay_00001", "charge", 45.5),
                                                                   ("pay_00002", "refund", 45.5)]
    err(shop.call("refund_order", {"id": "ord_00001"}), "rule_violation", r"is cancelled; only paid")
    assert customer(shop, "cus_0001")["wallet_balance"] == 295.5


def test_shop_replaying_successful_calls_reproduces_the_state(shop: Session) -> None:
    calls: list[tuple[str, dict[str, Any]]] = [("create_customer", {"name": "Eve", "email": "eve@example.com", "wallet_balance": 100}),
             ("create_order", {"customer_id": "cus_0004", "items": [{"product_id": "BK-001", "quantity": 1}],
                               "shipping_address": ADDRESS}),
             ("pay_order", {"id": "ord_00002"}), ("pay_order", {"id": "ord_00002"}),
             ("create_customer", {"name": "Eve 2", "email": "eve@example.com"}), ("ship_order", {"id": "ord_00002"})]
    results = [shop.call(name, args) for name, args in calls]
    replay = open_session(shop.env)
    for (name, args), result in zip(calls, results, strict=True):
        if result.ok:
            assert replay.call(name, args).output == result.output
    assert replay.hash() == shop.hash()
    assert [r.ok for r in results] == [True, True, True, False, False, True]


# ---------------------------------------------------------------------------------------------------
# the tracker: references, unique keys, cascade, workflow
# ---------------------------------------------------------------------------------------------------


def test_tracker_rules() -> None:
    session = open_session(load_env("tracker"))
    task = ok(session.call("create_task", {"project_id": "prj_001", "title": "Write docs"}))
    assert (task["status"], task["priority"]) == ("todo", "medium")
    err(session.call("create_task", {"project_id": "prj_003", "title": "x"}), "rule_violation", r"prj_003 is archived")
    err(session.call("set_task_status", {"id": task["id"], "status": "in_progress"}), "rule_violation",
        rf"task {task['id']} has no assignee")
    err(session.call("assign_task", {"id": task["id"], "assignee_id": "usr_999"}), "not_found", r"missing users 'usr_999'")
    ok(session.call("assign_task", {"id": task["id"], "assignee_id": "usr_002"}))
    ok(session.call("set_task_status", {"id": task["id"], "status": "in_progress"}))
    err(session.call("set_task_status", {"id": task["id"], "status": "done"}), "rule_violation", r"allowed: in_review")
    comment = ok(session.call("add_comment", {"task_id": task["id"], "author_id": "usr_001", "body": "on it"}))
    err(session.call("create_project", {"key": "ENG", "name": "dup", "owner_id": "usr_001"}), "rule_violation",
        r"duplicates key='ENG'")
    err(session.call("delete_project", {"id": "prj_001"}), "rule_violation", r"cannot delete projects 'prj_001': tasks")
    ok(session.call("delete_task", {"id": task["id"]}))
    assert comment["id"] not in records(session, "comments")  # comments are deleted with their task


# ---------------------------------------------------------------------------------------------------
# the worked example of docs/declarative-format.md
# ---------------------------------------------------------------------------------------------------


def doc_blocks(marker: str) -> list[str]:
    """Code blocks of the format reference that follow an HTML comment `<!-- marker -->`."""
    text = DOC.read_text(encoding="utf-8")
    return re.findall(rf"<!-- {re.escape(marker)} -->\s*```[a-z]*\n(.*?)```", text, flags=re.S)


def test_the_documented_example_is_the_fixture_environment() -> None:
    env_blocks = doc_blocks("example:env.json")
    seed_blocks = doc_blocks("example:seeds/default.json")
    assert len(env_blocks) == 1 and len(seed_blocks) == 1
    assert json.loads(env_blocks[0]) == json.loads((LIBRARY_DIR / "env.json").read_text())
    assert json.loads(seed_blocks[0]) == json.loads((LIBRARY_DIR / "seeds" / "default.json").read_text())


def test_the_documented_validate_output_shows_the_current_content_hash() -> None:
    (output,) = doc_blocks("example:validate")
    spec = load_env(LIBRARY_DIR).spec
    assert f"content hash {spec.content_hash}" in output
    assert f": {spec.ref}" in output
    assert f"{len(spec.tools)} tools ({sum(t.effect == 'write' for t in spec.tools)} write)" in output


def test_the_documented_transcript_replays() -> None:
    (transcript,) = doc_blocks("example:transcript")
    session = open_session(load_env(LIBRARY_DIR))
    calls = 0
    lines = [line for line in transcript.splitlines() if line.strip()]
    for call_line, result_line in zip(lines[::2], lines[1::2], strict=True):
        match = re.fullmatch(r">>> (\w+) (.*)", call_line)
        assert match, call_line
        result = session.call(match.group(1), json.loads(match.group(2)))
        shown = json.loads(result_line.removeprefix("<<< "))
        actual = result.output if result.ok else {"error": result.error.model_dump()}  # type: ignore[union-attr]
        assert actual == shown, call_line
        calls += 1
    assert calls >= 8
    # the closing remarks of the example
    assert counters(session) == {"members": 2, "books": 0, "loans": 1}
    diff = open_session(session.env).diff(session)
    assert [(c.op, c.path) for c in diff.changes] == [
        ("add", "/collections/members/mem_002"), ("add", "/collections/loans/loan_0001"),
        ("replace", "/counters/loans"), ("replace", "/counters/members"),
    ]
