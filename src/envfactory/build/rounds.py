"""The bookkeeping of a proposal's build rounds: which tools are authored, the evidence against them for
the author's next round, the proposal without the tools verification blamed, the build record, and the
outcome of the last round (counts of the spec and the report).

Contract: pure functions of the spec, the report and the proposal; nothing is written or loaded here.
`env_shape(spec)` is (collections, linked collections, whether rules are used).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from envfactory.build.compile import CompiledEnv
from envfactory.spec import (
    BuildRecord,
    DroppedOperation,
    EnvSpec,
    HybridImplementation,
    Proposal,
    VerificationReport,
    declarative_model,
)
from envfactory.spec.build import AuthoringRecord, SeedRealism
from envfactory.spec.library import OutcomeCheck, ProposalOutcome


def authored_tool_names(spec: EnvSpec) -> list[str]:
    """The tools of `spec` whose code was authored (none for a declarative spec)."""
    impl = spec.implementation
    return list(impl.authored.tools) if isinstance(impl, HybridImplementation) else []


def authored_operations(spec: EnvSpec) -> dict[str, str]:
    """authored tool -> the source operation id it implements."""
    authored = set(authored_tool_names(spec))
    return {t.name: t.source.operation_id for t in spec.tools if t.name in authored and t.source is not None}


def failure_evidence(report: VerificationReport, tools: set[str]) -> list[str]:
    """What failed, for the author's next round: the failed checks' problems naming the tools, and the
    differential mismatches on them with our side's answer (an error message says what crashed)."""
    lines = [f"{c.name}: {problem[:400]}" for c in report.checks if c.status == "failed"
             for problem in c.problems if problem.split(":", 1)[0] in tools]
    for diff in report.differential:
        for m in diff.mismatches:
            if m.tool in tools:
                ours = f"; ours: {str(m.ours)[:300]}" if m.ours is not None else ""
                lines.append(f"{m.tool} disagrees with {diff.reference} at call {m.step} ({m.aspect}): "
                             f"{m.detail[:200]}{ours}")
    return lines[:8]


def build_record(
    proposal: Proposal, spec: EnvSpec, compiled: CompiledEnv, revise_dropped: Sequence[DroppedOperation],
    rounds: int, realism: SeedRealism | None, authoring: AuthoringRecord | None, authored_ops: Mapping[str, str],
) -> BuildRecord:
    """The `build.json` record of one round: what compiled, what was dropped (and why), what was authored."""
    authored = set(authored_ops.values())
    if authoring is not None:
        authoring = authoring.model_copy(update={"authored": sorted(authored)})
    kept = len(compiled.compiled) + len(authored)
    return BuildRecord(
        proposal_id=proposal.id, env_name=spec.meta.name, spec_hash=spec.content_hash,
        compiled=list(compiled.compiled), dropped=[
            *(d for d in compiled.dropped if d.operation_id not in authored), *revise_dropped,
        ],
        revise_rounds=rounds, kept_ratio=round(kept / max(1, len(proposal.operations)), 4),
        seed_realism=realism, authoring=authoring,
    )


def without_tools(proposal: Proposal, spec: EnvSpec, tools: Sequence[str],
                   report: VerificationReport) -> tuple[Proposal, list[DroppedOperation]]:
    """`proposal` without the operations behind `tools`, and the drop records saying why."""
    reasons: dict[str, list[str]] = {}
    for check in report.checks:
        if check.status == "failed":
            for tool in check.failing_tools:
                reasons.setdefault(tool, []).append(f"{check.name}: {check.detail[:200]}")
    for diff in report.differential:
        for tool in diff.failing_tools():
            reasons.setdefault(tool, []).append(f"differential vs {diff.reference}")
    by_tool = {t.name: t.source.operation_id for t in spec.tools if t.source is not None}
    drop_ids = {by_tool[t] for t in tools if t in by_tool}
    dropped = [
        DroppedOperation(operation_id=by_tool[t], tool_name=t, stage="revise",
                         reason="; ".join(reasons.get(t, ["blamed by verification"])))
        for t in sorted(tools) if t in by_tool
    ]
    kept_ops = [op for op in proposal.operations if op.operation_id not in drop_ids]
    return proposal.model_copy(update={"operations": kept_ops}), dropped


def env_shape(spec: EnvSpec) -> tuple[int, int, bool]:
    """(collections, collections linked by a reference, whether transitions or effects are used)."""
    model = declarative_model(spec)
    if model is None:
        return 0, 0, False
    linked: set[str] = set()
    rules = False
    for name, coll in model.collections.items():
        for ref in coll.references:
            linked.update({name, ref.collection})
        rules = rules or bool(coll.transitions)
    rules = rules or any(op.effects for op in model.operations.values())
    return len(model.collections), len(linked), rules


def final_outcome(
    outcome: ProposalOutcome, proposal: Proposal, spec: EnvSpec, compiled: CompiledEnv, report: VerificationReport,
    rounds: int, first_checks: list[OutcomeCheck], realism: SeedRealism | None, authoring: AuthoringRecord | None,
) -> ProposalOutcome:
    """`outcome` with what the last round built and verified: hashes, tool and collection counts, kept
    ratio, checks of the first and last rounds, scenario and differential tallies, LLM tokens (the status
    and reason are the caller's)."""
    authored_ops = authored_operations(spec)
    kept = len(compiled.compiled) + len(authored_ops)
    collections, linked, rules = env_shape(spec)
    return outcome.model_copy(update={
        "env_name": spec.meta.name, "spec_hash": spec.content_hash, "report_digest": report.evidence_digest,
        "verified": report.verdict == "verified", "tools": len(spec.tools),
        "write_tools": sum(1 for t in spec.tools if t.effect == "write"),
        "collections": collections, "linked_collections": linked, "uses_rules": rules,
        "kept_ratio": round(kept / max(1, len(proposal.operations)), 4), "revise_rounds": rounds,
        "first_round_checks": first_checks,
        "final_checks": [OutcomeCheck(name=c.name, status=c.status) for c in report.checks],
        "scenarios_passed": sum(t.passed for t in report.scenarios_by_oracle.values()),
        "scenarios_total": sum(t.total for t in report.scenarios_by_oracle.values()),
        "differential_matched": sum(d.matched for d in report.differential),
        "differential_compared": sum(d.calls_compared for d in report.differential),
        "llm_tokens": (realism.tokens if realism else 0) + (authoring.tokens if authoring else 0),
        "seed_values_from_llm": realism.accepted if realism else 0,
        "authored_tools": len(authored_ops),
    })
