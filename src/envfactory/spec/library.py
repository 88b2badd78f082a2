"""The environment library: the config a library is built from, the outcome of each proposal, the
funnel of a build, and the index of the library shipped with the package.

Contract:
- `LibraryConfig` is committed (`configs/library.json`); with the same catalog (pinned packages) it
  reproduces the same proposals, the same environments and the same spec hashes. Its `generation`
  picks the compiler's behaviour (1: the library shipped until 2026-12-07, byte for byte; 2: the fixes of issue 19, which the shipped config names); its
  `selection` how proposals are chosen ("catalog": the shipped library's; "stateful": issue 20's score
  from the spec, templates rejected, `build.propose`); its `granularity` how much of one service a
  proposal holds ("component": the shipped library's; "linked": sets of resources that name each other
  by id references joined, `build.grouping`).
- `ProposalOutcome` is the checkpoint of one proposal: written atomically once the proposal reached
  its verdict, so a resumed build skips it and a killed build loses only the proposal in flight.
- `LibraryFunnel` holds counts and rates only; wall times live in `BuildTimings`, which is never part
  of a hashed or compared artifact.
- `LibraryIndex` lists the shipped environments with their spec hashes and report digests; `envs
  verify` and the library tests compare against it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from envfactory.spec.base import SpecModel, content_hash
from envfactory.spec.meta import ENV_NAME_PATTERN, Domain

LIBRARY_DOMAINS: tuple[Domain, ...] = (
    "commerce", "finance", "travel", "office", "lifestyle", "academia", "utilities",
)

OutcomeStatus = Literal["accepted", "rejected"]


_LATER_FIELDS = ("author_operations", "author_batch", "max_author_rounds", "generation", "selection", "granularity")

SHIPPED_GENERATION = 1
"""The default compiler generation of a config that names none (`LibraryConfig.generation`): the
generation the library shipped until 2026-12-07 was built with, kept as the default so older configs
keep their hashes. The shipped config (`configs/library.json`) names generation 2."""
LATEST_GENERATION = 2
"""The newest compiler generation (`build.compile_gen2`)."""


class LibraryConfig(SpecModel):
    """What a library build considers and what it accepts."""

    schema_version: Literal[1] = 1
    name: str = Field(default="library", pattern=r"^[a-z][a-z0-9_-]{0,47}$")
    domains: list[Domain] = Field(default_factory=lambda: list(LIBRARY_DOMAINS), min_length=1)
    proposals_per_domain: int = Field(default=40, ge=1, le=1000,
                                      description="proposals considered per domain, best first")
    accept_per_domain: int = Field(default=13, ge=1, le=1000,
                                   description="the domain stops once this many environments are accepted")
    seed: int = 0
    fuzz_calls: int = Field(default=120, ge=0, le=10_000)
    max_revise_rounds: int = Field(default=3, ge=0, le=20)
    min_tools: int = Field(default=3, ge=1)
    min_kept_ratio: float = Field(default=0.6, ge=0.0, le=1.0)
    max_per_provider_in_domain: int = Field(
        default=1000, ge=1, description="accepted environments per provider (aws, google, each API host) and domain")
    first: list[str] = Field(default_factory=list,
                             description="catalog resources (e.g. aws:sqs) whose proposals are built first in their domain")
    prefer_rules: bool = Field(
        default=True, description="within a domain, build first the proposals whose compiled form has both "
        "business rules (transitions or effects) and linked collections, then rules only, then linked only, "
        "then neither; "
        "proposal order within each group")
    prefer_new_providers: bool = Field(
        default=False, description="within a domain, build every provider's first proposal (its richest, "
        "with `prefer_rules`) before any provider's second, so the library spans many providers")
    embed_dedup: bool = Field(
        default=False, description="drop near-duplicate proposals by sentence-embedding cosine (the default "
        "embedder, all-MiniLM-L6-v2) as well as by provider, service and collections")
    seed_realism: bool = Field(
        default=False, description="let the LLM propose realistic values for the seed records' free-text "
        "fields (validated, never trusted; recorded in a cassette so the build reproduces)")
    differential: bool = Field(default=True, description="run moto differential tests for AWS services it knows")
    contamination_check: bool = True
    author_operations: bool = Field(
        default=False, description="let the LLM write python tools (sandboxed) for operations the CRUD "
        "compiler drops: receipts, items keyed by attribute maps, sends, quotas (`build.author`)")
    author_batch: int = Field(
        default=1, ge=1, le=16, description="operations per authoring request: 1 (one method per answer) suits "
        "small models; a capable model can write several sharing helpers and collections")
    max_author_rounds: int = Field(
        default=2, ge=0, le=10, description="authoring attempts per environment after the first, each with "
        "the evidence of the last failure")
    generation: int = Field(
        default=SHIPPED_GENERATION, ge=1, le=LATEST_GENERATION, description="the compiler generation: 1 compiles "
        "as the library shipped until 2026-12-07 was built; 2 adds scope fields for parent path parameters, final states, the "
        "responses' envelopes, capacities, idempotency tokens and cascades the spec states, and a full update "
        "that keeps state-machine fields (docs/envgen.md, \"Generations\"). Recorded in each environment's provenance")
    selection: Literal["catalog", "stateful"] = Field(
        default="catalog", description="how proposals are chosen: \"catalog\" ranks by the proposer's CRUD coverage "
        "and usefulness (the shipped library); \"stateful\" rejects template and placeholder specs with the reason "
        "and ranks by a statefulness score read from the spec: collections and links, status fields, limits, "
        "actions, size, bookings and orders in travel and commerce (`build.statefulness`, docs/library.md)")
    granularity: Literal["component", "linked"] = Field(
        default="component", description="how much of one service a proposal holds: \"component\" one connected "
        "set of resources (nested paths, creates that require another's key; the shipped library); \"linked\" also "
        "joins the sets of a service that name each other by id references (`deviceId`, `CollectionName`), at most "
        "15 operations each (`build.grouping`, docs/library.md)")

    def config_hash(self) -> str:
        """A 16-hex-digit hash of the config's canonical JSON; fields added after libraries were shipped
        count only when they differ from their defaults, so older configs keep their hash."""
        dump = self.model_dump(mode="json")
        # Fields added after libraries were shipped hash only when set, so older configs keep their hash.
        for name in _LATER_FIELDS:
            if dump[name] == type(self).model_fields[name].default:
                del dump[name]
        return content_hash(dump)[:16]

    def proposals_hash(self, proposer_version: int = 1, embedder: str = "") -> str:
        """The hash of what the proposals depend on: domains, how many per domain, the proposer's
        version (version 1 hashes as before versions were recorded), the dedup embedder's model id, the
        selection and the granularity (each only when it is not the default, so older builds keep their hash)."""
        basis: dict[str, object] = {"domains": self.domains, "proposals_per_domain": self.proposals_per_domain}
        for name in ("selection", "granularity"):
            if getattr(self, name) != type(self).model_fields[name].default:
                basis[name] = getattr(self, name)
        if proposer_version != 1:
            basis["proposer_version"] = proposer_version
        if embedder:
            basis["embedder"] = embedder
        return content_hash(basis)[:16]


class OutcomeCheck(SpecModel):
    """One verification check of a proposal's outcome and its status."""
    name: str
    status: Literal["passed", "failed", "skipped"]


class ProposalOutcome(SpecModel):
    """The verdict on one proposal, after compile, verify and at most `max_revise_rounds` revisions."""

    schema_version: Literal[1] = 1
    proposal_id: str
    proposal_name: str
    domain: Domain
    provider: str
    resource: str
    status: OutcomeStatus
    reason: str = Field(default="", description="why it was rejected; empty when accepted")
    env_name: str = ""
    spec_hash: str = ""
    report_digest: str = ""
    built: bool = Field(default=False, description="compiled and loaded at least once")
    verified: bool = False
    proposed_operations: int = 0
    tools: int = 0
    write_tools: int = 0
    collections: int = 0
    linked_collections: int = 0
    uses_rules: bool = Field(default=False, description="transitions or effects present")
    kept_ratio: float = 0.0
    revise_rounds: int = 0
    first_round_checks: list[OutcomeCheck] = Field(default_factory=list)
    final_checks: list[OutcomeCheck] = Field(default_factory=list)
    scenarios_passed: int = 0
    scenarios_total: int = 0
    differential_matched: int = 0
    differential_compared: int = 0
    llm_tokens: int = Field(default=0, ge=0, description="tokens the LLM spent on the accepted build")
    seed_values_from_llm: int = Field(default=0, ge=0, description="seed field values the LLM proposed and validation accepted")
    authored_tools: int = Field(default=0, ge=0, description="tools the LLM wrote (sandboxed) that were kept")


class CheckRate(SpecModel):
    """How many environments passed one check, out of how many ran it."""
    name: str
    passed: int
    total: int


class LibraryFunnel(SpecModel):
    """Counts of one library build: resources considered → proposals → built → verified → accepted."""

    schema_version: Literal[1] = 1
    config_hash: str
    resources_considered: int
    resources_skipped: int
    proposals: int
    proposals_processed: int
    built: int
    verified: int
    accepted: int
    accepted_per_domain: dict[str, int]
    rejected_reasons: dict[str, int]
    first_round_check_rates: list[CheckRate]
    final_check_rates: list[CheckRate]
    revise_rounds: dict[str, int] = Field(description="rounds → environments that needed that many")
    llm_tokens: int = Field(default=0, ge=0, description="LLM tokens spent on the processed proposals' final builds")
    seed_values_from_llm: int = Field(default=0, ge=0)
    authored_tools: int = Field(default=0, ge=0, description="LLM-written tools in the processed proposals' final builds")


class BuildTimings(SpecModel):
    """Wall times of a build (informative only; never hashed)."""

    schema_version: Literal[1] = 1
    total_s: float
    per_proposal_s: dict[str, float]


class LibraryEntry(SpecModel):
    """One environment of a library's `index.json`: its name, domain, provider, source resource, licences,
    size and hashes."""
    schema_version: Literal[1] = 1
    name: str = Field(pattern=ENV_NAME_PATTERN)
    domain: Domain
    provider: str
    resource: str
    licences: list[str]
    tools: int
    spec_hash: str
    report_digest: str


class LibraryIndex(SpecModel):
    """`library/index.json`: the environments shipped with the package."""

    schema_version: Literal[1] = 1
    config_hash: str
    entries: list[LibraryEntry]
