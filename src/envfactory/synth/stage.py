"""The `synth-tasks` stage: `run_synth_tasks(config, workspace, deps) -> StageManifest` (DESIGN §6, §9).

Contract:
- Writes under `runs/<run-id>/synth-tasks/`: `config.json` (the resolved `SynthTasksConfig`),
  `parts/batch-<n>.json` (one `SynthBatch` per finished batch of candidates), then `tasks.jsonl`,
  `trajectories.jsonl` (one gold-path trajectory per task, same order), `drops.jsonl` (every
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
- `deps.benchmark_tasks` (BFCL and τ² task texts) are required: a task never ships with the
  contamination gate unrun.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from envfactory.errors import EnvFactoryError, SandboxRequiredError, SpecError, StoreError
from envfactory.graph import ToolGraph
from envfactory.runtime import Environment, library_env_names, load_env
from envfactory.spec import StageManifest, Task, Trajectory, canonical_json, content_hash
from envfactory.spec.benchmark import BenchmarkTask
from envfactory.spec.env import HybridImplementation
from envfactory.spec.synth import (
    FUNNEL_STAGES,
    CandidateDrop,
    KeptProfile,
    SynthBatch,
    SynthFunnel,
    SynthTasksConfig,
)
from envfactory.store import StageDir, Workspace
from envfactory.synth.envs import SynthEnv, prepare_env
from envfactory.synth.plans import Planner
from envfactory.synth.realise import Dropped, realise
from envfactory.synth.tasks import build_task, gold_path_trajectory
from envfactory.verify.gates import contamination_gate, gate_task

STAGE = "synth-tasks"
CONFIG_FILE = "config.json"
OUTPUTS = ("tasks.jsonl", "trajectories.jsonl", "drops.jsonl", "funnel.json")


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
    kept: list[tuple[int, Task, Trajectory]] = []
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
        kept.append((candidate, task, gold_path_trajectory(task, outcome, seed=config.seed, reward=gates.gold_reward)))
    flagged = contamination_gate([task for _, task, _ in kept], benchmark_tasks)
    tasks: list[Task] = []
    trajectories: list[Trajectory] = []
    for candidate, task, trajectory in kept:
        if task.id in flagged:
            drops.append(CandidateDrop(candidate=candidate, stage="gated", reason="gate contamination",
                                       detail=flagged[task.id], envs=[r.name for r in task.envs]))
            continue
        reached["gated"] += 1
        tasks.append(task)
        trajectories.append(trajectory)
    drops.sort(key=lambda d: d.candidate)
    return SynthBatch(batch=number, first_candidate=first, candidates=config.batch_size, tasks=tasks,
                      trajectories=trajectories, drops=drops, reached=dict(reached))


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


def _funnel(config: SynthTasksConfig, batches: list[SynthBatch], loaded: _Loaded) -> tuple[SynthFunnel, list[Any], list[Any], list[CandidateDrop]]:
    reached: Counter[str] = Counter()
    drops: list[CandidateDrop] = []
    tasks: list[Any] = []
    trajectories: list[Any] = []
    seen: set[str] = set()
    for batch in batches:
        reached.update(batch.reached)
        drops.extend(batch.drops)
        for task, trajectory in zip(batch.tasks, batch.trajectories, strict=True):
            candidate = int(task.origin.source_id.rsplit(":", 1)[-1])
            if task.id in seen or len(tasks) >= config.tasks:
                reason = "duplicate" if task.id in seen else "over target"
                drops.append(CandidateDrop(candidate=candidate, stage="kept", reason=reason,
                                           envs=[r.name for r in task.envs]))
                continue
            seen.add(task.id)
            tasks.append(task)
            trajectories.append(trajectory)
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
    return funnel, tasks, trajectories, sorted(drops, key=lambda d: (d.candidate, d.stage))


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
    while len(seen) < config.tasks and number * config.batch_size < limit:
        batch = _read_batch(stage, number) if deps.resume else None
        if batch is None:
            batch = _batch(planner, envs, config, number, deps.benchmark_tasks)
            stage.write_bytes(f"parts/batch-{number:06d}.json", batch.to_json_bytes() + b"\n")
        else:
            reused += 1
        batches.append(batch)
        seen.update(task.id for task in batch.tasks)
        number += 1
        if deps.progress is not None:
            deps.progress(SynthProgress(candidates=number * config.batch_size, kept=min(len(seen), config.tasks),
                                        target=config.tasks, limit=limit))
    funnel, tasks, trajectories, drops = _funnel(config, batches, loaded)
    stage.write_jsonl("tasks.jsonl", (t.model_dump(mode="json") for t in tasks))
    stage.write_jsonl("trajectories.jsonl", (t.model_dump(mode="json") for t in trajectories))
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
