"""Library builds on an executor (`exec`): a deterministic speculative window over the serial order.

Why speculative. Whether a proposal is built at all depends on the verdicts before it: a domain stops at
`accept_per_domain`, a provider at `max_per_provider_in_domain`, and a name an accepted environment has
already taken rejects a proposal. So the driver builds the next proposals the serial order *might* reach
in parallel, each into its own staging directory, and then consumes the results in the serial order,
deciding each skip and name check exactly as the serial loop would at that point. Results the serial
order would not have built are discarded. The counts that decide a skip only grow, and names are only
ever taken, so a proposal skipped or refused when a window is chosen would be skipped or refused when
it is consumed too: the window never misses a proposal the serial order builds.

Contract:
- `build_speculatively(builder, todo, outcomes, tally)` builds `todo` (proposals in the serial order,
  without those that have an outcome) on `builder.executor`, a window of `2 × workers` proposals at a
  time. Consumed results are moved into `envs/<name>/` or `rejected/<name>/`, their recorded LLM answers
  appended to the build's cassette (each key once), and then their outcome is checkpointed, exactly as
  the serial loop writes them; the build's files are byte-identical to a serial build's (timings aside)
  when the model answers come from a cache or a replay.
- `build_proposal_item(item)` is the work function: it runs `LibraryBuilder.build_resolved` on the item's
  resolved operations into `item.staging`, with the standard hooks (`standard_hooks`) and the model the
  item names; a retried item starts from an empty staging directory. The driver's dry compile (ordering
  by `prefer_rules`) travels with the item, so the worker's first round does not compile again.
- Staging lives in `<build root>/staging/<proposal id>/` and is removed once consumed or discarded; a
  killed build leaves it behind and the next run (resume) clears it first, so nothing half-built is
  ever taken. A proposal that fails on its worker after the executor's retries stops the build with a
  `BuildError` naming it and the reason, after every verdict before it in the serial order has been
  checkpointed; `--resume` continues from there.
"""

from __future__ import annotations

import functools
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

from envfactory.build.compile import CompiledEnv
from envfactory.build.errors import BuildError
from envfactory.build.library import (
    LLM_CASSETTE,
    BuildEvent,
    BuildTally,
    ContaminationHook,
    DifferentialHook,
    LibraryBuilder,
)
from envfactory.exec import Outcome
from envfactory.llm.replay import CassetteWriter, RecordingClient, read_cassette
from envfactory.llm.workers import worker_client
from envfactory.spec import Operation, Proposal
from envfactory.spec.library import LibraryConfig, ProposalOutcome
from envfactory.spec.work_items import BuildHooks, ProposalBuildItem, ProposalBuildResult

STAGING = "staging"


def needs_model(config: LibraryConfig) -> bool:
    """Whether a build of `config` asks a model for anything (seed realism, authoring)."""
    return config.seed_realism or config.author_operations


def hooks_for(config: LibraryConfig) -> BuildHooks:
    """The standard hooks a config asks for: moto's differential tests, the benchmark contamination check."""
    return BuildHooks(differential=config.differential, contamination=config.contamination_check)


def standard_hooks(hooks: BuildHooks) -> tuple[DifferentialHook | None, ContaminationHook | None]:
    """The hook functions `hooks` names, made once per process (the benchmark tool sets take seconds)."""
    return _standard_hooks(hooks.differential, hooks.contamination)


# A per-process memo: the hooks are pure functions of their flags; only the first item pays for them.
@functools.lru_cache(maxsize=4)
def _standard_hooks(differential: bool, contamination: bool) -> tuple[DifferentialHook | None, ContaminationHook | None]:
    differential_hook: DifferentialHook | None = None
    if differential:
        from envfactory.build.reference import library_differential

        differential_hook = library_differential
    contamination_hook: ContaminationHook | None = None
    if contamination:
        from envfactory.resources.benchmarks import benchmark_tool_sets
        from envfactory.verify.contamination import contamination_check

        contamination_hook = contamination_check(benchmark_tool_sets())
    return differential_hook, contamination_hook


def build_proposal_item(item: ProposalBuildItem) -> ProposalBuildResult:
    """Work function: build one resolved proposal into `item.staging` (see the module contract)."""
    staging = Path(item.staging)
    if staging.exists():  # a retry after a worker died mid-build
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    differential, contamination = standard_hooks(item.hooks)
    llm = None
    if item.model is not None:
        llm = RecordingClient(worker_client(item.model).for_stage("library"), CassetteWriter(staging / LLM_CASSETTE))
    builder = LibraryBuilder(None, item.config, staging, differential=differential, contamination=contamination,
                             llm=llm)
    began = time.perf_counter()
    try:
        operations = {key: Operation.model_validate_json(text) for key, text in item.operations.items()}
        if item.compiled is not None:  # the driver's dry compile: this build compiles its first round once
            builder.keep_dry_compile(item.proposal, operations, CompiledEnv.model_validate_json(item.compiled))
        outcome = builder.build_resolved(item.proposal, operations, item.base)
    finally:
        builder.close()
    return ProposalBuildResult(outcome=outcome, seconds=round(time.perf_counter() - began, 3))


def build_speculatively(builder: LibraryBuilder, todo: Sequence[Proposal], outcomes: dict[str, ProposalOutcome],
                        tally: BuildTally) -> None:
    """Build `todo` on `builder.executor` with the serial order's verdicts (see the module contract)."""
    executor = builder.executor
    if executor is None:
        raise BuildError("build_speculatively needs a builder with an executor")
    staging_root = builder.paths.root / STAGING
    if staging_root.exists():  # left by a killed run: never consumed, rebuilt
        shutil.rmtree(staging_root)
    window = max(1, 2 * executor.workers)
    position = 0
    while position < len(todo):
        chosen, end = _window(builder, todo, position, outcomes, tally, window)
        if chosen:
            builder.progress(BuildEvent("wave", message=f"building {len(chosen)} proposal(s) on the "
                                        f"{executor.name} executor ({executor.workers} workers)"))
        items = [_item(builder, proposal, staging_root / proposal.id) for proposal in chosen]
        results = dict(zip((p.id for p in chosen), executor.map(build_proposal_item, items), strict=True))
        try:
            for proposal in todo[position:end]:
                _consume(builder, proposal, results.get(proposal.id), staging_root / proposal.id, outcomes, tally)
        finally:
            shutil.rmtree(staging_root, ignore_errors=True)
        position = end


def _window(builder: LibraryBuilder, todo: Sequence[Proposal], start: int, outcomes: dict[str, ProposalOutcome],
            tally: BuildTally, size: int) -> tuple[list[Proposal], int]:
    """The next proposals worth building from `start` (up to `size`), and where the window ends: those the
    serial order would skip or refuse as things stand are passed over (they stay passed over)."""
    taken = builder.taken_names(outcomes)
    chosen: list[Proposal] = []
    end = start
    while end < len(todo) and len(chosen) < size:
        proposal = todo[end]
        end += 1
        if not tally.skips(proposal, builder.config) and builder.precheck(proposal, taken) is None:
            chosen.append(proposal)
    return chosen, end


def _item(builder: LibraryBuilder, proposal: Proposal, staging: Path) -> ProposalBuildItem:
    base, operations = builder.resolve(proposal)
    texts = {key: operation.model_dump_json(by_alias=True) for key, operation in operations.items()}
    compiled = builder.take_dry_compile(proposal, operations)
    return ProposalBuildItem(config=builder.config, proposal=proposal, operations=texts, base=base,
                             staging=str(staging.resolve()), hooks=builder.worker_hooks or BuildHooks(),
                             model=builder.worker_model if needs_model(builder.config) else None,
                             compiled=compiled.model_dump_json() if compiled is not None else None)


def _consume(builder: LibraryBuilder, proposal: Proposal, result: Outcome[ProposalBuildResult] | None,
             staging: Path, outcomes: dict[str, ProposalOutcome], tally: BuildTally) -> None:
    """Take (or discard) one proposal's speculative result, deciding as the serial loop does now."""
    if tally.skips(proposal, builder.config):
        return
    builder.announce(proposal, tally)
    early = builder.precheck(proposal, builder.taken_names(outcomes))
    if early is not None:
        builder.settle(proposal, early, outcomes, tally)
        return
    if result is None or result.result is None:  # the window chose it, so it was submitted: it failed
        why = result.error if result is not None else "not built"
        raise BuildError(f"proposal {proposal.name} ({proposal.id}) failed on its worker: {why}; "
                         "the verdicts before it are saved: rerun with --resume")
    _move_into_place(staging, builder.paths.root, proposal.name)
    builder.record_time(proposal.id, result.result.seconds)
    builder.settle(proposal, result.result.outcome, outcomes, tally)


def _move_into_place(staging: Path, root: Path, name: str) -> None:
    """Move a staged build's directories under `root` (replacing what a killed run left) and append its
    recorded LLM answers to the build's cassette."""
    for kind in ("envs", "rejected"):
        target = root / kind / name
        if target.exists():
            shutil.rmtree(target)
        built = staging / kind / name
        if built.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            built.rename(target)
    recorded = staging / LLM_CASSETTE
    if recorded.is_file():
        writer = CassetteWriter(root / LLM_CASSETTE)
        for entry in read_cassette(recorded):
            writer.record(entry.model, entry.request, entry.response)
