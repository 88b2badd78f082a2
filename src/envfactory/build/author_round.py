"""One build round's authoring (`config.author_operations`): ask the model for the operations the compiler
dropped, write the hybrid environment and load it in the builder's sandbox.

Contract: `author_round(...) -> AuthorRound` asks `llm` (`build.author.author_operations`, `batch` per request)
for the round's targets, keeping the pieces that passed earlier rounds; when some code was written, the
hybrid environment is written to `env_dir` and loaded in the sandbox `sandbox_for(spec)` gives (a parity
check); pieces that do not load are recorded as failures and the environment of the pieces that loaded
before is written instead, without asking again. Returns the hybrid spec and its loaded environment (both
None when nothing was authored), the authoring record, the accepted pieces, the evidence per tool that
failed this round (for the next one) and those tools' operation ids. A round with targets and no `llm` is
a `BuildError`. Deterministic given the model's answers (a replay reproduces it).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from envfactory.build.author import (
    AuthoredPiece,
    AuthoringTarget,
    assemble,
    author_operations,
    authoring_targets,
    hybrid_spec,
    write_hybrid_dir,
)
from envfactory.build.compile import CompiledEnv
from envfactory.build.errors import BuildError
from envfactory.build.library_types import BuildEvent
from envfactory.errors import SandboxError, SpecError
from envfactory.llm.protocols import LLMClient
from envfactory.runtime import Environment, load_env
from envfactory.runtime.sandbox import SandboxPool
from envfactory.spec import EnvSpec, Operation
from envfactory.spec.build import AuthoringRecord

AuthorRound = tuple[EnvSpec | None, Environment | None, AuthoringRecord | None, dict[str, AuthoredPiece],
                    dict[str, list[str]], dict[str, str]]
"""What a round's authoring gives: the hybrid spec and its environment (None when nothing was authored), the
record, the accepted pieces, the evidence per failed tool and their operations."""

SandboxFor = Callable[[EnvSpec], SandboxPool | None]


def author_round(
    llm: LLMClient | None, progress: Callable[[BuildEvent], None], batch: int, sandbox_for: SandboxFor,
    compiled: CompiledEnv, operations: Mapping[str, Operation], env_dir: Path, no_author: set[str],
    feedback: dict[str, list[str]], record: AuthoringRecord | None, pieces: dict[str, AuthoredPiece],
) -> AuthorRound:
    """Author the round's targets and load the hybrid environment (see the module contract)."""
    targets = authoring_targets(compiled, operations, exclude=frozenset(no_author))
    if not targets:
        return None, None, record, {}, {}, {}
    if llm is None:
        raise BuildError("the config asks for author_operations but no LLM client was given "
                         "(install the local model: see `envfactory llm info`, or set author_operations false)")
    record = record or AuthoringRecord(model=llm.model_id)
    record = record.model_copy(update={"targets": sorted({*record.targets, *(t.operation.id for t in targets)})})
    asked = [t.operation.name for t in targets if t.tool not in pieces]
    if asked:
        progress(BuildEvent("authoring", compiled.source.meta.domain, compiled.source.meta.name,
                            message=f"asking {llm.model_id} to write {', '.join(asked)}"))
    result = author_operations(llm, compiled.source, targets, feedback, record, batch=batch, accepted=pieces)
    by_tool = {t.tool: t.operation.id for t in targets}
    evidence = {tool: [why] for tool, why in result.failed.items()}
    unresolved = {tool: by_tool[tool] for tool in result.failed}
    if result.spec is None:
        return None, None, result.record, {}, evidence, unresolved
    env_dir.mkdir(parents=True, exist_ok=True)
    write_hybrid_dir(result.spec, compiled.seeds, env_dir)
    try:
        env = load_env(env_dir, sandbox=sandbox_for(result.spec))
    except (SpecError, SandboxError) as exc:
        why = f"the authored tools do not load: {exc}"[:800]
        shutil.rmtree(env_dir)
        failed_now = {tool: by_tool[tool] for tool in result.pieces if tool not in pieces}
        kept = {tool: piece for tool, piece in result.pieces.items() if tool in pieces}
        record = result.record.model_copy(update={"failures": [*result.record.failures, why][:20]})
        evidence.update((tool, [why]) for tool in failed_now)
        unresolved.update(failed_now)
        if not kept:
            return None, None, record, {}, evidence, unresolved
        spec, env = _earlier_pieces(llm.model_id, sandbox_for, compiled, env_dir, kept, targets)
        return spec, env, record, kept, evidence, unresolved
    return result.spec, env, result.record, result.pieces, evidence, unresolved


def _earlier_pieces(model_id: str, sandbox_for: SandboxFor, compiled: CompiledEnv, env_dir: Path,
                    kept: dict[str, AuthoredPiece], targets: Sequence[AuthoringTarget]) -> tuple[EnvSpec, Environment]:
    """The environment of the pieces that loaded before (no request): the new ones failed to load."""
    ordered = [kept[t.tool] for t in targets if t.tool in kept]
    spec = hybrid_spec(compiled.source, assemble(ordered), [t for t in targets if t.tool in kept], model_id)
    env_dir.mkdir(parents=True, exist_ok=True)
    write_hybrid_dir(spec, compiled.seeds, env_dir)
    return spec, load_env(env_dir, sandbox=sandbox_for(spec))
