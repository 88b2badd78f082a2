"""The agent loop over a session group (bundled `tracker` environment).

Every test drives the loop with a scripted client (`envfactory.llm.ScriptedClient`) whose answers are
what the local model returns in each step: a decision as JSON text, a forced call as a tool call,
plus the malformed shapes small models produce (prose instead of JSON, an unknown tool, arguments
that are not an object)."""

from __future__ import annotations

import json

import pytest

from envfactory.agent import AgentSettings, UserSettings, UserSimulator, decision_schema, run_episode
from envfactory.agent.loop import relaxed_schema
from envfactory.errors import ProviderError
from envfactory.llm import ChatMessage, ChatResponse, ReplayMissError, ScriptedClient, StructuredOutputError
from envfactory.runtime import load_env, open_group
from envfactory.spec import (
    EnvRef,
    GoldCall,
    ScriptedUser,
    SimulatedUser,
    Task,
    TerminationReason,
    ToolCall,
    Turn,
)
from envfactory.verify.rewards import task_reward

STATUS = "tracker__set_task_status"
GET = "tracker__get_task"


def call(tool: str, arguments: dict[str, object] | None = None, raw: str | None = None) -> ChatResponse:
    """A forced call as the local provider returns it."""
    message = ChatMessage.assistant("", [ToolCall(id="call_x", tool=tool, arguments=arguments or {}, raw_arguments=raw)])
    return ChatResponse(model="scripted", message=message, finish_reason="tool_calls")


def decide(tool: str) -> str:
    return json.dumps({"next": tool})


def answer(text: str) -> str:
    return json.dumps({"next": "answer", "message": text})


def tracker_task(*turns: Turn) -> Task:
    env = load_env("tracker")
    return Task.create(envs=[EnvRef(name="tracker", version=env.spec.meta.version)],
                       initial_state={}, turns=list(turns))


@pytest.fixture
def first_task_id() -> str:
    state = load_env("tracker").default_state()
    return sorted(state["collections"]["tasks"])[0]


def run(client: ScriptedClient, task: Task, **settings: object):  # type: ignore[no-untyped-def]
    env = load_env("tracker")
    with open_group([env], task.initial_state, seed=task.seed) as group:
        episode = run_episode(client, group, task, AgentSettings.model_validate(settings), seed=7)
        reward = task_reward(task, group, messages=episode.trajectory.messages)
    return episode, reward


def test_decide_then_call_then_answer_solves_a_task(first_task_id: str) -> None:
    gold = GoldCall(tool=STATUS, arguments={"id": first_task_id, "status": "in_review"})
    task = tracker_task(Turn(user=ScriptedUser(text=f"Close task {first_task_id}."), gold_calls=[gold]))
    client = ScriptedClient([decide(STATUS), call(STATUS, {"id": first_task_id, "status": "in_review"}),
                             answer("Task closed.")])
    episode, reward = run(client, task)
    trajectory = episode.trajectory
    assert [m.role for m in trajectory.messages] == ["user", "assistant", "tool", "assistant"]
    assert trajectory.messages[2].result is not None and trajectory.messages[2].result.ok
    assert trajectory.messages[3].content == "Task closed."
    assert trajectory.termination == TerminationReason.AGENT_STOP
    assert len(trajectory.state_hashes) == 1 and episode.failures == [] and episode.llm_calls == 3
    assert reward.total == 1.0
    # the loop drives control flow: a schema-constrained decision without tool schemas, then one named tool
    decision, arguments, last = client.requests
    assert decision.response_format is not None and decision.tools == []
    assert STATUS in decision.messages[0].content  # the compact catalogue
    assert [t.name for t in arguments.tools] == [STATUS] and arguments.forces_tool_call()
    # prefix shape: what varies per request is a closing system note; the rest repeats the request before
    assert decision.messages[-1].role == "system" and "Decide the next step" in decision.messages[-1].content
    assert '{"next": "<tool name>"}' in decision.messages[-1].content  # braces formatted, not doubled
    assert arguments.messages[-1].role == "system" and f"Call {STATUS} now" in arguments.messages[-1].content
    assert arguments.messages[:-1] == decision.messages[:-1]
    assert last.messages[:len(decision.messages) - 1] == decision.messages[:-1]
    assert [m.role for m in last.messages[len(decision.messages) - 1:]] == ["assistant", "tool", "system"]
    assert "Decide the next step" not in decision.messages[0].content and STATUS not in decision.messages[-1].content
    assert all(r.seed == 7 for r in client.requests)


def test_malformed_outputs_and_tool_errors_are_failed_steps_not_crashes(first_task_id: str) -> None:
    task = tracker_task(Turn(user=ScriptedUser(text=f"Close task {first_task_id}.")))
    client = ScriptedClient([
        "Sure! I will close the task for you.",  # prose instead of the decision JSON
        decide("delete_everything"),  # a tool that does not exist
        decide(STATUS), call(STATUS, raw='{"id": "tsk_1", status: done'),  # undecodable arguments
        decide(GET), call(GET, {"id": "tsk_missing"}),  # a tool error (not found)
        StructuredOutputError("gave an invalid answer 3 time(s)"),  # a ManagedClient out of repairs
        answer("I could not close it."),
    ])
    episode, reward = run(client, task, max_steps_per_turn=8)
    kinds = [f.kind for f in episode.failures]
    assert kinds == ["malformed_output", "unknown_tool", "malformed_output"]
    assert "not JSON" in episode.failures[0].reason and "delete_everything" in episode.failures[1].reason
    results = [m.result for m in episode.trajectory.messages if m.role == "tool"]
    assert [r.error.kind if r and r.error else None for r in results] == ["invalid_arguments", "not_found"]
    # the undecodable call is kept verbatim; the error text is fed back to the model
    bad = episode.trajectory.tool_calls()[0]
    assert bad.raw_arguments == '{"id": "tsk_1", status: done'
    assert "Error (not_found)" in client.requests[6].messages[-2].content  # before the closing step note
    assert episode.trajectory.termination == TerminationReason.AGENT_STOP
    assert reward.component("malformed_calls") is not None and reward.component("malformed_calls").score < 1.0  # type: ignore[union-attr]


def test_step_bound_ends_a_turn_and_the_next_turn_still_runs(first_task_id: str) -> None:
    task = tracker_task(Turn(user=ScriptedUser(text="Look at the task.")),
                        Turn(user=ScriptedUser(text="Thanks.")))
    client = ScriptedClient([decide(GET), call(GET, {"id": first_task_id}), decide(GET), call(GET, {"id": "tsk_0002"}),
                             answer("You're welcome.")])
    episode, _ = run(client, task, max_steps_per_turn=2)
    assert episode.trajectory.termination == TerminationReason.MAX_STEPS
    assert [(f.turn, f.kind) for f in episode.failures] == [(0, "step_limit")]
    assert episode.trajectory.messages[-1].content == "You're welcome."
    assert client.remaining == 0


def run_native_refused(client: ScriptedClient, task: Task):  # type: ignore[no-untyped-def]
    """An episode in native mode whose calls are all refused: nothing reaches the session's log."""
    env = load_env("tracker")
    with open_group([env], {}, seed=0) as group:
        episode = run_episode(client, group, task, AgentSettings(control="native"))
        assert group.log == []
    return episode


def test_per_turn_tool_availability_is_enforced(first_task_id: str) -> None:
    task = tracker_task(Turn(user=ScriptedUser(text="Read it."), available_tools=[GET]))
    # native mode: the model calls a tool it was not offered; it is refused and never executed
    client = ScriptedClient([call(STATUS, {"id": first_task_id, "status": "in_review"}), "It is done."])
    episode = run_native_refused(client, task)
    result = episode.trajectory.messages[2].result
    assert result is not None and result.error is not None and result.error.kind == "unknown_tool"
    assert [t.name for t in client.requests[0].tools] == [GET]
    assert decision_schema([GET])["anyOf"][0]["properties"]["next"]["enum"] == [GET]


def test_a_call_of_the_users_own_tool_gets_tau2s_not_found_text(first_task_id: str) -> None:
    """Issue 18: the agent calling one of the user's tools (τ² telecom) is refused in τ²'s words, not run."""
    task = tracker_task(Turn(user=ScriptedUser(text="Close it.")))
    task = task.model_copy(update={"user_tools": [STATUS]})
    client = ScriptedClient([call(STATUS, {"id": first_task_id, "status": "done"}), "Done."])
    episode = run_native_refused(client, task)
    result = episode.trajectory.messages[2].result
    assert result is not None and result.error is not None and result.error.kind == "unknown_tool"
    assert result.error.message == f"Error: Tool '{STATUS}' not found."
    assert STATUS not in [t.name for t in client.requests[0].tools]


def test_provider_failures_end_the_episode_but_setup_failures_raise(first_task_id: str) -> None:
    task = tracker_task(Turn(user=ScriptedUser(text="Hi")), Turn(user=ScriptedUser(text="Again")))
    episode, _ = run(ScriptedClient([ProviderError("Requested tokens (9000) exceed context window of 8192")]), task)
    assert episode.trajectory.termination == TerminationReason.ERROR
    assert episode.failures[0].kind == "provider_error" and "context window" in episode.failures[0].reason
    assert len([m for m in episode.trajectory.messages if m.role == "user"]) == 1  # stopped at once
    with pytest.raises(ReplayMissError):
        run(ScriptedClient([ReplayMissError("replay miss")]), task)


def test_same_answers_give_byte_identical_episodes(first_task_id: str) -> None:
    task = tracker_task(Turn(user=ScriptedUser(text="Close it.")))
    script = [decide(STATUS), call(STATUS, {"id": first_task_id, "status": "in_review"}), answer("Closed.")]
    first, _ = run(ScriptedClient(script), task)
    second, _ = run(ScriptedClient(script), task)
    assert first.to_json_bytes() == second.to_json_bytes()


def test_simulated_user_turn_runs_until_the_user_stops(first_task_id: str) -> None:
    scenario = SimulatedUser(instructions=f"You want task {first_task_id} closed.", known_info="You are Maya.",
                             persona="terse")
    task = tracker_task(Turn(user=scenario))
    agent = ScriptedClient([decide(STATUS), call(STATUS, {"id": first_task_id, "status": "in_review"}),
                            answer("Closed it for you.")])
    user_client = ScriptedClient([f"Please close {first_task_id}.", "Great, thanks! ###STOP###"])
    env = load_env("tracker")
    with open_group([env], {}, seed=0) as group:
        episode = run_episode(agent, group, task, seed=3, user=UserSimulator(user_client, UserSettings()))
    roles = [(m.role, m.content) for m in episode.trajectory.messages if m.role != "tool" and not m.tool_calls]
    assert roles == [("assistant", "Hi! How can I help you today?"), ("user", f"Please close {first_task_id}."),
                     ("assistant", "Closed it for you."), ("user", "Great, thanks!")]
    assert episode.trajectory.termination == TerminationReason.USER_STOP
    with pytest.raises(ValueError, match="UserSimulator"), open_group([env], {}, seed=0) as group:
        run_episode(agent, group, task)


def test_an_exact_repeat_of_the_previous_call_ends_the_turn_without_running_it(first_task_id: str) -> None:
    task = tracker_task(Turn(user=ScriptedUser(text="Look at the task.")), Turn(user=ScriptedUser(text="Again.")))
    client = ScriptedClient([decide(GET), call(GET, {"id": first_task_id}), decide(GET), call(GET, {"id": first_task_id}),
                             decide(GET), call(GET, {"id": first_task_id}), answer("Same as before.")])
    episode, _ = run(client, task)
    assert [(f.turn, f.kind) for f in episode.failures] == [(0, "repeated_call")]
    # executed once in turn 0; in turn 1 the same call is a fresh first call and runs
    assert len(episode.trajectory.tool_calls()) == 2 and episode.trajectory.termination == TerminationReason.AGENT_STOP


def test_a_failed_step_is_fed_back_so_the_next_request_differs(first_task_id: str) -> None:
    task = tracker_task(Turn(user=ScriptedUser(text="Look at the task.")))
    client = ScriptedClient(["I think I should look it up.", answer("Nothing to do.")])
    episode, _ = run(client, task)
    first, second = client.requests
    assert second.messages[:-2] == first.messages[:-1]  # the same conversation plus one note, then the step note
    assert second.messages[-2].role == "user" and "could not be used" in second.messages[-2].content
    assert second.messages[-1] == first.messages[-1] and second.messages[-1].role == "system"
    assert [m.role for m in episode.trajectory.messages] == ["user", "assistant"]  # the note is not recorded


def test_argument_requests_carry_a_grammar_friendly_schema(first_task_id: str) -> None:
    task = tracker_task(Turn(user=ScriptedUser(text="Retitle it.")))
    update = "tracker__update_task"
    client = ScriptedClient([decide(update), call(update, {"id": first_task_id, "title": ""}), answer("Done.")])
    episode, _ = run(client, task)
    sent = json.dumps(client.requests[1].tools[0].parameters)
    assert "maxLength" not in sent and "maxItems" not in sent and "pattern" not in sent
    assert '"enum": ["low", "medium", "high", "urgent"]' in sent  # other constraints stay
    # the session still enforces the full schema: an empty title (minLength 1) is refused
    result = episode.trajectory.messages[2].result
    assert result is not None and result.error is not None and result.error.kind == "invalid_arguments"
    assert relaxed_schema({"properties": {"pattern": {"type": "string", "pattern": "x"}}}) == {
        "properties": {"pattern": {"type": "string"}}}


def test_relaxed_schema_inlines_local_refs() -> None:
    """τ² tools come with pydantic `$defs`; grammar converters need them inline."""
    schema = {
        "$defs": {"Flight": {"type": "object", "properties": {"number": {"type": "string", "maxLength": 9}}}},
        "type": "object",
        "properties": {"flights": {"type": "array", "items": {"$ref": "#/$defs/Flight"}, "description": "legs"}},
    }
    assert relaxed_schema(schema) == {
        "type": "object",
        "properties": {"flights": {"type": "array", "description": "legs",
                                   "items": {"type": "object", "properties": {"number": {"type": "string"}}}}},
    }


def test_each_write_records_its_state_diff_and_reads_none(first_task_id: str) -> None:
    task = tracker_task(Turn(user=ScriptedUser(text=f"Look at {first_task_id} and send it to review.")))
    client = ScriptedClient([decide(GET), call(GET, {"id": first_task_id}),
                             decide(STATUS), call(STATUS, {"id": first_task_id, "status": "in_review"}),
                             answer("Sent to review.")])
    episode, _ = run(client, task)
    trajectory = episode.trajectory
    calls = trajectory.tool_calls()
    assert [c.tool for c in calls] == [GET, STATUS]
    assert [d.call_id for d in trajectory.state_diffs] == [calls[1].id]  # the write only, keyed by its call id
    diff = trajectory.state_diffs[0]
    assert diff.env == "tracker"
    assert any(c.path == f"/collections/tasks/{first_task_id}/status" and c.new == "in_review" for c in diff.changes)
    assert trajectory.model_validate_json(trajectory.to_json_bytes()) == trajectory


def test_an_episode_that_only_reads_has_no_state_diffs_in_its_json(first_task_id: str) -> None:
    task = tracker_task(Turn(user=ScriptedUser(text=f"What is {first_task_id}?")))
    episode, _ = run(ScriptedClient([decide(GET), call(GET, {"id": first_task_id}), answer("It is a task.")]), task)
    assert episode.trajectory.state_diffs == [] and b"state_diffs" not in episode.trajectory.to_json_bytes()


LIST_TASKS = "tracker__list_tasks"


def test_grounding_drops_optional_placeholders_before_the_call_runs() -> None:
    task = tracker_task(Turn(user=ScriptedUser(text="Which of my tasks are blocked?"),
                             gold_calls=[GoldCall(tool=LIST_TASKS, arguments={"status": "blocked"})]))
    made_up = {"status": "blocked", "project_id": "your_project_id", "assignee_id": "user_123"}

    def script() -> ScriptedClient:
        return ScriptedClient([decide(LIST_TASKS), call(LIST_TASKS, dict(made_up)), answer("Two are blocked.")])

    grounded, _ = run(script(), task, ground_optional_arguments=True)
    as_written, _ = run(script(), task)
    ran = grounded.trajectory.tool_calls()[0]
    assert ran.arguments == {"status": "blocked"}  # "blocked" is in the user's words; the ids are not
    assert grounded.trajectory.messages[2].result is not None and grounded.trajectory.messages[2].result.ok
    assert as_written.trajectory.tool_calls()[0].arguments == made_up
    # the setting is not serialised: evaluation configs and trajectory ids do not change with it
    assert "ground_optional_arguments" not in AgentSettings(ground_optional_arguments=True).model_dump()
