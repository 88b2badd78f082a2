"""BFCL v3 multi-turn (all five categories) through envfactory's runtime.

Contract:
- Data and backend classes come from the installed `nvidia-bfcl==26.3` (import name `bfcl`; install with
  `pip install --no-deps nvidia-bfcl==26.3 mpmath`). Without it, `require_bfcl()` raises
  `BenchmarkMissingError` saying how to install it. Nothing of the benchmark is vendored.
- Each backend class is an environment (`bfcl_<class>`, tools under their own names: BFCL's are
  globally unique) built from the adapter toolkits of `envfactory.eval.bfcl_toolkit`. By default
  they run in a sandbox worker (`bfcl_environments(sandbox=pool)`), because the backends evaluate
  model-provided values; `trusted=True` runs them in-process and is for benchmark-data-only work
  (gold replay, agreement runs, speed measurements).
- Categories: `base`, `miss_func`, `miss_param`, `long_context`, `composite`, with the official
  semantics: the long-context scenarios are loaded exactly when BFCL's checker loads them (the entry's
  category contains `long_context` or `composite`); a turn whose gold list is empty (a missing parameter
  or a missing function: the model should ask, not act) is executed but not checked.
- Every entry becomes a Task v1: scripted turns (an empty turn is the one where BFCL hands back a
  missing function), per-turn `available_tools` for missing-function entries (the held-out tools are
  absent from every turn before the one that restores them), gold calls parsed from BFCL's call strings
  with `ast` (literals only; positional arguments mapped by the tool's parameter order; never eval).
  An entry whose gold call does not parse (17 strings of 16 composite entries in 26.3) cannot be
  expressed: `to_task` raises `UnexpressibleTaskError` naming the entry, turn, string and reason, and
  `load_tasks` lists such entries as skipped while the rest of the category loads. That data half
  (`Call`, `BfclEntry`, `load_entries`, `parse_call`, `render_call`, `parameter_order`, `to_task`,
  `load_tasks`, `require_bfcl`, `env_name`, the categories and both errors) lives in
  `envfactory.eval.bfcl_data` and is re-exported here unchanged; it imports nothing from this module.
- `official_compat=True` (the default for benchmark scoring) makes `execute` behave like BFCL's
  executor where our runtime is stricter: a held-out function called before the turn that restores it
  runs (BFCL's executor knows every method of the instance; only the prompt hides it); a tool no
  backend has fails with Python's `name '…' is not defined`; and, on environments built with
  `bfcl_environments(official_compat=True)`, arguments our schema refuses (an id the docs type as
  integer passed as a string, an undocumented keyword, a left-out required one) reach the backend unchecked, as `eval` passes
  them. Those compat environments carry one unchecked-call tool per backend and are for scoring
  replays only, never offered to an agent.
- `execute` replays per-turn calls through a session group and records, per turn, each result as the
  text BFCL's executor shows and the public attributes of every backend (the state checker's view).
- `check` reproduces BFCL's multi-turn checker: for each turn with gold calls, the model's turn must be
  non-empty, every backend's public attributes must equal the gold execution's, and the gold results of
  that turn must all occur (as a multiset) among the model's results so far. Verdicts carry BFCL's
  `error_type` names.
- BFCL's own checker, the corruption classes and the agreement measurement live in
  `envfactory.eval.bfcl_agreement` (`official_check` is only ever given benchmark data).
- This module holds the environments (`bfcl_environments`), the replay (`execute`, `execute_all`,
  `gold_turns`) and the checking (`check`, `score`, `reward`).
"""

from __future__ import annotations

import functools
import importlib
import json
import typing
from collections import Counter
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import orjson

from envfactory.eval.bfcl_data import (
    BFCL_VERSION,
    CATEGORIES,
    BfclEntry,
    Call,
    Category,
    LoadedCategory,
    MalformedCallError,
    UnexpressibleTaskError,
    _toolkit_module,
    env_name,
    load_entries,
    load_tasks,
    parameter_order,
    parse_call,
    render_call,
    require_bfcl,
    to_task,
)
from envfactory.eval.errors import BenchmarkMissingError
from envfactory.runtime import Environment, SessionGroup, load_env, open_group
from envfactory.runtime.sandbox import SandboxBackend, SandboxPool
from envfactory.spec import EnvMeta, Reward, RewardComponent, Task
from envfactory.spec.env import PythonImplementation
from envfactory.spec.python_env import PythonEnvSource
from envfactory.store import write_atomic, write_text_atomic

__all__ = [
    "BFCL_VERSION",
    "CATEGORIES",
    "BenchmarkMissingError",
    "BfclEntry",
    "Call",
    "Category",
    "Execution",
    "LoadedCategory",
    "MalformedCallError",
    "UnexpressibleTaskError",
    "Verdict",
    "bfcl_environments",
    "check",
    "env_name",
    "execute",
    "execute_all",
    "gold_turns",
    "load_entries",
    "load_tasks",
    "parameter_order",
    "parse_call",
    "render_call",
    "require_bfcl",
    "reward",
    "score",
    "to_task",
]

ERROR_PREFIX = "Error during execution: "


# -- environments ----------------------------------------------------------------------------------------
def _meta(backend: str) -> EnvMeta:
    return EnvMeta(
        name=env_name(backend), version="26.3.0", domain="other",
        description=f"BFCL v3 multi-turn backend {backend}, adapted from the installed nvidia-bfcl package.",
    )


def bfcl_environments(
    *, sandbox: SandboxPool | None = None, trusted: bool = False, workdir: Path | None = None,
    backends: Sequence[str] | None = None, official_compat: bool = False,
) -> dict[str, Environment]:
    """Environments of the BFCL backends, by environment name.

    Sandboxed (the default, `sandbox=` a pool and `workdir=` a directory for the generated environment
    directories) or, only with `trusted=True`, in-process (`eval.bfcl_live`: the same specs, state JSON
    and hashes as the toolkits' python environments, with live backend instances). `official_compat` adds each backend's
    unchecked-call tool (`bfcl_toolkit.raw_call_tool`), for scoring replays only: never give these
    environments to an agent.
    """
    kit = _toolkit_module()
    names = list(backends or kit.BACKENDS)
    suffix = "CompatToolkit" if official_compat else "Toolkit"
    if trusted:
        live = importlib.import_module("envfactory.eval.bfcl_live")
        return {env_name(b): live.live_environment(getattr(kit, f"{b}{suffix}"), _meta(b)) for b in names}
    if sandbox is None or workdir is None:
        raise ValueError("BFCL backends evaluate model-provided values: pass sandbox= and workdir=, or trusted=True")
    source = resources.files("envfactory.eval").joinpath("bfcl_toolkit.py").read_bytes()
    envs = {}
    for backend in names:
        directory = Path(workdir) / (env_name(backend) + ("-compat" if official_compat else ""))
        directory.mkdir(parents=True, exist_ok=True)
        document = PythonEnvSource(
            meta=_meta(backend),
            implementation=PythonImplementation(module="toolkit.py", class_name=f"{backend}{suffix}", trusted=False),
        )
        # Atomic: a run killed mid-write (or a second run sharing the workdir) never loads half a file.
        write_text_atomic(directory / "env.json", document.model_dump_json(indent=1))
        write_atomic(directory / "toolkit.py", source)
        envs[env_name(backend)] = load_env(directory, sandbox=sandbox)
    return envs


# -- execution and checking ---------------------------------------------------------------------------------
@dataclass
class Execution:
    """What replaying per-turn calls produced: results as BFCL shows them and per-turn backend attributes.

    `state_hashes` is the group's state hash after each call that ran. On in-process live environments
    (`eval.bfcl_live`, whose states hash only when read) and sandboxed ones (where hashing a session whose
    deferred load is unanswered costs a round trip; `_hashes_lazily`) they are computed lazily unless
    `execute` was asked for them: the first read replays the same calls once more with hashing on (replays
    are deterministic), so a replay that only checks verdicts never hashes a state. That replay needs the
    environments still usable (a sandbox pool still open). Elsewhere they are recorded as the calls run.
    """

    results: list[list[str]] = field(default_factory=list)
    attributes: list[dict[str, Any]] = field(default_factory=list)
    changed: list[list[bool]] = field(default_factory=list)
    hashes: list[str] | None = field(default=None, repr=False, compare=False)
    rehash: Callable[[], list[str]] | None = field(default=None, repr=False, compare=False)

    @property
    def state_hashes(self) -> list[str]:
        """The group's state hash after each call that ran (see the class docstring)."""
        if self.hashes is None:
            self.hashes = self.rehash() if self.rehash is not None else []
            self.rehash = None
        return self.hashes


def _render(result: Any) -> str:
    if result.error is not None:
        return f"{ERROR_PREFIX}{result.error.message}"
    return result.output if isinstance(result.output, str) else json.dumps(result.output)


class _Attributes:
    """Each backend's public attributes at a turn's end, read from a session only when it made calls since
    the last read (a state changes only through calls; a sandboxed read is a round trip to its worker)."""

    def __init__(self, group: SessionGroup, initial: dict[str, Any]) -> None:
        self._sessions = group.sessions
        # A copy: the execution's attributes are the caller's to keep, the task's initial state is not.
        self._seen = {name: (0, orjson.loads(orjson.dumps(initial[name]["attributes"]))) for name in self._sessions
                      if isinstance(initial.get(name), dict) and "attributes" in initial[name]}

    def read(self) -> dict[str, Any]:
        out = {}
        for name, session in self._sessions.items():
            count = session.call_count
            seen = self._seen.get(name)
            if seen is None or seen[0] != count:
                seen = self._seen[name] = (count, session.state_json()["attributes"])
            out[name] = seen[1]
        return out


def _attributes(group: SessionGroup) -> dict[str, Any]:
    return {name: s.state_json()["attributes"] for name, s in group.sessions.items()}


@functools.lru_cache(maxsize=1)
def _raw_tools() -> dict[str, str]:
    """tool -> its backend's unchecked-call tool (immutable data from the installed package)."""
    kit = _toolkit_module()
    return {doc["name"]: kit.raw_call_tool(b) for b in kit.BACKENDS for doc in kit.function_docs(b)}


def _run(group: SessionGroup, call: Call, official_compat: bool, planned: Sequence[Call] = (), after: int = 0) -> str:
    """One call as BFCL's executor shows its result. With `official_compat`, a tool the group does not
    have fails as Python's NameError does, and arguments our schema refuses (a string where the docs say
    integer, an undocumented keyword) go to the backend unchecked, as BFCL's `eval` passes them.
    `planned[after:]`: the calls planned after this one (`SessionGroup.plan`); an unchecked retry is planned
    with those of them its backend will run, so the retry does not cost that backend its plan."""
    result = group.call(call.name, call.arguments)
    if not official_compat or result.error is None:
        return _render(result)
    if result.error.kind == "unknown_tool":
        return f"{ERROR_PREFIX}name '{call.name}' is not defined"
    raw = _raw_tools().get(call.name)
    if result.error.kind == "invalid_arguments" and raw is not None:
        unchecked_arguments = {"method": call.name, "arguments": call.arguments}
        if after < len(planned):
            route = group.route(call.name)
            env = route[0] if route is not None else None
            group.plan([(raw, unchecked_arguments)] + [(c.name, c.arguments) for c in planned[after:]
                                                      if (r := group.route(c.name)) is not None and r[0] == env])
        unchecked = group.call(raw, unchecked_arguments)
        if unchecked.error is None or unchecked.error.kind != "unknown_tool":  # a compat environment
            return _render(unchecked)
    return _render(result)


def _allowed(task: Task, index: int, call: Call) -> bool:
    """Whether `call` is available in turn `index` (a turn past the task's, or without a list, allows all)."""
    allowed = task.turns[index].available_tools if index < len(task.turns) else None
    return allowed is None or call.name in allowed


def _hashes_lazily(backend: Any) -> bool:
    """Whether a replay on `backend` leaves per-call state hashes to a second replay on first read (`Execution`):
    a live in-process backend builds a state only when read (`lazy_hashes`); on a sandboxed one, hashing the group
    after a call reads the hash of every session, and a session not called yet has its deferred load unanswered,
    so each would cost a round trip of its own instead of going out with its first call."""
    return bool(getattr(backend, "lazy_hashes", False)) or isinstance(backend, SandboxBackend)


def execute(
    task: Task, envs: dict[str, Environment], turns: Sequence[Sequence[Call]], *, track_changes: bool = False,
    official_compat: bool = False, hash_states: bool = False,
) -> Execution:
    """Run `turns` (one list of calls per task turn) from the task's initial states in a fresh group.

    With `track_changes`, `Execution.changed` says which calls changed some backend's public attributes
    (one state read before and after each call). A call of a tool held out in its turn gives BFCL's
    `name '…' is not defined` text and changes nothing; with `official_compat` it runs, as in BFCL's
    executor (which hides held-out functions from the prompt only), and calls go through `_run`'s
    official-compat path (module docstring). `hash_states` hashes the group's state after each call now,
    as happens anyway unless every environment is a live in-process or a sandboxed one (see `Execution`).
    """
    replay = _replay(task, envs, turns, track_changes, official_compat, hash_states)
    next(replay)
    return _finish(replay)


def execute_all(
    runs: Sequence[tuple[Task, Sequence[Sequence[Call]]]], envs: dict[str, Environment], *,
    official_compat: bool = False, window: int = 32,
) -> list[Execution]:
    """`execute` of each (task, turns) pair, in order, with the same results. Each window of `window` tasks is
    opened and planned before the first of them runs: a sandboxed backend's worker then gets the window's
    loads and planned calls in one write and answers them one after another, instead of being woken once per
    task (on a busy machine each wake-up costs far more than the calls; docs/eval.md, "Speed")."""
    out: list[Execution] = []
    for start in range(0, len(runs), window):
        replays: list[Generator[None, None, Execution]] = []
        try:
            for task, turns in runs[start : start + window]:
                replay = _replay(task, envs, turns, False, official_compat, False)
                next(replay)
                replays.append(replay)
            out.extend(_finish(replay) for replay in replays)
        finally:
            for replay in replays:
                replay.close()
    return out


def _finish(replay: Generator[None, None, Execution]) -> Execution:
    """Run an opened and planned replay (`_replay`) to its end."""
    try:
        next(replay)
    except StopIteration as done:
        return typing.cast(Execution, done.value)
    raise AssertionError("a replay pauses once, after its plan")


def _replay(task: Task, envs: dict[str, Environment], turns: Sequence[Sequence[Call]], track_changes: bool,
            official_compat: bool, hash_states: bool) -> Generator[None, None, Execution]:
    """`execute` in two steps: open the group and plan its calls, pause, then run them (see `execute`)."""
    chosen = [envs[ref.name] for ref in task.envs]
    hash_states = hash_states or not all(_hashes_lazily(env.backend) for env in chosen)
    out = Execution(hashes=[] if hash_states else None)
    if not hash_states:
        out.rehash = functools.partial(_state_hashes, task, envs, turns, official_compat)
    # Deferred loads: a sandboxed session's initial state goes out with its first call (one round trip for both);
    # a state that does not fit still raises `SpecError` (`StateLoadError`) out of `execute`.
    with open_group(chosen, task.initial_state, seed=task.seed, naming="plain", defer_loads=True) as group:
        attributes = _Attributes(group, task.initial_state)
        # Every call that will run, in order: planned at once (sandboxed: each backend's calls of the whole
        # trajectory in one round trip; reading attributes between turns needs none).
        runs = [call for index, calls in enumerate(turns) for call in calls
                if official_compat or _allowed(task, index, call)]
        if not track_changes:
            group.plan([(call.name, call.arguments) for call in runs])
        yield  # opened and planned: `execute_all` opens a window of tasks this far before running any
        position = 0
        for index, calls in enumerate(turns):
            results, changed = [], []
            for call in calls:
                if not official_compat and not _allowed(task, index, call):
                    # A held-out tool does not exist for the model in this turn (BFCL's eval: NameError).
                    results.append(f"{ERROR_PREFIX}name '{call.name}' is not defined")
                    changed.append(False)
                    continue
                position += 1
                before = _attributes(group) if track_changes else None
                results.append(_run(group, call, official_compat, () if track_changes else runs, position))
                if out.hashes is not None:
                    out.hashes.append(group.hash())
                changed.append(track_changes and _attributes(group) != before)
            out.results.append(results)
            out.changed.append(changed)
            out.attributes.append(attributes.read())
    return out


def _state_hashes(task: Task, envs: dict[str, Environment], turns: Sequence[Sequence[Call]],
                  official_compat: bool) -> list[str]:
    return execute(task, envs, turns, official_compat=official_compat, hash_states=True).state_hashes


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
    *, official_compat: bool = False,
) -> Verdict:
    """Score a model's per-turn call strings (parsed, never evaluated); a malformed one fails the task
    with its reason, as does a wrong number of turns. `official_compat` as in `execute`."""
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
    return check(task, execute(task, envs, parsed, official_compat=official_compat), gold, parsed)


def reward(verdict: Verdict) -> Reward:
    """The verdict as a reward (1 when BFCL would count the entry correct, else 0, with the reason)."""
    detail = "" if verdict.valid else f"turn {verdict.turn}: {verdict.error_type}: {verdict.message}"
    return Reward.combine([RewardComponent(name="bfcl_multi_turn", score=1.0 if verdict.valid else 0.0,
                                           detail=detail)])


def gold_turns(task: Task) -> list[list[Call]]:
    """The task's gold calls per turn."""
    return [[Call(c.tool, dict(c.arguments)) for c in turn.gold_calls] for turn in task.turns]
