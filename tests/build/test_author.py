"""Authoring (`build.author`) and its place in library builds.

The model-dependent tests use a scripted author: its answers (tests/build/authored/*.md) are what a
capable code model writes for these requests: prose, a JSON block declaring new collections, and the
python class. Defective variants of them (a crash, unsafe code, a malformed answer) exercise the checks
and the revise loop. One slow test runs the bundled Qwen2.5-Coder-0.5B model on a real request and
checks that whatever it answers is either a loadable, parity-checked environment or a recorded failure.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.build.helpers import proposal_with

from envfactory.build.author import (
    AuthoringError,
    AuthoringTarget,
    author_operations,
    author_request,
    authoring_targets,
    hybrid_spec,
    parse_answer,
    write_hybrid_dir,
)
from envfactory.build.compile import CompiledEnv, compile_proposal
from envfactory.build.library import LLM_CASSETTE, LibraryBuilder
from envfactory.build.publish import publish_library, reproduce_library
from envfactory.build.reference import SCRIPTS, library_differential, script_for
from envfactory.llm.replay import CassetteWriter, RecordingClient, ReplayClient
from envfactory.llm.scripted import ScriptedClient, text_response
from envfactory.llm.types import ChatRequest, ChatResponse, Usage
from envfactory.resources import AwsSource, Catalog
from envfactory.runtime import load_env, open_session
from envfactory.runtime.sandbox import SandboxPool
from envfactory.spec import HybridImplementation, Operation, Proposal, ProposedOperation
from envfactory.spec.build import BuildRecord
from envfactory.spec.library import LibraryConfig

ANSWERS = Path(__file__).parent / "authored"


def answer(name: str) -> str:
    return (ANSWERS / f"{name}.md").read_text()


def reply(text: str) -> ChatResponse:
    return text_response(text, usage=Usage(prompt_tokens=2400, completion_tokens=900))


@pytest.fixture(scope="module")
def aws_catalog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Catalog]:
    with Catalog([AwsSource(["sqs", "ses", "dynamodb"])], tmp_path_factory.mktemp("aws-catalog")) as catalog:
        yield catalog


@pytest.fixture(scope="module")
def pool() -> Iterator[SandboxPool]:
    with SandboxPool(max_workers=2) as shared:
        yield shared


def compiled_for(catalog: Catalog, service: str, operation: str,
                 extra: tuple[str, ...] = ()) -> tuple[Proposal, CompiledEnv, dict[str, Operation]]:
    proposal, _ = proposal_with(catalog, service, operation)
    if extra:  # operations the proposer left out (SES sends) that the issue asks to compare
        version = proposal.operations[0].operation_id.split(":")[2]
        added = [ProposedOperation(operation_id=f"{service}:{version}:{n}", name=n, role="action",
                                   collection=proposal.operations[0].collection) for n in extra]
        proposal = proposal.model_copy(update={"operations": [*proposal.operations, *added]}).with_id()
    operations = {o.operation_id: catalog.operation(o.operation_id) for o in proposal.operations}
    return proposal, compile_proposal(proposal, operations), operations


def sqs_targets(catalog: Catalog) -> tuple[CompiledEnv, list[AuthoringTarget]]:
    _, compiled, operations = compiled_for(catalog, "aws:sqs", "CreateQueue")
    return compiled, authoring_targets(compiled, operations)


# -- targets, requests and static checks ------------------------------------------------------------


def test_targets_are_the_dropped_operations_with_their_api_interface(aws_catalog: Catalog) -> None:
    compiled, targets = sqs_targets(aws_catalog)
    by_tool = {t.tool: t for t in targets}
    assert set(by_tool) == {"delete_message", "receive_message", "get_queue_url", "purge_queue", "tag_queue",
                            "untag_queue"}
    assert not {t.name for t in compiled.source.tools} & set(by_tool)
    receive = by_tool["receive_message"]
    assert receive.input_schema["required"] == ["QueueUrl"]
    assert {"MaxNumberOfMessages", "VisibilityTimeout", "WaitTimeSeconds"} <= set(receive.input_schema["properties"])
    messages = receive.output_schema["properties"]["Messages"]["items"]["properties"]
    assert {"MessageId", "ReceiptHandle", "Body", "MD5OfBody"} <= set(messages)  # the API's response shape
    assert "authored implementation" in receive.drop_reason


def test_the_request_is_deterministic_and_carries_the_evidence(aws_catalog: Catalog) -> None:
    compiled, targets = sqs_targets(aws_catalog)
    first = author_request(compiled.source, targets)
    assert first == author_request(compiled.source, targets)
    user = first.messages[1].content
    assert "## ReceiveMessage (tool receive_message)" in user and "queues (key QueueUrl" in user
    assert "send_message" in user.split("Operations to write:")[0]  # existing tools are named, not rewritten
    again = author_request(compiled.source, targets, ["receive_message crashed: TypeError: Strings must be encoded"])
    assert "failed these checks" in again.messages[1].content and "Strings must be encoded" in again.messages[1].content


GOOD_SQS = answer("sqs")


@pytest.mark.parametrize(("text", "problem"), [
    ("I cannot do that.", "no ```python block"),
    (GOOD_SQS.replace("import hashlib", "import os"), "import of os is not allowed"),
    (GOOD_SQS.replace("self._queue(QueueUrl)\n        receipt", "self.__class__\n        receipt"), "dunder attribute"),
    (GOOD_SQS.replace("class AuthoredTools(AuthoredBase):", "print('hi')\n\nclass AuthoredTools(AuthoredBase):"),
     "only imports and the class"),
    (GOOD_SQS.replace("class AuthoredTools(AuthoredBase):", "class Tools(AuthoredBase):"), "exactly one class"),
    (GOOD_SQS.replace('"id_prefix": "receipt_",', '"id_prefix": "receipt_"'), "not valid JSON"),
    (GOOD_SQS.replace('{"receipts":', '{"queues":'), "must not reuse existing names"),
    (GOOD_SQS.replace("purge_queue(self, QueueUrl: str)", "purge_queue(self, QueueUrl: str, Force: bool = False)"),
     "parameters ['Force'] are not arguments of PurgeQueue"),
    (GOOD_SQS.replace("def get_queue_url(self, QueueName: str)", "def get_queue_url(self)"),
     "the required arguments ['QueueName'] must be parameters"),
    (GOOD_SQS.replace("hidden = {", "leak = open('/etc/passwd')\n        hidden = {"), "open is not allowed"),
    (GOOD_SQS.replace('"receipt_"', '"receipt prefix"'), "collection receipts: id_prefix"),
])
def test_unsafe_or_malformed_answers_are_refused_with_a_reason(aws_catalog: Catalog, text: str, problem: str) -> None:
    compiled, targets = sqs_targets(aws_catalog)
    with pytest.raises(AuthoringError) as caught:
        hybrid_spec(compiled.source, parse_answer(text), targets, "scripted")
    assert problem in str(caught.value)


def test_an_author_may_leave_operations_out(aws_catalog: Catalog) -> None:
    compiled, targets = sqs_targets(aws_catalog)
    start = GOOD_SQS.index("    @tool(effect=\"write\")\n    def tag_queue")
    end = GOOD_SQS.index("```", start)
    partial = GOOD_SQS[:start] + GOOD_SQS[end:]
    spec = hybrid_spec(compiled.source, parse_answer(partial), targets, "scripted")
    assert isinstance(spec.implementation, HybridImplementation)
    assert set(spec.implementation.authored.tools) == {"delete_message", "receive_message", "get_queue_url",
                                                       "purge_queue"}


# -- authored environments against moto -------------------------------------------------------------

# The operations the issue lists per service; each must be compared and agree.
ISSUE_OPERATIONS = {
    "sqs": {"CreateQueue", "SendMessage", "ReceiveMessage", "DeleteMessage", "GetQueueAttributes", "ListQueues"},
    "dynamodb": {"CreateTable", "DescribeTable", "PutItem", "GetItem", "DeleteItem", "UpdateItem"},
    "ses": {"VerifyEmailIdentity", "ListIdentities", "SendEmail", "GetSendQuota"},
}


@pytest.mark.slow
@pytest.mark.parametrize(("service", "anchor", "extra"), [
    ("sqs", "CreateQueue", ()),
    ("dynamodb", "CreateTable", ()),
    ("ses", "VerifyEmailIdentity", ("SendEmail", "GetSendQuota")),
])
def test_authored_environments_agree_with_moto_on_the_issue_operations(
        aws_catalog: Catalog, pool: SandboxPool, tmp_path: Path, service: str, anchor: str, extra: tuple[str, ...]) -> None:
    _, compiled, operations = compiled_for(aws_catalog, f"aws:{service}", anchor, extra)
    targets = authoring_targets(compiled, operations)
    result = author_operations(ScriptedClient([reply(answer(service))]), compiled.source, targets)
    spec = result.spec
    assert spec is not None, result.record.failures
    write_hybrid_dir(spec, compiled.seeds, tmp_path)
    env = load_env(tmp_path, sandbox=pool)
    calls = script_for(env, SCRIPTS[service])
    assert len(calls) == len(SCRIPTS[service])  # every scripted operation exists in the environment
    (result,) = library_differential(tmp_path, spec, sandbox=pool)
    assert result.mismatches == [], result.mismatches
    assert ISSUE_OPERATIONS[service] <= set(result.operations_compared)
    assert result.matched == result.calls_compared >= len(SCRIPTS[service])
    assert result.dropped_ops_not_compared == []


def test_receipts_hide_a_message_until_its_visibility_timeout_passes(
        aws_catalog: Catalog, pool: SandboxPool, tmp_path: Path) -> None:
    compiled, targets = sqs_targets(aws_catalog)
    spec = hybrid_spec(compiled.source, parse_answer(GOOD_SQS), targets, "scripted")
    write_hybrid_dir(spec, compiled.seeds, tmp_path)
    session = open_session(load_env(tmp_path, sandbox=pool), {"collections": {}, "counters": {}})
    url = session.call("create_queue", {"QueueName": "jobs", "Attributes": {"VisibilityTimeout": "30"}}).output["QueueUrl"]  # type: ignore[index]
    session.call("send_message", {"QueueUrl": url, "MessageBody": "first"})
    got = session.call("receive_message", {"QueueUrl": url}).output
    assert got["Messages"][0]["Body"] == "first"  # type: ignore[index]
    assert session.call("receive_message", {"QueueUrl": url}).output == {}  # hidden by the receipt
    handle = got["Messages"][0]["ReceiptHandle"]  # type: ignore[index]
    assert session.call("delete_message", {"QueueUrl": url, "ReceiptHandle": handle}).ok
    stale = session.call("delete_message", {"QueueUrl": url, "ReceiptHandle": handle})
    assert stale.error is not None and stale.error.kind == "invalid_arguments"
    assert session.state_json()["collections"]["messages"] == {}


# -- library builds ----------------------------------------------------------------------------------

CONFIG = LibraryConfig(name="authored", domains=["utilities"], proposals_per_domain=8, accept_per_domain=1,
                       first=["aws:sqs"], fuzz_calls=40, differential=True, contamination_check=False,
                       author_operations=True, max_author_rounds=2)

CRASHING_SQS = GOOD_SQS.replace("hashlib.md5(body.encode())", "hashlib.md5(body)")  # TypeError: str, not bytes


def _sqs_catalog(tmp_path: Path) -> Catalog:
    return Catalog([AwsSource(["sqs"])], tmp_path / "catalog")


def _asked_for(request: ChatRequest) -> str:
    """The tool a one-operation authoring request asks for."""
    (tool,) = re.findall(r"^## \w+ \(tool (\w+)\)$", request.messages[1].content, re.M)
    return tool


@pytest.mark.slow
def test_a_build_revises_authored_tools_with_evidence_then_ships_and_reproduces_them(tmp_path: Path) -> None:
    requests: list[ChatRequest] = []

    def author(request: ChatRequest) -> ChatResponse:
        """Answers every one-operation request with its whole class, as models often do; the first
        answer for receive_message crashes on every message it receives."""
        requests.append(request)
        first = _asked_for(request) == "receive_message" and not any(
            _asked_for(r) == "receive_message" for r in requests[:-1])
        return reply(CRASHING_SQS if first else GOOD_SQS)

    root = tmp_path / "build"
    root.mkdir()
    with _sqs_catalog(tmp_path) as catalog:
        with pytest.raises(Exception, match="author_operations"):
            LibraryBuilder(catalog, CONFIG, tmp_path / "no-llm", differential=library_differential).run()
        client = RecordingClient(ScriptedClient([author] * 8), CassetteWriter(root / LLM_CASSETTE))
        events: list[str] = []
        funnel = LibraryBuilder(catalog, CONFIG, root, differential=library_differential, llm=client,
                                progress=lambda e: events.append(e.message) if e.kind == "authoring" else None).run()
        assert len(events) == 2 and "ReceiveMessage" in events[0] and "DeleteMessage" in events[1]  # progress shown
        assert funnel.accepted == 1 and funnel.authored_tools == 6 and funnel.llm_tokens == 8 * 3300
        # One request per operation, producers first (the receipts exist before DeleteMessage is asked).
        asked = [_asked_for(r) for r in requests]
        assert asked[:6] == ["receive_message", "purge_queue", "tag_queue", "untag_queue", "delete_message",
                             "get_queue_url"]
        assert "receipts (key ReceiptHandle" in requests[4].messages[1].content
        # Only the blamed tools are asked again: receive_message crashed, and delete_message could not
        # show it works without a receipt to delete.
        assert asked[6:] == ["receive_message", "delete_message"]
        evidence = requests[6].messages[1].content.split("failed these checks")[1]
        assert "receive_message" in evidence and "Strings must be encoded" in evidence
        assert "no evidence that it works" in requests[7].messages[1].content
        (env_dir,) = sorted((root / "envs").iterdir())
        record = BuildRecord.model_validate_json((env_dir / "build.json").read_bytes())
        assert record.authoring is not None and record.authoring.requests == 8
        assert len(record.authoring.authored) == 6 and record.kept_ratio == 1.0
        assert not any(d.operation_id.endswith(("ReceiveMessage", "DeleteMessage")) for d in record.dropped)
        report = json.loads((env_dir / "report.json").read_text())
        assert report["verdict"] == "verified"
        (diff,) = report["differential"]
        assert {"ReceiveMessage", "DeleteMessage"} <= set(diff["operations_compared"]) and not diff["mismatches"]
        library = tmp_path / "library"
        index = publish_library(root, library)
        results = reproduce_library(catalog, library, tmp_path / "again", differential=library_differential,
                                    llm=ReplayClient(library / LLM_CASSETTE))
        assert [(r.name, r.spec_same, r.report_same) for r in results] == [(e.name, True, True) for e in index.entries]


@pytest.mark.slow
def test_authoring_that_keeps_failing_leaves_the_operations_dropped_with_the_evidence(tmp_path: Path) -> None:
    config = CONFIG.model_copy(update={"differential": False, "max_author_rounds": 1})
    with _sqs_catalog(tmp_path) as catalog:
        client = ScriptedClient([reply("Sure! Here is how SQS works: messages are received and deleted.")] * 12)
        LibraryBuilder(catalog, config, tmp_path / "build", llm=client).run()
    (outcome_file,) = (tmp_path / "build" / "outcomes").iterdir()
    outcome = json.loads(outcome_file.read_text())
    assert outcome["authored_tools"] == 0 and outcome["status"] == "rejected"
    assert "too few operations kept" in outcome["reason"]  # 8 of 14 without the authored six
    record = BuildRecord.model_validate_json((tmp_path / "build" / "rejected" / outcome["env_name"] / "build.json").read_bytes())
    assert record.authoring is not None and record.authoring.requests == 12  # six operations, two rounds
    assert len(record.authoring.failures) == 12
    assert all("no ```python block" in f for f in record.authoring.failures)
    dropped = {d.operation_id.rsplit(":", 1)[-1] for d in record.dropped}
    assert {"ReceiveMessage", "DeleteMessage"} <= dropped


@pytest.mark.slow
def test_the_bundled_model_answers_an_authoring_request(aws_catalog: Catalog, pool: SandboxPool, tmp_path: Path) -> None:
    """The embedded default model (Qwen2.5-Coder-0.5B) asked for SQS GetQueueUrl and PurgeQueue."""
    from envfactory.llm import LocalConfig, LocalProvider, ManagedClient

    compiled, targets = sqs_targets(aws_catalog)
    chosen = [t for t in targets if t.tool in {"get_queue_url", "purge_queue"}]
    provider = LocalProvider(LocalConfig())
    try:
        result = author_operations(ManagedClient(provider), compiled.source, chosen, batch=1)
    finally:
        provider.close()
    spec, record = result.spec, result.record
    assert record.requests == 2 and record.tokens > 0
    # Every operation is either written (and checked) or refused with its reason, never half-used.
    assert set(result.pieces) | set(result.failed) == {"get_queue_url", "purge_queue"}
    assert not set(result.pieces) & set(result.failed)
    if spec is None:
        return
    write_hybrid_dir(spec, compiled.seeds, tmp_path)
    env = load_env(tmp_path, sandbox=pool)  # parity with the API schemas is checked in the sandbox
    assert set(spec.implementation.authored.tools) <= {"get_queue_url", "purge_queue"}  # type: ignore[union-attr]
    assert env.spec.content_hash == spec.content_hash


def test_the_cli_shows_validates_and_verifies_a_hybrid_environment(aws_catalog: Catalog, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from envfactory.cli.app import app

    compiled, targets = sqs_targets(aws_catalog)
    spec = hybrid_spec(compiled.source, parse_answer(GOOD_SQS), targets, "scripted")
    write_hybrid_dir(spec, compiled.seeds, tmp_path)
    runner = CliRunner()
    shown = runner.invoke(app, ["envs", "show", str(tmp_path), "--json"])
    assert shown.exit_code == 0, shown.output
    details = json.loads(shown.output)
    assert details["kind"] == "hybrid" and "receive_message" in {t["name"] for t in details["tool_specs"]}
    assert "receipts" in {c["name"] for c in details["collections"]}
    valid = runner.invoke(app, ["envs", "validate", str(tmp_path)])
    assert valid.exit_code == 0 and "authored tools (sandboxed)" in valid.output, valid.output
    verified = runner.invoke(app, ["envs", "verify", str(tmp_path), "--json", "--fuzz-calls", "60"])
    assert verified.exit_code == 0, verified.output
    report = json.loads(verified.output)
    assert report["verdict"] == "verified"
    assert {"authored_exercised": "passed"}.items() <= {c["name"]: c["status"] for c in report["checks"]}.items()


class _Killed(Exception):
    """Stands for the process dying in the middle of a proposal."""


@pytest.mark.slow
def test_a_killed_build_with_authoring_resumes_to_the_same_files(tmp_path: Path) -> None:
    config = CONFIG.model_copy(update={"first": ["aws:sqs", "aws:dynamodb"], "accept_per_domain": 2,
                                       "differential": False, "fuzz_calls": 30})
    answers = {"sqs": GOOD_SQS, "dynamodb": answer("dynamodb")}

    def author(request: ChatRequest) -> ChatResponse:  # the same answer for the same request, as a cache gives
        return reply(answers["dynamodb" if "API: dynamodb" in request.messages[1].content else "sqs"])

    def files(root: Path) -> dict[str, bytes]:
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
                if p.is_file() and p.name != "timings.json"}

    starts: list[str] = []

    def die_on_second_start(event: object) -> None:
        if getattr(event, "kind", "") == "start":
            starts.append(getattr(event, "name", ""))
            if len(starts) == 2:
                raise _Killed

    with Catalog([AwsSource(["sqs", "dynamodb"])], tmp_path / "catalog") as catalog:
        whole = tmp_path / "whole"
        funnel = LibraryBuilder(catalog, config, whole, llm=ScriptedClient([author] * 40)).run()
        assert funnel.authored_tools >= 6
        killed = tmp_path / "killed"
        with pytest.raises(_Killed):
            LibraryBuilder(catalog, config, killed, llm=ScriptedClient([author] * 40),
                           progress=die_on_second_start).run()
        LibraryBuilder(catalog, config, killed, llm=ScriptedClient([author] * 40)).run(resume=True)
    assert files(killed) == files(whole)


def test_pieces_of_several_answers_merge_into_one_class(aws_catalog: Catalog) -> None:
    from envfactory.build.author import assemble, split_pieces

    compiled, targets = sqs_targets(aws_catalog)
    first = split_pieces(parse_answer(GOOD_SQS), ["receive_message"])
    other = GOOD_SQS.replace("The specified queue {QueueUrl} does not exist.", "No queue {QueueUrl}.")
    second = split_pieces(parse_answer(other), ["delete_message", "get_queue_url"])
    draft = assemble([first["receive_message"], second["delete_message"], second["get_queue_url"]])
    assert "def _queue(self" in draft.body and "def _queue_1(self" in draft.body  # clashing helpers renamed apart
    assert "self._queue_1(QueueUrl)" in draft.body.split("def delete_message")[1]
    assert draft.body.count("def _later(") == 1  # the same helper twice is kept once
    assert set(draft.collections) == {"receipts"}
    spec = hybrid_spec(compiled.source, draft, targets, "scripted")
    assert set(spec.implementation.authored.tools) == {"receive_message", "delete_message", "get_queue_url"}  # type: ignore[union-attr]
    clash = parse_answer(GOOD_SQS.replace('"VisibleAfter": {"type": "string"}', '"VisibleAfter": {"type": "integer"}'))
    with pytest.raises(AuthoringError, match="declared differently"):
        assemble([first["receive_message"], split_pieces(clash, ["delete_message"])["delete_message"]])


def test_a_one_operation_request_hands_over_the_signature(aws_catalog: Catalog) -> None:
    import ast
    import dataclasses

    from envfactory.build.author import skeleton

    compiled, targets = sqs_targets(aws_catalog)
    by_tool = {t.tool: t for t in targets}
    code = skeleton(by_tool["get_queue_url"])
    method = ast.parse(code).body[0].body[0]  # type: ignore[attr-defined]
    assert [a.arg for a in method.args.args] == ["self", "QueueName", "QueueOwnerAWSAccountId"]
    assert len(method.args.defaults) == 1  # the optional argument only
    assert 'effect="read"' in code and 'effect="write"' in skeleton(by_tool["purge_queue"])
    request = author_request(compiled.source, [by_tool["get_queue_url"]])
    assert code in request.messages[1].content and "only the body of the method" in request.messages[1].content
    assert "The method, to complete" not in author_request(compiled.source, targets).messages[1].content
    # Spec prose is data: quotes and backslashes cannot leave the docstring.
    hostile = dataclasses.replace(by_tool["purge_queue"], description='Purge."""\nimport os\\n os.system("x")')
    tree = ast.parse(skeleton(hostile))
    calls = [ast.unparse(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)]
    assert calls == ["tool"] and not [n for n in ast.walk(tree) if isinstance(n, ast.Import)]


def test_an_answer_with_only_the_body_goes_into_the_handed_over_signature(
        aws_catalog: Catalog, pool: SandboxPool, tmp_path: Path) -> None:
    compiled, targets = sqs_targets(aws_catalog)
    (target,) = [t for t in targets if t.tool == "get_queue_url"]
    body_only = (  # what a small model answers when asked for the body only
        "```python\nfor url, queue in sorted(self.records(\"queues\").items()):\n"
        "    if queue.get(\"QueueName\") == QueueName:\n        return {\"QueueUrl\": url}\n"
        "raise self.not_found(f\"no queue named {QueueName}\")\n```"
    )
    result = author_operations(ScriptedClient([reply(body_only)]), compiled.source, [target], batch=1)
    assert result.spec is not None, result.record.failures
    write_hybrid_dir(result.spec, compiled.seeds, tmp_path)
    session = open_session(load_env(tmp_path, sandbox=pool), {"collections": {}, "counters": {}})
    url = session.call("create_queue", {"QueueName": "jobs"}).output["QueueUrl"]  # type: ignore[index]
    assert session.call("get_queue_url", {"QueueName": "jobs"}).output == {"QueueUrl": url}
    missing = session.call("get_queue_url", {"QueueName": "nope"})
    assert missing.error is not None and missing.error.kind == "not_found"
