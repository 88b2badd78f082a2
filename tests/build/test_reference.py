"""Library differential scripts against moto, on environments compiled from the real botocore models
(SQS queues and messages; DynamoDB tables). moto runs in a subprocess; no LLM."""

from __future__ import annotations

from pathlib import Path

import pytest

from envfactory.build.compile import compile_proposal
from envfactory.build.envdir import write_env_dir
from envfactory.build.propose import proposals_for_resource
from envfactory.build.reference import SCRIPTS, library_differential, scripted_service
from envfactory.resources import AwsSource, Catalog

pytest.importorskip("moto")


@pytest.fixture(scope="module")
def aws_catalog(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    return Catalog([AwsSource(["sqs", "dynamodb"])], tmp_path_factory.mktemp("aws-catalog"))


def _compiled(catalog: Catalog, ref: str, tmp_path: Path, must_have: str) -> Path:
    entry = catalog.service(ref)
    resource = catalog.resource(entry.id)
    proposals, _ = proposals_for_resource(resource, entry, "utilities")
    operations = {op.id: op for op in resource.operations}
    for proposal in proposals:
        if any(op.name == must_have for op in proposal.operations):
            directory = tmp_path / proposal.name
            write_env_dir(compile_proposal(proposal, operations), directory)
            return directory
    raise AssertionError(f"no proposal of {ref} holds {must_have}")


@pytest.mark.slow
@pytest.mark.parametrize(("ref", "service", "must_have", "expected_ops"), [
    ("aws:sqs", "sqs", "CreateQueue", {"CreateQueue", "GetQueueAttributes", "SendMessage", "ListQueues", "DeleteQueue"}),
    ("aws:dynamodb", "dynamodb", "CreateTable", {"CreateTable", "DescribeTable", "ListTables", "DeleteTable"}),
])
def test_compiled_environment_matches_moto_on_the_library_script(
    aws_catalog: Catalog, tmp_path: Path, ref: str, service: str, must_have: str, expected_ops: set[str]
) -> None:
    directory = _compiled(aws_catalog, ref, tmp_path, must_have)
    from envfactory.runtime import load_env

    spec = load_env(directory).spec
    assert scripted_service(spec) == service
    (result,) = library_differential(directory, spec)
    assert expected_ops <= set(result.operations_compared)
    assert result.mismatches == []
    assert result.matched == result.calls_compared > 0
    scripted = {op for op, _ in SCRIPTS[service]}
    assert set(result.operations_compared) <= scripted


def test_environments_without_a_script_get_no_differential(aws_catalog: Catalog, tmp_path: Path) -> None:
    from envfactory.runtime import load_env

    spec = load_env("shop").spec
    assert scripted_service(spec) is None
    assert library_differential(tmp_path, spec) == []
