"""Over-specification of a query: how much of the machinery a natural user would not say it leaks.

Contract (deterministic, documented in docs/synthesis.md):
- Candidates, per task: the tool names of its gold calls (without the `<env>__` prefix); the names of
  their arguments; and the literal argument values a user could not know — identifiers (arguments named
  like `id`, `*_id`, `key`, `arn`, `token`, `cursor`, or values shaped like generated ids: `ord_0003`,
  `arn:...`, UUIDs), values of masked arguments (limits, formatting, pagination) and values produced by
  an earlier call of the chain (they do not exist when the user speaks).
- Found: a tool or parameter name counts when its identifier form appears as a whole word (`queue_url`,
  `QueueUrl`); a one-word parameter name (`name`, `limit`) counts only when written as an assignment
  (`limit=10`, `limit: 10`), since the bare word is ordinary English. A value counts when it appears as a
  whole token, case-insensitively.
- `score` = found / candidates in [0, 1], 0 for a task without candidates. Explicit queries state the
  identifiers the gold calls need, so they score high; refinement that refers to records by description
  lowers the score.
- `env_produced_values` is also what query validation uses to refuse ids that only the environment holds.
"""

from __future__ import annotations

import re
from typing import Any

from envfactory.spec import Task, canonical_json, json_leaves
from envfactory.spec.synth_trajectories import OverspecScore

_ID_NAME = re.compile(r"(?:^|_)(?:id|ids|key|arn|token|cursor|uuid|etag)$|[a-z](?:Id|Ids|Arn|Key|Token)$")
_ID_VALUE = re.compile(
    r"^(?:arn:\S+|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|"
    r"(?=[^\s]*\d)(?=[^\s]*[A-Za-z])[A-Za-z0-9]+(?:[_:./-][A-Za-z0-9]+)+)$",
    re.IGNORECASE,
)
_MIN_VALUE_CHARS = 3


def plain_tool_name(tool: str) -> str:
    """`shop__create_order` → `create_order` (names without a group prefix pass through)."""
    return tool.split("__", 1)[1] if "__" in tool else tool


def _text_of(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    text = str(value).strip()
    return text if len(text) >= _MIN_VALUE_CHARS else None


def _scalar_texts(value: Any) -> set[str]:
    return {text for _, leaf in json_leaves(value) if (text := _text_of(leaf)) is not None}


def env_produced_values(task: Task) -> set[str]:
    """Argument values that first appear in an earlier gold call's result, not in the initial state."""
    initial = canonical_json(task.initial_state).decode("utf-8")
    produced: set[str] = set()
    seen_results: set[str] = set()
    for call in task.gold_calls():
        for text in _scalar_texts(call.arguments):
            if text in seen_results and text not in initial:
                produced.add(text)
        seen_results |= _scalar_texts(call.result)
    return produced


def _mentions(text: str, token: str) -> bool:
    return re.search(rf"(?<![A-Za-z0-9_]){re.escape(token)}(?![A-Za-z0-9_])", text, re.IGNORECASE) is not None


def _is_identifier(name: str) -> bool:
    return "_" in name or re.search(r"[a-z][A-Z]", name) is not None


def _mentions_parameter(text: str, name: str) -> bool:
    if _is_identifier(name):
        return _mentions(text, name)
    return re.search(rf"(?<![A-Za-z0-9_]){re.escape(name)}\s*[=:]", text, re.IGNORECASE) is not None


def unknowable_values(task: Task) -> set[str]:
    """Literal values a user could not know: identifiers, masked arguments and env-produced values."""
    values = set(env_produced_values(task))
    for call in task.gold_calls():
        masked = set(call.ignored_arguments)
        for path, leaf in json_leaves(call.arguments):
            text = _text_of(leaf)
            if text is None:
                continue
            name = path.rsplit(".", 1)[-1]
            if path.split(".", 1)[0] in masked or _ID_NAME.search(name) or _ID_VALUE.match(text):
                values.add(text)
    return values


def score_overspecification(text: str, task: Task) -> OverspecScore:
    """The over-specification of `text` as a request for `task` (see the module docstring)."""
    tools = sorted({plain_tool_name(call.tool) for call in task.gold_calls()})
    parameters = sorted({path.rsplit(".", 1)[-1] for call in task.gold_calls() for path, _ in json_leaves(call.arguments)
                         if path})
    values = sorted(unknowable_values(task))
    found_tools = [t for t in tools if _mentions(text, t)]
    found_parameters = [p for p in parameters if _mentions_parameter(text, p)]
    found_values = [v for v in values if _mentions(text, v)]
    candidates = len(tools) + len(parameters) + len(values)
    found = len(found_tools) + len(found_parameters) + len(found_values)
    return OverspecScore(
        tool_names=found_tools, parameter_names=found_parameters, values=found_values, candidates=candidates,
        score=round(found / candidates, 6) if candidates else 0.0,
    )
