"""Per-environment LLM review of field-to-field edges: a verdict on every candidate the schema and
embedding matchers proposed inside one server, and proposals of edges they missed.

Contract:
- One request per chunk of at most `tools_per_request` tools of a server (prompt `prompts/edges.md`,
  structured output). A chunk lists the tools with their input and output fields and the candidate
  edges between them.
- Every answer is validated against the schemas before it counts: both tools in the chunk and
  distinct, the output field on the producer, the input field on the consumer (a field written with
  its tool's name in front, `CreateQueue.QueueUrl`, is read as the field), and types that can flow
  (`match.types_compatible`). Anything else is dropped and reported in `problems`.
- Unlike the reference method, the review can reject: a `does_not_feed` verdict is returned like a
  `feeds` one, and the builder decides (by its `llm_can_reject` setting) whether it vetoes the pair.
- A failed request (provider error, invalid JSON after the client's repairs) is reported and the chunk
  keeps the matchers' decisions; nothing raises.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from envfactory.graph._prompts import prompt_text
from envfactory.graph.match import FieldView, types_compatible

if TYPE_CHECKING:
    from envfactory.llm import LLMClient

logger = logging.getLogger(__name__)

Verdict = Literal["feeds", "does_not_feed"]


@dataclass(frozen=True, slots=True)
class ToolBrief:
    """A tool as the reviewer sees it: its id, name, description and fields (path → view)."""

    id: str
    name: str
    description: str
    inputs: Mapping[str, FieldView]
    outputs: Mapping[str, FieldView]


@dataclass(frozen=True, slots=True)
class Candidate:
    """A possible edge for the LLM to review: a producer's output field and a consumer's input field."""
    producer: str
    output: str
    consumer: str
    input: str


@dataclass(frozen=True, slots=True)
class Review:
    """The LLM's verdict on one candidate edge, with its reason."""
    producer: str
    output: str
    consumer: str
    input: str
    verdict: Verdict
    reason: str


@dataclass(slots=True)
class ReviewOutcome:
    """The reviews of a batch of candidates, the requests made and failed, the answers dropped and the
    problems seen."""
    reviews: list[Review] = field(default_factory=list)
    requests: int = 0
    failed_requests: int = 0
    dropped: int = 0
    problems: list[str] = field(default_factory=list)


def _response_schema() -> dict[str, Any]:
    """The answer's JSON Schema (a fresh dict each time: nothing module-level is mutable)."""
    return {
        "type": "object",
        "properties": {
            "edges": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "producer": {"type": "string"},
                        "output": {"type": "string"},
                        "consumer": {"type": "string"},
                        "input": {"type": "string"},
                        "verdict": {"type": "string", "enum": ["feeds", "does_not_feed"]},
                        "reason": {"type": "string", "maxLength": 200},
                    },
                    "required": ["producer", "output", "consumer", "input", "verdict"],
                    "additionalProperties": False,
                },
            }
        },
        "required": ["edges"],
        "additionalProperties": False,
    }

MAX_FIELDS_SHOWN = 24


def _describe(tool: ToolBrief) -> str:
    ins = ", ".join(f"{p} ({v.type}{', required' if v.direction == 'input' and p in tool.inputs else ''})"
                    for p, v in list(tool.inputs.items())[:MAX_FIELDS_SHOWN])
    outs = ", ".join(f"{p} ({v.type})" for p, v in list(tool.outputs.items())[:MAX_FIELDS_SHOWN])
    return f"- {tool.name}: {tool.description[:200]}\n  inputs: {ins or '(none)'}\n  outputs: {outs or '(none)'}"


def review_edges(client: LLMClient, server: str, tools: Sequence[ToolBrief], candidates: Sequence[Candidate], *,
                 tools_per_request: int = 12, seed: int = 0) -> ReviewOutcome:
    """Ask for verdicts and proposals, chunk by chunk (see the module docstring)."""
    from envfactory.llm import ChatMessage, ChatRequest, ResponseFormat

    outcome = ReviewOutcome()
    system = prompt_text("edges")
    for start in range(0, len(tools), max(1, tools_per_request)):
        chunk = list(tools[start:start + tools_per_request])
        by_name = {t.name: t for t in chunk}
        ids = {t.id for t in chunk}
        names_of = {t.id: t.name for t in chunk}
        listed = [c for c in candidates if c.producer in ids and c.consumer in ids]
        text = (
            f"Environment: {server}\nTools:\n" + "\n".join(_describe(t) for t in chunk)
            + "\nCandidate edges:\n"
            + ("\n".join(f"- {names_of[c.producer]}.{c.output} -> {names_of[c.consumer]}.{c.input}" for c in listed)
               or "(none)")
        )
        request = ChatRequest(
            messages=[ChatMessage.system(system), ChatMessage.user(text)],
            response_format=ResponseFormat(name="edges", json_schema=_response_schema()),
            max_tokens=256 + 64 * (len(listed) + 8), seed=seed,
        )
        outcome.requests += 1
        try:
            answer = client.chat(request).parsed()
        except Exception as exc:  # a failed chunk keeps the matchers' decisions
            logger.warning("edge review of %s (chunk %d) failed: %s", server, start // tools_per_request, exc)
            outcome.failed_requests += 1
            outcome.problems.append(f"{server} chunk {start // tools_per_request}: {exc}")
            continue
        items = answer.get("edges", []) if isinstance(answer, dict) else []
        seen: set[tuple[str, str, str, str]] = set()
        for item in items if isinstance(items, list) else []:
            review, problem = _validate(item, by_name)
            if review is None:
                outcome.dropped += 1
                outcome.problems.append(f"{server}: dropped {problem}")
                continue
            key = (review.producer, review.output, review.consumer, review.input)
            if key in seen:
                continue
            seen.add(key)
            outcome.reviews.append(review)
    return outcome


def _field(tool: ToolBrief, fields: Mapping[str, FieldView], named: object) -> FieldView | None:
    """The field `named`, also when the answer wrote it as `<tool name>.<field>` (the candidate list
    shows edges in that form and small models copy it); nothing else is guessed."""
    path = str(named)
    view = fields.get(path)
    if view is None and path.startswith(tool.name + "."):
        view = fields.get(path[len(tool.name) + 1:])
    return view


def _validate(item: Any, by_name: Mapping[str, ToolBrief]) -> tuple[Review | None, str]:
    if not isinstance(item, dict):
        return None, f"a non-object answer {str(item)[:80]}"
    producer, consumer = by_name.get(str(item.get("producer"))), by_name.get(str(item.get("consumer")))
    what = f"{item.get('producer')}.{item.get('output')} -> {item.get('consumer')}.{item.get('input')}"
    if producer is None or consumer is None:
        return None, f"{what}: unknown tool"
    if producer.id == consumer.id:
        return None, f"{what}: a tool cannot feed itself"
    out_view = _field(producer, producer.outputs, item.get("output"))
    in_view = _field(consumer, consumer.inputs, item.get("input"))
    if out_view is None or in_view is None:
        return None, f"{what}: no such output or input field"
    if not types_compatible(out_view, in_view):
        return None, f"{what}: types cannot flow ({out_view.type} -> {in_view.type})"
    verdict = item.get("verdict")
    if verdict not in ("feeds", "does_not_feed"):
        return None, f"{what}: verdict {verdict!r}"
    reason = item.get("reason")
    return Review(producer.id, out_view.path, consumer.id, in_view.path, verdict,
                  reason if isinstance(reason, str) else ""), ""
