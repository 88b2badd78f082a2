"""Which inputs a user can state in a first message (`user_providable`), by heuristics and, when an
LLM is configured, by the model in batches.

Contract:
- Generated identifiers (ids, ARNs, URLs, handles, tokens, ETags, digests, signatures of something a
  system created) are never user-providable, whatever an LLM says: `heuristic` returns `(False,
  reason)` for them and `llm_labels` leaves them alone.
- Everything else is providable by default (names, titles, free text, numbers, dates, e-mail
  addresses, enums, flags, configuration objects): those are things people say.
- `llm_labels` asks for the others in batches of `batch` fields (prompt `prompts/user_providable.md`,
  structured output), validates every answer (known ids only, a boolean each), and keeps the heuristic
  label for any field the model skipped or a batch that failed; failures are reported, not raised.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from envfactory.graph._prompts import prompt_text
from envfactory.graph.match import FieldView, is_generated

if TYPE_CHECKING:
    from envfactory.llm import LLMClient

logger = logging.getLogger(__name__)

_HUMAN_HINTS = ("email address", "e-mail", "phone number", "the special value `me`", 'the special value "me"',
                "user's email", "display name", "friendly name")


@dataclass(frozen=True, slots=True)
class Label:
    """Whether the user can provide an input field's value, who said so (heuristic or LLM) and why."""
    providable: bool
    source: str
    reason: str


def heuristic(view: FieldView, description: str) -> Label:
    """The heuristic label of one input field."""
    text = description.lower()
    attrs = sorted({a.attribute for a in view.accepts})
    if view.chosen:
        return Label(True, "heuristic", "an identifier the caller makes up")
    if is_generated(view) and not any(hint in text for hint in _HUMAN_HINTS):
        return Label(False, "heuristic", f"a generated identifier ({', '.join(attrs)})")
    if view.type == "object" and view.ref.attribute in ("id", "arn") and view.properties:
        return Label(False, "heuristic", "a reference object to something that exists")
    kind = view.type if view.type != "array" else f"list of {view.item_type or 'any'}"
    what = ", ".join(a for a in attrs if a != "value") or kind
    return Label(True, "heuristic", f"a value a person can state ({what})")


def _response_schema() -> dict[str, Any]:
    """The answer's JSON Schema (a fresh dict each time: nothing module-level is mutable)."""
    return {
        "type": "object",
        "properties": {
            "labels": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string"},
                        "user_providable": {"type": "boolean"},
                        "reason": {"type": "string", "maxLength": 200},
                    },
                    "required": ["id", "user_providable"],
                    "additionalProperties": False,
                },
            }
        },
        "required": ["labels"],
        "additionalProperties": False,
    }


@dataclass(frozen=True, slots=True)
class LabelRequest:
    """One input field as it is put to the LLM for a providable label."""
    id: str
    tool: str
    tool_description: str
    path: str
    type: str
    description: str


@dataclass(slots=True)
class LabelOutcome:
    """The labels by field id, the requests made, the batches that failed and the problems seen."""
    labels: dict[str, Label]
    requests: int = 0
    failed_batches: int = 0
    problems: list[str] | None = None


def llm_labels(client: LLMClient, fields: Sequence[LabelRequest], *, batch: int = 32, seed: int = 0) -> LabelOutcome:
    """LLM labels for `fields` (never generated identifiers; the caller filters those)."""
    from envfactory.llm import ChatMessage, ChatRequest, ResponseFormat

    outcome = LabelOutcome(labels={}, problems=[])
    assert outcome.problems is not None
    system = prompt_text("user_providable")
    for start in range(0, len(fields), batch):
        chunk = fields[start:start + batch]
        listing = "\n".join(
            f"- id: {f.id}\n  tool: {f.tool} — {f.tool_description[:160]}\n  field: {f.path} ({f.type})"
            + (f"\n  description: {f.description[:200]}" if f.description else "")
            for f in chunk
        )
        request = ChatRequest(
            messages=[ChatMessage.system(system), ChatMessage.user(f"Label these input fields:\n{listing}")],
            response_format=ResponseFormat(name="user_providable", json_schema=_response_schema()),
            max_tokens=64 + 48 * len(chunk), seed=seed,
        )
        outcome.requests += 1
        try:
            answer = client.chat(request).parsed()
        except Exception as exc:  # a failed batch keeps the heuristic labels; the build goes on
            logger.warning("user_providable batch %d failed: %s", start // batch, exc)
            outcome.failed_batches += 1
            outcome.problems.append(f"batch {start // batch}: {exc}")
            continue
        known = {f.id for f in chunk}
        items = answer.get("labels", []) if isinstance(answer, dict) else []
        for item in items if isinstance(items, list) else []:
            if not isinstance(item, dict) or item.get("id") not in known or not isinstance(item.get("user_providable"), bool):
                outcome.problems.append(f"batch {start // batch}: ignored an invalid label {str(item)[:120]}")
                continue
            reason = item.get("reason")
            outcome.labels[str(item["id"])] = Label(bool(item["user_providable"]), "llm",
                                                    reason if isinstance(reason, str) else "")
    return outcome
