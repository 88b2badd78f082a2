"""Shared pieces of the environment checks (`envchecks.py`): turning (tool, problem) pairs into a
`CheckResult`, what a call observably did, and which results show an implementation defect.

Pure functions over `ToolResult`s; deterministic (evidence digests are content hashes).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from envfactory.spec import AGENT_ERROR_KINDS, CheckResult, ToolResult, content_hash

# Messages the session uses for implementation bugs it caught (session.py, toolkit.py, sandbox): they
# arrive as `execution_error` results, but they are defects of the environment, not answers to a call.
_CRASH_MARKERS = ("internal error in ", "violates its declared output schema", "left the state invalid")


def crash_message(result: ToolResult) -> str | None:
    """Why `result` shows an implementation defect (crash, framework failure, invalid output), or None."""
    error = result.error
    if error is None:
        return None
    if error.kind not in AGENT_ERROR_KINDS:
        return f"{error.kind}: {error.message}"
    if error.kind == "execution_error" and any(marker in error.message for marker in _CRASH_MARKERS):
        return error.message
    return None


def check_result(
    name: str,
    problems: list[tuple[str, str]],
    evidence: Any,
    counts: Mapping[str, int],
    *,
    skipped: str | None = None,
) -> CheckResult:
    """A check result from (tool, problem) pairs: failed when there is any, tools named."""
    if skipped is not None:
        return CheckResult(name=name, status="skipped", detail=skipped, evidence_digest=content_hash(evidence),
                           counts=dict(counts))
    unique = sorted(set(problems))
    tools = sorted({tool for tool, _ in unique if tool})
    lines = [f"{tool}: {text}" if tool else text for tool, text in unique]
    detail = (
        f"{len(unique)} problem(s); blamed tools: {', '.join(tools) or '(none)'}" if unique else "ok"
    )
    return CheckResult(
        name=name,
        status="failed" if unique else "passed",
        detail=detail,
        evidence_digest=content_hash(evidence),
        counts=dict(sorted(counts.items())),
        failing_tools=tools,
        problems=lines[:50],
    )


def call_outcome(result: ToolResult) -> Any:
    """What a call observably did, for evidence and comparison (kind + message on failure)."""
    if result.error is not None:
        return {"error": result.error.kind, "message": result.error.message}
    return {"output": result.output}
