"""Round trips with the consumers' own code.

- `datasets` (in the project's venv): every Parquet and JSONL file loads and compares equal to what was
  written, tool-call arguments included (they are JSON text, so Arrow cannot merge them).
- LlamaFactory 0.9.5 and veRL 0.9.1 run in their own venvs made by `scripts/consumers`; these tests skip,
  saying so, when the venvs are absent. The check of the fields the consumers document always runs.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from tests.export.conftest import Exported

datasets = pytest.importorskip("datasets", reason="datasets is part of the test extra: pip install -e '.[test]'")

REPO = Path(__file__).resolve().parents[2]
CONSUMERS = Path(os.environ.get("ENVFACTORY_CONSUMERS", REPO / ".consumers"))
HERE = Path(__file__).parent / "consumers"

# Fields the consumers document and read (LlamaFactory: data/README.md "sharegpt" with tools; veRL:
# RLHFDataset.__getitem__ and ToolAgentLoop.run; TRL: GRPOTrainer's conversational `prompt`).
LLAMAFACTORY_ROW = {"conversations", "system", "tools"}
LLAMAFACTORY_INFO = {"file_name", "formatting", "columns", "tags"}
VERL_ROW = {"data_source", "prompt", "ability", "reward_model", "extra_info", "agent_name"}
VERL_EXTRA = {"index", "tools_kwargs", "need_tools_kwargs", "tool_selection"}
TRL_ROW = {"prompt"}
OPENAI_ROW = {"messages", "tools"}


def _jsonl(path: Path) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_documented_fields_are_present_in_every_format(exported: Exported) -> None:
    root = exported.root
    for path in root.glob("openai/*[!x].jsonl"):
        assert all(set(r) == OPENAI_ROW for r in _jsonl(path))
    for path in root.glob("llamafactory/*.jsonl"):
        rows = _jsonl(path)
        assert rows and all(set(r) == LLAMAFACTORY_ROW for r in rows)
        assert all(isinstance(json.loads(r["tools"]), list) for r in rows)
    info = json.loads((root / "llamafactory/dataset_info.json").read_text())
    for entry in info.values():
        assert set(entry) == LLAMAFACTORY_INFO and entry["formatting"] == "sharegpt"
        assert (root / "llamafactory" / entry["file_name"]).is_file()
        assert entry["columns"] == {"messages": "conversations", "system": "system", "tools": "tools"}
    for path in root.glob("verl/*.parquet"):
        rows = pq.read_table(path).to_pylist()
        assert rows and all(set(r) >= VERL_ROW and set(r["extra_info"]) >= VERL_EXTRA for r in rows)
    for path in root.glob("trl/*.parquet"):
        assert set(pq.read_table(path).schema.names) >= TRL_ROW


def test_every_file_loads_with_datasets_and_equals_what_was_written(exported: Exported) -> None:
    root = exported.root
    checked = 0
    for entry in exported.manifest.files:
        path = root / entry.path
        if path.suffix == ".parquet":
            loaded = datasets.load_dataset("parquet", data_files=str(path), split="train")
            assert loaded.to_list() == pq.read_table(path).to_pylist()
        elif path.suffix == ".jsonl" and entry.format in ("openai", "llamafactory"):
            loaded = datasets.load_dataset("json", data_files=str(path), split="train")
            written = _jsonl(path)
            assert len(loaded) == len(written)
            # Arrow fills absent optional keys with None; dropping them gives back exactly what was written
            assert [_without_none(r) for r in loaded.to_list()] == [_without_none(r) for r in written]
        else:
            continue
        checked += 1
    assert checked >= 8


def _without_none(value):  # type: ignore[no-untyped-def]
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value


def test_tool_call_arguments_survive_parquet_unchanged(exported: Exported) -> None:
    split = next(s for s in ("train", "validation", "test", "heldout") if (exported.root / f"hf/data/sft-{s}.parquet").is_file())
    loaded = datasets.load_dataset("parquet", data_files=str(exported.root / f"hf/data/sft-{split}.parquet"), split="train")
    openai = _jsonl(exported.root / f"openai/{split}.jsonl")
    for row, original in zip(loaded, openai, strict=True):
        got = [json.loads(c["function"]["arguments"]) for m in row["messages"] for c in (m["tool_calls"] or [])]
        want = [json.loads(c["function"]["arguments"]) for m in original["messages"] for c in m.get("tool_calls", [])]
        assert got == want and got


def _venv_python(name: str) -> Path:
    python = CONSUMERS / name / "bin" / "python"
    if not (CONSUMERS / name / ".complete").is_file():
        pytest.skip(f"the {name} venv is absent ({CONSUMERS / name}); make it with `scripts/consumers {name}`")
    return python


def _run(python: Path, *args: str) -> dict:  # type: ignore[type-arg]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    done = subprocess.run([str(python), *args], capture_output=True, text=True, timeout=300, env=env, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_llamafactory_loads_every_row_and_renders_every_call(exported: Exported) -> None:
    python = _venv_python("llamafactory")
    report = _run(python, str(HERE / "llamafactory_roundtrip.py"), str(exported.root / "llamafactory"))
    assert report["version"] == "0.9.5"
    written = {e.path.split("/")[-1]: e.rows for e in exported.manifest.files if e.format == "llamafactory"}
    assert set(report["splits"]) == set(written)
    for name, split in report["splits"].items():
        assert split["rows"] == split["kept"] == split["tools_ok"] == written[name]
        assert split["calls"] > 0 and split["calls_survived"] == split["calls"]


def test_verl_reads_every_row_with_its_tools_and_episode(exported: Exported, tmp_path: Path) -> None:
    python = _venv_python("verl")
    report = _run(python, str(HERE / "verl_roundtrip.py"), str(exported.root / "verl"), str(tmp_path))
    assert report["version"] == "0.9.1"
    written = {e.path.split("/")[-1]: e.rows for e in exported.manifest.files if e.format == "verl"}
    assert {k: (v["rows"], v["usable"]) for k, v in report["splits"].items()} == {k: (n, n) for k, n in written.items()}
    assert all(tool["valid"] for tool in report["tools"].values()), report["tools"]
    # veRL's schema models keep only name/type/description/enum of each parameter: nested item schemas go.
    lost = {name: tool["dropped"] for name, tool in report["tools"].items() if tool["dropped"]}
    assert "shop__create_order" in lost
