"""Compiler generation 2 on real botocore services, from the shipped library's own proposals (MTurk bonuses
and worker blocks, Braket quantum tasks): a key shared with a collection it does not name is no reference,
final states and idempotency tokens. Generation 1 compiles them as shipped. No LLM."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.build.helpers import ok

from envfactory.build.compile import CompiledEnv, compile_proposal
from envfactory.build.envdir import write_env_dir
from envfactory.resources import AwsSource, Catalog
from envfactory.runtime import Session, library_root, load_env, open_session
from envfactory.spec.build import Proposal


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Catalog]:
    with Catalog([AwsSource(["mturk", "braket"])], tmp_path_factory.mktemp("gen2-catalog")) as built:
        yield built


def _compiled(catalog: Catalog, env: str, generation: int) -> CompiledEnv:
    proposal = Proposal.model_validate_json((library_root() / env / "proposal.json").read_bytes())
    operations = {o.operation_id: catalog.operation(o.operation_id) for o in proposal.operations}
    return compile_proposal(proposal, operations, generation=generation)


def _empty(compiled: CompiledEnv, directory: Path) -> Session:
    write_env_dir(compiled, directory)
    return open_session(load_env(directory), {"collections": {}, "counters": {}})


def test_a_bonus_goes_to_any_worker_not_only_a_blocked_one(catalog: Catalog, tmp_path: Path) -> None:
    shipped = _compiled(catalog, "mturk_bonuses_worker_blocks", 1)
    assert [(r.field, r.collection) for r in shipped.source.collections["bonuses"].references] == [("WorkerId", "worker_blocks")]
    compiled = _compiled(catalog, "mturk_bonuses_worker_blocks", 2)
    assert compiled.source.collections["bonuses"].references == []
    s = _empty(compiled, tmp_path)
    bonus: dict[str, Any] = {"WorkerId": "A1WORKER", "BonusAmount": "1.00", "AssignmentId": "a-1", "Reason": "thanks"}
    ok(s, "send_bonus", bonus)  # generation 1: not_found, the worker has no block
    ok(s, "create_worker_block", {"WorkerId": "A1WORKER", "Reason": "spam"})
    ok(s, "delete_worker_block", {"WorkerId": "A1WORKER"})  # a bonus sent does not pin the block


def test_braket_tasks_keep_their_final_states_and_client_tokens(catalog: Catalog, tmp_path: Path) -> None:
    shipped = _compiled(catalog, "braket_quantum_tasks", 1)
    assert all(t.operation.idempotency is None for t in shipped.source.tools)
    compiled = _compiled(catalog, "braket_quantum_tasks", 2)
    (transition,) = compiled.source.collections["quantum_tasks"].transitions
    finals = {v for v, to in transition.allowed.items() if to == []}
    assert finals == {"CANCELLED", "COMPLETED", "FAILED"}
    create = next(t for t in compiled.source.tools if t.operation.kind == "create")
    assert create.operation.idempotency is not None and create.operation.idempotency.arg == "clientToken"
    s = _empty(compiled, tmp_path)
    args: dict[str, Any] = {"action": "{}", "clientToken": "tok-1", "deviceArn": "arn:aws:braket:::device/qpu/x",
                            "outputS3Bucket": "bucket", "outputS3KeyPrefix": "out", "shots": 10}
    first = ok(s, create.name, args)
    assert ok(s, create.name, args) == first
    result = s.call(create.name, {**args, "shots": 20})
    assert result.error is not None and result.error.kind == "rule_violation" and "conflict" in result.error.message
