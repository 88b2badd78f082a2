"""`envfactory library`: build, resume, publish and reproduce the library of verified environments.

- `build --config FILE`: discover → propose → compile → verify → revise → accept over the catalog
  (`build.library.LibraryBuilder`), checkpointed under `<workspace>/runs/library-<config name>/library/build/`
  (the `library` stage of `envfactory run`, with its manifest and `library.json`; a build an older version
  kept in `<workspace>/builds/<config name>/` is moved there first); `--resume` continues a killed or
  stopped run; `--domain` limits a run to some domains (a library may be built one
  domain at a time). Progress is printed per proposal. The funnel is printed at the end.
- `publish --to DIR`: copy the accepted environments of a build to DIR with an `index.json` (the
  package's shipped library is `src/envfactory/library`).
- `reproduce`: rebuild every shipped environment from the shipped config and check that each spec
  hash, report digest and `spec.json` file is reproduced (exit 1 when one is not); a library built with
  seed realism is rebuilt with its recorded LLM answers (`llm-cassette.jsonl`), never a live model.
- `repack [--library DIR]`: rewrite a library's `spec.json` files in the current file form (version 2,
  shared schemas) without rebuilding; content hashes are checked unchanged.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from envfactory.build.fanout import build_speculatively, hooks_for, standard_hooks
from envfactory.build.library import (
    LLM_CASSETTE,
    BuildEvent,
    BuildPaths,
    LibraryBuilder,
    recorded_llm,
)
from envfactory.build.publish import publish_library, repack_library, reproduce_library
from envfactory.build.reference import library_differential
from envfactory.build.stage import (
    LibraryDeps,
    library_run_id,
    migrate_legacy_build,
    reproduce_root,
    run_library,
)
from envfactory.cli._output import console, emit_json, error_console
from envfactory.cli.eval import parse_llm
from envfactory.cli.resources import CacheOption, open_catalog
from envfactory.errors import EnvFactoryError
from envfactory.exec import Executor, make_executor, usable_cores
from envfactory.llm import make_client, make_embedder
from envfactory.llm.protocols import LLMClient
from envfactory.llm.replay import CassetteWriter, RecordingClient
from envfactory.llm.workers import worker_model
from envfactory.runtime.loader import library_config, library_root, load_library_config
from envfactory.spec.library import BuildTimings, LibraryConfig, LibraryFunnel
from envfactory.spec.pipeline import BuiltLibrary, ExecutorConfig, LibraryStageConfig
from envfactory.spec.work_items import WorkerModel
from envfactory.store import Workspace

app = typer.Typer(help="Build, publish and reproduce the library of verified environments.", no_args_is_help=True)

ConfigOption = Annotated[Path, typer.Option("--config", exists=True, dir_okay=False, help="A LibraryConfig JSON file.")]
WorkspaceOption = Annotated[
    Path, typer.Option("--workspace", "-w", envvar="ENVFACTORY_WORKSPACE", file_okay=False, help="Workspace directory.")
]


def _load_config(path: Path, domains: list[str] | None) -> LibraryConfig:
    config = load_library_config(path)
    if domains:
        unknown = sorted(set(domains) - set(config.domains))
        if unknown:
            raise EnvFactoryError(f"--domain {', '.join(unknown)} is not in the config's domains ({', '.join(config.domains)})")
        config = config.model_copy(update={"domains": [d for d in config.domains if d in domains]})
    return config


def _print_funnel(funnel: LibraryFunnel) -> None:
    out = console()
    out.print(f"resources considered {funnel.resources_considered} (skipped {funnel.resources_skipped}) → "
              f"proposals {funnel.proposals} → processed {funnel.proposals_processed} → built {funnel.built} → "
              f"verified {funnel.verified} → accepted {funnel.accepted}")
    table = Table("check", "first round", "final")
    final = {r.name: r for r in funnel.final_check_rates}
    for rate in funnel.first_round_check_rates:
        last = final.get(rate.name)
        table.add_row(rate.name, f"{rate.passed}/{rate.total}", f"{last.passed}/{last.total}" if last else "-")
    out.print(table)
    out.print("accepted per domain: " + ", ".join(f"{d} {n}" for d, n in funnel.accepted_per_domain.items()))
    if funnel.rejected_reasons:
        out.print("rejected: " + ", ".join(f"{r} ×{n}" for r, n in funnel.rejected_reasons.items()))


def _print_costs(root: Path, funnel: LibraryFunnel) -> None:
    """Wall time and LLM tokens per verified environment (timings are informative: never hashed)."""
    timings = BuildPaths(root).timings
    if not timings.is_file() or not funnel.verified:
        return
    per = BuildTimings.model_validate_json(timings.read_bytes()).per_proposal_s
    total = sum(per.values())
    console().print(f"per verified environment: {total / funnel.verified:.2f} s wall (median proposal "
                    f"{statistics.median(per.values()):.2f} s), {funnel.llm_tokens / funnel.verified:.0f} LLM tokens; "
                    f"seed values from the LLM: {funnel.seed_values_from_llm}; "
                    f"authored tools kept: {funnel.authored_tools}")


def build_library(config: LibraryConfig, root: Path, *, workspace: Path, llm: str, resume: bool,
                  say: Callable[[str], None], cache_dir: Path | None = None,
                  executor: Executor | None = None) -> LibraryFunnel:
    """Run (or resume) a `LibraryBuilder` into `root` with the CLI's wiring: the catalog, moto for the
    differential tests, the benchmark tool sets for contamination and the model when the config asks
    for one (every answer recorded in the build's cassette). With an executor, proposals are built by its
    workers (`build.fanout`), which wire the same hooks and open the same model (through the workspace's
    answer cache). Used by `library build` and `envfactory run`."""
    started = time.perf_counter()

    def progress(event: BuildEvent) -> None:
        stamp = f"[{time.perf_counter() - started:7.1f}s]"
        if event.kind in ("proposals", "proposing", "wave"):
            say(f"{stamp} {event.message}")
        elif event.kind == "authoring":
            say(f"{stamp} {event.domain:<10}         {event.name}: {event.message[:150]}")
        elif event.kind == "done":
            say(f"{stamp} {event.domain:<10} {event.accepted_in_domain:>3}/{event.target} {event.name}: {event.message[:150]}")

    hooks = hooks_for(config)
    differential, contamination = standard_hooks(hooks)
    client: LLMClient | None = None
    workers_model: WorkerModel | None = None
    if config.seed_realism or config.author_operations:  # every answer is recorded, so it can be replayed
        cassette = root / LLM_CASSETTE
        if llm.startswith("replay:"):  # the replay client records nothing itself: record what it answers
            replayed = make_client(parse_llm(llm, None, None, None, None)).for_stage("library")
            client = RecordingClient(replayed, CassetteWriter(cassette))
        else:
            settings = parse_llm(llm, None, None, cassette, None)
            client = make_client(settings, cache=Workspace(workspace).open_llm_cache()).for_stage("library")
        if executor is not None:
            workers_model = worker_model(parse_llm(llm, None, None, None, None), Workspace(workspace).llm_cache_path,
                                         threads=max(1, usable_cores() // max(1, executor.workers)))
    embedder = make_embedder() if config.embed_dedup else None
    with open_catalog(cache_dir, None, None, None, False) as catalog:
        builder = LibraryBuilder(catalog, config, root, differential=differential, contamination=contamination,
                                 progress=progress, llm=client, embedder=embedder, executor=executor,
                                 fan_out=build_speculatively if executor is not None else None,
                                 worker_hooks=hooks, worker_model=workers_model)
        return builder.run(resume=resume)


@app.command("build")
def build(
    config_path: ConfigOption,
    workspace: WorkspaceOption = Path("workspace"),
    resume: Annotated[bool, typer.Option("--resume", help="Continue an earlier run of the same config.")] = False,
    domain: Annotated[list[str] | None, typer.Option("--domain", help="Only these domains (repeatable).")] = None,
    cache_dir: CacheOption = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the funnel as JSON.")] = False,
    llm: Annotated[str, typer.Option("--llm", help="The model for seed realism and authoring when the config asks for them: "
                                     "local (the embedded model), openai:URL or replay:FILE.")] = "local",
    executor_kind: Annotated[str, typer.Option("--executor", help="serial (this process, default), pool or ray: "
                                               "where proposals are built; the build's files are the same.")] = "serial",
    workers: Annotated[int | None, typer.Option("--workers", min=1, help="Pool processes or local Ray CPUs.")] = None,
    ray_address: Annotated[str | None, typer.Option("--ray-address", help="Join this Ray cluster.")] = None,
) -> None:
    """Build (or resume) a library from a config; prints progress and the funnel."""
    if executor_kind not in ("serial", "pool", "ray"):
        raise EnvFactoryError(f"--executor must be serial, pool or ray, not {executor_kind!r}")
    config = _load_config(config_path, domain)
    space = Workspace(workspace).ensure()
    err = error_console()
    moved = migrate_legacy_build(space, config.name)
    if moved is not None:
        err.print(Text(f"moved the build an earlier version kept in builds/{config.name}/ to {moved}", style="dim"))
    executor = None
    if executor_kind != "serial" or ray_address is not None:
        executor = make_executor(ExecutorConfig(kind="ray" if ray_address else executor_kind, workers=workers,
                                                ray_address=ray_address))
    funnels: list[LibraryFunnel] = []

    def build_into(library_config: LibraryConfig, build_root: Path) -> None:
        funnels.append(build_library(library_config, build_root, workspace=workspace, llm=llm, resume=resume,
                                     say=err.print, cache_dir=cache_dir, executor=executor))

    # The command is the run's library stage alone: the build, its selection and a stage manifest.
    stage_config = LibraryStageConfig(run_id=library_run_id(config.name), seed=config.seed,
                                      library=BuiltLibrary(source="build", config=str(config_path.resolve()),
                                                           domains=list(config.domains)))
    try:
        run_library(stage_config, space, LibraryDeps(shipped_root=library_root(), build=build_into))
    finally:
        if executor is not None:
            executor.close()
    funnel = funnels[0]
    root = space.root / "runs" / stage_config.run_id / "library" / "build"
    if json_out:
        emit_json(funnel.model_dump(mode="json"))
    else:
        _print_funnel(funnel)
        _print_costs(root, funnel)
        console().print(f"build directory: {root}")


@app.command("publish")
def publish(
    build_dir: Annotated[Path, typer.Option("--from", exists=True, file_okay=False, help="A build directory.")],
    target: Annotated[Path, typer.Option("--to", file_okay=False, help="Where the library goes.")],
) -> None:
    """Copy a build's accepted environments, with an index, to a library directory."""
    index = publish_library(build_dir, target)
    console().print(f"published {len(index.entries)} environment(s) to {target}")


@app.command("repack")
def repack(
    library: Annotated[Path | None, typer.Option("--library", file_okay=False, help="Default: the shipped library.")] = None,
) -> None:
    """Rewrite a library's spec.json files in the current file form (shared schemas); hashes stay."""
    lib = library or library_root()
    if not (lib / "index.json").is_file():
        raise EnvFactoryError(f"{lib} holds no library (index.json missing)")
    changed = repack_library(lib)
    console().print(f"rewrote {len(changed)} spec.json file(s) in {lib}")


@app.command("reproduce")
def reproduce(
    library: Annotated[Path | None, typer.Option("--library", file_okay=False, help="Default: the shipped library.")] = None,
    workspace: WorkspaceOption = Path("workspace"),
    only: Annotated[list[str] | None, typer.Option("--env", help="Only these environments (repeatable).")] = None,
    cache_dir: CacheOption = None,
) -> None:
    """Rebuild the library's environments from its config; check every spec hash and report digest."""
    lib = library or library_root()
    if not (lib / "index.json").is_file():
        raise EnvFactoryError(f"{lib} holds no library (index.json missing)")
    root = reproduce_root(Workspace(workspace))
    client = recorded_llm(lib, library_config(lib))
    with open_catalog(cache_dir, None, None, None, False) as catalog:
        results = reproduce_library(catalog, lib, root, only=only or None, differential=library_differential, llm=client)
    table = Table("environment", "spec hash", "report digest", "spec.json")
    bad = 0
    for result in results:
        ok_spec = "same" if result.spec_same else "DIFFERENT"
        ok_report = "same" if result.report_same else "DIFFERENT"
        ok_file = "same" if result.file_same else "DIFFERENT"
        bad += not (result.spec_same and result.report_same and result.file_same)
        table.add_row(result.name, ok_spec, ok_report, ok_file)
    console().print(table)
    if bad:
        raise EnvFactoryError(f"{bad} of {len(results)} environment(s) were not reproduced")
    console().print(f"all {len(results)} environment(s) reproduced")
