"""The statefulness score and the template detector of the stateful selection (issue 20, deliverable 3), on
small hand-made specs; and the stateful selection in `propose_batch` over a stub catalog."""

from __future__ import annotations

from typing import Any, cast

import pytest
from typer.testing import CliRunner

from envfactory.build.ordering import order_proposals
from envfactory.build.propose import PROPOSER_VERSION, proposals_for_resource, propose_batch, rank, scored
from envfactory.build.selection import figures, report
from envfactory.build.statefulness import TEMPLATE_REASON_PREFIX, statefulness, template_reason
from envfactory.cli.app import app
from envfactory.resources import Catalog
from envfactory.resources.catalog import ServiceFilter
from envfactory.resources.model import Resource, ServiceEntry
from envfactory.runtime import library_root
from envfactory.spec import Operation, Proposal, ResourceSource
from envfactory.spec.library import LibraryConfig, LibraryIndex

_ID = {"type": "string"}


def _op(host: str, name: str, method: str, path: str, description: str = "", output: dict[str, Any] | None = None,
        inputs: dict[str, Any] | None = None) -> Operation:
    return Operation(id=f"{host}:{host}:v1:{name}", provider=host, service=host, service_version="v1", name=name,
                     description=description or f"{name} as the service documents it.", http_method=method,
                     http_path=path, input_schema={"type": "object", "properties": inputs or {}},
                     output_schema=output or {"type": "object", "properties": {"id": _ID, "name": _ID}})


def _resource(host: str, ops: list[Operation], title: str = "", file: str = "") -> Resource:
    return Resource(id=f"{host}:{host}:v1", kind="openapi", provider=host, service=host, version="v1",
                    title=title or f"{host} API", description=f"The {host} service.", licence="MIT",
                    domains=["travel"], source=ResourceSource(file=file or f"api/{host}.json"), operations=ops)


def _catalogue(host: str = "hotels.example") -> Resource:
    """One collection, plain CRUD: hotels."""
    return _resource(host, [
        _op(host, "createHotel", "POST", "/hotels", inputs={"name": _ID, "city": _ID}),
        _op(host, "listHotels", "GET", "/hotels"),
        _op(host, "getHotel", "GET", "/hotels/{hotelId}", inputs={"hotelId": _ID}),
        _op(host, "deleteHotel", "DELETE", "/hotels/{hotelId}", inputs={"hotelId": _ID}),
    ])


def _bookings(host: str = "stays.example") -> Resource:
    """Hotels and their bookings, a booking status machine, a cancel action and a stated limit."""
    booking = {"type": "object", "properties": {
        "id": _ID, "guest": _ID, "status": {"type": "string", "enum": ["pending", "confirmed", "cancelled"]}}}
    under = "/hotels/{hotelId}/bookings"
    return _resource(host, [
        _op(host, "createHotel", "POST", "/hotels", inputs={"name": _ID, "city": _ID}),
        _op(host, "listHotels", "GET", "/hotels"),
        _op(host, "getHotel", "GET", "/hotels/{hotelId}", inputs={"hotelId": _ID}),
        _op(host, "createBooking", "POST", under, output=booking, inputs={"hotelId": _ID, "guest": _ID, "nights": _ID},
            description="Book a room. A guest may hold at most 3 bookings per hotel."),
        _op(host, "listBookings", "GET", under, output={"type": "array", "items": booking}, inputs={"hotelId": _ID},
            description="List the bookings. Up to 50 results are returned per page."),
        _op(host, "getBooking", "GET", under + "/{bookingId}", output=booking, inputs={"hotelId": _ID, "bookingId": _ID}),
        _op(host, "cancelBooking", "POST", under + "/{bookingId}/cancel", output=booking,
            inputs={"hotelId": _ID, "bookingId": _ID}, description="Cancel a pending or confirmed booking."),
    ])


def _rows(resource: Resource) -> list[tuple[Operation, Any, str]]:
    (proposal,), _ = proposals_for_resource(resource, None, "travel")
    ops = {op.id: op for op in resource.operations}
    return [(ops[o.operation_id], o.role, o.collection) for o in proposal.operations]


def test_a_booking_service_scores_above_a_one_collection_catalogue() -> None:
    rich, plain = statefulness(_rows(_bookings()), "travel"), statefulness(_rows(_catalogue()), "travel")
    assert (plain.collections, plain.status_fields, plain.limits, plain.actions) == (1, 0, 0, 0)
    assert not plain.has_state_rule and not plain.transactional
    assert rich.collections == 2 and rich.linked >= 1
    assert rich.status_fields == 1  # bookings' status enum; hotels have none
    assert rich.limits == 1  # "at most 3 bookings", not "up to 50 results ... per page"
    assert rich.actions == 1 and rich.transactional == ["bookings"] and rich.has_state_rule
    assert rich.score > plain.score + 0.3
    assert statefulness(_rows(_bookings()), "travel") == rich  # deterministic


def test_transactional_collections_count_only_in_travel_and_commerce() -> None:
    rows = _rows(_bookings())
    assert statefulness(rows, "commerce").transactional == ["bookings"]
    office = statefulness(rows, "office")
    assert office.transactional == []
    assert office.score < statefulness(rows, "travel").score  # the bonus is the only difference here


def test_status_values_stated_in_prose_count_and_unnamed_enums_do_not() -> None:
    host = "tasks.example"
    prose = {"type": "object", "properties": {"id": _ID, "state": {"type": "string",
             "description": "The task's state: one of open, done."}}}
    kind = {"type": "object", "properties": {"id": _ID, "kind": {"type": "string", "enum": ["a", "b"]}}}
    ops = [_op(host, "createTask", "POST", "/tasks", output=prose), _op(host, "getTask", "GET", "/tasks/{id}", output=prose),
           _op(host, "createNote", "POST", "/notes", output=kind), _op(host, "getNote", "GET", "/notes/{id}", output=kind)]
    rows = [(op, "create" if op.http_method == "POST" else "read", "tasks" if "Task" in op.name else "notes") for op in ops]
    assert statefulness(cast(Any, rows), "office").status_fields == 1


def test_petstore_copies_are_templates_with_the_reason() -> None:
    host = "vendor.local"
    minimal = _resource(host, [_op(host, "listPets", "GET", "/pets"), _op(host, "createPets", "POST", "/pets"),
                               _op(host, "showPetById", "GET", "/pets/{petId}")], title="Pets Api")
    assert "OpenAPI petstore template" in template_reason(minimal)
    v2_names = ["addPet", "updatePet", "findPetsByStatus", "getPetById", "deletePet", "placeOrder", "getOrderById",
                "createUser", "loginUser", "getUserByName", "listAnimals"]
    v2 = _resource(host, [_op(host, n, "GET", f"/x/{i}") for i, n in enumerate(v2_names)])
    reason = template_reason(v2)
    assert reason.startswith("operations copy the Swagger Petstore template (10 of 11")
    titled = _resource("petstore.example", _catalogue().operations, title="Swagger Petstore")
    assert "title" in template_reason(titled)
    assert "title" in template_reason(_resource("x.example", _catalogue().operations, title="Sample API"))
    assert template_reason(_resource("x.example", _catalogue().operations, title="Sample Tracking API")) == ""
    assert "source file" in template_reason(_resource(host, _catalogue().operations, file="api/vtex.local/VTEX_TEMPLATE.json"))


def test_placeholder_descriptions_make_a_small_spec_a_placeholder() -> None:
    host = "todo.example"
    ops = [_op(host, "createThing", "POST", "/things", description="TODO"),
           _op(host, "getThing", "GET", "/things/{id}", description="string"),
           _op(host, "listThings", "GET", "/things", description="Lists the things in the account.")]
    assert "2 of its 3 operations are described by placeholders" in template_reason(_resource(host, ops))


def test_real_services_are_not_templates() -> None:
    assert template_reason(_bookings()) == ""
    assert template_reason(_catalogue()) == ""
    # an order service that shares two names with the Petstore is not a copy of it
    host = "shop.example"
    ops = [_op(host, n, "POST", f"/o/{i}") for i, n in enumerate(
        ["placeOrder", "getOrderById", "listOrders", "cancelOrder", "refundOrder", "shipOrder"])]
    assert template_reason(_resource(host, ops)) == ""


class _StubCatalog:
    """The two calls `propose_batch` makes of a catalog, over hand-made resources (all tagged travel)."""

    def __init__(self, resources: list[Resource]) -> None:
        self.resources = {r.id: r for r in resources}

    def services(self, where: ServiceFilter | None = None) -> list[ServiceEntry]:
        return [ServiceEntry(id=r.id, kind=r.kind, provider=r.provider, service=r.service, version=r.version,
                             title=r.title, domains=r.domains, licence=r.licence, source=r.source,
                             operations=len(r.operations), source_key="stub")
                for r in self.resources.values() if where is None or where.domain in r.domains]

    def resource(self, ref: str) -> Resource:
        return self.resources[ref]


@pytest.fixture
def stub() -> Catalog:
    pets = _resource("vendor.local", [_op("vendor.local", "listPets", "GET", "/pets"),
                                      _op("vendor.local", "createPets", "POST", "/pets"),
                                      _op("vendor.local", "showPetById", "GET", "/pets/{petId}")])
    return cast(Catalog, _StubCatalog([_catalogue("a-hotels.example"), pets, _bookings("z-stays.example")]))


def test_stateful_selection_rejects_templates_and_ranks_bookings_first(stub: Catalog) -> None:
    shipped = propose_batch(stub, domains=["travel"])
    assert {p.provenance[0].provider for p in shipped.proposals} == {"a-hotels.example", "z-stays.example", "vendor.local"}
    assert not any(s.reason.startswith(TEMPLATE_REASON_PREFIX) for s in shipped.skipped)
    batch = propose_batch(stub, domains=["travel"], selection="stateful")
    assert [p.provenance[0].provider for p in batch.proposals] == ["z-stays.example", "a-hotels.example"]
    (skip,) = [s for s in batch.skipped if s.resource == "vendor.local:vendor.local:v1"]
    assert skip.reason.startswith(TEMPLATE_REASON_PREFIX + "operations copy the OpenAPI petstore template")
    assert "transactional: bookings" in batch.proposals[0].rationale
    assert propose_batch(stub, domains=["travel"], selection="stateful") == batch  # reproducible


def test_rank_by_statefulness_puts_the_score_first() -> None:
    rich = _bookings()
    (plain,), _ = proposals_for_resource(_catalogue(), None, "travel")
    (stays,), _ = proposals_for_resource(rich, None, "travel")
    stays = scored(stays, rich)
    plain = plain.model_copy(update={"statefulness": 0.1, "usefulness": 1.0}).with_id()
    assert rank([plain, stays], by_statefulness=True)[0] == stays


def test_the_selection_report_counts_what_a_build_would_take(stub: Catalog) -> None:
    batch = propose_batch(stub, domains=["travel"], selection="stateful")
    resources = {r.provider: r for r in cast(Any, stub).resources.values()}

    def operations_of(p: Any) -> dict[str, Operation]:
        ops = {o.id: o for o in resources[p.provenance[0].provider].operations}
        return {o.operation_id: ops[o.operation_id] for o in p.operations}

    config = LibraryConfig(domains=["travel"], accept_per_domain=1, selection="stateful")
    one = report(batch, config, operations_of)
    assert [s.provider for s in one.selected] == ["z-stays.example"]
    assert one.overall.multi_collection_share == 1.0 and one.overall.state_rule_share == 1.0
    assert [t.resource for t in one.templates] == ["vendor.local:vendor.local:v1"]
    both = report(batch, config.model_copy(update={"accept_per_domain": 5}), operations_of)
    assert both.per_domain["travel"].environments == 2 and both.per_domain["travel"].multi_collection_share == 0.5
    assert figures([]).environments == 0


def test_the_shipped_config_keeps_its_selection_and_hashes() -> None:
    """`selection` is a later field: the shipped config (which does not name it) selects as it was built, and
    its config hash (the index's) and proposals hash (recorded before the field existed) do not move."""
    config = LibraryConfig.model_validate_json((library_root() / "config.json").read_bytes())
    index = LibraryIndex.model_validate_json((library_root() / "index.json").read_bytes())
    assert config.selection == "catalog"
    assert config.config_hash() == index.config_hash
    assert config.proposals_hash(PROPOSER_VERSION) == "21143ef23ae0601b"
    stateful = config.model_copy(update={"selection": "stateful"})
    assert stateful.config_hash() != index.config_hash
    assert stateful.proposals_hash(PROPOSER_VERSION) != "21143ef23ae0601b"


def test_the_selection_report_command_refuses_an_unknown_selection() -> None:
    result = CliRunner().invoke(app, ["library", "selection-report", "--config", str(library_root() / "config.json"),
                                      "--selection", "random"])
    assert result.exit_code != 0 and "catalog or stateful" in result.output


def test_a_stateful_build_keeps_the_score_order_within_a_richness_tier(stub: Catalog) -> None:
    batch = propose_batch(stub, domains=["travel"], selection="stateful")
    config = LibraryConfig(domains=["travel"], selection="stateful", prefer_new_providers=True)
    assert order_proposals(batch.proposals, config, lambda p: (0, 0)) == batch.proposals
    # the dry compile's tiers still come first: rules lift the lower-scored catalogue above the bookings
    plain = next(p for p in batch.proposals if p.provenance[0].provider == "a-hotels.example")
    ordered = order_proposals(batch.proposals, config, lambda p: (1, 0) if p.id == plain.id else (0, 0))
    assert ordered[0] == plain


def test_the_shipped_config_still_proposes_the_shipped_commerce_proposals(full_catalog: Catalog) -> None:
    """The default selection over the catalog gives every shipped commerce proposal (commerce is proposed
    first, so the domain's batch does not depend on the others), with the template still among them."""
    config = LibraryConfig.model_validate_json((library_root() / "config.json").read_bytes())
    batch = propose_batch(full_catalog, domains=["commerce"], limit_per_domain=config.proposals_per_domain,
                          selection=config.selection)
    ids = {p.id for p in batch.proposals}
    index = LibraryIndex.model_validate_json((library_root() / "index.json").read_bytes())
    shipped = [Proposal.model_validate_json((library_root() / e.name / "proposal.json").read_bytes())
               for e in index.entries if e.domain == "commerce"]
    assert len(shipped) == 20 and all(p.id in ids for p in shipped)
    assert any(p.provenance[0].resource == "vtex.local:VTEX_TEMPLATE:1.0.0" for p in shipped)
