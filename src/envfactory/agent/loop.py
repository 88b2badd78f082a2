"""The one tool-calling agent loop (DESIGN §2, §6): an LLM drives a session group through a task.

Contract:
- `run_episode(client, group, task, settings, seed=...)` plays every turn of `task` against `group` and
  returns an `Episode`: the typed `Trajectory` (messages, tool calls with their results, the group hash
  after each call, the state diff of each call that changed state (`runtime.WriteDiffs`), final hashes,
  why it ended) and the `StepFailure`s met on the way.
- Scripted turns are given to the agent in order. A simulated turn (τ²) needs a `UserSimulator`: the
  agent greets, the simulator speaks, and they alternate until the simulator stops (`user_stop`) or
  `max_user_turns` user messages were written (`max_turns`).
- In each turn the agent offers only the turn's tools (`Turn.available_tools`; all of the group's when
  None). A call of another tool is answered with an `unknown_tool` error and never executed.
- The task's user-side tools (`Task.user_tools`, e.g. τ² telecom's phone) are never offered to the agent
  (its call of one is `unknown_tool`); the user simulator gets them as its toolbox, and each call it
  makes runs in the group and is recorded as a user message with the call, then the tool result.
- Control flow is driven by the loop, because small models judge "call a tool or answer" badly but
  fill a schema well. `control="decide"` (the default) asks first for a constrained decision — JSON
  naming a tool or `answer` with the reply — over a compact catalogue of the offered tools, then for
  that one tool's arguments with `tool_choice` naming it (grammar-constrained by the local provider,
  forced by OpenAI-compatible ones). The argument request carries the tool's schema without length,
  item-count and pattern bounds (`relaxed_schema`: grammar compilers unroll them into huge rules);
  the session validates the full schema, so a violation comes back as `invalid_arguments`. `control="native"` sends every offered tool with `tool_choice=auto`
  in one request per step, for models that handle tools well.
- At most `max_steps_per_turn` steps (decisions) per turn; hitting the bound ends the turn with a
  `step_limit` failure. In `decide` mode a call identical (tool and arguments) to the turn's previous
  call is not executed again: it ends the turn with a `repeated_call` failure (small models loop so).
- Malformed model output never raises: an undecodable decision or an answer that names no offered tool
  is a failed step with its reason, and a short note saying so is added to the model's view of the
  conversation (not to the trajectory), so the next request differs; arguments that are not a JSON object go to the session as text
  and come back as an `invalid_arguments` result (so rewards see a malformed call). Schema-repair
  exhaustion of a `ManagedClient` (`StructuredOutputError`) is a malformed step too. Other provider
  failures that are part of the model's behaviour (context overflow, timeouts) end the episode with
  termination `error`; set-up failures (missing model, replay miss, unreachable endpoint, missing
  dependency) are raised, because no answer of the model is involved.
- With `ground_optional_arguments` (synthesis solvers), optional arguments whose values nothing in the
  conversation mentions are dropped before a call runs (`agent.grounding`); the trajectory records the
  call as run.
- Prompt shape (for prefix reuse): a request is the system message (instructions, policy and, in
  `decide` mode, the catalogue of the turn's tools: the same for every request of a turn), the
  conversation so far, then what varies per request as a closing system note — the decision
  instruction, or which tool to call now; the local provider appends the response schema or the forced
  tool's schema after that note. So each request repeats the previous one up to its closing note.
- Deterministic: every request carries the episode seed; ids are derived from content. The same
  client answers (e.g. a replay cassette) give a byte-identical `Episode`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from envfactory import __version__
from envfactory.agent.grounding import ground_arguments
from envfactory.agent.prompts import AGENT_SYSTEM, ARGUMENTS, CATALOGUE, DECIDE, POLICY, USER_GREETING
from envfactory.errors import ProviderError
from envfactory.llm import (
    ChatMessage,
    ChatRequest,
    ChatResponse,
    DependencyMissingError,
    EndpointUnreachableError,
    FunctionTool,
    LLMClient,
    ModelIntegrityError,
    ModelNotInstalledError,
    NamedToolChoice,
    ReplayMissError,
    ResponseFormat,
    StructuredOutputError,
)
from envfactory.runtime import SessionGroup, WriteDiffs
from envfactory.spec import (
    CallStateDiff,
    ErrorInfo,
    JSONObject,
    JSONValue,
    Message,
    Producer,
    ScriptedUser,
    SimulatedUser,
    SpecModel,
    Task,
    TerminationReason,
    ToolCall,
    ToolResult,
    Trajectory,
    Turn,
    content_hash,
    parse_json,
)
from envfactory.spec.schema_tools import local_definition
from envfactory.spec.trajectory import REFUSED_CALL_PREFIX

if TYPE_CHECKING:
    from envfactory.agent.user import UserSimulator

__all__ = ["ANSWER", "AgentSettings", "Episode", "FailureKind", "StepFailure", "decision_schema", "relaxed_schema",
           "run_episode"]

ANSWER = "answer"
FEEDBACK_UNREADABLE = "Your last reply could not be used. Decide again: another tool, other arguments, or answer."
FailureKind = Literal["malformed_output", "unknown_tool", "step_limit", "repeated_call", "provider_error"]
# Failures of the set-up, not of the model's answers: they stop the run instead of scoring a failure.
_SETUP_ERRORS = (
    ReplayMissError, ModelNotInstalledError, ModelIntegrityError, DependencyMissingError, EndpointUnreachableError,
)


class AgentSettings(SpecModel):
    """How the agent runs (part of an evaluation's resolved config)."""

    schema_version: Literal[1] = 1
    control: Literal["decide", "native"] = "decide"
    max_steps_per_turn: int = Field(default=4, ge=1)
    max_user_turns: int = Field(default=3, ge=1, description="simulated turns: user messages at most")
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    max_answer_tokens: int = Field(default=192, ge=16)
    max_argument_tokens: int = Field(default=256, ge=16)
    max_result_chars: int = Field(default=1500, ge=100, description="tool output shown to the model")
    system_prompt: str = AGENT_SYSTEM
    # Not serialised (exclude): evaluation configs, their run ids and trajectory ids stay as they were;
    # synthesis sets it from its own config (`SynthTrajectoriesConfig.ground_arguments`), which is recorded.
    ground_optional_arguments: bool = Field(
        default=False, exclude=True,
        description="drop optional arguments whose values the conversation never mentions before a call runs "
                    "(agent.grounding; synthesis solvers, never benchmark runs)")


class StepFailure(SpecModel):
    """A step that went wrong, with the reason in words."""

    turn: int
    step: int
    kind: FailureKind
    reason: str


class Episode(SpecModel):
    """What one run of the loop produced."""

    schema_version: Literal[1] = 1
    trajectory: Trajectory
    failures: list[StepFailure] = Field(default_factory=list)
    llm_calls: int = 0


def _first_sentence(text: str, limit: int = 140) -> str:
    line = " ".join(text.split())
    cut = line.split(". ")[0]
    return cut if len(cut) <= limit else cut[: limit - 3] + "..."


def _catalogue(tools: Sequence[FunctionTool]) -> str:
    lines = []
    for tool in tools:
        properties = tool.parameters.get("properties")
        names = ", ".join(properties) if isinstance(properties, dict) else ""
        lines.append(f"- {tool.name}({names}): {_first_sentence(tool.description)}")
    return "\n".join(lines)


def decision_schema(tool_names: Sequence[str]) -> JSONObject:
    """JSON Schema of a decision: `{"next": <tool>}` or `{"next": "answer", "message": <text>}`."""
    branches: list[JSONValue] = [{
        "type": "object",
        "properties": {"next": {"const": ANSWER}, "message": {"type": "string"}},
        "required": ["next", "message"],
        "additionalProperties": False,
    }]
    if tool_names:
        branches.insert(0, {
            "type": "object",
            "properties": {"next": {"enum": list(tool_names)}},
            "required": ["next"],
            "additionalProperties": False,
        })
    return {"anyOf": branches}


# Bounds that grammar compilers unroll into huge repetitions (llama.cpp refuses a `maxLength: 4000`
# string and then crashes while sampling); the session still validates the full schema.
_INLINED_ROOTS = ("#/$defs/", "#/definitions/")
_GRAMMAR_HEAVY = frozenset({"maxLength", "minLength", "maxItems", "minItems", "pattern", "uniqueItems"})


def relaxed_schema(schema: JSONValue) -> JSONValue:
    """`schema` for constrained decoding: local `$ref`s (`#/$defs/...`, `#/definitions/...`) inlined,
    and no length, item-count or pattern bounds (grammar converters fall back to "any JSON" on refs
    and unroll bounds into huge rules)."""
    return _relax(schema, schema if isinstance(schema, dict) else {}, 0)


def _relax(schema: JSONValue, root: dict[str, JSONValue], depth: int) -> JSONValue:
    if isinstance(schema, list):
        return [_relax(item, root, depth) for item in schema]
    if not isinstance(schema, dict):
        return schema
    ref = schema.get("$ref")
    found = local_definition(root, ref, _INLINED_ROOTS) if isinstance(ref, str) and depth < 8 else None
    if found is not None:  # depth-bounded: recursive schemas stay finite
        target = _relax(found, root, depth + 1)
        if not isinstance(target, dict):
            return target
        siblings = {k: _relax(v, root, depth) for k, v in schema.items() if k != "$ref"}
        return {**target, **siblings}
    return {key: _relax(value, root, depth) for key, value in schema.items()
            if key not in ("$defs", "definitions") and not (key in _GRAMMAR_HEAVY and not isinstance(value, dict))}


def _result_text(result: ToolResult, limit: int) -> str:
    if result.error is not None:
        text = f"Error ({result.error.kind}): {result.error.message}"
    else:
        text = result.output if isinstance(result.output, str) else json.dumps(result.output, ensure_ascii=False)
    return text if len(text) <= limit else text[:limit] + f" ... [{len(text) - limit} more characters]"


class _Run:
    """The state of one episode (internal; `run_episode` is the interface)."""

    def __init__(self, client: LLMClient, group: SessionGroup, task: Task, settings: AgentSettings,
                 seed: int, instructions: str) -> None:
        self.client = client
        self.group = group
        self.task = task
        self.settings = settings
        self.seed = seed
        system = settings.system_prompt
        if instructions:
            system = f"{system}\n\n{POLICY.format(policy=instructions)}"
        self.system = system
        self.all_tools = [FunctionTool.from_spec(spec) for spec in group.tools]
        self.chat_view: list[ChatMessage] = []  # what the model sees (tool outputs shortened)
        self.record: list[Message] = []  # the trajectory's messages
        self.state_hashes: list[str] = []
        self.writes = WriteDiffs(group)
        self.state_diffs: list[CallStateDiff] = []
        self.failures: list[StepFailure] = []
        self.llm_calls = 0
        self.error_stop = False

    # -- model calls ----------------------------------------------------------------------------------
    def _ask(self, request: ChatRequest, turn: int, step: int) -> ChatResponse | None:
        """One model call; a malformed answer or a provider failure is recorded and gives None."""
        self.llm_calls += 1
        try:
            return self.client.chat(request)
        except _SETUP_ERRORS:
            raise
        except StructuredOutputError as exc:
            self._fail(turn, step, "malformed_output", str(exc), feedback=FEEDBACK_UNREADABLE)
        except ProviderError as exc:
            self._fail(turn, step, "provider_error", str(exc))
            self.error_stop = True
        return None

    def _fail(self, turn: int, step: int, kind: FailureKind, reason: str, feedback: str = "") -> None:
        """Record a failed step; `feedback` tells the model (in its view only) what to do differently,
        so a deterministic model does not repeat the same failure until the step bound."""
        self.failures.append(StepFailure(turn=turn, step=step, kind=kind, reason=reason[:500]))
        if feedback:
            self.chat_view.append(ChatMessage.user(f"({feedback})"))

    def _request(self, system: str, note: str = "", **fields: object) -> ChatRequest:
        """The system message, the conversation, then `note` (what varies per request) as a closing system
        message, so consecutive requests share everything before their notes (see the module docstring)."""
        closing = [ChatMessage.system(note)] if note else []
        return ChatRequest.model_validate({
            "messages": [ChatMessage.system(system), *self.chat_view, *closing],
            "temperature": self.settings.temperature,
            "seed": self.seed,
            **fields,
        })

    # -- conversation ------------------------------------------------------------------------------------
    def say_user(self, text: str) -> None:
        self.chat_view.append(ChatMessage.user(text))
        self.record.append(Message(role="user", content=text))

    def say_assistant(self, text: str) -> None:
        self.chat_view.append(ChatMessage.assistant(text))
        self.record.append(Message(role="assistant", content=text))

    def execute(self, call: ToolCall, offered: set[str]) -> None:
        if call.tool in self.task.user_tools:
            # the user's own tool (τ² telecom): the agent's toolkit has no such tool, in τ²'s own words
            result = self._refused(call, f"Error: Tool '{call.tool}' not found.")
        elif call.tool not in offered:
            result = self._refused(call, f"{call.tool!r} is not available now; available: {', '.join(sorted(offered))}")
        else:
            result = self._run_call(call)
        recorded = call.model_copy(update={"id": result.call_id})
        self.chat_view.append(ChatMessage.assistant("", [recorded]))
        self.chat_view.append(ChatMessage.tool(recorded, _result_text(result, self.settings.max_result_chars)))
        self.record.append(Message(role="assistant", tool_calls=[recorded]))
        self.record.append(Message(role="tool", result=result))

    def _grounded(self, call: ToolCall) -> ToolCall:
        """`call` without the optional arguments nothing in the conversation mentions, when the settings
        ask for it (see `agent.grounding`); text arguments (`raw_arguments`) are left to the session."""
        if not self.settings.ground_optional_arguments or call.raw_arguments is not None:
            return call
        tool = next((t for t in self.all_tools if t.name == call.tool), None)
        if tool is None:
            return call
        transcript = "\n".join(message.content for message in self.chat_view if message.content)
        kept, dropped = ground_arguments(call.arguments, tool.parameters, transcript)
        return call.model_copy(update={"arguments": kept}) if dropped else call

    # -- one agent turn ---------------------------------------------------------------------------------
    def agent_turn(self, turn_index: int, turn: Turn) -> bool:
        """Steps until the agent answers; False when the step bound or an error ended the turn."""
        offered_names = set(self.all_tools_names() if turn.available_tools is None else turn.available_tools)
        offered_names -= set(self.task.user_tools)  # the user's own tools are never the agent's
        offered = [tool for tool in self.all_tools if tool.name in offered_names]
        for step in range(self.settings.max_steps_per_turn):
            if self.error_stop:
                return False
            step_fn = self._decide_step if self.settings.control == "decide" else self._native_step
            if step_fn(turn_index, step, offered, offered_names):
                return True
        self._fail(turn_index, self.settings.max_steps_per_turn, "step_limit",
                   f"no answer after {self.settings.max_steps_per_turn} steps")
        return False

    def all_tools_names(self) -> list[str]:
        return [tool.name for tool in self.all_tools]

    def user_call(self, call: ToolCall) -> ToolResult:
        """Run a call of the simulated user's own tools; it goes into the trajectory (a user message with
        the call, then its result), never into the agent's view."""
        if call.tool not in self.task.user_tools:
            result = self._refused(call, f"{call.tool!r} is not one of your tools")
        else:
            result = self._run_call(call)
        self.record.append(Message(role="user", tool_calls=[call.model_copy(update={"id": result.call_id})]))
        self.record.append(Message(role="tool", result=result))
        return result

    def _refused(self, call: ToolCall, message: str) -> ToolResult:
        """The `unknown_tool` result of a call that is not run."""
        step = len(self.group.log)
        return ToolResult(call_id=f"{REFUSED_CALL_PREFIX}{step}_{len(self.record)}", tool=call.tool, step=step,
                          error=ErrorInfo(kind="unknown_tool", message=message))

    def _run_call(self, call: ToolCall) -> ToolResult:
        """Run a call in the group, keeping the state hash after it and its state diff."""
        arguments: JSONObject | str = call.raw_arguments if call.raw_arguments is not None else call.arguments
        result, diff = self.writes.call(call.tool, arguments)
        self.state_hashes.append(self.group.hash())
        if diff is not None:
            self.state_diffs.append(diff)
        return result

    def _decide_step(self, turn: int, step: int, offered: list[FunctionTool], names: set[str]) -> bool:
        """One decision (and possibly one call); True when the agent answered."""
        system = f"{self.system}\n\n{CATALOGUE.format(catalogue=_catalogue(offered) or '(none)')}"
        schema = decision_schema([tool.name for tool in offered])
        decision = self._ask(self._request(
            system, DECIDE.format(),  # a format string like the others: its braces are doubled
            response_format=ResponseFormat(name="decision", json_schema=schema),
            max_tokens=self.settings.max_answer_tokens,
        ), turn, step)
        if decision is None:
            return False
        try:
            value = parse_json(decision.content)
        except ValueError as exc:
            self._fail(turn, step, "malformed_output", f"the decision is not JSON ({exc}): {decision.content[:200]!r}",
                       feedback=FEEDBACK_UNREADABLE)
            return False
        choice = value.get("next") if isinstance(value, dict) else None
        if choice == ANSWER and isinstance(value, dict):
            message = value.get("message")
            self.say_assistant(message if isinstance(message, str) else "")
            return True
        if not isinstance(choice, str) or choice not in names:
            self._fail(turn, step, "malformed_output" if not isinstance(choice, str) else "unknown_tool",
                       f"the decision names no offered tool: {decision.content[:200]!r}",
                       feedback=f"{choice!r} is not one of the tools you can call now.")
            return False
        tool = next(t for t in offered if t.name == choice)
        relaxed = relaxed_schema(tool.parameters)
        if isinstance(relaxed, dict):
            tool = tool.model_copy(update={"parameters": relaxed})
        response = self._ask(self._request(
            system, ARGUMENTS.format(tool=choice),
            tools=[tool], tool_choice=NamedToolChoice(name=choice), max_tokens=self.settings.max_argument_tokens,
        ), turn, step)
        if response is None:
            return False
        if not response.tool_calls:
            self._fail(turn, step, "malformed_output",
                       f"no call of {choice} in the answer: {response.content[:200]!r}", feedback=FEEDBACK_UNREADABLE)
            return False
        chosen = self._grounded(response.tool_calls[0].model_copy(update={"tool": choice}))
        if self._repeats(chosen):  # after grounding: a dropped placeholder does not make a repeat new
            self._fail(turn, step, "repeated_call", f"{choice} with the same arguments as the call before; turn ended")
            return True
        self.execute(chosen, names)
        return False

    def _repeats(self, call: ToolCall) -> bool:
        """Whether `call` repeats the previous call of this turn exactly (a loop small models fall into)."""
        for message in reversed(self.record):
            if message.role == "user":
                return False
            if message.tool_calls:
                last = message.tool_calls[-1]
                return (last.tool, last.arguments, last.raw_arguments) == (call.tool, call.arguments, call.raw_arguments)
        return False

    def _native_step(self, turn: int, step: int, offered: list[FunctionTool], names: set[str]) -> bool:
        fields: dict[str, Any] = {"max_tokens": max(self.settings.max_answer_tokens, self.settings.max_argument_tokens)}
        if offered:
            fields.update(tools=offered, tool_choice="auto")
        response = self._ask(self._request(self.system, "", **fields), turn, step)
        if response is None:
            return False
        if not response.tool_calls:
            self.say_assistant(response.content)
            return True
        for call in response.tool_calls:
            if call.tool not in names:
                self._fail(turn, step, "unknown_tool", f"a call of {call.tool!r}, which is not offered")
            elif call.raw_arguments is not None:
                self._fail(turn, step, "malformed_output",
                           f"the arguments of {call.tool} are not a JSON object: {call.raw_arguments[:200]!r}")
            self.execute(self._grounded(call), names)
        return False


class _UserTools:
    """The task's user-side tools (`Task.user_tools`) as the user simulator's toolbox for one episode."""

    def __init__(self, run: _Run) -> None:
        self._run = run
        self.tools = [tool for tool in run.all_tools if tool.name in run.task.user_tools]

    def call(self, call: ToolCall) -> ToolResult:
        """Run and record one call of the user's (`_Run.user_call`)."""
        return self._run.user_call(call)


def run_episode(
    client: LLMClient,
    group: SessionGroup,
    task: Task,
    settings: AgentSettings | None = None,
    *,
    seed: int = 0,
    user: UserSimulator | None = None,
    instructions: str = "",
    trajectory_id: str | None = None,
) -> Episode:
    """Run the agent on `task` in `group` (opened on the task's initial state; see the module docstring).

    Args:
        client: the model (a `ManagedClient` in production; any `LLMClient` works).
        group: the open session group; it is left open with the episode's final state.
        task: the task; its turns decide the conversation.
        settings: the agent's settings.
        seed: the seed of every request of the episode.
        user: the user simulator; required when the task has a simulated turn.
        instructions: extra system text, e.g. the environments' policies.
        trajectory_id: the id to give the trajectory (default: a hash of task, model, seed and settings).
    """
    settings = settings or AgentSettings()
    run = _Run(client, group, task, settings, seed, instructions)
    termination = TerminationReason.AGENT_STOP
    for index, turn in enumerate(task.turns):
        if run.error_stop:
            break
        if isinstance(turn.user, ScriptedUser):
            run.say_user(turn.user.text)
            if not run.agent_turn(index, turn) and termination == TerminationReason.AGENT_STOP:
                termination = TerminationReason.MAX_STEPS
            continue
        termination = _simulated_turn(run, index, turn, turn.user, user)
    if run.error_stop:
        termination = TerminationReason.ERROR
    run.writes.close()
    producer = Producer(model=client.model_id, provider=client.model_id.split("/", 1)[0], seed=seed,
                        temperature=settings.temperature, code_version=__version__)
    ident = trajectory_id or "traj_" + content_hash({
        "task": task.id, "model": client.model_id, "seed": seed, "settings": settings.model_dump(mode="json"),
    })[:24]
    trajectory = Trajectory(
        id=ident, task_id=task.id, envs=list(task.envs), seed=seed, messages=run.record,
        state_hashes=run.state_hashes, final_state_hashes=group.hashes(), state_diffs=run.state_diffs,
        termination=termination, producer=producer,
    )
    return Episode(trajectory=trajectory, failures=run.failures, llm_calls=run.llm_calls)


def _simulated_turn(run: _Run, index: int, turn: Turn, scenario: SimulatedUser,
                    user: UserSimulator | None) -> TerminationReason:
    if user is None:
        raise ValueError(f"task {run.task.id[:12]} has a simulated user turn: pass a UserSimulator")
    run.say_assistant(USER_GREETING)
    for _ in range(run.settings.max_user_turns):
        reply = user.reply(scenario, run.record, seed=run.seed, toolbox=_UserTools(run) if run.task.user_tools else None)
        run.llm_calls += 1
        if reply.failure:
            run._fail(index, 0, "provider_error", f"user simulator: {reply.failure}")
            run.error_stop = True
            return TerminationReason.ERROR
        if reply.stop:
            if reply.text:
                run.say_user(reply.text)
            return TerminationReason.USER_STOP
        run.say_user(reply.text)
        run.agent_turn(index, turn)
        if run.error_stop:
            return TerminationReason.ERROR
    return TerminationReason.MAX_TURNS
