"""BFCL v3 multi-turn (base and missing-function) through envfactory's runtime.

Contract:
- Data and backend classes come from the installed `nvidia-bfcl==26.3` (import name `bfcl`; install with
  `pip install --no-deps nvidia-bfcl==26.3 mpmath`). Without it, `require_bfcl()` raises
  `BenchmarkMissingError` saying how to install it. Nothing of the benchmark is vendored.
- Each backend class is an environment (`bfcl_<class>`, tools under their own names: BFCL's are
  globally unique) built from the adapter toolkits of `envfactory.eval.bfcl_toolkit`. By default
  they run in a sandbox worker (`bfcl_environments(sandbox=pool)`), because the backends evaluate
  model-provided values; `trusted=True` runs them in-process and is for benchmark-data-only work
  (gold replay, agreement runs, speed measurements).
- Every entry becomes a Task v1: scripted turns (an empty turn is the one where BFCL hands back a
  missing function), per-turn `available_tools` for missing-function entries (the held-out tools are
  absent from every turn before the one that restores them), gold calls parsed from BFCL's call strings
  with `ast` (literals only; positional arguments mapped by the tool's parameter order; never eval).
- `execute` replays per-turn calls through a session group and records, per turn, each result as the
  text BFCL's executor shows and the public attributes of every backend (the state checker's view).
- `check` reproduces BFCL's multi-turn checker: for each turn with gold calls, the model's turn must be
  non-empty, every backend's public attributes must equal the gold execution's, and the gold results of
  that turn must all occur (as a multiset) among the model's results so far. Verdicts carry BFCL's
  `error_type` names.
- `official_check` calls BFCL's own `multi_turn_checker` in-process. It `eval`s call strings, so it is
  only ever given strings rendered from benchmark data (gold calls and their corruptions), never model
  output; it keeps instances in its module globals, which are removed after every call.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import json
import random
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from envfactory.errors import EnvFactoryError
from envfactory.eval.corruption import altered
from envfactory.eval.errors import BenchmarkMissingError
from envfactory.runtime import Environment, SessionGroup, load_env, open_group
from envfactory.runtime.sandbox import SandboxPool
from envfactory.runtime.toolkit import python_environment
from envfactory.spec import (
    EnvMeta,
    EnvRef,
    GoldCall,
    Reward,
    RewardComponent,
    ScriptedUser,
    Task,
    TaskOrigin,
    Turn,
)
from envfactory.spec.env import PythonImplementation
from envfactory.spec.python_env import PythonEnvSource
from envfactory.store import write_atomic, write_text_atomic

__all__ = [
    "BFCL_VERSION",
    "CATEGORIES",
    "CORRUPTIONS",
    "Agreement",
    "BenchmarkMissingError",
    "BfclEntry",
    "Call",
    "Execution",
    "MalformedCallError",
    "Verdict",
    "agreement",
    "bfcl_environments",
    "check",
    "corrupt",
    "env_name",
    "execute",
    "load_entries",
    "official_check",
    "parameter_order",
    "parse_call",
    "render_call",
    "require_bfcl",
    "reward",
    "score",
    "to_task",
]

BFCL_VERSION = "26.3"
INSTALL_HINT = "pip install --no-deps nvidia-bfcl==26.3 mpmath"
Category = Literal["base", "miss_func"]
CATEGORIES: tuple[Category, ...] = ("base", "miss_func")
CORRUPTIONS = ("drop_call", "alter_argument", "reorder_calls", "add_write")
ERROR_PREFIX = "Error during execution: "


class MalformedCallError(EnvFactoryError):
    """A call string that is not `name(literal, key=literal, ...)`."""


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


# -- data ----------------------------------------------------------------------------------------------
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
    """BFCL v3 multi-turn entries of one category with their ground truth (from the installed package)."""
    require_bfcl()
    if category not in CATEGORIES:
        raise ValueError(f"unknown BFCL category {category!r}; expected one of {CATEGORIES}")
    name = f"BFCL_v3_multi_turn_{category}.json"
    answers = {row["id"]: row["ground_truth"] for row in _data_lines("possible_answer", name)}
    return [
        BfclEntry(
            id=row["id"], category=category, questions=row["question"], initial_config=row["initial_config"],
            involved_classes=row["involved_classes"], missed_function=row.get("missed_function", {}),
            ground_truth=answers[row["id"]],
        )
        for row in _data_lines(name)
    ]


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
    """One BFCL entry as Task v1 (scripted turns; per-turn tool availability for missing functions)."""
    kit = _toolkit_module()
    order = order if order is not None else parameter_order()
    long_context = False  # base and miss_func never use the long-context scenarios
    initial = {
        env_name(backend): kit.initial_state(backend, entry.initial_config.get(backend, {}), long_context)
        for backend in entry.involved_classes
    }
    all_tools = sorted(doc["name"] for backend in entry.involved_classes for doc in kit.function_docs(backend))
    restored_at = {name: int(turn) for turn, names in entry.missed_function.items() for name in names}
    turns = []
    for index, (messages, gold) in enumerate(zip(entry.questions, entry.ground_truth, strict=True)):
        held_out = {name for name, at in restored_at.items() if index < at}
        turns.append(Turn(
            user=ScriptedUser(text="\n".join(str(m.get("content", "")) for m in messages if m.get("role") == "user")),
            available_tools=[t for t in all_tools if t not in held_out] if restored_at else None,
            gold_calls=[GoldCall(tool=c.name, arguments=c.arguments) for c in (parse_call(s, order) for s in gold)],
        ))
    return Task.create(
        envs=[EnvRef(name=env_name(b), version="26.3.0") for b in entry.involved_classes],
        tool_naming="plain",
        initial_state=initial,
        turns=turns,
        origin=TaskOrigin(source="bfcl", source_id=entry.id, explicit_query=_text(turns[0]) if turns else "",
                          domain=entry.category),
    )


def _text(turn: Turn) -> str:
    return turn.user.text if isinstance(turn.user, ScriptedUser) else turn.user.instructions


# -- environments ----------------------------------------------------------------------------------------
def _meta(backend: str) -> EnvMeta:
    return EnvMeta(
        name=env_name(backend), version="26.3.0", domain="other",
        description=f"BFCL v3 multi-turn backend {backend}, adapted from the installed nvidia-bfcl package.",
    )


def bfcl_environments(
    *, sandbox: SandboxPool | None = None, trusted: bool = False, workdir: Path | None = None,
    backends: Sequence[str] | None = None,
) -> dict[str, Environment]:
    """Environments of the BFCL backends, by environment name.

    Sandboxed (the default, `sandbox=` a pool and `workdir=` a directory for the generated environment
    directories) or, only with `trusted=True`, in-process.
    """
    kit = _toolkit_module()
    names = list(backends or kit.BACKENDS)
    if trusted:
        return {
            env_name(b): python_environment(getattr(kit, f"{b}Toolkit"), _meta(b)) for b in names
        }
    if sandbox is None or workdir is None:
        raise ValueError("BFCL backends evaluate model-provided values: pass sandbox= and workdir=, or trusted=True")
    source = resources.files("envfactory.eval").joinpath("bfcl_toolkit.py").read_bytes()
    envs = {}
    for backend in names:
        directory = Path(workdir) / env_name(backend)
        directory.mkdir(parents=True, exist_ok=True)
        document = PythonEnvSource(
            meta=_meta(backend),
            implementation=PythonImplementation(module="toolkit.py", class_name=f"{backend}Toolkit", trusted=False),
        )
        # Atomic: a run killed mid-write (or a second run sharing the workdir) never loads half a file.
        write_text_atomic(directory / "env.json", document.model_dump_json(indent=1))
        write_atomic(directory / "toolkit.py", source)
        envs[env_name(backend)] = load_env(directory, sandbox=sandbox)
    return envs


# -- execution and checking ---------------------------------------------------------------------------------
@dataclass
class Execution:
    """What replaying per-turn calls produced: results as BFCL shows them and per-turn backend attributes."""

    results: list[list[str]] = field(default_factory=list)
    attributes: list[dict[str, Any]] = field(default_factory=list)
    state_hashes: list[str] = field(default_factory=list)
    changed: list[list[bool]] = field(default_factory=list)


def _render(result: Any) -> str:
    if result.error is not None:
        return f"{ERROR_PREFIX}{result.error.message}"
    return result.output if isinstance(result.output, str) else json.dumps(result.output)


def _attributes(group: SessionGroup) -> dict[str, Any]:
    return {name: s.state_json()["attributes"] for name, s in group.sessions.items()}


def execute(
    task: Task, envs: dict[str, Environment], turns: Sequence[Sequence[Call]], *, track_changes: bool = False
) -> Execution:
    """Run `turns` (one list of calls per task turn) from the task's initial states in a fresh group.

    With `track_changes`, `Execution.changed` says which calls changed some backend's public attributes
    (one state read before and after each call).
    """
    chosen = [envs[ref.name] for ref in task.envs]
    out = Execution()
    with open_group(chosen, task.initial_state, seed=task.seed, naming="plain") as group:
        for index, calls in enumerate(turns):
            allowed = task.turns[index].available_tools if index < len(task.turns) else None
            results, changed = [], []
            for call in calls:
                if allowed is not None and call.name not in allowed:
                    # A held-out tool does not exist for the model in this turn (BFCL's eval: NameError).
                    results.append(f"{ERROR_PREFIX}name '{call.name}' is not defined")
                    changed.append(False)
                    continue
                before = _attributes(group) if track_changes else None
                results.append(_render(group.call(call.name, call.arguments)))
                out.state_hashes.append(group.hash())
                changed.append(track_changes and _attributes(group) != before)
            out.results.append(results)
            out.changed.append(changed)
            out.attributes.append(_attributes(group))
    return out


@dataclass(frozen=True)
class Verdict:
    """BFCL's checker verdict on one entry: valid, or the namespaced error type, the turn it happened at
    and a message."""
    valid: bool
    error_type: str = ""
    turn: int | None = None
    message: str = ""


def check(task: Task, model: Execution, gold: Execution, model_turns: Sequence[Sequence[Call]]) -> Verdict:
    """BFCL's multi-turn check of a model execution against the gold execution (see module docstring)."""
    so_far: list[str] = []
    for index, turn in enumerate(task.turns):
        so_far.extend(model.results[index])
        if not turn.gold_calls:
            continue
        if not model_turns[index]:
            return Verdict(False, "multi_turn:empty_turn_model_response", index, "no calls in a turn that needs some")
        for env, expected in gold.attributes[index].items():
            if model.attributes[index][env] != expected:
                return Verdict(False, "multi_turn:instance_state_mismatch", index, f"{env} differs from gold")
        missing = Counter(gold.results[index]) - Counter(so_far)
        if missing:
            return Verdict(False, "multi_turn:execution_response_mismatch", index,
                           f"{sum(missing.values())} gold result(s) missing")
    return Verdict(True)


def score(
    task: Task, envs: dict[str, Environment], model_turns: Sequence[Sequence[str]],
    gold: Execution | None = None, order: dict[str, tuple[str, list[str]]] | None = None,
) -> Verdict:
    """Score a model's per-turn call strings (parsed, never evaluated); a malformed one fails the task
    with its reason, as does a wrong number of turns."""
    if len(model_turns) != len(task.turns):
        return Verdict(False, "multi_turn:malformed_output", None,
                       f"{len(model_turns)} turns of calls for a task of {len(task.turns)} turns")
    parsed: list[list[Call]] = []
    for index, texts in enumerate(model_turns):
        try:
            parsed.append([parse_call(text, order if order is not None else parameter_order()) for text in texts])
        except MalformedCallError as exc:
            return Verdict(False, "multi_turn:malformed_output", index, str(exc))
    gold = gold or execute(task, envs, gold_turns(task))
    return check(task, execute(task, envs, parsed), gold, parsed)


def reward(verdict: Verdict) -> Reward:
    """The verdict as a reward (1 when BFCL would count the entry correct, else 0, with the reason)."""
    detail = "" if verdict.valid else f"turn {verdict.turn}: {verdict.error_type}: {verdict.message}"
    return Reward.combine([RewardComponent(name="bfcl_multi_turn", score=1.0 if verdict.valid else 0.0,
                                           detail=detail)])


def gold_turns(task: Task) -> list[list[Call]]:
    return [[Call(c.tool, dict(c.arguments)) for c in turn.gold_calls] for turn in task.turns]


# -- corruptions ------------------------------------------------------------------------------------------------
def corrupt(kind: str, turns: list[list[Call]], gold: Execution, seed: str) -> list[list[Call]] | None:
    """A seeded corruption of gold turns, or None when the class does not apply to this task."""
    rng = random.Random(f"{seed}:{kind}")
    positions = [(t, i) for t, calls in enumerate(turns) for i in range(len(calls))]
    out = [list(calls) for calls in turns]
    if kind == "drop_call":
        if not positions:
            return None
        t, i = rng.choice(positions)
        del out[t][i]
    elif kind == "alter_argument":
        candidates = [(t, i) for t, i in positions if turns[t][i].arguments]
        if not candidates:
            return None
        t, i = rng.choice(candidates)
        call = turns[t][i]
        key = rng.choice(sorted(call.arguments))
        out[t][i] = Call(call.name, {**call.arguments, key: altered(call.arguments[key])})
    elif kind == "reorder_calls":
        pairs = [(t, i) for t, calls in enumerate(turns) for i in range(len(calls) - 1)
                 if calls[i] != calls[i + 1]]
        if not pairs:
            return None
        t, i = rng.choice(pairs)
        out[t][i], out[t][i + 1] = out[t][i + 1], out[t][i]
    elif kind == "add_write":
        writes = [(t, i) for t, i in positions if gold.changed[t][i]]
        if not writes:
            return None
        t, i = rng.choice(writes)
        out[t].insert(i + 1, turns[t][i])  # the same state-changing call once more
    else:
        raise ValueError(f"unknown corruption {kind!r}; expected one of {CORRUPTIONS}")
    return out


# -- the official checker -----------------------------------------------------------------------------------
@contextlib.contextmanager
def _clean_official_globals(prefix: str) -> Iterator[None]:
    utils = importlib.import_module("bfcl.eval_checker.multi_turn_eval.multi_turn_utils")
    try:
        yield
    finally:
        for key in [k for k in vars(utils) if k.startswith(prefix)]:
            del vars(utils)[key]


def official_check(entry: BfclEntry, turns: Sequence[Sequence[str]]) -> dict[str, Any]:
    """BFCL's own multi-turn checker on call strings from benchmark data (never model output)."""
    require_bfcl()
    checker = importlib.import_module("bfcl.eval_checker.multi_turn_eval.multi_turn_checker")
    model_name = f"envfactory_agreement_{uuid.uuid4().hex}"
    with _clean_official_globals(model_name):
        decoded = [[list(calls)] if calls else [] for calls in turns]
        result: dict[str, Any] = checker.multi_turn_checker(
            decoded, entry.ground_truth, entry.raw, f"multi_turn_{entry.category}", model_name
        )
    return result


# -- agreement with the official checker ---------------------------------------------------------------------
@dataclass
class Agreement:
    """Per class (`gold` or a corruption): cases run, verdicts of each checker, cases where they agree."""

    cases: int = 0
    ours_valid: int = 0
    official_valid: int = 0
    agree: int = 0
    not_applicable: int = 0
    disagreements: list[str] = field(default_factory=list)


def agreement(
    entries: Sequence[BfclEntry], envs: dict[str, Environment], kinds: Sequence[str] = CORRUPTIONS
) -> dict[str, Agreement]:
    """Our checker vs BFCL's on every entry's gold calls and on each seeded corruption of them.

    Gold is replayed with the original call strings on BFCL's side and with the parsed calls on ours;
    corruptions are built on parsed calls and rendered back to strings for BFCL.
    """
    order = parameter_order()
    table = {kind: Agreement() for kind in ("gold", *kinds)}
    for entry in entries:
        task = to_task(entry, order)
        gold_calls = gold_turns(task)
        gold = execute(task, envs, gold_calls, track_changes=True)
        variants: list[tuple[str, list[list[Call]] | None, list[list[str]] | None]] = [
            ("gold", gold_calls, entry.ground_truth)
        ]
        variants += [(kind, corrupt(kind, gold_calls, gold, entry.id), None) for kind in kinds]
        for kind, turns, strings in variants:
            row = table[kind]
            if turns is None:
                row.not_applicable += 1
                continue
            ours = check(task, execute(task, envs, turns), gold, turns).valid
            theirs = bool(official_check(entry, strings or [[render_call(c) for c in t] for t in turns])["valid"])
            row.cases += 1
            row.ours_valid += ours
            row.official_valid += theirs
            if ours == theirs:
                row.agree += 1
            else:
                row.disagreements.append(entry.id)
    return table
