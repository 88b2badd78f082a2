"""The counts and the index of a library build: `funnel_of` (what happened to every proposal) and
`library_index` (the accepted environments, with their spec hashes and report digests).

Contract: both are pure functions of the config, the proposal batch and the outcomes (plus the accepted
environments' `spec.json` files for the index); outcomes are sorted first, so the order they were
produced in (serially or on an executor) never shows in the bytes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from envfactory.spec import EnvSpec, ProposalBatch
from envfactory.spec.library import (
    CheckRate,
    LibraryConfig,
    LibraryEntry,
    LibraryFunnel,
    LibraryIndex,
    ProposalOutcome,
)


def _rates(outcomes: Sequence[ProposalOutcome], which: str) -> list[CheckRate]:
    passed: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for outcome in outcomes:
        for check in getattr(outcome, which):
            if check.status == "skipped":
                continue
            total[check.name] += 1
            passed[check.name] += check.status == "passed"
    return [CheckRate(name=n, passed=passed[n], total=total[n]) for n in sorted(total)]


def funnel_of(config: LibraryConfig, batch: ProposalBatch, outcomes: Sequence[ProposalOutcome]) -> LibraryFunnel:
    """The counts of a build (see `LibraryFunnel`)."""
    ordered = sorted(outcomes, key=lambda o: o.proposal_id)
    resources = {p.provenance[0].resource for p in batch.proposals} | {s.resource for s in batch.skipped}
    reasons = Counter(o.reason.split(":", 1)[0] for o in ordered if o.status == "rejected")
    return LibraryFunnel(
        config_hash=config.config_hash(),
        resources_considered=len(resources),
        resources_skipped=len({s.resource for s in batch.skipped}),
        proposals=len(batch.proposals),
        proposals_processed=len(ordered),
        built=sum(o.built for o in ordered),
        verified=sum(o.verified for o in ordered),
        accepted=sum(o.status == "accepted" for o in ordered),
        accepted_per_domain=dict(sorted(Counter(o.domain for o in ordered if o.status == "accepted").items())),
        rejected_reasons=dict(sorted(reasons.items())),
        first_round_check_rates=_rates(ordered, "first_round_checks"),
        final_check_rates=_rates(ordered, "final_checks"),
        revise_rounds={str(k): v for k, v in sorted(Counter(o.revise_rounds for o in ordered if o.verified).items())},
        llm_tokens=sum(o.llm_tokens for o in ordered),
        seed_values_from_llm=sum(o.seed_values_from_llm for o in ordered),
        authored_tools=sum(o.authored_tools for o in ordered),
    )


def library_index(config: LibraryConfig, envs_root: Path, outcomes: Sequence[ProposalOutcome]) -> LibraryIndex:
    """The index of the accepted environments under `envs_root`."""
    entries = []
    for outcome in sorted((o for o in outcomes if o.status == "accepted"), key=lambda o: o.env_name):
        spec = EnvSpec.model_validate_json((envs_root / outcome.env_name / "spec.json").read_bytes())
        entries.append(LibraryEntry(
            name=outcome.env_name, domain=outcome.domain, provider=outcome.provider, resource=outcome.resource,
            licences=sorted({p.licence for p in spec.meta.provenance}), tools=len(spec.tools),
            spec_hash=spec.content_hash, report_digest=outcome.report_digest,
        ))
    return LibraryIndex(config_hash=config.config_hash(), entries=entries)


