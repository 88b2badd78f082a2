"""EnvGen build artifacts: proposals of environments, and the record of how one was built.

Contract:
- A `Proposal` is a coherent subset of one service's operations that share state. Its `id` is the
  content hash of everything but the id itself (`Proposal.with_id()`), so the same catalog, config
  and seed always give the same ids.
- `BuildRecord` (`<env_dir>/build.json`) says which proposed operations became tools and which were
  dropped, at which stage and why; `kept_ratio` is compiled / proposed operations.
- `SkippedResource` is one service or operation the proposer or compiler left out, with the reason.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from envfactory.spec.base import SpecModel, content_hash
from envfactory.spec.meta import ENV_NAME_PATTERN, Domain, Provenance

OperationRole = Literal["create", "read", "list", "update", "delete", "action"]
BuildStage = Literal["propose", "compile", "author", "verify", "revise"]


class ProposedOperation(SpecModel):
    """One source operation inside a proposal, with the role it plays on its collection."""

    schema_version: Literal[1] = 1
    operation_id: str = Field(description="catalog operation id, provider:service:version:name")
    name: str = Field(description="the source's operation name, unchanged")
    role: OperationRole
    collection: str = Field(description="the collection (resource) it acts on, snake_case plural")


class Proposal(SpecModel):
    """An environment to build: operations of one service acting on shared, linked state."""

    schema_version: Literal[1] = 1
    id: str = Field(default="", description="content hash of the proposal without its id")
    name: str = Field(pattern=ENV_NAME_PATTERN)
    domain: Domain
    title: str
    description: str = ""
    provenance: list[Provenance] = Field(min_length=1)
    operations: list[ProposedOperation] = Field(min_length=1)
    statefulness: float = Field(ge=0.0, le=1.0)
    usefulness: float = Field(ge=0.0, le=1.0)
    rationale: str = ""

    def with_id(self) -> Proposal:
        """This proposal with `id` set to the hash of its content (the id excluded)."""
        body: dict[str, Any] = self.model_dump(mode="json", exclude={"id"})
        return self.model_copy(update={"id": content_hash(body)[:16]})

    @property
    def resource_ids(self) -> list[str]:
        """The catalog resource ids the proposal was drawn from, in provenance order."""
        return [p.resource for p in self.provenance]


class DroppedOperation(SpecModel):
    """A proposed operation that did not become a tool, and why."""

    schema_version: Literal[1] = 1
    operation_id: str
    tool_name: str = ""
    stage: BuildStage
    reason: str


class SkippedResource(SpecModel):
    """A service (or proposal) the proposer left out, and why (licence, no shared state, bad spec)."""

    schema_version: Literal[1] = 1
    resource: str
    reason: str


class ProposalBatch(SpecModel):
    """What one propose run produced: the proposals, in order, and everything it skipped."""

    schema_version: Literal[1] = 1
    proposals: list[Proposal] = Field(default_factory=list)
    skipped: list[SkippedResource] = Field(default_factory=list)


class SeedRealism(SpecModel):
    """What the LLM contributed to an environment's seed records (`build.realism`): values proposed,
    accepted after validation, rejected with reasons; failures leave the deterministic values."""

    schema_version: Literal[1] = 1
    model: str = Field(description="model id of the client asked")
    requests: int = Field(default=0, ge=0)
    tokens: int = Field(default=0, ge=0)
    accepted: int = Field(default=0, ge=0, description="field values that replaced deterministic ones")
    rejected: int = Field(default=0, ge=0)
    rejections: list[str] = Field(default_factory=list, description="the first rejections, with reasons")
    failures: list[str] = Field(default_factory=list, description="requests whose answer was unusable")


class AuthoringRecord(SpecModel):
    """What the LLM authored for an environment (`build.author`): requests, tokens, the operations that
    became authored tools, and every failed attempt with its evidence."""

    schema_version: Literal[1] = 1
    model: str = Field(description="model id of the client asked")
    requests: int = Field(default=0, ge=0)
    tokens: int = Field(default=0, ge=0)
    targets: list[str] = Field(default_factory=list, description="operation ids the author was asked for")
    authored: list[str] = Field(default_factory=list, description="operation ids that became verified tools")
    failures: list[str] = Field(default_factory=list)


class BuildRecord(SpecModel):
    """`<env_dir>/build.json`: how an environment was built from its proposal."""

    schema_version: Literal[1] = 1
    proposal_id: str
    env_name: str = Field(pattern=ENV_NAME_PATTERN)
    spec_hash: str
    compiled: list[str] = Field(default_factory=list, description="source operation ids that became tools")
    dropped: list[DroppedOperation] = Field(default_factory=list)
    revise_rounds: int = Field(default=0, ge=0)
    kept_ratio: float = Field(ge=0.0, le=1.0)
    seed_realism: SeedRealism | None = Field(default=None, description="set when an LLM made the seeds realistic")
    authoring: AuthoringRecord | None = Field(default=None, description="set when an LLM was asked to author tools")
