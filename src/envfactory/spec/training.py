"""Training artifacts (DESIGN §2 `train`): run configs, flattened tool surfaces and per-step records.

Contract:
- `ToolSurface` is how one of our tools looks to a trainer that derives tool schemas from Python
  signatures (TRL through transformers' `get_json_schema`) or keeps only flat properties (veRL): a Python
  identifier for the name, typed scalar parameters (nested objects flattened as `parent__child`) and the
  schema features that cannot be expressed that way, listed in `losses`. It is data, so the veRL tool
  (which runs in another virtual environment) maps arguments back with the same surface.
- `SFTRunConfig` / `GRPORunConfig` are the resolved configs of `envfactory train sft|grpo`
  (`configs/train/*.json` hold them); the model comes from the command line, never from `llm`.
- `TrainStepRecord` is one line of a run's `logs/steps.jsonl`; `RolloutRecord` one line of
  `logs/rollouts.jsonl` (GRPO): the reward with its components, or the reason the rollout failed. A failed
  rollout has no reward at all (it is never scored as 0).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from envfactory.spec.base import JSONValue, SpecModel
from envfactory.spec.reward import Reward

ScalarType = Literal["string", "integer", "number", "boolean", "array", "object", "any"]


class FlatParam(SpecModel):
    """One parameter of a flattened tool: `name` is a Python identifier, `path` the keys into the
    original arguments object (several for a flattened nested field)."""

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    path: list[str] = Field(min_length=1)
    json_type: ScalarType
    item_type: ScalarType | None = Field(default=None, description="arrays: the type of the items")
    nullable: bool = False
    description: str
    required: bool
    enum: list[JSONValue] | None = None


class ToolSurface(SpecModel):
    """A tool as a signature-derived trainer sees it (see the module docstring)."""

    schema_version: Literal[1] = 1
    tool: str = Field(description="the tool's name in the session (e.g. `shop__get_customer`)")
    function: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="the Python name")
    description: str
    params: list[FlatParam] = Field(default_factory=list)
    losses: list[str] = Field(default_factory=list, description="schema features not carried, one per line")


class TrainRunBase(SpecModel):
    """Settings shared by SFT and GRPO runs."""

    model: str = Field(default="", description="a directory saved by transformers (set by `--model`)")
    max_steps: int = Field(default=20, ge=1)
    learning_rate: float = Field(default=5e-5, gt=0)
    per_device_train_batch_size: int = Field(default=4, ge=1)
    gradient_accumulation_steps: int = Field(default=1, ge=1)
    lora: bool = False
    lora_r: int = Field(default=16, ge=1)
    lora_alpha: int = Field(default=32, ge=1)
    lora_last_layers: int = Field(default=0, ge=0, description="adapters on the last N decoder layers only "
                                  "(0: all); the backward pass stops there, which is what a CPU can afford")
    seed: int = 0
    save_steps: int = Field(default=0, ge=0, description="0: save only at the end")
    bf16: bool = False
    use_cpu: bool = True
    gradient_checkpointing: bool = False


class SFTRunConfig(TrainRunBase):
    """`envfactory train sft`: TRL's SFTTrainer on OpenAI-chat JSONL rows (`messages` and `tools`)."""

    schema_version: Literal[1] = 1
    kind: Literal["sft"] = "sft"
    data: str = Field(default="", description="the exported SFT split (OpenAI chat JSONL)")
    max_length: int = Field(default=1024, ge=16)
    num_train_epochs: float = Field(default=100.0, gt=0, description="upper bound; max_steps ends the run")
    assistant_only_loss: bool = False


class GRPORunConfig(TrainRunBase):
    """`envfactory train grpo`: TRL's GRPOTrainer with one live session per rollout."""

    schema_version: Literal[1] = 1
    kind: Literal["grpo"] = "grpo"
    tasks: str = Field(default="", description="Task files (.json/.jsonl) whose rollouts are trained on")
    env_server: str = Field(default="", description="base URL of `envfactory serve`; empty: sessions in-process")
    num_generations: int = Field(default=4, ge=2)
    temperature: float = Field(default=0.7, gt=0)
    beta: float = Field(default=0.0, ge=0, description="KL coefficient; 0 = no KL (the paper's setting)")
    max_completion_length: int = Field(default=256, ge=8)
    max_tool_calling_iterations: int = Field(default=4, ge=1)
    call_retries: int = Field(default=2, ge=0, description="retries of a call after a framework failure")
    retry_backoff_s: float = Field(default=0.5, ge=0)
    component_weights_logged: bool = True


class TrainStepRecord(SpecModel):
    """One logged training step (a line of `logs/steps.jsonl`)."""

    schema_version: Literal[1] = 1
    step: int = Field(ge=0)
    loss: float | None = None
    reward: float | None = None
    reward_std: float | None = None
    components: dict[str, float] = Field(default_factory=dict, description="mean of each reward component")
    failed_rollouts: int = 0
    learning_rate: float | None = None
    step_seconds: float | None = None
    metrics: dict[str, float] = Field(default_factory=dict, description="every other number the trainer logged")


class RolloutRecord(SpecModel):
    """One GRPO rollout: the task, the calls, and the reward or the failure (a line of `logs/rollouts.jsonl`)."""

    schema_version: Literal[1] = 1
    step: int = Field(ge=0)
    task_id: str
    calls: int = 0
    retries: int = 0
    reward: Reward | None = None
    failure: str | None = Field(default=None, description="why the rollout could not be scored")
