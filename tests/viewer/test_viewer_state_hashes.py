"""The trajectory page pairs each call with the state hash recorded after it: calls the agent loop refused
(`REFUSED_CALL_PREFIX`) never reached an environment and have no recorded hash, so the calls after them
keep their own hashes."""

from __future__ import annotations

from envfactory.spec import EnvRef, ErrorInfo, ToolCall, ToolResult, Trajectory
from envfactory.spec.trajectory import REFUSED_CALL_PREFIX, Message
from envfactory.viewer.pages_records import trajectory_context


def _call(call_id: str, tool: str, error: ErrorInfo | None = None) -> list[Message]:
    result = ToolResult(call_id=call_id, tool=tool, step=0, output=None if error else {"ok": True}, error=error)
    return [Message(role="assistant", tool_calls=[ToolCall(id=call_id, tool=tool, arguments={})]),
            Message(role="tool", result=result)]


def test_a_refused_call_takes_no_state_hash_from_the_calls_after_it() -> None:
    refused = ErrorInfo(kind="unknown_tool", message="not available now")
    messages = [Message(role="user", content="go"), *_call("c1", "shop__list"),
                *_call(f"{REFUSED_CALL_PREFIX}1_3", "shop__nope", refused), *_call("c2", "shop__top_up")]
    trajectory = Trajectory(id="t", envs=[EnvRef(name="shop", version="1")], seed=0,
                            messages=messages, state_hashes=["h1", "h2"], termination="agent_stop")
    calls = [c for step in trajectory_context(trajectory)["steps"] for c in step["calls"]]
    assert [(c["call"].id, c["state_after"], c["state_changed"]) for c in calls] == [
        ("c1", "h1", False), (f"{REFUSED_CALL_PREFIX}1_3", "", False), ("c2", "h2", True)]
