"""Dataset exports (DESIGN §2 `export`): the rows written for SFT and RL trainers, the split assignment
and the export manifest.

Contract:
- Rows are typed here and written as JSONL or Parquet by the export stage. Tool-call arguments, tool
  lists and every free-form JSON payload (states, ground truth) are stored as JSON *text*: Arrow merges
  the keys of objects across rows into one struct and fills the gaps with nulls, which silently changes
  tool calls and states. Rows therefore keep the same columns whatever the task.
- `SFTMessage` is the OpenAI chat message (`tool_calls[].function.arguments` is a JSON string); the
  Parquet and TRL forms use the same message shape so one reader serves both.
- `SplitAssignment` says which split each task went to and why (its leakage group); the export's
  `ExportManifest` lists counts per format and split, every drop with its reason, the hashes of the
  inputs and of every file written, the hygiene (duplicates) and the diversity statistics.
- Split names: `train`, `validation`, `test` (seen environments) and `heldout` (tasks touching an
  environment held out of every other split, for generalisation to unseen environments).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from envfactory.spec.base import JSONObject, SpecModel

ExportFormat = Literal["openai", "llamafactory", "hf", "verl", "trl"]
EXPORT_FORMATS: tuple[ExportFormat, ...] = ("openai", "llamafactory", "hf", "verl", "trl")
SplitName = Literal["train", "validation", "test", "heldout"]
SPLIT_NAMES: tuple[SplitName, ...] = ("train", "validation", "test", "heldout")
ThinkMode = Literal["keep", "drop"]


class SplitConfig(SpecModel):
    """How tasks are split. Fractions apply to leakage groups of seen environments (not to tasks), so
    the realised task fractions differ when groups differ in size; `heldout_envs` (by name) and a seeded
    `heldout_env_fraction` of the remaining environments form the `heldout` split."""

    schema_version: Literal[1] = 1
    seed: int = 42
    validation_fraction: float = Field(default=0.1, ge=0.0, lt=1.0)
    test_fraction: float = Field(default=0.1, ge=0.0, lt=1.0)
    heldout_envs: list[str] = Field(default_factory=list)
    heldout_env_fraction: float = Field(default=0.0, ge=0.0, lt=1.0)

    @model_validator(mode="after")
    def _fractions(self) -> SplitConfig:
        if self.validation_fraction + self.test_fraction >= 1.0:
            raise ValueError("validation_fraction + test_fraction must leave room for train (< 1)")
        return self


class HygieneConfig(SpecModel):
    """Duplicate removal: exact (normalised query text and the gold trace) and near duplicates (Jaccard
    similarity of word shingles of the query, or of the gold calls' (call, argument path, value) items,
    among tasks with the same chain template)."""

    schema_version: Literal[1] = 1
    near_duplicate_threshold: float = Field(default=0.9, gt=0.0, le=1.0)
    near_duplicate_trace_threshold: float = Field(default=0.95, gt=0.0, le=1.0)
    shingle_words: int = Field(default=3, ge=1)


class ExportConfig(SpecModel):
    """The export's resolved config."""

    schema_version: Literal[1] = 1
    formats: list[ExportFormat] = Field(default_factory=lambda: list(EXPORT_FORMATS), min_length=1)
    think: ThinkMode = "drop"
    max_tokens: int = Field(default=8192, ge=16, description="longest sample kept, in template tokens")
    min_reward: float = Field(default=1.0, ge=0.0, le=1.0, description="trajectories scored below are dropped")
    system_prompt: str = (
        "You are a helpful assistant acting in an interactive environment through tools. Use the tools "
        "to do what the user asks, ask only for information the tools cannot give, and end with a short answer."
    )
    splits: SplitConfig = Field(default_factory=SplitConfig)
    hygiene: HygieneConfig = Field(default_factory=HygieneConfig)
    dataset_name: str = Field(default="envfactory", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    data_source: str = "envfactory"


class ExportStageConfig(SpecModel):
    """The export stage's config: which run it writes into, the files it reads, the export settings and
    the chat templates samples are rendered through (`qwen`, `smollm2`; none = no rendering check)."""

    schema_version: Literal[1] = 1
    run_id: str
    tasks_path: str
    trajectories_path: str
    export: ExportConfig = Field(default_factory=ExportConfig)
    renderers: list[Literal["qwen", "smollm2"]] = Field(default_factory=list)


# ---------------------------------------------------------------------------------------------- rows


class SFTFunctionCall(SpecModel):
    """The function part of an OpenAI tool call: a name and the arguments as JSON text."""
    name: str
    arguments: str = Field(description="the arguments object as JSON text")


class SFTToolCall(SpecModel):
    """An OpenAI tool call in an SFT message."""
    id: str
    type: Literal["function"] = "function"
    function: SFTFunctionCall


class SFTMessage(SpecModel):
    """An OpenAI chat message. Reasoning kept by `think=keep` sits in `content` as `<think>...</think>`."""

    role: Literal["system", "user", "assistant", "tool"]
    content: str = ""
    tool_calls: list[SFTToolCall] | None = None
    tool_call_id: str | None = None


class RowMeta(SpecModel):
    """Where a row came from (Parquet, TRL and the JSONL sidecar index carry it)."""

    row_id: str
    task_id: str
    trajectory_id: str = ""
    split: SplitName
    envs: list[str]
    domains: list[str] = Field(default_factory=list)
    turn: int | None = Field(default=None, description="RL rows: the task turn the row starts")


class SFTRow(SpecModel):
    """One conversation: OpenAI chat JSONL writes `messages` and `tools` only; Parquet adds `meta`."""

    schema_version: Literal[1] = 1
    messages: list[SFTMessage]
    tools: list[JSONObject]
    meta: RowMeta


class ShareGPTTurn(SpecModel):
    """One LlamaFactory sharegpt turn; `from` is human|gpt|function_call|observation."""

    from_: Literal["human", "gpt", "function_call", "observation"] = Field(alias="from")
    value: str


class LlamaFactoryRow(SpecModel):
    """LlamaFactory's sharegpt layout with tools: `tools` is the JSON text of the OpenAI tool list."""

    conversations: list[ShareGPTTurn]
    system: str
    tools: str


class RLEpisode(SpecModel):
    """What an RL tool needs to open the environments of one row: refs and the state at the start of the
    row's turn (per environment). Stored as JSON text in the rows."""

    schema_version: Literal[1] = 1
    task_id: str
    turn: int
    envs: list[JSONObject] = Field(description="EnvRef dumps")
    tool_naming: Literal["qualified", "plain"] = "qualified"
    seed: int = 0
    state: JSONObject = Field(description="env name -> state at the start of the turn")
    state_hash: str = Field(description="group state hash at the start of the turn")


class RLGroundTruth(SpecModel):
    """The reward's inputs for one row: this turn's gold calls (with their argument masks), the expected
    final state hash per environment after the turn, and the task's reward spec."""

    schema_version: Literal[1] = 1
    task_id: str
    turn: int
    gold_calls: list[JSONObject]
    expected_state_hashes: dict[str, str] = Field(default_factory=dict)
    final_turn: bool = False
    reward: JSONObject = Field(default_factory=dict)


class RLRow(SpecModel):
    """One RL prompt (a task turn). veRL reads `data_source`, `prompt`, `ability`, `reward_model`,
    `agent_name` and `extra_info` (index, `tool_selection`, `tools_kwargs`, `need_tools_kwargs`); TRL
    reads `prompt` and passes the other columns to reward functions."""

    schema_version: Literal[1] = 1
    data_source: str
    agent_name: Literal["tool_agent"] = "tool_agent"
    ability: Literal["tool_use"] = "tool_use"
    prompt: list[SFTMessage]
    tools: str = Field(description="JSON text of the OpenAI tool list offered in this turn")
    episode: str = Field(description="JSON text of an RLEpisode")
    ground_truth: str = Field(description="JSON text of an RLGroundTruth")
    meta: RowMeta


# --------------------------------------------------------------------------------------- splits, stats


class SplitAssignment(SpecModel):
    """The split of one task and the leakage group that decided it: tasks that share a chain template
    or an environment state are in one group, and a group is never divided."""

    task_id: str
    split: SplitName
    group: str
    envs: list[str]
    chain_template: str
    state_keys: list[str]


class ExportDrop(SpecModel):
    """One item not exported, and why."""

    item: str = Field(description="task, trajectory or row id")
    stage: Literal["input", "hygiene", "format", "render"]
    reason: str
    format: ExportFormat | None = None
    detail: str = ""


class DiversityStats(SpecModel):
    """Counts over the exported tasks (what the dataset card reports)."""

    tasks: int = 0
    tools: dict[str, int] = Field(default_factory=dict)
    environments: dict[str, int] = Field(default_factory=dict)
    domains: dict[str, int] = Field(default_factory=dict)
    chain_shapes: dict[str, int] = Field(default_factory=dict, description="calls x environments, e.g. 3c-1e")
    chain_templates: int = 0
    turn_counts: dict[str, int] = Field(default_factory=dict)
    distinct_tools: int = 0


class ExportFile(SpecModel):
    """One file an export wrote: its path, content hash and, for data files, rows, format and split."""
    path: str
    sha256: str
    rows: int | None = None
    format: ExportFormat | None = None
    split: SplitName | None = None


class ExportManifest(SpecModel):
    """Written as `export-manifest.json` beside the files of an export."""

    schema_version: Literal[1] = 1
    config: ExportConfig
    inputs: dict[str, str] = Field(default_factory=dict, description="name -> sha256 of what was read")
    counts: dict[str, int] = Field(default_factory=dict, description="funnel and per-format/split row counts")
    drops: list[ExportDrop] = Field(default_factory=list)
    drop_reasons: dict[str, int] = Field(default_factory=dict)
    splits: list[SplitAssignment] = Field(default_factory=list)
    diversity: DiversityStats = Field(default_factory=DiversityStats)
    renderers: dict[str, JSONObject] = Field(default_factory=dict, description="template -> token stats")
    files: list[ExportFile] = Field(default_factory=list)
    licences: list[str] = Field(default_factory=list)
