"""Pure converters from tasks and trajectories to SFT and RL dataset formats (DESIGN §2 `export`).

Imports only `spec` among envfactory's layers: the export stage (`envfactory.cli._export_stage`) does
the reading, replaying and writing, and hands this package typed data. Formats: OpenAI chat JSONL,
LlamaFactory sharegpt (+ `dataset_info.json`), Hugging Face Parquet with a dataset card, veRL multi-turn
tool-RL Parquet and the same RL rows for TRL. See docs/datasets.md.

Contract (entry: `pipeline.build_export(inputs, config)`):
- Inputs: typed tasks, trajectories and the replayed turn states, and an `ExportConfig` (formats,
  split shares and seed, token limit).
- Outputs: `ExportResult.files` (relative path → bytes) and an `ExportManifest` listing every file's
  sha256 and every dropped row with its reason; this package never touches the disk.
- Errors: a row that cannot be exported is dropped with a reason (`ExportRowError`), never written half;
  a requested format whose optional package is missing raises `ExportDependencyError` with the install
  command.
- Determinism: splits come from `random.Random(seed)` over leakage groups and rows are encoded
  canonically, so the same inputs and config give byte-identical files.
"""

from envfactory.export.conversation import ExportRowError, conversation, json_text, split_reasoning
from envfactory.export.formats import (
    TurnStates,
    llamafactory_dataset_info,
    llamafactory_row,
    openai_record,
    rl_rows,
    sft_row,
    task_tools,
    trl_record,
    verl_record,
)
from envfactory.export.hygiene import deduplicate, diversity, query_text
from envfactory.export.pipeline import ExportInputs, ExportResult, build_export
from envfactory.export.render import (
    ChatRenderer,
    check_row,
    rendered_calls,
    smollm2_tools_template,
    template_messages,
)
from envfactory.export.splits import (
    assign_splits,
    chain_template,
    heldout_environments,
    heldout_unseen,
    leakage,
)

__all__ = [
    "ChatRenderer",
    "ExportInputs",
    "ExportResult",
    "ExportRowError",
    "TurnStates",
    "assign_splits",
    "build_export",
    "chain_template",
    "check_row",
    "conversation",
    "deduplicate",
    "diversity",
    "heldout_environments",
    "heldout_unseen",
    "json_text",
    "leakage",
    "llamafactory_dataset_info",
    "llamafactory_row",
    "openai_record",
    "query_text",
    "rendered_calls",
    "rl_rows",
    "sft_row",
    "smollm2_tools_template",
    "split_reasoning",
    "task_tools",
    "template_messages",
    "trl_record",
    "verl_record",
]
