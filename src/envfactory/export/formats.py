"""Row converters for every export format (pure functions over spec models).

Contract:
- `sft_row` makes the OpenAI chat row of a trajectory (messages + the tools offered); `openai_record`
  is what OpenAI chat JSONL holds (`messages`, `tools`; None fields left out).
- `llamafactory_row` makes LlamaFactory's sharegpt row from an SFT row. Its loader silently skips rows
  that break strict alternation (human|observation at even positions, gpt|function_call at odd ones, an
  even count), so a row that would break it raises `ExportRowError("breaks_alternation")` instead;
  trailing user or tool messages (an episode cut after a call) are trimmed; assistant text written beside
  tool calls cannot be expressed and is dropped from that row (counted by the caller). Parallel calls are
  one `function_call` (a JSON list); their results one `observation` (one JSON text per line).
- `rl_rows` makes one RL row per task turn: the conversation before the turn plus the turn's user
  message as prompt, the turn's tools, the state at the start of the turn (`TurnStates`, measured by
  replaying the trajectory) and the turn's gold calls as ground truth.
- `verl_record` / `trl_record` lay an RL row out for veRL's RLHFDataset + ToolAgentLoop and for TRL.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from envfactory.export.conversation import ExportRowError, conversation, json_text
from envfactory.spec import EnvSpec, JSONObject, JSONValue, ScriptedUser, Task, Trajectory, parse_json
from envfactory.spec.dataset import (
    ExportConfig,
    LlamaFactoryRow,
    RLEpisode,
    RLGroundTruth,
    RLRow,
    RowMeta,
    SFTMessage,
    SFTRow,
    ShareGPTTurn,
    SplitName,
)

# Session-group tool naming (DESIGN §11): `<env>__<tool>`; the runtime's `qualified_name` is the same rule.
TOOL_SEPARATOR = "__"


@dataclass(frozen=True, slots=True)
class TurnStates:
    """Measured by replaying a trajectory: per task turn, the state of every environment and the group
    hash at the turn's start, and each environment's hash at the turn's end."""

    start_states: list[dict[str, JSONValue]]
    start_hashes: list[str]
    end_env_hashes: list[dict[str, str]]


def task_tools(task: Task, envs: Mapping[str, EnvSpec], turn: int | None = None) -> list[JSONObject]:
    """The OpenAI tool list the agent is offered (in a turn, or over the task): user-only tools excluded."""
    offered: list[JSONObject] = []
    allowed = None if turn is None else task.turns[turn].available_tools
    for ref in task.envs:
        spec = envs[ref.name]
        for tool in spec.tools:
            name = tool.name if task.tool_naming == "plain" else f"{ref.name}{TOOL_SEPARATOR}{tool.name}"
            if name in task.user_tools or (allowed is not None and name not in allowed):
                continue
            function = tool.openai_function()
            function["function"] = {**function["function"], "name": name}  # type: ignore[dict-item]
            offered.append(function)
    return offered


def row_meta(task: Task, trajectory_id: str, split: SplitName, envs: Mapping[str, EnvSpec],
             row_id: str, turn: int | None = None) -> RowMeta:
    """The metadata of one exported row: its ids, split, environment names and their domains (sorted), and
    the turn for per-turn rows."""
    names = [ref.name for ref in task.envs]
    domains = sorted({envs[name].meta.domain for name in names if envs[name].meta.domain})
    return RowMeta(row_id=row_id, task_id=task.id, trajectory_id=trajectory_id, split=split, envs=names,
                   domains=domains, turn=turn)


def sft_row(task: Task, trajectory: Trajectory, split: SplitName, envs: Mapping[str, EnvSpec],
            config: ExportConfig) -> SFTRow:
    """The trajectory as an SFT conversation; refuses trajectories that end before any assistant reply."""
    messages = conversation(trajectory, config.system_prompt, config.think)
    if not any(m.role == "assistant" for m in messages):
        raise ExportRowError("no_assistant_message")
    meta = row_meta(task, trajectory.id, split, envs, row_id=trajectory.id)
    return SFTRow(messages=messages, tools=task_tools(task, envs), meta=meta)


def openai_record(row: SFTRow) -> JSONObject:
    """OpenAI chat fine-tuning JSONL: `messages` (None fields left out) and `tools`."""
    messages: list[JSONValue] = [m.model_dump(mode="json", exclude_none=True) for m in row.messages]
    return {"messages": messages, "tools": list(row.tools)}


def _function_call_value(message: SFTMessage) -> str:
    calls = [
        {"name": call.function.name, "arguments": _parse_object(call.function.arguments)}
        for call in message.tool_calls or []
    ]
    payload = json_text(calls if len(calls) > 1 else calls[0])
    content = message.content
    if content.startswith("<think>") and "</think>" in content:  # kept reasoning precedes the call
        return content[: content.index("</think>") + len("</think>")] + "\n\n" + payload
    return payload


def _parse_object(text: str) -> JSONValue:
    value: JSONValue = parse_json(text)
    return value


@dataclass(frozen=True, slots=True)
class LlamaFactoryResult:
    """One row in LlamaFactory's sharegpt layout and how many assistant texts had to be dropped to make it."""
    row: LlamaFactoryRow
    dropped_text: int
    """assistant messages whose visible text beside tool calls could not be kept"""


def llamafactory_row(row: SFTRow) -> LlamaFactoryResult:
    """The SFT row in LlamaFactory's sharegpt layout (see the module contract)."""
    turns: list[ShareGPTTurn] = []
    dropped_text = 0
    pending_results: list[str] = []

    def flush_results() -> None:
        if pending_results:
            turns.append(ShareGPTTurn(**{"from": "observation", "value": "\n".join(pending_results)}))
            pending_results.clear()

    for message in row.messages[1:]:
        if message.role == "tool":
            pending_results.append(message.content)
            continue
        flush_results()
        if message.role == "user":
            turns.append(ShareGPTTurn(**{"from": "human", "value": message.content}))
        elif message.tool_calls:
            visible = message.content.split("</think>")[-1].strip() if "</think>" in message.content else message.content
            dropped_text += bool(visible.strip())
            turns.append(ShareGPTTurn(**{"from": "function_call", "value": _function_call_value(message)}))
        else:
            turns.append(ShareGPTTurn(**{"from": "gpt", "value": message.content}))
    flush_results()
    while turns and turns[-1].from_ in ("human", "observation"):
        turns.pop()
    for index, turn in enumerate(turns):
        expected = ("human", "observation") if index % 2 == 0 else ("gpt", "function_call")
        if turn.from_ not in expected:
            raise ExportRowError("breaks_alternation", f"position {index} is {turn.from_}")
    if not turns or len(turns) % 2:
        raise ExportRowError("breaks_alternation", f"{len(turns)} messages")
    result = LlamaFactoryRow(conversations=turns, system=row.messages[0].content, tools=json_text(row.tools))
    return LlamaFactoryResult(result, dropped_text)


def llamafactory_dataset_info(name: str, file_name: str) -> JSONObject:
    """The `dataset_info.json` entry LlamaFactory needs to read a sharegpt file with tools."""
    return {
        name: {
            "file_name": file_name,
            "formatting": "sharegpt",
            "columns": {"messages": "conversations", "system": "system", "tools": "tools"},
            "tags": {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt",
                     "observation_tag": "observation", "function_tag": "function_call"},
        }
    }


def _user_positions(messages: Sequence[SFTMessage]) -> list[int]:
    return [i for i, m in enumerate(messages) if m.role == "user"]


def rl_rows(task: Task, trajectory: Trajectory, states: TurnStates, split: SplitName,
            envs: Mapping[str, EnvSpec], config: ExportConfig) -> list[RLRow]:
    """One RL row per task turn (see the module contract)."""
    messages = conversation(trajectory, config.system_prompt, config.think)
    users = _user_positions(messages)
    scripted = all(isinstance(turn.user, ScriptedUser) for turn in task.turns)
    if scripted and len(users) != len(task.turns):
        raise ExportRowError("turns_unaligned", f"{len(users)} user messages for {len(task.turns)} turns")
    if not scripted and len(task.turns) != 1:
        raise ExportRowError("turns_unaligned", "several turns with a simulated user")
    if not users:
        raise ExportRowError("no_user_message")
    if len(states.start_states) < len(task.turns):
        raise ExportRowError("missing_turn_states")
    ref_dumps: list[JSONObject] = [ref.model_dump(mode="json") for ref in task.envs]
    rows = []
    for turn_index, turn in enumerate(task.turns):
        prompt = messages[: users[turn_index] + 1]
        episode = RLEpisode(task_id=task.id, turn=turn_index, envs=ref_dumps, tool_naming=task.tool_naming,
                            seed=task.seed, state=dict(states.start_states[turn_index]),
                            state_hash=states.start_hashes[turn_index])
        final = turn_index == len(task.turns) - 1
        truth = RLGroundTruth(
            task_id=task.id, turn=turn_index, final_turn=final,
            gold_calls=[call.model_dump(mode="json", exclude_defaults=True) for call in turn.gold_calls],
            expected_state_hashes=dict(states.end_env_hashes[turn_index]),
            reward=task.reward.model_dump(mode="json"),
        )
        rows.append(RLRow(
            data_source=config.data_source, prompt=prompt, tools=json_text(task_tools(task, envs, turn_index)),
            episode=episode.to_json_bytes().decode(), ground_truth=truth.to_json_bytes().decode(),
            meta=row_meta(task, trajectory.id, split, envs, row_id=f"{task.id}:{turn_index}", turn=turn_index),
        ))
    return rows


def verl_record(row: RLRow, index: int) -> JSONObject:
    """veRL's multi-turn tool-RL layout: RLHFDataset reads `prompt` (raw_prompt) and `extra_info`
    (`index`, `tools_kwargs`, `need_tools_kwargs`); ToolAgentLoop (agent_name `tool_agent`) offers only
    `extra_info.tool_selection` and creates each tool per call with its `create_kwargs` (the episode, so a
    tool can key its session by trajectory); the reward function receives `reward_model.ground_truth`."""
    tools = offered_tool_names(row.tools)
    prompt: list[JSONValue] = [m.model_dump(mode="json") for m in row.prompt]
    tools_kwargs: JSONObject = {name: {"create_kwargs": {"episode": row.episode}} for name in tools}
    return {
        "data_source": row.data_source,
        "agent_name": row.agent_name,
        "prompt": prompt,
        "ability": row.ability,
        "reward_model": {"style": "rule", "ground_truth": row.ground_truth},
        "extra_info": {
            "index": index,
            "split": row.meta.split,
            "task_id": row.meta.task_id,
            "turn": row.meta.turn,
            "need_tools_kwargs": True,
            "tool_selection": list[JSONValue](tools),
            "tools_kwargs": tools_kwargs,
        },
    }


def verl_schema_problem(tool: JSONObject) -> str | None:
    """Why veRL 0.9.1's `OpenAIFunctionToolSchema` would refuse this OpenAI tool (it requires a `type`, a
    string or a list of strings, on the parameters object and on every parameter), or None. Refusal breaks
    veRL's whole tool config, so rows offering such a tool are dropped from the veRL format. (veRL also
    silently drops nested `items`/`properties` and bounds; that loses detail but loads.)"""
    function = tool.get("function")
    parameters = function.get("parameters") if isinstance(function, dict) else None
    if not isinstance(parameters, dict) or not isinstance(parameters.get("type"), str):
        return "parameters have no type"
    properties = parameters.get("properties", {})
    if not isinstance(properties, dict):
        return "properties is not an object"
    for name, schema in properties.items():
        kind = schema.get("type") if isinstance(schema, dict) else None
        if not (isinstance(kind, str) or (isinstance(kind, list) and all(isinstance(k, str) for k in kind))):
            return f"parameter {name!r} has no type"
    return None


def trl_record(row: RLRow) -> JSONObject:
    """TRL's layout: `prompt` (chat messages) plus columns its reward functions receive as kwargs."""
    prompt: list[JSONValue] = [m.model_dump(mode="json") for m in row.prompt]
    return {
        "prompt": prompt,
        "tools": row.tools,
        "episode": row.episode,
        "ground_truth": row.ground_truth,
        "task_id": row.meta.task_id,
        "turn": row.meta.turn,
        "split": row.meta.split,
        "envs": list[JSONValue](row.meta.envs),
    }


def tool_list(text: str) -> list[JSONObject]:
    """The OpenAI tool list stored as JSON text in a row (objects only)."""
    value = parse_json(text)
    return [t for t in value if isinstance(t, dict)] if isinstance(value, list) else []


def tool_name(tool: JSONObject) -> str:
    """The name of an OpenAI tool (`function.name`), or "" when it has none."""
    function = tool.get("function")
    return str(function.get("name", "")) if isinstance(function, dict) else ""


def offered_tool_names(text: str) -> list[str]:
    """The names of the tools in a row's JSON-text tool list."""
    return [tool_name(t) for t in tool_list(text)]
