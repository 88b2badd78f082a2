"""Session and session-group contract, exercised on the bundled declarative `shop` environment."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from envfactory.errors import SessionClosedError, SpecError
from envfactory.runtime import Environment, load_env, open_group, open_session
from envfactory.runtime.loader import backend_for, parse_env_document, read_json_file
from envfactory.runtime.sources import ClockConfig
from envfactory.spec import EnvSpec, Snapshot

ADDRESS = {"line1": "1 Main St", "city": "Springfield", "postal_code": "12345", "country": "US"}


@pytest.fixture(scope="module")
def shop() -> Environment:
    return load_env("shop")


def order_args(**overrides: object) -> dict[str, object]:
    args: dict[str, object] = {
        "customer_id": "cus_0001",
        "items": [{"product_id": "HM-010", "quantity": 2}],
        "shipping_address": ADDRESS,
    }
    args.update(overrides)
    return args


@pytest.mark.parametrize(
    ("tool", "arguments", "kind", "fragment"),
    [
        ("get_order", "{not json", "invalid_arguments", "not valid JSON"),
        ("get_order", "[1, 2]", "invalid_arguments", "must be a JSON object"),
        ("get_order", {"id": {1, 2}}, "invalid_arguments", "not JSON data"),
        ("launch_rocket", {}, "unknown_tool", "unknown tool 'launch_rocket'"),
        ("get_ordr", {"id": "x"}, "unknown_tool", "did you mean get_order"),
        ("get_order", {}, "invalid_arguments", "\"id\" is a required property"),
        ("get_order", {"id": 5}, "invalid_arguments", "5 is not of type \"string\""),
        ("get_order", {"id": "ord_00001", "extra": True}, "invalid_arguments", "'extra' was unexpected"),
        ("create_order", order_args(items=[{"product_id": "HM-010", "quantity": 0}]), "invalid_arguments", "/items/0/quantity"),
        ("get_order", {"id": "ord_99999"}, "not_found", "ord_99999"),
    ],
)
def test_bad_calls_become_typed_errors_naming_the_problem(
    shop: Environment, tool: str, arguments: object, kind: str, fragment: str
) -> None:
    session = open_session(shop)
    before = session.hash()
    result = session.call(tool, arguments)  # type: ignore[arg-type]
    assert result.error is not None, result
    assert result.error.kind == kind
    assert fragment in result.error.message
    assert session.hash() == before
    assert session.log[-1][1] == result


def test_calls_after_close_are_refused(shop: Environment) -> None:
    session = open_session(shop)
    session.close()
    result = session.call("get_customer", {"id": "cus_0001"})
    assert result.error is not None and result.error.kind == "session_closed"
    with pytest.raises(SessionClosedError):
        session.snapshot()
    with pytest.raises(SessionClosedError):
        session.fork()


def test_caller_mutation_cannot_reach_state(shop: Environment) -> None:
    session = open_session(shop)
    args = order_args()
    created = session.call("create_order", args)
    assert created.ok
    before = session.hash()
    args["items"][0]["quantity"] = 99  # type: ignore[index]
    created.output["items"][0]["quantity"] = 77  # type: ignore[index]
    session.log[0][0].arguments["items"][0]["quantity"] = 55  # type: ignore[index]
    assert session.hash() == before
    stored = session.call("get_order", {"id": created.output["id"]}).output  # type: ignore[index]
    assert stored["items"][0]["quantity"] == 2  # type: ignore[index]


def test_snapshot_restore_and_fork_are_independent(shop: Environment) -> None:
    session = open_session(shop, seed=3)
    snap = session.snapshot()
    child = session.fork()
    assert child.call("top_up_wallet", {"id": "cus_0001", "amount": 10}).ok
    assert session.hash() == snap.state_hash != child.hash()
    assert session.call("top_up_wallet", {"id": "cus_0002", "amount": 5}).ok
    assert child.call("get_customer", {"id": "cus_0002"}).output["wallet_balance"] == 40.0  # type: ignore[index]
    session.restore(snap)
    assert session.hash() == snap.state_hash
    again = Snapshot.model_validate_json(snap.model_dump_json())
    assert open_session(shop, again).hash() == snap.state_hash
    tampered = snap.model_copy(update={"state_hash": "0" * 64})
    with pytest.raises(SpecError, match="does not match"):
        session.restore(tampered)


def test_clock_advances_per_committed_write_only(shop: Environment) -> None:
    session = open_session(shop, clock=ClockConfig())
    session.call("get_customer", {"id": "cus_0001"})
    session.call("get_order", {"id": "missing"})
    first = session.call("create_order", order_args())
    session.call("create_order", order_args(customer_id="cus_0003"))  # refused: deactivated customer
    second = session.call("create_order", order_args())
    assert first.output["created_at"] == "2026-01-01T00:00:00Z"  # type: ignore[index]
    assert second.output["created_at"] == "2026-01-01T00:00:01Z"  # type: ignore[index]


def test_replaying_successful_calls_reproduces_the_state(shop: Environment) -> None:
    session = open_session(shop, seed=5)
    session.call("create_order", order_args())
    session.call("pay_order", {"id": "ord_00002"})
    session.call("pay_order", {"id": "ord_00002"})  # refused: already paid
    session.call("create_order", order_args(items=[{"product_id": "EL-200", "quantity": 1}]))  # no stock
    session.call("cancel_order", {"id": "ord_00001"})  # refused: paid
    session.call("refund_order", {"id": "ord_00001"})
    replay = open_session(shop, seed=5)
    for call, result in session.log:
        if result.ok:
            assert replay.call(call.tool, call.arguments).ok
    assert replay.hash() == session.hash()
    assert replay.snapshot().state == session.snapshot().state


def test_diff_reports_changed_paths(shop: Environment) -> None:
    session = open_session(shop)
    child = session.fork()
    child.call("restock_product", {"sku": "BK-002", "quantity": 5})
    diff = session.diff(child)
    assert [(c.op, c.path, c.old, c.new) for c in diff.changes] == [
        ("replace", "/collections/products/BK-002/stock", 3, 8)
    ]
    assert session.diff(session.snapshot()).empty


def test_open_session_rejects_state_that_does_not_fit(shop: Environment) -> None:
    with pytest.raises(SpecError, match="warehouses"):
        open_session(shop, {"collections": {"warehouses": {}}})
    with pytest.raises(SpecError, match="cus_0009"):
        state = shop.default_state()
        bad = {**state, "collections": {**state["collections"], "orders": {
            "ord_1": {**state["collections"]["orders"]["ord_00001"], "id": "ord_1", "customer_id": "cus_0009"}}}}
        open_session(shop, bad)


def test_group_qualifies_names_routes_calls_and_hashes(shop: Environment) -> None:
    tracker = load_env("tracker")
    group = open_group([shop, tracker], seed=2)
    names = {t.name for t in group.tools}
    assert "shop__get_order" in names and "tracker__get_task" in names
    assert all(len(n) <= 64 for n in names)
    result = group.call("tracker__get_task", {"id": "tsk_0001"})
    assert result.ok and result.tool == "tracker__get_task"
    assert group.call("get_task", {"id": "tsk_0001"}).error.kind == "unknown_tool"  # type: ignore[union-attr]
    fork = group.fork()
    fork.call("shop__top_up_wallet", {"id": "cus_0001", "amount": 1})
    assert fork.hashes()["tracker"] == group.hashes()["tracker"]
    assert fork.hash() != group.hash()
    assert [c.path for c in fork.diff(group)["shop"].changes] == ["/collections/customers/cus_0001/wallet_balance"]
    snaps = group.snapshot()
    group.call("shop__top_up_wallet", {"id": "cus_0002", "amount": 1})
    group.restore(snaps)
    assert group.hashes() == {k: v.state_hash for k, v in snaps.items()}
    assert [c.tool for c, _ in group.log] == ["tracker__get_task", "get_task", "shop__top_up_wallet"]
    group.close()
    assert group.call("shop__get_order", {"id": "x"}).error.kind == "session_closed"  # type: ignore[union-attr]


def test_plain_naming_refuses_collisions(shop: Environment) -> None:
    assert shop.directory is not None
    data = read_json_file(shop.directory / "env.json")
    data["meta"]["name"] = "shop_copy"
    copy = Environment.create(backend_for(parse_env_document(data, "copy"), None))
    with pytest.raises(SpecError, match="use qualified naming"):
        open_group([shop, copy], naming="plain")
    assert len(open_group([shop, copy]).tools) == 2 * len(shop.tools)


def test_groups_over_the_same_environments_share_routes_and_a_collision_is_refused_every_time(shop: Environment) -> None:
    tracker = load_env("tracker")
    first, second = open_group([shop, tracker], naming="plain"), open_group([shop, tracker], naming="plain")
    assert first._routes is second._routes and first.tools == second.tools  # derived once, only read
    assert first.route("get_task") == ("tracker", "get_task")
    assert open_group([tracker, shop]).route("shop__get_order") == ("shop", "get_order")
    assert shop.directory is not None
    data = read_json_file(shop.directory / "env.json")
    data["meta"]["name"] = "shop_twin"
    twin = Environment.create(backend_for(parse_env_document(data, "twin"), None))
    for _ in range(2):  # a refused group is never cached
        with pytest.raises(SpecError, match="use qualified naming"):
            open_group([shop, twin], naming="plain")


def test_the_group_log_records_each_call_as_made_even_when_the_caller_changes_its_arguments(shop: Environment) -> None:
    group = open_group([shop], naming="plain")
    arguments = {"id": "cus_0001", "amount": 3}
    group.call("top_up_wallet", arguments)
    arguments["amount"] = 99  # after the call: the log keeps what was called
    fork = group.fork()
    fork.call("get_order", {"id": "nope"})
    (call, result), = group.log
    assert (call.tool, call.id, call.arguments, result.tool, result.step) == (
        "top_up_wallet", "call_0", {"id": "cus_0001", "amount": 3}, "top_up_wallet", 0)
    assert group.log[0][0] is call  # built once, as when it was built with the call
    assert [c.tool for c, _ in fork.log] == ["top_up_wallet", "get_order"] and len(group.log) == 1


def test_explicitly_repeating_a_final_transition_is_refused(shop: Environment) -> None:
    session = open_session(shop)
    order = session.call("create_order", order_args()).output["id"]  # type: ignore[index]
    for tool in ("pay_order", "ship_order"):
        assert session.call(tool, {"id": order}).ok
    before = session.hash()
    again = session.call("ship_order", {"id": order})
    assert again.error is not None and again.error.kind == "rule_violation"
    assert "already 'shipped'" in again.error.message
    assert session.hash() == before


def test_open_session_checks_a_snapshots_environment_and_hash(shop: Environment) -> None:
    snap = open_session(shop).snapshot()
    with pytest.raises(SpecError, match="cannot open a session"):
        open_session(load_env("tracker"), snap)
    with pytest.raises(SpecError, match="does not match"):
        open_session(shop, snap.model_copy(update={"state_hash": "f" * 64}))


def test_a_sealed_spec_with_edited_derived_parts_is_refused(shop: Environment, tmp_path: Path) -> None:
    spec = shop.spec.model_dump(mode="json")
    (tmp_path / "good").mkdir()
    (tmp_path / "good" / "spec.json").write_bytes(orjson.dumps(spec))
    assert load_env(tmp_path / "good").spec.content_hash == shop.spec.content_hash
    spec["tools"][0]["effect"] = "read" if spec["tools"][0]["effect"] == "write" else "write"
    resealed = EnvSpec.model_validate({**spec, "content_hash": ""}).seal()
    (tmp_path / "edited").mkdir()
    (tmp_path / "edited" / "spec.json").write_bytes(resealed.to_json_bytes())
    with pytest.raises(SpecError, match="does not match what its declarative model derives"):
        load_env(tmp_path / "edited")
