"""The `synth-tasks` stage: `run_synth_tasks(config, workspace, deps) -> StageManifest` (DESIGN §6, §9).

Contract:
- Writes under `runs/<run-id>/synth-tasks/`: `config.json` (the resolved `SynthTasksConfig`),
  `parts/batch-<n>.json` (one `SynthBatch` per finished batch of candidates), then `tasks.jsonl`,
  `trajectories.jsonl` (one gold-path trajectory per task, same order), `gates.jsonl` (one `TaskGates`
  per task, same order: every gate it passed and what the gate measured), `drops.jsonl` (every
  `CandidateDrop`), `funnel.json` (`SynthFunnel`) and last `manifest.json`. Every file is written
  atomically; JSONL lines are canonical JSON, ids are content hashes.
- Candidates are processed in batches, in order; a batch is computed from the seed and its candidate
  numbers alone. A rerun with `deps.resume` reuses every batch file it finds (so a killed run loses at
  most the batch in flight) and refuses a stage directory made with another config. Without `resume`,
  a stage directory that already holds batches is refused too, so nothing is silently mixed.
- The run stops once `config.tasks` distinct tasks are kept (a task equal to an earlier one is a
  `duplicate`; tasks past the target are `over target`), or after `config.candidate_limit` candidates
  (then the manifest says `partial`). Same config and seed ⇒ byte-identical artifacts.
- Environments are loaded in this process (declarative environments need no sandbox); those that need
  a sandbox (hybrid or untrusted python) are skipped with the reason in the funnel.
- With `deps.executor`, batches run as `exec` work items (`synth_batch`), a wave of `2 × workers` at a time;
  they are consumed, written and counted in the serial order, so the artifacts are the same bytes. The
  benchmark texts reach workers through `<workspace>/inputs/benchmark-tasks-<hash>.jsonl`.
- `deps.benchmark_tasks` (BFCL and τ² task texts) are required: a task never ships with the
  contamination gate unrun.
"""

from __future__ import annotations

import functools
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from envfactory.errors import EnvFactoryError, SandboxRequiredError, SpecError, StoreError
from envfactory.exec import Executor
from envfactory.graph import ToolGraph
from envfactory.graph.stage import read_stage_graphs
from envfactory.runtime import Environment, library_env_names, load_env
from envfactory.spec import StageManifest, Task, Trajectory, canonical_json, content_hash, sha256_hex
from envfactory.spec.benchmark import BenchmarkTask
from envfactory.spec.env import HybridImplementation
from envfactory.spec.synth import (
    FUNNEL_STAGES,
    CandidateDrop,
    GateRecord,
    KeptProfile,
    SynthBatch,
    SynthFunnel,
    SynthTasksConfig,
    TaskGates,
)
from envfactory.spec.work_items import SynthBatchItem
from envfactory.store import StageDir, Workspace, write_atomic
from envfactory.synth.envs import SynthEnv, prepare_env
from envfactory.synth.plans import Planner
from envfactory.synth.realise import Dropped, realise
from envfactory.synth.tasks import build_task, gold_path_trajectory
from envfactory.verify.gates import contamination_gate, gate_task

STAGE = "synth-tasks"
CONFIG_FILE = "config.json"
OUTPUTS = ("tasks.jsonl", "trajectories.jsonl", "gates.jsonl", "drops.jsonl", "funnel.json")


CONTAMINATION_PASSED = GateRecord(gate="contamination", passed=True,
                                  detail="no BFCL or τ² task overlaps its texts at the contamination thresholds")


class SynthError(EnvFactoryError):
    """The stage cannot start (bad config, missing dependencies, a conflicting stage directory)."""


@dataclass(frozen=True, slots=True)
class SynthProgress:
    """Reported after every batch: candidates tried, tasks kept so far, the target."""

    candidates: int
    kept: int
    target: int
    limit: int


@dataclass(frozen=True, slots=True)
class SynthDeps:
    """What the stage needs from outside: the run id, the benchmarks' task texts for the contamination
    gate, whether to resume, and a progress callback."""

    run_id: str
    benchmark_tasks: Sequence[BenchmarkTask]
    resume: bool = False
    progress: Callable[[SynthProgress], None] | None = None
    graphs: Mapping[str, ToolGraph] | None = None
    """Per-environment tool graphs built already (by name; `envfactory run`'s graph stage), else built here."""
    executor: Executor | None = None
    """Where batches run (`exec`: serial, a process pool, Ray); None: in this process. Workers rebuild the
    environments and graphs from the config (`synth_batch`); the artifacts are the same."""
    graphs_dir: Path | None = None
    """The finished graph stage `graphs` came from, where workers read them instead of building them."""


@dataclass(slots=True)
class _Loaded:
    envs: list[SynthEnv] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


def default_run_id(config: SynthTasksConfig) -> str:
    """`synth-<first 12 hex of the config's hash>`: one run directory per distinct config."""
    return "synth-" + content_hash(config.model_dump(mode="json"))[:12]


def load_synth_envs(config: SynthTasksConfig, graphs: Mapping[str, ToolGraph] | None = None) -> _Loaded:
    """Load and prepare the configured environments; those that need a sandbox are skipped. `graphs`
    holds environments' tool graphs built already, by name."""
    refs = list(dict.fromkeys([*config.envs, *(library_env_names() if config.library else [])]))
    loaded = _Loaded()
    for ref in refs:
        try:
            env = load_env(ref)
        except SandboxRequiredError as exc:
            loaded.skipped[ref] = f"needs a sandbox pool: {str(exc).splitlines()[0][:160]}"
            continue
        except SpecError as exc:
            if ref in config.envs:
                raise SynthError(f"environment {ref}: {str(exc).splitlines()[0]}") from exc
            loaded.skipped[ref] = f"does not load: {str(exc).splitlines()[0][:160]}"
            continue
        if isinstance(env.spec.implementation, HybridImplementation):
            loaded.skipped[env.name] = "hybrid environment: its authored tools run only in a sandbox pool"
            continue
        if config.domain is not None and env.spec.meta.domain != config.domain:
            continue
        loaded.envs.append(prepare_env(env, (graphs or {}).get(env.name)))
    return loaded


def _batch(planner: Planner, envs: dict[str, Environment], config: SynthTasksConfig, number: int,
           benchmark_tasks: Sequence[BenchmarkTask]) -> SynthBatch:
    first = number * config.batch_size
    reached: Counter[str] = Counter()
    drops: list[CandidateDrop] = []
    kept: list[tuple[int, Task, Trajectory, tuple[GateRecord, ...]]] = []
    for candidate in range(first, first + config.batch_size):
        reached["chains"] += 1
        planned = planner.plan(candidate)
        if isinstance(planned, Dropped):
            drops.append(CandidateDrop(candidate=candidate, stage="valid", reason=planned.reason,
                                       detail=planned.detail, envs=list(planned.envs)))
            continue
        reached["valid"] += 1
        names = [p.senv.name for p in planned.plan.parts]
        outcome = realise(planned.plan, planned.rng, attempts=config.rebind_attempts,
                          per_collection=config.grounded_records, seed=config.seed)
        if isinstance(outcome, Dropped):
            if outcome.stage == "executed":
                reached["grounded"] += 1
            drops.append(CandidateDrop(candidate=candidate, stage=outcome.stage, reason=outcome.reason,
                                       detail=outcome.detail, envs=names, tools=planned.provenance.tools))
            continue
        reached["grounded"] += 1
        reached["executed"] += 1
        built = build_task(outcome, planned.provenance, seed=config.seed,
                           source_id=f"{config.sampler}:{config.seed}:{candidate}")
        if isinstance(built, Dropped):
            drops.append(CandidateDrop(candidate=candidate, stage="gated", reason=built.reason, detail=built.detail,
                                       envs=names, tools=planned.provenance.tools))
            continue
        task = built
        trajectory = gold_path_trajectory(task, outcome, seed=config.seed)
        gates = gate_task(task, envs, trajectory=trajectory)
        if not gates.passed:
            drops.append(CandidateDrop(candidate=candidate, stage="gated", reason=f"gate {gates.failed}",
                                       detail=gates.detail, envs=names, tools=planned.provenance.tools))
            continue
        kept.append((candidate, task, gold_path_trajectory(task, outcome, seed=config.seed, reward=gates.gold_reward),
                     gates.records))
    flagged = contamination_gate([task for _, task, _, _ in kept], benchmark_tasks)
    tasks: list[Task] = []
    trajectories: list[Trajectory] = []
    records: list[TaskGates] = []
    for candidate, task, trajectory, passed in kept:
        if task.id in flagged:
            drops.append(CandidateDrop(candidate=candidate, stage="gated", reason="gate contamination",
                                       detail=flagged[task.id], envs=[r.name for r in task.envs]))
            continue
        reached["gated"] += 1
        tasks.append(task)
        trajectories.append(trajectory)
        records.append(TaskGates(task_id=task.id, gates=[*passed, CONTAMINATION_PASSED]))
    drops.sort(key=lambda d: d.candidate)
    return SynthBatch(batch=number, first_candidate=first, candidates=config.batch_size, tasks=tasks,
                      trajectories=trajectories, drops=drops, reached=dict(reached), gates=records)


def _read_batch(stage: StageDir, number: int) -> SynthBatch | None:
    path = stage.artifact_path(f"parts/batch-{number:06d}.json")
    if not path.is_file():
        return None
    try:
        return SynthBatch.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        raise StoreError(f"{path} is not a valid batch (delete it to recompute): {exc}") from exc


def _open_stage(config: SynthTasksConfig, workspace: Workspace, deps: SynthDeps) -> StageDir:
    stage = StageDir.open(workspace, deps.run_id, STAGE)
    config_bytes = canonical_json(config.model_dump(mode="json")) + b"\n"
    recorded = stage.artifact_path(CONFIG_FILE)
    if recorded.is_file():
        if recorded.read_bytes() != config_bytes:
            raise SynthError(f"{stage.path} was made with another config; use another --run-id")
        if not deps.resume:
            raise SynthError(f"{stage.path} already holds this stage; pass --resume to continue it")
    stage.write_bytes(CONFIG_FILE, config_bytes)
    return stage


@dataclass(slots=True)
class _Kept:
    tasks: list[Task] = field(default_factory=list)
    trajectories: list[Trajectory] = field(default_factory=list)
    gates: list[TaskGates] = field(default_factory=list)


def _funnel(config: SynthTasksConfig, batches: list[SynthBatch], loaded: _Loaded) -> tuple[SynthFunnel, _Kept, list[CandidateDrop]]:
    reached: Counter[str] = Counter()
    drops: list[CandidateDrop] = []
    kept = _Kept()
    tasks = kept.tasks
    seen: set[str] = set()
    for batch in batches:
        reached.update(batch.reached)
        drops.extend(batch.drops)
        gates: dict[str, TaskGates] = {g.task_id: g for g in batch.gates}
        for task, trajectory in zip(batch.tasks, batch.trajectories, strict=True):
            candidate = int(task.origin.source_id.rsplit(":", 1)[-1])
            if task.id in seen or len(tasks) >= config.tasks:
                reason = "duplicate" if task.id in seen else "over target"
                drops.append(CandidateDrop(candidate=candidate, stage="kept", reason=reason,
                                           envs=[r.name for r in task.envs]))
                continue
            seen.add(task.id)
            tasks.append(task)
            kept.trajectories.append(trajectory)
            if task.id in gates:  # batches written before gate records existed have none
                kept.gates.append(gates[task.id])
    reached["kept"] = len(tasks)
    by_stage: dict[str, Counter[str]] = {}
    for drop in drops:
        by_stage.setdefault(drop.stage, Counter())[drop.reason] += 1
    domains: Counter[str] = Counter(t.origin.domain for t in tasks)
    per_env: Counter[str] = Counter(ref.name for t in tasks for ref in t.envs)
    profile = KeptProfile(tasks=len(tasks), multi_env=sum(1 for t in tasks if len(t.envs) > 1),
                          read_only=sum(1 for t in tasks if t.read_only), gold_calls=sum(len(t.gold_calls()) for t in tasks),
                          envs=len(per_env), domains=dict(sorted(domains.items())), per_env=dict(sorted(per_env.items())))
    funnel = SynthFunnel(
        sampler=config.sampler, seed=config.seed, candidates=reached["chains"],
        stages={name: reached[name] for name in FUNNEL_STAGES},
        drops={stage: dict(sorted(counts.items())) for stage, counts in sorted(by_stage.items())},
        duplicates=by_stage.get("kept", Counter())["duplicate"], kept=profile,
        skipped_envs=dict(sorted(loaded.skipped.items())),
    )
    return funnel, kept, sorted(drops, key=lambda d: (d.candidate, d.stage))


@dataclass(frozen=True, slots=True)
class _BatchComputer:
    """Computes batches by number: here (`wave` 1) or on the executor, a wave of batches at a time."""

    run: Callable[[list[int]], list[SynthBatch]]
    wave: int

    def __call__(self, numbers: list[int]) -> list[SynthBatch]:
        return self.run(numbers)


def _batch_computer(config: SynthTasksConfig, workspace: Workspace, deps: SynthDeps, planner: Planner,
                    envs: dict[str, Environment]) -> _BatchComputer:
    executor = deps.executor
    if executor is None:
        return _BatchComputer(lambda numbers: [_batch(planner, envs, config, n, deps.benchmark_tasks)
                                               for n in numbers], wave=1)
    benchmark_path = _shared_input(workspace, "benchmark-tasks", [t.to_json_bytes() for t in deps.benchmark_tasks])

    def on_executor(numbers: list[int]) -> list[SynthBatch]:
        items = [SynthBatchItem(config=config, number=n, benchmark_path=str(benchmark_path),
                                graphs_dir=str(deps.graphs_dir or "")) for n in numbers]
        outcomes = executor.map(synth_batch, items)
        failed = [f"batch {n}: {o.error}" for n, o in zip(numbers, outcomes, strict=True) if o.result is None]
        if failed:
            raise SynthError(f"{len(failed)} batch(es) failed on the {executor.name} executor (finished batches "
                             "are kept; rerun with --resume): " + "; ".join(failed[:3]))
        return [o.result for o in outcomes if o.result is not None]

    return _BatchComputer(on_executor, wave=max(1, 2 * executor.workers))


def _shared_input(workspace: Workspace, name: str, lines: list[bytes]) -> Path:
    """`inputs/<name>-<content hash>.jsonl` in the workspace, where every worker can read it (written
    once: the name is the content's hash)."""
    data = b"".join(line + b"\n" for line in lines)
    path = workspace.inputs_dir / f"{name}-{sha256_hex(data)[:16]}.jsonl"
    if not path.is_file():
        write_atomic(path, data)
    return path


def run_synth_tasks(config: SynthTasksConfig, workspace: Workspace, deps: SynthDeps) -> StageManifest:
    """Synthesise gated tasks and their gold-path trajectories (see the module contract)."""
    if not deps.benchmark_tasks:
        raise SynthError("the contamination gate needs the BFCL and τ² task texts (deps.benchmark_tasks)")
    started, cpu_started = time.perf_counter(), time.process_time()
    loaded = load_synth_envs(config, deps.graphs)
    if not loaded.envs:
        raise SynthError("no environment to synthesise from: " + (
            "; ".join(f"{k}: {v}" for k, v in loaded.skipped.items()) or "none selected"))
    stage = _open_stage(config, workspace, deps)
    planner = Planner(loaded.envs, config)
    envs = {s.name: s.env for s in loaded.envs}
    batches: list[SynthBatch] = []
    seen: set[str] = set()
    reused = 0
    limit = config.candidate_limit
    number = 0
    ahead: dict[int, SynthBatch] = {}
    compute = _batch_computer(config, workspace, deps, planner, envs)
    while len(seen) < config.tasks and number * config.batch_size < limit:
        batch = _read_batch(stage, number) if deps.resume else None
        if batch is None:
            if number not in ahead:  # a wave: one batch in this process, several on an executor
                wave = [n for n in range(number, number + compute.wave) if n * config.batch_size < limit]
                ahead.update(zip(wave, compute(wave), strict=True))
            batch = ahead.pop(number)
            # only batches the serial order consumes are written: the stage directory is the same either way
            stage.write_bytes(f"parts/batch-{number:06d}.json", batch.to_json_bytes() + b"\n")
        else:
            reused += 1
        batches.append(batch)
        seen.update(task.id for task in batch.tasks)
        number += 1
        if deps.progress is not None:
            deps.progress(SynthProgress(candidates=number * config.batch_size, kept=min(len(seen), config.tasks),
                                        target=config.tasks, limit=limit))
    funnel, kept, drops = _funnel(config, batches, loaded)
    tasks = kept.tasks
    stage.write_jsonl("tasks.jsonl", (t.model_dump(mode="json") for t in tasks))
    stage.write_jsonl("trajectories.jsonl", (t.model_dump(mode="json") for t in kept.trajectories))
    stage.write_jsonl("gates.jsonl", (g.model_dump(mode="json") for g in kept.gates))
    stage.write_jsonl("drops.jsonl", (d.model_dump(mode="json") for d in drops))
    stage.write_json("funnel.json", funnel.model_dump(mode="json"))
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return stage.finish(
        outputs=OUTPUTS, config=config.model_dump(mode="json"),
        inputs={s.name: s.env.spec.content_hash for s in loaded.envs} | {
            "benchmark_tasks": content_hash([t.model_dump(mode="json") for t in deps.benchmark_tasks])},
        seeds={"seed": config.seed}, counts={**funnel.stages, "multi_env": funnel.kept.multi_env,
                                             "read_only": funnel.kept.read_only},
        drops={f"{stage_name}:{reason}": n for stage_name, reasons in funnel.drops.items() for reason, n in reasons.items()},
        timings={"seconds": seconds, "cpu_seconds": cpu, "batches_reused": float(reused),
                 "seconds_per_kept_task": seconds / len(tasks) if tasks else 0.0},
        status="complete" if len(tasks) >= config.tasks else "partial",
        error=None if len(tasks) >= config.tasks else f"candidate limit {limit} reached with {len(tasks)} tasks",
    )


# -- the stage's work item (`exec`) --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _TaskContext:
    planner: Planner
    envs: dict[str, Environment]
    benchmark_tasks: list[BenchmarkTask]


def synth_batch(item: SynthBatchItem) -> SynthBatch:
    """Work function: the `SynthBatch` of candidate batch `item.number` under `item.config`, exactly as the
    stage computes it in its own process. A worker prepares the environments, the graph stage's graphs (or
    its own, the same ones) and the planner once per process."""
    context = _task_context(item.config.to_json_bytes(), item.benchmark_path, item.graphs_dir)
    return _batch(context.planner, context.envs, item.config, item.number, context.benchmark_tasks)


# A per-process memo of a worker's context: results never depend on it, only the cost of a worker's first
# batch does.
@functools.lru_cache(maxsize=2)
def _task_context(config_bytes: bytes, benchmark_path: str, graphs_dir: str) -> _TaskContext:
    config = SynthTasksConfig.model_validate_json(config_bytes)
    loaded = load_synth_envs(config, read_stage_graphs(Path(graphs_dir)) if graphs_dir else None)
    lines = Path(benchmark_path).read_bytes().splitlines()
    return _TaskContext(planner=Planner(loaded.envs, config), envs={s.name: s.env for s in loaded.envs},
                        benchmark_tasks=[BenchmarkTask.model_validate_json(line) for line in lines if line.strip()])
