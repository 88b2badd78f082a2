"""Propose environments from the resource catalog: coherent subsets of one service's operations
(3–30 tools) that share state.

Contract:
- `propose_batch(catalog, domains=..., limit_per_domain=...)` walks the services of each domain in
  catalog order and proposes, per service, one environment per connected set of stateful resource
  groups (a group is stateful when it can create records and read them back; groups are connected by
  path nesting or by a create that needs another group's key). Child groups that only create (SQS
  messages under a queue) ride along with their parent.
- Only services whose licence is permissive (`permissive_licence`) are used; every other service is
  in the batch's `skipped` list with the reason, and so is every service that yields no proposal.
- Scores: `statefulness` = 0.6 × the share of CRUD roles the groups cover + 0.4 when ≥ 2 collections
  are linked; `usefulness` = the mean over operations of description (0.4), examples (0.3) and schema
  richness (0.3). Proposals are ordered by `rank` (score, then name, spread over providers and then
  services so the cut at `limit_per_domain` keeps every provider); near-duplicates (the same collections
  of the same service in another version, or embedding cosine ≥ `DUPLICATE_COSINE` when an embed
  function is given) are dropped, keeping the better-ranked one.
- Deterministic: the same catalog and arguments give the same proposals (ids are content hashes).
- Selection (`selection`): "catalog" (the default, the shipped library's) as above; "stateful" first drops
  every template or placeholder spec (`build.statefulness.template_reason`, skipped with the reason) and
  scores each proposal from its spec (`build.statefulness.statefulness`: collections, links, status fields,
  limits, actions, size; bookings and orders in travel and commerce), which becomes its `statefulness`;
  `rank` then orders by that score first (usefulness breaks ties), with the same spread over providers.
- Granularity (`granularity`): "component" (the default, the shipped library's) proposes each connected set
  of groups; "linked" first joins the sets of one service that name each other by id references, at most
  `GROUP_MAX_TOOLS` operations each (`build.grouping.merge_linked`), so a service whose resources link
  only by id fields gives one environment with several collections instead of one per resource.
- With an `llm`, the best `2 × limit_per_domain` candidates of each domain are reviewed
  (`review.review_proposal`: title, description, usefulness as structured output) and re-ranked;
  names, operations and provenance stay the heuristics'. Without one (the library default), no model
  is involved.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, Literal

from envfactory.build.errors import BuildError
from envfactory.build.grouping import Granularity, merge_linked
from envfactory.build.naming import env_name, snake
from envfactory.build.review import review_proposal
from envfactory.build.shapes import ResourceGroup, group_operations
from envfactory.build.statefulness import TEMPLATE_REASON_PREFIX, statefulness, template_reason
from envfactory.llm.protocols import LLMClient
from envfactory.resources.catalog import Catalog, ServiceFilter
from envfactory.resources.domains import organisation
from envfactory.resources.model import Resource, ServiceEntry
from envfactory.spec import Domain, Operation, Provenance
from envfactory.spec.build import OperationRole, Proposal, ProposalBatch, ProposedOperation, SkippedResource
from envfactory.spec.schema_tools import object_properties

DOMAINS: tuple[Domain, ...] = ("commerce", "finance", "travel", "office", "lifestyle", "academia", "utilities")
MIN_TOOLS = 3
MAX_TOOLS = 30
DUPLICATE_COSINE = 0.95
# Bumped whenever the same catalog would give other proposals, so cached proposals are not reused.
PROPOSER_VERSION = 2
Selection = Literal["catalog", "stateful"]
"""How proposals are chosen: "catalog" (the shipped library's) or "stateful" (issue 20: scored from the spec)."""
_CRUD = ("create", "read", "list", "update", "delete")
_ROLE_ORDER = {"create": 0, "read": 1, "list": 2, "update": 3, "delete": 4, "action": 5}

# Returns one vector per text: a list of lists or a 2-d numpy array (what `Embedder.embed` gives).
EmbedTexts = Callable[[Sequence[str]], Any]

_PERMISSIVE = (
    re.compile(r"\bapache\b"),
    re.compile(r"\bmit\b"),
    re.compile(r"\bcc0\b|creative commons zero|public domain dedication"),
    re.compile(r"\bcc[- ]by\b(?![- ]?(nc|nd|sa))|creative commons attribution(?! ?(non|share|no))"),
)


def permissive_licence(licence: str) -> bool:
    """Whether a licence as a source states it is Apache-2.0, MIT, CC-BY or CC0 (any spelling).
    Non-commercial, no-derivatives and share-alike variants are not permissive."""
    text = licence.strip().lower()
    if not text or re.search(r"\b(nc|nd|non[- ]?commercial|no ?deriv)", text):
        return False
    return any(p.search(text) for p in _PERMISSIVE)


def propose(
    catalog: Catalog, *, domains: Sequence[str] = DOMAINS, embed: EmbedTexts | None = None,
    llm: LLMClient | None = None, limit_per_domain: int = 20,
    licence_filter: Callable[[str], bool] = permissive_licence, selection: Selection = "catalog",
    granularity: Granularity = "component",
) -> list[Proposal]:
    """The proposals of `propose_batch` (the skip list is dropped; use `propose_batch` to keep it)."""
    return propose_batch(
        catalog, domains=domains, embed=embed, llm=llm, limit_per_domain=limit_per_domain,
        licence_filter=licence_filter, selection=selection, granularity=granularity,
    ).proposals


def propose_batch(
    catalog: Catalog, *, domains: Sequence[str] = DOMAINS, embed: EmbedTexts | None = None,
    llm: LLMClient | None = None, limit_per_domain: int = 20,
    licence_filter: Callable[[str], bool] = permissive_licence, selection: Selection = "catalog",
    granularity: Granularity = "component",
) -> ProposalBatch:
    """Proposals for each domain (at most `limit_per_domain` each, domains in the order given) and
    everything skipped on the way, with reasons; `selection` picks how they are chosen and `granularity`
    how much of a service one holds (module contract)."""
    if llm is not None and not isinstance(llm, LLMClient):
        raise BuildError(f"llm must be an LLMClient, not {type(llm).__name__}")
    proposals: list[Proposal] = []
    skipped: list[SkippedResource] = []
    seen_services: set[str] = set()
    for domain in domains:
        candidates: list[Proposal] = []
        for entry in catalog.services(ServiceFilter(domain=domain)):
            if entry.id in seen_services:
                continue  # a service tagged with two domains is proposed under the first one asked
            seen_services.add(entry.id)
            if not licence_filter(entry.licence):
                skipped.append(SkippedResource(resource=entry.id, reason=f"licence not permissive: {entry.licence or 'none stated'}"))
                continue
            try:
                resource = catalog.resource(entry.id)
            except Exception as exc:  # a broken spec must not stop the run
                skipped.append(SkippedResource(resource=entry.id, reason=f"cannot load: {exc}"))
                continue
            template = template_reason(resource) if selection == "stateful" else ""
            if template:
                skipped.append(SkippedResource(resource=entry.id, reason=TEMPLATE_REASON_PREFIX + template))
                continue
            made, why = proposals_for_resource(resource, entry, domain, granularity=granularity)
            if selection == "stateful":
                made = [scored(p, resource) for p in made]
            candidates.extend(made)
            if not made:
                skipped.append(SkippedResource(resource=entry.id, reason=why))
        kept, dropped = deduplicate(rank(candidates, by_statefulness=selection == "stateful"), embed)
        skipped.extend(SkippedResource(resource=p.provenance[0].resource, reason=f"near-duplicate of {twin}")
                       for p, twin in dropped)
        if llm is not None:  # the model re-ranks the best heuristic candidates, twice as many as kept
            shortlist = [review_proposal(p, llm) for p in kept[: 2 * limit_per_domain]]
            kept = rank(shortlist, by_statefulness=selection == "stateful")
        proposals.extend(kept[:limit_per_domain])
    return ProposalBatch(proposals=proposals, skipped=skipped)


def rank(proposals: Sequence[Proposal], *, by_statefulness: bool = False) -> list[Proposal]:
    """Best first, spread over providers, then over services: every provider's best proposal (by
    score, then name) comes before any provider's second, and a provider's proposals alternate over
    its services, so a cut at `limit_per_domain` keeps every provider that has a proposal (AWS with
    hundreds of services cannot crowd out an API host with one). The score is statefulness plus
    usefulness, or with `by_statefulness` statefulness first and usefulness to break ties."""
    if by_statefulness:
        by_score = sorted(proposals, key=lambda p: (-p.statefulness, -p.usefulness, p.name, p.id))
    else:
        by_score = sorted(proposals, key=lambda p: (-(p.statefulness + p.usefulness), p.name, p.id))
    by_service = _rounds(by_score, lambda p: p.provenance[0].provider + ":" + snake(p.provenance[0].service))
    return _rounds(by_service, lambda p: organisation(p.provenance[0].provider))


def _rounds(ordered: Sequence[Proposal], group_of: Callable[[Proposal], str]) -> list[Proposal]:
    """`ordered` re-ordered in rounds: each group's first item, then each group's second, ...; the
    given order is kept within a round."""
    seen: dict[str, int] = {}
    place: dict[str, int] = {}
    for proposal in ordered:
        group = group_of(proposal)
        place[proposal.id] = seen.get(group, 0)
        seen[group] = place[proposal.id] + 1
    return sorted(ordered, key=lambda p: place[p.id])  # stable


def proposals_for_resource(
    resource: Resource, entry: ServiceEntry | None, domain: str, *, granularity: Granularity = "component",
) -> tuple[list[Proposal], str]:
    """Proposals for one service, or none and the reason; with `granularity="linked"` the connected sets
    that name each other by id references are joined first (`build.grouping.merge_linked`)."""
    if not resource.operations:
        return [], "no operations"
    groups = group_operations(resource.operations)
    stateful = [g for g in groups if g.stateful]
    if not stateful:
        return [], "no resource that can be both created and read back"
    components = _components(groups, stateful)
    if granularity == "linked":
        components = merge_linked(components)
    out: list[Proposal] = []
    reasons: list[str] = []
    for component in components:
        chosen = _trim(component)
        if len(chosen) < MIN_TOOLS:
            reasons.append(f"{'+'.join(g.collection for g in component)}: only {len(chosen)} operations")
            continue
        out.append(_proposal(resource, entry, domain, component, chosen, multi=len(components) > 1))
    return out, "; ".join(reasons) or "no proposal"


def _components(groups: list[ResourceGroup], stateful: list[ResourceGroup]) -> list[list[ResourceGroup]]:
    """Connected sets of stateful groups (plus create-only children of them), in noun order."""
    by_noun = {g.noun: g for g in groups}
    included = {g.noun for g in stateful}
    for group in groups:  # children that only add records to a stateful parent (SQS messages)
        if group.noun not in included and "create" in group.roles and any(p in included for p, _ in group.parents):
            creates = [s for s in group.shapes if s.role == "create"]
            if any(len(object_properties(s.operation.input_schema)) >= 2 for s in creates):
                included.add(group.noun)
    adjacency: dict[str, set[str]] = {n: set() for n in included}
    for noun in included:
        for parent in [p for p, _ in by_noun[noun].parents] + by_noun[noun].related:
            if parent in included:
                adjacency[noun].add(parent)
                adjacency[parent].add(noun)
    components: list[list[ResourceGroup]] = []
    seen: set[str] = set()
    for noun in sorted(included):
        if noun in seen:
            continue
        stack, members = [noun], []
        while stack:
            current = stack.pop()
            if current in seen:
                continue
            seen.add(current)
            members.append(current)
            stack.extend(sorted(adjacency[current] - seen))
        components.append([by_noun[n] for n in sorted(members)])
    return components


def _trim(component: list[ResourceGroup]) -> list[tuple[ResourceGroup, Operation, OperationRole]]:
    """The operations of a component, CRUD first, at most `MAX_TOOLS`."""
    rows = [(g, s.operation, s.role) for g in component for s in g.shapes]
    rows.sort(key=lambda r: (_ROLE_ORDER[r[2]] >= 5, r[0].noun, _ROLE_ORDER[r[2]], r[1].name))
    return rows[:MAX_TOOLS]


def _proposal(
    resource: Resource, entry: ServiceEntry | None, domain: str, component: list[ResourceGroup],
    chosen: list[tuple[ResourceGroup, Operation, OperationRole]], *, multi: bool,
) -> Proposal:
    collections = [g.collection for g in component]
    operations = [
        ProposedOperation(operation_id=op.id, name=op.name, role=role, collection=group.collection)
        for group, op, role in chosen
    ]
    linked = sum(1 for g in component if any(p in {c.noun for c in component} for p, _ in g.parents))
    coverage = sum(len(g.roles & set(_CRUD)) / len(_CRUD) for g in component) / len(component)
    statefulness = round(0.6 * coverage + (0.4 if linked >= 1 and len(component) >= 2 else 0.0), 4)
    usefulness = round(sum(_usefulness(op) for _, op, _ in chosen) / len(chosen), 4)
    provenance = Provenance(
        resource=resource.id, provider=resource.provider, service=resource.service, version=resource.version,
        package=resource.source.package, package_version=resource.source.package_version,
        file=resource.source.file, licence=resource.licence or resource.source.licence,
        operations=[op.id for _, op, _ in chosen],
    )
    suffix = collections if multi else []
    provider = "" if resource.provider in ("aws", "google", resource.service) else resource.provider
    name = env_name(provider, resource.service, *suffix[:2])
    title = (entry.title if entry is not None and entry.title else resource.title) or resource.service
    roles = sorted({role for _, _, role in chosen}, key=_ROLE_ORDER.__getitem__)
    proposal = Proposal(
        name=name, domain=domain if domain in DOMAINS else "other",
        title=f"{title}: {', '.join(collections)}",
        description=(resource.description or title)[:600],
        provenance=[provenance], operations=operations, statefulness=min(1.0, statefulness),
        usefulness=min(1.0, usefulness),
        rationale=f"{len(component)} collection(s) ({', '.join(collections)}), {linked} linked; roles {', '.join(roles)}",
    )
    return proposal.with_id()


def scored(proposal: Proposal, resource: Resource) -> Proposal:
    """`proposal` with its `statefulness` replaced by the spec's score (`build.statefulness`) and the counts
    it came from added to its rationale (a new id: its content changed)."""
    ops = {op.id: op for op in resource.operations}
    score = statefulness([(ops[o.operation_id], o.role, o.collection) for o in proposal.operations], proposal.domain)
    counts = (f"score {score.score}: {score.tools} operations, {score.collections} collections ({score.linked} linked), "
              f"{score.status_fields} with status fields, {score.limits} limits, {score.actions} actions"
              + (f", transactional: {', '.join(score.transactional)}" if score.transactional else ""))
    return proposal.model_copy(update={"statefulness": score.score,
                                       "rationale": f"{proposal.rationale}; {counts}"}).with_id()


def _usefulness(op: Operation) -> float:
    described = 0.4 if (op.description or op.docs).strip() else 0.0
    examples = 0.3 if op.examples else 0.0
    props = len(object_properties(op.input_schema)) + len(object_properties(op.output_schema))
    return described + examples + 0.3 * min(1.0, props / 6)


def deduplicate(
    ranked: Sequence[Proposal], embed: EmbedTexts | None = None
) -> tuple[list[Proposal], list[tuple[Proposal, str]]]:
    """Keep the first of each group of near-duplicates (same provider, service and collections; or
    embedding cosine ≥ `DUPLICATE_COSINE`). Returns (kept, [(dropped, name of the one kept)])."""
    kept: list[Proposal] = []
    dropped: list[tuple[Proposal, str]] = []
    signatures: dict[tuple[str, str, tuple[str, ...]], str] = {}
    texts = [_text(p) for p in ranked]
    unit = _unit_rows(embed(texts)) if embed is not None and texts else None
    kept_rows: list[int] = []
    names_taken: set[str] = set()
    for i, proposal in enumerate(ranked):
        prov = proposal.provenance[0]
        signature = (prov.provider, snake(prov.service), tuple(sorted({o.collection for o in proposal.operations})))
        twin = signatures.get(signature)
        if twin is None and unit is not None and kept_rows:
            cosines = unit[kept_rows] @ unit[i]  # against every proposal kept so far, at once
            first = int((cosines >= DUPLICATE_COSINE).argmax())
            if cosines[first] >= DUPLICATE_COSINE:
                twin = kept[first].name
        if twin is not None:
            dropped.append((proposal, twin))
            continue
        if proposal.name in names_taken:  # another version of the same service with other collections
            proposal = proposal.model_copy(update={"name": env_name(proposal.name, proposal.id[:6])}).with_id()
        names_taken.add(proposal.name)
        signatures[signature] = proposal.name
        kept.append(proposal)
        kept_rows.append(i)
    return kept, dropped


def _unit_rows(vectors: Any) -> Any:
    """The vectors as an L2-normalised float64 matrix (numpy comes with the embedder's extra)."""
    import numpy as np

    matrix = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms == 0, 1.0, norms)


def _text(proposal: Proposal) -> str:
    return f"{proposal.title}. " + ", ".join(o.name for o in proposal.operations)
