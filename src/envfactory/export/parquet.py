"""Parquet encodings of exported rows, with explicit Arrow schemas (no inference).

Contract:
- Every table has a fixed schema, so each row keeps exactly the columns it was given: messages are a
  list of one struct type whose tool calls carry `arguments` as JSON text, and every free-form payload
  (tools, states, ground truth) is a string column. Inference would merge the keys of argument objects
  across rows into one struct and fill gaps with nulls, changing the calls.
- veRL's `extra_info.tools_kwargs` must be a mapping by tool name (ToolAgentLoop calls
  `tools_kwargs.get(name)`); its struct has one field per tool of the file, null where a row does not
  offer that tool (such a tool is outside that row's `tool_selection`, so veRL never looks it up).
- `parquet_bytes(table)` writes zstd-compressed Parquet to memory; equal rows give equal bytes with the
  same pyarrow version.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]

from envfactory.spec import JSONObject

FUNCTION = pa.struct([("name", pa.string()), ("arguments", pa.string())])
TOOL_CALL = pa.struct([("id", pa.string()), ("type", pa.string()), ("function", FUNCTION)])
MESSAGE = pa.struct([
    ("role", pa.string()), ("content", pa.string()), ("tool_calls", pa.list_(TOOL_CALL)),
    ("tool_call_id", pa.string()),
])
MESSAGES = pa.list_(MESSAGE)

SFT_SCHEMA = pa.schema([
    ("messages", MESSAGES), ("tools", pa.string()), ("row_id", pa.string()), ("task_id", pa.string()),
    ("trajectory_id", pa.string()), ("split", pa.string()), ("envs", pa.list_(pa.string())),
    ("domains", pa.list_(pa.string())),
])
TRL_SCHEMA = pa.schema([
    ("prompt", MESSAGES), ("tools", pa.string()), ("episode", pa.string()), ("ground_truth", pa.string()),
    ("task_id", pa.string()), ("turn", pa.int64()), ("split", pa.string()), ("envs", pa.list_(pa.string())),
])


def verl_schema(tool_names: Sequence[str]) -> pa.Schema:
    """veRL's RL table schema for a file whose rows offer `tool_names` (see the module contract)."""
    create = pa.struct([("create_kwargs", pa.struct([("episode", pa.string())]))])
    tools_kwargs = pa.struct([(name, create) for name in sorted(set(tool_names))]) if tool_names else pa.struct(
        [("none", pa.string())])
    extra = pa.struct([
        ("index", pa.int64()), ("split", pa.string()), ("task_id", pa.string()), ("turn", pa.int64()),
        ("need_tools_kwargs", pa.bool_()), ("tool_selection", pa.list_(pa.string())), ("tools_kwargs", tools_kwargs),
    ])
    return pa.schema([
        ("data_source", pa.string()), ("agent_name", pa.string()), ("prompt", MESSAGES), ("ability", pa.string()),
        ("reward_model", pa.struct([("style", pa.string()), ("ground_truth", pa.string())])),
        ("extra_info", extra),
    ])


def table(records: Sequence[JSONObject], schema: pa.Schema) -> pa.Table:
    """Rows as an Arrow table of exactly `schema` (a missing column is an error, not a null)."""
    names = set(schema.names)
    for index, record in enumerate(records):
        if set(record) != names:
            raise ValueError(f"row {index} has columns {sorted(record)}, the schema has {sorted(names)}")
    return pa.Table.from_pylist(list(records), schema=schema)


def parquet_bytes(data: pa.Table) -> bytes:
    """The table as Parquet bytes (zstd, statistics on, no pandas metadata)."""
    sink = io.BytesIO()
    pq.write_table(data, sink, compression="zstd", store_schema=True)
    return sink.getvalue()
