"""Helpers of the build tests: compile one service's proposal and open a session on it."""

from __future__ import annotations

from pathlib import Path

from envfactory.build.compile import CompiledEnv, compile_proposal
from envfactory.build.envdir import write_env_dir
from envfactory.build.propose import proposals_for_resource
from envfactory.resources import Catalog
from envfactory.runtime import Session, library_root, load_env, open_session
from envfactory.spec import Proposal

RECORDED_PROPOSALS = Path(__file__).resolve().parents[1] / "fixtures" / "proposals"


def recorded_proposal(name: str) -> Proposal:
    """The proposal of a shipped environment, or of one an earlier library shipped (kept in
    `tests/fixtures/proposals/` when a rebuild selected others: the compiler tests still compile it)."""
    shipped = library_root() / name / "proposal.json"
    path = shipped if shipped.is_file() else RECORDED_PROPOSALS / f"{name}.json"
    return Proposal.model_validate_json(path.read_bytes())


def proposal_with(catalog: Catalog, service: str, operation: str) -> tuple[Proposal, CompiledEnv]:
    """The proposal of `service` that contains `operation`, compiled."""
    resource = catalog.resource(service)
    proposals, why = proposals_for_resource(resource, None, "utilities")
    matching = [p for p in proposals if any(o.name == operation for o in p.operations)]
    assert matching, f"no proposal of {service} has {operation}: {why}"
    ops = {op.id: op for op in resource.operations}
    return matching[0], compile_proposal(matching[0], ops)


def session_of(compiled: CompiledEnv, directory: Path, seed: str | None = None) -> Session:
    write_env_dir(compiled, directory)
    env = load_env(directory)
    return open_session(env, {"collections": {}, "counters": {}} if seed is None else None)


def ok(session: Session, tool: str, args: dict[str, object]) -> object:
    result = session.call(tool, args)
    assert result.error is None, f"{tool} {args}: {result.error}"
    return result.output
