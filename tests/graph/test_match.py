"""Schema matching: scores and conflicts on hand-written operations, and the indexed candidate search
finding exactly the edges of the naive all-pairs search."""

from __future__ import annotations

import pytest
from graph_helpers import operation

from envfactory.graph.build import Prepared, prepare, schema_candidates
from envfactory.graph.inputs import tools_from_operations
from envfactory.graph.match import schema_score
from envfactory.resources import Catalog

S = {"type": "string"}


def _views(prepared: Prepared, op: str, direction: str, path: str) -> int:
    for position, view in enumerate(prepared.views):
        tool = prepared.tools[view.tool]
        if tool.name == op and view.direction == direction and view.path == path:
            return position
    raise KeyError((op, direction, path))


@pytest.fixture(scope="module")
def queueing() -> Prepared:
    ops = [
        operation("sqs", "CreateQueue", {"QueueName": S}, {"QueueUrl": S}, ["QueueName"]),
        operation("sqs", "GetQueueAttributes", {"QueueUrl": S}, {"QueueArn": S, "Policy": S}, ["QueueUrl"]),
        operation("sqs", "SendMessage", {"QueueUrl": S, "MessageBody": S}, {"MessageId": S}, ["QueueUrl", "MessageBody"]),
        operation("sqs", "ReceiveMessage", {"QueueUrl": S},
                  {"Messages": {"type": "array", "items": {"type": "object", "properties": {
                      "MessageId": S, "ReceiptHandle": S, "Body": S}}}}, ["QueueUrl"]),
        operation("sqs", "DeleteMessage", {"QueueUrl": S, "ReceiptHandle": S}, {}, ["QueueUrl", "ReceiptHandle"]),
        operation("sqs", "ListQueues", {"NextToken": S}, {"QueueUrls": {"type": "array", "items": S}, "NextToken": S}),
        operation("sqs", "StartMessageMoveTask",
                  {"SourceArn": {"type": "string", "description": "The ARN of the queue that contains the messages."}},
                  {"TaskHandle": S}, ["SourceArn"]),
    ]
    return prepare(tools_from_operations(ops))


@pytest.mark.parametrize(("producer", "output", "consumer", "input_", "positive"), [
    ("CreateQueue", "QueueUrl", "SendMessage", "QueueUrl", True),
    ("ListQueues", "QueueUrls[]", "DeleteMessage", "QueueUrl", True),
    ("ReceiveMessage", "Messages[].ReceiptHandle", "DeleteMessage", "ReceiptHandle", True),
    ("GetQueueAttributes", "QueueArn", "StartMessageMoveTask", "SourceArn", True),
    ("ReceiveMessage", "Messages[].Body", "SendMessage", "MessageBody", True),
    ("ReceiveMessage", "Messages[].MessageId", "DeleteMessage", "ReceiptHandle", False),
    ("GetQueueAttributes", "QueueArn", "SendMessage", "QueueUrl", False),
    ("CreateQueue", "QueueUrl", "StartMessageMoveTask", "SourceArn", False),
    ("ListQueues", "NextToken", "SendMessage", "QueueUrl", False),
])
def test_scores(queueing: Prepared, producer: str, output: str, consumer: str, input_: str, positive: bool) -> None:
    o = _views(queueing, producer, "output", output)
    i = _views(queueing, consumer, "input", input_)
    match = schema_score(queueing.views[o], queueing.views[i])
    assert (match.score >= 0.45) is positive, match


def test_url_against_arn_is_a_conflict(queueing: Prepared) -> None:
    o = _views(queueing, "GetQueueAttributes", "output", "QueueArn")
    i = _views(queueing, "SendMessage", "input", "QueueUrl")
    assert schema_score(queueing.views[o], queueing.views[i]).conflict


def test_a_tool_feeds_itself_only_through_its_cursor(queueing: Prepared) -> None:
    """A list call's next-page token feeds its own token input (a cursor self-edge, typed `[cursor]`); no
    other field of a tool feeds the tool itself, and the token feeds no other tool."""
    o = _views(queueing, "ListQueues", "output", "NextToken")
    i = _views(queueing, "ListQueues", "input", "NextToken")
    match = schema_score(queueing.views[o], queueing.views[i])
    assert match.score >= 0.45 and match.evidence.startswith("[cursor]")
    urls = _views(queueing, "CreateQueue", "output", "QueueUrl")
    same_tool = _views(queueing, "GetQueueAttributes", "input", "QueueUrl")
    assert schema_score(queueing.views[_views(queueing, "GetQueueAttributes", "output", "QueueArn")],
                        queueing.views[same_tool]).score == 0
    assert schema_score(queueing.views[urls], queueing.views[same_tool]).evidence.startswith("[identifier]")


def test_identifiers_stay_in_the_service_that_issues_them() -> None:
    """Two services that both issue users: one's user ids do not feed the other's; a service that only
    refers to roles takes the issuer's role ARNs."""
    ops = [
        operation("alpha", "CreateUser", {"Name": S}, {"UserId": S}, ["Name"]),
        operation("alpha", "GetUser", {"UserId": S}, {"UserId": S}, ["UserId"]),
        operation("beta", "CreateUser", {"Name": S}, {"UserId": S}, ["Name"]),
        operation("beta", "DeleteUser", {"UserId": S}, {}, ["UserId"]),
        operation("iam", "CreateRole", {"RoleName": S}, {"Role": {"type": "object", "properties": {"Arn": S}}}, ["RoleName"]),
        operation("lambda", "CreateFunction", {"Role": {"type": "string", "description": "The ARN of the function's execution role."}},
                  {"FunctionArn": S}, ["Role"]),
    ]
    prepared = prepare(tools_from_operations(ops))
    edges = schema_candidates(prepared).scores
    named = {(prepared.tools[prepared.views[o].tool].id, prepared.tools[prepared.views[i].tool].id) for o, i in edges}
    assert ("aws-alpha__CreateUser", "aws-alpha__GetUser") in named
    assert ("aws-alpha__CreateUser", "aws-beta__DeleteUser") not in named
    assert ("aws-iam__CreateRole", "aws-lambda__CreateFunction") in named


def test_indexed_search_finds_exactly_the_naive_edges(queueing: Prepared) -> None:
    indexed, naive = schema_candidates(queueing), schema_candidates(queueing, naive=True)
    assert indexed.scores == naive.scores
    assert indexed.scored < naive.scored


@pytest.mark.slow
def test_indexed_equals_naive_on_real_services(label_catalog: Catalog) -> None:
    ops = [op for service in ("aws:sqs", "aws:sns", "google:tasks", "aws:secretsmanager")
           for op in label_catalog.resource(service).operations]
    prepared = prepare(tools_from_operations(ops))
    indexed, naive = schema_candidates(prepared), schema_candidates(prepared, naive=True)
    assert indexed.scores == naive.scores and indexed.scores
    assert indexed.scored * 5 < naive.scored
