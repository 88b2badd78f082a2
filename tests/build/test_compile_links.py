"""Links between collections in hand-written OpenAPI-style operations (no catalog, no LLM): path
nesting with a generic `{id}` parameter, and a body field named like another collection's key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.build.helpers import ok, session_of

from envfactory.build.compile import compile_proposal
from envfactory.build.propose import proposals_for_resource
from envfactory.resources.model import Resource
from envfactory.spec import Operation, ResourceSource


def op(name: str, method: str, path: str, params: dict[str, str], body: dict[str, Any] | None = None) -> Operation:
    props: dict[str, Any] = {p: {"type": "string", "x-in": where} for p, where in params.items()}
    if body is not None:
        props["body"] = {"type": "object", "x-in": "body", "properties": body}
    required = [p for p, where in params.items() if where == "path"]
    return Operation(id=f"shop:shop:1:{name}", provider="shop.example", service="shop", name=name, http_method=method,
                     http_path=path, input_schema={"type": "object", "properties": props, "required": required})


CUSTOMER = {"name": {"type": "string"}, "email": {"type": "string", "format": "email"}}
ORDER = {"total": {"type": "number"}, "currency": {"type": "string"}}
COUPON = {"code": {"type": "string"}, "customer_id": {"type": "string"}}


def shop() -> Resource:
    ops = [
        op("createCustomer", "POST", "/customers", {"api_key": "query"}, CUSTOMER),
        op("getCustomer", "GET", "/customers/{id}", {"id": "path"}),
        op("deleteCustomer", "DELETE", "/customers/{id}", {"id": "path"}),
        op("createOrder", "POST", "/customers/{id}/orders", {"id": "path"}, ORDER),
        op("listOrders", "GET", "/customers/{id}/orders", {"id": "path", "currency": "query"}),
        op("getOrder", "GET", "/customers/{id}/orders/{order_id}", {"id": "path", "order_id": "path"}),
        op("createCoupon", "POST", "/coupons", {}, COUPON),
        op("listCoupons", "GET", "/coupons", {}),
    ]
    return Resource(id="shop:shop:1", kind="openapi", provider="shop.example", service="shop", version="1",
                    licence="MIT", source=ResourceSource(licence="MIT"), operations=ops)


def test_nested_paths_and_named_fields_become_references(tmp_path: Path) -> None:
    resource = shop()
    proposals, _ = proposals_for_resource(resource, None, "commerce")
    assert len(proposals) == 1  # customers, orders and coupons are linked: one environment
    compiled = compile_proposal(proposals[0], {o.id: o for o in resource.operations})
    colls = compiled.source.collections
    assert [(r.field, r.collection, r.on_delete) for r in colls["orders"].references] == [("customer_id", "customers", "cascade")]
    assert [(r.field, r.collection, r.on_delete) for r in colls["coupons"].references] == [("customer_id", "customers", "restrict")]
    tools = {t.name: t for t in compiled.source.tools}
    assert tools["create_order"].source.field_names == {"customer_id": "id"}  # type: ignore[union-attr]
    assert "api_key" not in tools["create_customer"].input_schema["properties"]
    assert colls["orders"].key == "order_id"  # no id in the schemas: the path parameter names the key
    s = session_of(compiled, tmp_path)
    ada = ok(s, "create_customer", {"name": "Ada", "email": "ada@example.org"})["id"]  # type: ignore[index]
    bob = ok(s, "create_customer", {"name": "Bob"})["id"]  # type: ignore[index]
    order = ok(s, "create_order", {"customer_id": ada, "total": 12.5, "currency": "EUR"})["order_id"]  # type: ignore[index]
    ok(s, "create_order", {"customer_id": bob, "total": 3, "currency": "USD"})
    assert ok(s, "get_order", {"customer_id": ada, "order_id": order})["total"] == 12.5  # type: ignore[index]
    assert s.call("get_order", {"customer_id": bob, "order_id": order}).error.kind == "not_found"  # type: ignore[union-attr]
    assert ok(s, "list_orders", {"customer_id": ada})["total"] == 1  # type: ignore[index]
    assert ok(s, "list_orders", {"customer_id": ada, "currency": "USD"})["total"] == 0  # type: ignore[index]
    ok(s, "create_coupon", {"code": "WELCOME", "customer_id": bob})
    dangling = s.call("create_coupon", {"code": "X", "customer_id": "customer_9999"})
    assert dangling.error is not None and dangling.error.kind == "not_found"
    refused = s.call("delete_customer", {"id": bob})  # a coupon refers to Bob
    assert refused.error is not None and refused.error.kind == "rule_violation"
    ok(s, "delete_customer", {"id": ada})  # Ada's orders go with her
    assert order not in s.state_json()["collections"]["orders"]
