"""The trajectory stage: `run_synth_trajectories(config, workspace, deps) -> StageManifest`.

Inputs: `runs/<from_run>/synth-tasks/tasks.jsonl` (gated tasks; the stage must be complete).
Outputs under `runs/<from_run>/synth-trajectories/`: `items/<task-id>.json` (one `TrajectoryItem` per task,
written when the task is done), then `tasks.jsonl` (the tasks with their queries; for `rl` every task that
got a query, otherwise those with a verified trajectory), `trajectories.jsonl` (the selected, verified
trajectories), `funnel.json` (`TrajectoryFunnel`) and the stage manifest.

Per task: a persona and an explicit query (writer model), validated; a refined query with seeded
operators (when the preset refines), validated; k solver attempts on the refined query, each in a fresh
group from the task's initial state; when none verifies, k attempts on the explicit query (calibration: a
refined query is kept only if solvers still succeed on it). Selection by verification (`synth.solve`).
With a judge model (`deps.judge`), every attempt on a read-only task that ended with an answer is also
judged (`synth.judge`): the verdict is recorded on the attempt as its own component and in the funnel,
and only orders verified attempts of equal reward; it never makes an attempt verified.

The person's own steps (`synth.person`): in `sft-conv` and `rl`, gold calls of tools the environments'
specs mark as the account holder's (`EnvMeta.user_tools`) leave the agent's gold calls; the task marks
those tools (`Task.user_tools`: never offered to the agent), and the user simulator voices the task, is
told in its hidden intent what only it can do, and makes those calls itself. A chain of only such calls
is dropped (`person_only`). `sft-single` keeps the whole chain for the agent.

With `deps.executor` (and `deps.models`), tasks run as `exec` work items (`synth_trajectory`), each item
file written as it comes back; a task whose worker failed is not written (a resumed run retries it) and
the stage fails naming it.

Errors: a missing or unfinished task stage is a `StoreError` before any model call. Set-up failures of a
model (missing model, replay miss, unreachable endpoint) are raised: no answer was involved. Anything else
going wrong with one task is recorded on its item (`failed`, with the reason) and the run continues.
Deterministic: the same tasks, config, seed and model answers give byte-identical artifacts.
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from envfactory.agent import AgentSettings, UserSimulator
from envfactory.errors import StoreError
from envfactory.exec import Executor, Outcome
from envfactory.llm import (
    ChatRequest,
    ChatResponse,
    DependencyMissingError,
    EndpointUnreachableError,
    LLMClient,
    ModelIntegrityError,
    ModelNotInstalledError,
    ReplayMissError,
)
from envfactory.llm.workers import worker_client
from envfactory.runtime import Environment, load_env
from envfactory.spec import (
    GoldCall,
    StageManifest,
    Task,
    TaskQueries,
    ToolSpec,
    Trajectory,
    json_leaves,
    sha256_hex,
)
from envfactory.spec.synth_trajectories import (
    QueryRecord,
    SolverAttempt,
    SynthTrajectoriesConfig,
    TrajectoryItem,
)
from envfactory.spec.work_items import TrajectoryWorkItem, WorkerModel
from envfactory.store import StageDir, Workspace
from envfactory.synth.judge import judge_attempt, judge_prompt_hash, needs_judge
from envfactory.synth.overspec import score_overspecification
from envfactory.synth.person import PersonSplit, person_note, person_tools
from envfactory.synth.queries import (
    REFINER_SYSTEM,
    WRITER_SYSTEM,
    QueryFailure,
    choose_operators,
    knowable_values,
    refine_query,
    write_query,
)
from envfactory.synth.solve import SOLVER_POLICY, attempt, select, solver_task, split_turns
from envfactory.synth.trajectory_funnel import build_funnel

STAGE = "synth-trajectories"
_SETUP_ERRORS = (
    ReplayMissError, ModelNotInstalledError, ModelIntegrityError, DependencyMissingError, EndpointUnreachableError,
)
TASK_STAGE = "synth-tasks"


class CountingClient:
    """An `LLMClient` that counts the calls and tokens of the one it wraps (per-item accounting)."""

    def __init__(self, inner: LLMClient) -> None:
        """Wrap `inner`; the counts start at zero."""
        self.inner = inner
        self.calls = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0

    @property
    def model_id(self) -> str:
        """The wrapped client's model id."""
        return self.inner.model_id

    def chat(self, request: ChatRequest) -> ChatResponse:
        """Ask the wrapped client and count the answer's usage."""
        response = self.inner.chat(request)
        self.calls += 1
        self.prompt_tokens += response.usage.prompt_tokens
        self.completion_tokens += response.usage.completion_tokens
        return response


@dataclass(frozen=True, slots=True)
class RoleModels:
    """The models executor workers open for the roles (`WorkerModel`s; `user` None: the solver's; `judge`
    None: no judge)."""

    writer: WorkerModel
    solver: WorkerModel
    user: WorkerModel | None = None
    judge: WorkerModel | None = None


@dataclass
class TrajectoryDeps:
    """What the stage needs from outside: the role models and how environments are loaded.

    `writer` writes and refines queries, `solver` runs the agent, `user` voices the user simulator
    (defaults to the solver's model), `judge` judges read-only answers (None: no judge; never defaulted).
    `progress(done, total, status)` is told after every task."""

    writer: LLMClient
    solver: LLMClient
    user: LLMClient | None = None
    judge: LLMClient | None = None
    load: Callable[[str], Environment] = load_env
    progress: Callable[[int, int, str], None] = lambda done, total, status: None
    clock: Callable[[], float] = time.perf_counter
    executor: Executor | None = None
    """Where tasks run (`exec`); None: in this process. With one, `models` must say which models the
    workers open (`synth_trajectory`); `writer`/`solver`/`user` then only name the versions."""
    models: RoleModels | None = None
    _envs: dict[str, Environment] = field(default_factory=dict)

    def environment(self, name: str) -> Environment:
        """The environment called `name`, loaded once."""
        if name not in self._envs:
            self._envs[name] = self.load(name)
        return self._envs[name]


def prompt_hash() -> str:
    """sha256 over the texts synthesis adds to the agent's (query writer, refiner, solver policy), for run
    manifests; the agent's own texts are `agent.prompt_hash`."""
    return sha256_hex("\0".join((WRITER_SYSTEM, REFINER_SYSTEM, SOLVER_POLICY)).encode("utf-8"))


def read_tasks(workspace: Workspace, run_id: str) -> list[Task]:
    """The gated tasks of a finished task stage; a `StoreError` names what is missing."""
    stage = StageDir.open(workspace, run_id, TASK_STAGE)
    if not stage.is_complete():
        raise StoreError(f"run {run_id!r} has no finished {TASK_STAGE} stage in {stage.path}: "
                         "run `envfactory synth tasks` first (or resume it)")
    path = stage.path / "tasks.jsonl"
    return [Task.model_validate_json(line) for line in path.read_bytes().splitlines() if line.strip()]


def _tool_specs(task: Task, envs: Sequence[Environment]) -> dict[str, ToolSpec]:
    specs: dict[str, ToolSpec] = {}
    for env in envs:
        for spec in env.spec.tools:
            specs[f"{env.name}__{spec.name}" if task.tool_naming == "qualified" else spec.name] = spec
    return specs


class _ItemRun:
    """The work on one task (see the module docstring); builds its `TrajectoryItem`."""

    def __init__(self, config: SynthTrajectoriesConfig, deps: TrajectoryDeps, task: Task, solve: bool) -> None:
        self.config, self.deps, self.task, self.solve = config, deps, task, solve
        self.writer = CountingClient(deps.writer)
        self.solver = CountingClient(deps.solver)
        self.user_client = CountingClient(deps.user or deps.solver)
        self.judge = CountingClient(deps.judge) if deps.judge is not None and needs_judge(task) else None
        self.rng = random.Random(f"{config.seed}:{task.id}")
        self.conversational = config.preset == "sft-conv" and len(task.gold_calls()) > 1
        self.user_tools: list[str] = []
        self.notes: list[str] = []

    def _usage(self, item: TrajectoryItem) -> TrajectoryItem:
        clients = (self.writer, self.solver, self.user_client, *((self.judge,) if self.judge else ()))
        return item.model_copy(update={
            "model_calls": sum(c.calls for c in clients), "prompt_tokens": sum(c.prompt_tokens for c in clients),
            "completion_tokens": sum(c.completion_tokens for c in clients), "conversational": self.conversational,
        })

    def run(self) -> TrajectoryItem:
        envs = [self.deps.environment(ref.name) for ref in self.task.envs]
        tools = _tool_specs(self.task, envs)
        # the person's own steps (synth.person): only where a user simulator can take them
        marked = person_tools(self.task, envs) if self.config.preset in ("sft-conv", "rl") else frozenset()
        split = PersonSplit.of(self.task.gold_calls(), marked)
        calls = split.agent
        if not calls:
            return self._usage(TrajectoryItem(task_id=self.task.id, status="dropped", reason="person_only",
                                              detail="every gold call is the person's: nothing for the agent"))
        self.user_tools = sorted(marked)
        if split.person:  # the person acts: a user simulator voices the task, in one turn for `rl`
            self.conversational = True
        many = self.config.preset == "sft-conv" and len(calls) > 1
        segments = split_turns(calls, self.config.max_turn_tools, self.rng) if many else [calls]
        self.notes = [person_note(self.task, steps, tools) for steps in split.per_turn(segments)]
        domain = self.task.origin.domain
        record = QueryRecord()
        explicit: list[str] = []
        try:
            for segment in segments:
                written = write_query(self.writer, self.task, segment, tools, seed=self.config.seed,
                                      attempts=self.config.query_attempts, domain=domain, persona=record.persona)
                record = record.model_copy(update={"persona": written.persona,
                                                   "problems": [*record.problems, *written.problems],
                                                   "completed": [*record.completed, *written.completed]})
                explicit.append(written.query)
        except QueryFailure as failure:
            record = record.model_copy(update={"problems": [*record.problems, *failure.problems]})
            return self._usage(TrajectoryItem(task_id=self.task.id, status="dropped", reason=f"query:{failure.reason}",
                                              detail=str(failure)[:500], query=record))
        whole = " ".join(explicit)
        record = record.model_copy(update={"explicit": whole,
                                           "explicit_overspec": score_overspecification(whole, self.task)})
        refined: list[str] = []
        if self.config.refines:
            operators = choose_operators(self.config.seed, self.task.id)
            try:
                refined = [refine_query(self.writer, self.task, text, operators, seed=self.config.seed,
                                        attempts=self.config.query_attempts).query for text in explicit]
                text = " ".join(refined)
                record = record.model_copy(update={"refined": text, "operators": operators,
                                                   "refined_overspec": score_overspecification(text, self.task)})
            except QueryFailure as failure:
                record = record.model_copy(update={"problems": [*record.problems, *failure.problems]})
                refined = []
        known = [", ".join(f"{path}: {value}" for path, value in knowable_values(self.task, seg)) for seg in segments]
        return self._usage(self._solve(record, explicit, refined, segments, known))

    def _solve(self, record: QueryRecord, explicit: list[str], refined: list[str],
               segments: list[list[GoldCall]], known: list[str]) -> TrajectoryItem:
        def variant(texts: list[str]) -> Task:
            voiced = [f"{text}\n\n{note}" if note else text for text, note in zip(texts, self.notes, strict=True)]
            return solver_task(self.task, voiced, segments, conversational=self.conversational,
                               persona=record.persona, known_info=known, user_tools=self.user_tools)

        tries: list[tuple[Literal["refined", "explicit"], Task]] = []
        if refined:
            tries.append(("refined", variant(refined)))
        tries.append(("explicit", variant(explicit)))
        attempts: list[SolverAttempt] = []
        settings = AgentSettings(temperature=self.config.temperature,
                                 max_steps_per_turn=self.config.max_steps_per_turn,
                                 ground_optional_arguments=self.config.ground_arguments)
        user = UserSimulator(self.user_client) if self.conversational else None
        chosen_task = tries[0][1]
        if self.solve:
            envs = [self.deps.environment(ref.name) for ref in self.task.envs]
            for kind, solver_view in tries:
                chosen_task = solver_view
                for _ in range(self.config.k):
                    seed = self.config.seed * 1_000_003 + len(attempts)
                    attempts.append(attempt(self.solver, solver_view, envs, index=len(attempts), seed=seed,
                                            query=kind, settings=settings,
                                            threshold=self.config.verified_threshold, user=user))
                if any(a.verified for a in attempts):
                    break
        if self.judge is not None:
            attempts = [self._judged(a) for a in attempts]
        selected = select(attempts)
        kind = attempts[selected].query if selected is not None else ("refined" if refined else "explicit")
        queries = TaskQueries(explicit=record.explicit, refined=record.refined if kind == "refined" else "",
                              refinement_strength=len(record.operators) if kind == "refined" else 0,
                              refinement_operators=list(record.operators) if kind == "refined" else [],
                              source="model")
        final = Task.create(**{**chosen_task.model_dump(exclude={"id", "queries", "persona"}),
                               "queries": queries.model_dump(), "persona": record.persona})
        status = "verified" if selected is not None else "unsolved"
        failures = [a.failure for a in attempts if a.failure]
        if attempts and len(failures) == len(attempts):
            status = "failed"
        return TrajectoryItem(task_id=self.task.id, status=status,
                              reason="environment_failure" if status == "failed" else "",
                              detail=failures[0] if status == "failed" else "", task=final, query=record,
                              attempts=attempts, selected=selected)


    def _judged(self, solved: SolverAttempt) -> SolverAttempt:
        """`solved` with the judge's verdict, when it ran to an episode (a failed environment is not judged)."""
        if self.judge is None or solved.trajectory is None or solved.failure:
            return solved
        verdict = judge_attempt(self.judge, self.task, solved.trajectory, seed=solved.seed)
        return solved.model_copy(update={"judge": verdict})


def run_item(config: SynthTrajectoriesConfig, deps: TrajectoryDeps, task: Task, *, solve: bool) -> TrajectoryItem:
    """The `TrajectoryItem` of one task: a model's set-up failure is raised (no answer was involved),
    anything else that goes wrong is recorded on a `failed` item."""
    try:
        return _ItemRun(config, deps, task, solve=solve).run()
    except _SETUP_ERRORS:
        raise
    except Exception as exc:  # one task's failure is recorded; the run goes on
        return TrajectoryItem(task_id=task.id, status="failed", reason=type(exc).__name__, detail=str(exc)[:500])


def _fan_out(config: SynthTrajectoriesConfig, deps: TrajectoryDeps, stage: StageDir, chosen: Sequence[Task],
             solve_limit: int) -> None:
    """Run the tasks without an item file on `deps.executor`, writing each item as it comes back; items
    whose worker failed are not written (a resumed run retries them) and fail the stage with the reasons."""
    executor, models = deps.executor, deps.models
    if executor is None or models is None:
        raise StoreError("an executor needs `models`: the workers open their own models")
    todo = [(index, task) for index, task in enumerate(chosen)
            if not stage.artifact_path(f"items/{task.id}.json").is_file()]
    items = [TrajectoryWorkItem(config=config, task=task, solve=index < solve_limit, writer=models.writer,
                                solver=models.solver, user=models.user, judge=models.judge) for index, task in todo]
    done = [len(chosen) - len(todo)]

    def written(outcome: Outcome[TrajectoryItem]) -> None:
        if outcome.result is not None:
            stage.write_bytes(f"items/{outcome.result.task_id}.json", outcome.result.to_json_bytes() + b"\n")
            done[0] += 1
            deps.progress(done[0], len(chosen), outcome.result.status)

    outcomes = executor.map(synth_trajectory, items, on_outcome=written)
    failed = [f"{item.task.id}: {o.error}" for item, o in zip(items, outcomes, strict=True) if o.result is None]
    if failed:
        raise StoreError(f"{len(failed)} task(s) failed on the {executor.name} executor (finished ones are kept; "
                         "rerun with --resume): " + "; ".join(failed[:3]))


def _selected_trajectory(item: TrajectoryItem) -> Trajectory | None:
    if item.selected is None or item.task is None:
        return None
    trajectory = item.attempts[item.selected].trajectory
    return trajectory.model_copy(update={"task_id": item.task.id}) if trajectory is not None else None


def _argument_values(task: Task) -> int:
    """How many argument values the solver must write for `task` (leaves of its gold calls' arguments)."""
    return sum(1 for call in task.gold_calls() for _ in json_leaves(call.arguments))


def run_synth_trajectories(config: SynthTrajectoriesConfig, workspace: Workspace,
                           deps: TrajectoryDeps) -> StageManifest:
    """Run the stage (see the module docstring); resumes from the items already written."""
    started = deps.clock()
    tasks = read_tasks(workspace, config.from_run)
    task_stage = StageDir.open(workspace, config.from_run, TASK_STAGE)
    if config.order == "simplest-first":
        tasks = sorted(tasks, key=lambda t: (len(t.gold_calls()), len(t.envs), t.id))
    elif config.order == "shortest-first":
        tasks = sorted(tasks, key=lambda t: (len(t.gold_calls()), t.read_only, _argument_values(t), len(t.envs), t.id))
    elif config.order == "writes-first":
        tasks = sorted(tasks, key=lambda t: (t.read_only, len(t.gold_calls()), len(t.envs), t.id))
    chosen = tasks[: config.max_tasks] if config.max_tasks is not None else tasks
    solve_limit = len(chosen) if config.solve_tasks is None else config.solve_tasks
    stage = StageDir.open(workspace, config.from_run, STAGE)
    if deps.executor is not None:
        _fan_out(config, deps, stage, chosen, solve_limit)
    items: list[TrajectoryItem] = []
    for index, task in enumerate(chosen):
        relative = f"items/{task.id}.json"
        path = stage.artifact_path(relative)
        if path.is_file():
            item = TrajectoryItem.model_validate_json(path.read_bytes())
        else:
            item = run_item(config, deps, task, solve=index < solve_limit)
            stage.write_bytes(relative, item.to_json_bytes() + b"\n")
        items.append(item)
        deps.progress(index + 1, len(chosen), item.status)
    keep_unsolved = config.preset == "rl"
    kept_tasks = [i.task for i in items if i.task is not None and (i.status == "verified" or keep_unsolved)]
    trajectories = [t for i in items if (t := _selected_trajectory(i)) is not None]
    funnel = build_funnel(config, len(tasks), items)
    stage.write_jsonl("tasks.jsonl", [t.model_dump(mode="json") for t in kept_tasks])
    stage.write_jsonl("trajectories.jsonl", [t.model_dump(mode="json") for t in trajectories])
    stage.write_json("funnel.json", funnel.model_dump(mode="json"))
    manifest = task_stage.read_manifest()
    return stage.finish(
        outputs=["tasks.jsonl", "trajectories.jsonl", "funnel.json", *(f"items/{i.task_id}.json" for i in items)],
        config=config.model_dump(mode="json"),
        inputs={TASK_STAGE: manifest.content_digest() if manifest else ""},
        seeds={"main": config.seed},
        versions=role_versions(deps),
        counts=funnel.stages, drops={f"{stage_name}:{reason}": n for stage_name, reasons in funnel.drops.items()
                                     for reason, n in reasons.items()},
        timings={"wall_s": round(deps.clock() - started, 3)},
    )


def role_versions(deps: TrajectoryDeps) -> dict[str, str]:
    """The stage manifest's `versions`: the model id of each role, and with a judge its model id and
    prompt hash (`judge_prompt`)."""
    versions = {"writer": deps.writer.model_id, "solver": deps.solver.model_id,
                "user": (deps.user or deps.solver).model_id}
    if deps.judge is not None:
        versions.update(judge=deps.judge.model_id, judge_prompt=judge_prompt_hash())
    return versions


def synth_trajectory(item: TrajectoryWorkItem) -> TrajectoryItem:
    """Work function: the `TrajectoryItem` of `item.task`, exactly as `run_item` makes it in the stage's own
    process; a worker opens the role models once per process."""
    deps = _trajectory_deps(item.writer, item.solver, item.user, item.judge)
    return run_item(item.config, deps, item.task, solve=item.solve)


def _optional_client(model: WorkerModel | None) -> LLMClient | None:
    return worker_client(model) if model is not None else None


# A per-process memo of a worker's opened models (and the environments its deps load): results never depend
# on it, only the cost of a worker's first task does.
@functools.lru_cache(maxsize=2)
def _trajectory_deps(writer: WorkerModel, solver: WorkerModel, user: WorkerModel | None,
                     judge: WorkerModel | None) -> TrajectoryDeps:
    return TrajectoryDeps(writer=worker_client(writer), solver=worker_client(solver), user=_optional_client(user),
                          judge=_optional_client(judge))
