"""LLM review of proposals: a title, a description and a usefulness score per proposal, as structured
output, used to re-rank the heuristic proposals of a domain.

Contract:
- `review_proposal(proposal, llm)` sends one deterministic request (temperature 0, seed 0, a JSON
  Schema response format) and returns the proposal with the model's title and description and
  `usefulness` = the mean of the heuristic score and the model's. The answer is data: it is validated
  against `ProposalReview` and never executed; an answer that does not fit (or a provider failure)
  leaves the proposal as it was, with the reason appended to its rationale.
- The environment name, operations and provenance never come from the model.
- The proposal id is recomputed (`Proposal.with_id`), so a cached or replayed review reproduces it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationError

from envfactory.errors import EnvFactoryError
from envfactory.llm.protocols import LLMClient
from envfactory.llm.types import ChatMessage, ChatRequest, ResponseFormat
from envfactory.spec import Proposal, SpecModel

_SYSTEM = (
    "You review proposed tool environments for training tool-using agents. Each environment is a set of "
    "operations of one real API that share state. Answer with JSON only: a short title (what a user "
    "would do with it), a one-paragraph description, and usefulness from 0 to 1 (how realistic and "
    "varied the tasks an agent could do with these tools are)."
)


class ProposalReview(SpecModel):
    """What the model says about one proposal."""

    schema_version: Literal[1] = 1
    title: str = Field(min_length=1, max_length=120)
    description: str = Field(min_length=1, max_length=600)
    usefulness: float = Field(ge=0.0, le=1.0)


REVIEW_SCHEMA = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "minLength": 1, "maxLength": 120},
        "description": {"type": "string", "minLength": 1, "maxLength": 600},
        "usefulness": {"type": "number", "minimum": 0, "maximum": 1},
    },
    "required": ["title", "description", "usefulness"],
    "additionalProperties": False,
}


def review_request(proposal: Proposal) -> ChatRequest:
    """The request that reviews `proposal` (deterministic: same proposal, same request)."""
    lines = [f"- {o.name} ({o.role} on {o.collection})" for o in proposal.operations]
    prov = proposal.provenance[0]
    user = (
        f"API: {prov.service} ({prov.provider}), domain {proposal.domain}.\n"
        f"Heuristic title: {proposal.title}\nOperations:\n" + "\n".join(lines)
    )
    return ChatRequest(
        messages=[ChatMessage.system(_SYSTEM), ChatMessage.user(user)],
        response_format=ResponseFormat(name="proposal_review", json_schema=REVIEW_SCHEMA),
        temperature=0.0, seed=0, max_tokens=300,
    )


def review_proposal(proposal: Proposal, llm: LLMClient) -> Proposal:
    """`proposal` with the model's title, description and blended usefulness (see the module doc)."""
    try:
        answer = llm.chat(review_request(proposal)).parsed()
        review = ProposalReview.model_validate(answer)
    except (EnvFactoryError, ValidationError, ValueError) as exc:
        note = f"; llm review unusable: {str(exc).splitlines()[0][:160]}"
        return proposal.model_copy(update={"rationale": proposal.rationale + note}).with_id()
    blended = round((proposal.usefulness + review.usefulness) / 2, 4)
    return proposal.model_copy(update={
        "title": review.title.strip(), "description": review.description.strip(), "usefulness": blended,
        "rationale": proposal.rationale + f"; llm usefulness {review.usefulness:.2f}",
    }).with_id()
