"""The order in which a library build considers its proposals.

Contract: `order_proposals(proposals, config, richness)` is a pure function: proposals in batch order,
domain by domain, except that those of `config.first` resources lead their domain; then (with
`prefer_rules`) those whose dry compile has business rules and linked collections; with
`prefer_new_providers`, every provider (organisation) gets its first proposal considered before any gets
its second. Within each of those groups the batch order is kept: with `config.selection == "stateful"`
that is the spec's statefulness score (`build.propose`); ordering by the score alone, without the dry
compile's tiers, was measured and compiles fewer rules (docs/library.md, "Catalogue selection").
`proposal_richness` is the dry compile (nothing is written; a proposal that cannot compile
counts as having neither rules nor links); `source_richness` is the same judgement of a compiled source
(the library builder keeps its dry compiles and reuses them for the build's first round).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from envfactory.build.compile import compile_proposal
from envfactory.resources.catalog import Catalog
from envfactory.resources.domains import organisation
from envfactory.spec import DeclarativeEnvSource, Proposal
from envfactory.spec.library import LibraryConfig

Richness = Callable[[Proposal], tuple[int, int]]
"""(has transitions or effects, has linked collections) of a proposal, each 0 or 1."""


def proposal_richness(proposal: Proposal, catalog: Catalog) -> tuple[int, int]:
    """(has transitions or effects, has linked collections) of the proposal's compiled form, from a dry
    compile against `catalog`."""
    try:
        operations = {op.operation_id: catalog.operation(op.operation_id) for op in proposal.operations}
        source = compile_proposal(proposal, operations).source
    except Exception:  # a proposal that cannot compile is simply not rich; the build reports why later
        return 0, 0
    return source_richness(source)


def source_richness(source: DeclarativeEnvSource) -> tuple[int, int]:
    """(has transitions or effects, has linked collections) of a compiled source, each 0 or 1."""
    rules = any(c.transitions for c in source.collections.values()) or any(t.operation.effects for t in source.tools)
    linked = any(c.references for c in source.collections.values())
    return int(rules), int(linked)


def order_proposals(proposals: Sequence[Proposal], config: LibraryConfig, richness: Richness) -> list[Proposal]:
    """The proposals in the order a build considers them (see the module contract)."""
    first = set(config.first)

    def leads(proposal: Proposal) -> bool:
        return any(p.resource in first or p.resource.rsplit(":", 1)[0] in first for p in proposal.provenance)

    def rank(proposal: Proposal) -> int:
        if leads(proposal):
            return 0
        if not config.prefer_rules:
            return 4
        rules, linked = richness(proposal)
        # Business rules are the scarcer kind of richness, so they lead: rules and linked collections,
        # rules only, linked only, neither.
        return 4 - 2 * rules - linked

    ordered: list[Proposal] = []
    for domain in dict.fromkeys(p.domain for p in proposals):
        mine = [p for p in proposals if p.domain == domain]
        ranks = {p.id: rank(p) for p in mine}
        mine.sort(key=lambda p: ranks[p.id])  # stable: batch order within a rank
        if config.prefer_new_providers:
            mine = _provider_rounds(mine, ranks, leads)
        ordered += mine
    return ordered


def _provider_rounds(mine: list[Proposal], ranks: dict[str, int], leads: Callable[[Proposal], bool]) -> list[Proposal]:
    """Every provider's first (richest) proposal before any provider's second; after that first round,
    proposals with business rules (rank ≤ 2) go round the providers before those without. The `first`
    resources still lead."""
    turn: dict[str, int] = {}
    seen: dict[str, int] = {}
    for proposal in mine:
        who = organisation(proposal.provenance[0].provider)
        turn[proposal.id] = seen.get(who, 0)
        seen[who] = turn[proposal.id] + 1
    tier = {p.id: int(turn[p.id] > 0) + int(turn[p.id] > 0 and ranks[p.id] > 2) for p in mine}
    later: dict[str, int] = {}
    seen.clear()
    for proposal in sorted(mine, key=lambda p: tier[p.id]):  # rounds within each tier
        who = f"{tier[proposal.id]}:{organisation(proposal.provenance[0].provider)}"
        later[proposal.id] = seen.get(who, 0)
        seen[who] = later[proposal.id] + 1
    return sorted(mine, key=lambda p: (not leads(p), tier[p.id], later[p.id]))
