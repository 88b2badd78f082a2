"""The selection report: which proposals a library build would build, and how stateful they look, computed
from the specs before anything is built (issue 20, deliverable 3).

Contract:
- `select(batch, config, operations_of)` walks the proposals in the order a build considers them
  (`build.ordering.order_proposals`, with richness read from the spec's score: a status field, limit or
  action counts as rules, a link as linked collections) and takes, per domain, the proposals a build
  would try until `config.accept_per_domain` are taken, with the provider cap (`BuildTally`), as if each
  were accepted. It is an estimate: a real build rejects some proposals (about 11% for the shipped one)
  and goes on down the list.
- `figures(scores)` is the issue's measure over a set of proposals: median tools, the share with ≥ 2
  collections, the share whose spec states a state machine or rule (`StatefulnessScore.has_state_rule`)
  and the share with a transactional collection, overall and per domain (`SelectionReport`).
- `report(batch, config, operations_of)` is `select` with its figures and the batch's template rejections
  (each with the reason). `operations_of(proposal)` resolves a proposal's operations (the catalog's); a
  proposal whose operations cannot be resolved is left out of the selection with the reason.
- Deterministic: the same batch, config and operations give the same report (no clock, no model).
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable, Mapping, Sequence

from pydantic import Field

from envfactory.build.library_types import BuildTally
from envfactory.build.ordering import order_proposals
from envfactory.build.statefulness import TEMPLATE_REASON_PREFIX, StatefulnessScore, statefulness
from envfactory.resources.domains import organisation
from envfactory.spec import Operation, Proposal
from envfactory.spec.base import SpecModel
from envfactory.spec.build import ProposalBatch, SkippedResource
from envfactory.spec.library import LibraryConfig

OperationsOf = Callable[[Proposal], Mapping[str, Operation]]
"""A proposal's operations by operation id (`catalog.operation` of each); raises when one cannot be resolved."""

class SelectedProposal(SpecModel):
    """One proposal the selection takes, with its score."""

    schema_version: int = 1
    proposal_id: str
    name: str
    domain: str
    resource: str
    provider: str
    score: StatefulnessScore


class SelectionFigures(SpecModel):
    """The issue's measure over a set of proposals (an empty set gives zeros)."""

    schema_version: int = 1
    environments: int = Field(ge=0)
    median_tools: float = Field(ge=0.0)
    multi_collection_share: float = Field(ge=0.0, le=1.0, description="share with ≥ 2 collections")
    state_rule_share: float = Field(ge=0.0, le=1.0, description="share whose spec states a status field, limit or action")
    transactional_share: float = Field(ge=0.0, le=1.0, description="share with a booking, order, ... collection")
    mean_score: float = Field(ge=0.0, le=1.0)


class SelectionReport(SpecModel):
    """What a build of `config` would select from a batch, with the figures overall and per domain."""

    schema_version: int = 1
    config_hash: str
    selection: str
    overall: SelectionFigures
    per_domain: dict[str, SelectionFigures]
    selected: list[SelectedProposal]
    templates: list[SkippedResource] = Field(default_factory=list, description="specs rejected as templates, with the reason")
    unresolved: list[SkippedResource] = Field(default_factory=list, description="proposals whose operations did not resolve")


def score_of(proposal: Proposal, operations: Mapping[str, Operation]) -> StatefulnessScore:
    """The spec's `StatefulnessScore` of `proposal` (its operations given by id)."""
    rows = [(operations[o.operation_id], o.role, o.collection) for o in proposal.operations]
    return statefulness(rows, proposal.domain)


def figures(scores: Sequence[StatefulnessScore]) -> SelectionFigures:
    """Median tools, shares with ≥ 2 collections, a state rule and a transactional collection, mean score."""
    n = len(scores)
    if not n:
        return SelectionFigures(environments=0, median_tools=0.0, multi_collection_share=0.0, state_rule_share=0.0,
                                transactional_share=0.0, mean_score=0.0)
    return SelectionFigures(
        environments=n, median_tools=float(statistics.median(s.tools for s in scores)),
        multi_collection_share=round(sum(s.collections >= 2 for s in scores) / n, 4),
        state_rule_share=round(sum(s.has_state_rule for s in scores) / n, 4),
        transactional_share=round(sum(bool(s.transactional) for s in scores) / n, 4),
        mean_score=round(sum(s.score for s in scores) / n, 4))


def select(
    batch: ProposalBatch, config: LibraryConfig, operations_of: OperationsOf,
) -> tuple[list[SelectedProposal], list[SkippedResource]]:
    """The proposals a build of `config` would take (module contract), and those left out as unresolved."""
    scores: dict[str, StatefulnessScore] = {}
    unresolved: list[SkippedResource] = []
    for proposal in batch.proposals:
        try:
            scores[proposal.id] = score_of(proposal, operations_of(proposal))
        except Exception as exc:  # the build would record the same failure and reject the proposal
            unresolved.append(SkippedResource(resource=proposal.provenance[0].resource,
                                              reason=f"{proposal.name}: operations do not resolve ({exc})"))
    usable = [p for p in batch.proposals if p.id in scores]

    def richness(proposal: Proposal) -> tuple[int, int]:
        score = scores[proposal.id]
        return int(score.has_state_rule), int(score.linked > 0)

    tally = BuildTally(Counter(), Counter())
    chosen: list[SelectedProposal] = []
    for proposal in order_proposals(usable, config, richness):
        if tally.skips(proposal, config):
            continue
        prov = proposal.provenance[0]
        tally.accepted[proposal.domain] += 1
        tally.per_provider[proposal.domain, organisation(prov.provider)] += 1
        chosen.append(SelectedProposal(proposal_id=proposal.id, name=proposal.name, domain=proposal.domain,
                                       resource=prov.resource, provider=prov.provider, score=scores[proposal.id]))
    return chosen, unresolved


def report(batch: ProposalBatch, config: LibraryConfig, operations_of: OperationsOf) -> SelectionReport:
    """The `SelectionReport` of what a build of `config` would select from `batch`."""
    chosen, unresolved = select(batch, config, operations_of)
    domains = list(dict.fromkeys(c.domain for c in chosen))
    templates = [s for s in batch.skipped if s.reason.startswith(TEMPLATE_REASON_PREFIX)]
    return SelectionReport(
        config_hash=config.config_hash(), selection=config.selection,
        overall=figures([c.score for c in chosen]),
        per_domain={d: figures([c.score for c in chosen if c.domain == d]) for d in domains},
        selected=chosen, templates=templates, unresolved=unresolved)
