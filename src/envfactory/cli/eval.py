"""`envfactory eval run`: run an agent on benchmark or task suites and write a report.

`eval run` selects the suites (`--suite`, repeatable: bfcl_base, bfcl_miss_func, bfcl_miss_param,
bfcl_long_context, bfcl_composite, tau2_airline, tau2_retail, tau2_telecom; `--task-file PATH` adds our own Task v1 files), samples `--tasks N` per suite with
`--seed` (default: `eval.run.DEFAULT_SAMPLE`; `--all` for every task), runs `--k` attempts per task
with the agent loop and writes `runs/<run-id>/` in `--workspace`: `config.json`, `manifest.json`,
`attempts.jsonl` (one line per finished attempt, with its trajectory), `report.json`, `report.md` and
SVG charts. `--resume` continues a killed run (the run id defaults to a hash of the config, so the same
command resumes the same run).

The model: `--llm local` (the embedded model, default), `--llm openai:URL` with `--model NAME`, or
`--llm replay:FILE` (a cassette; `--cassette FILE` with another provider records one). Answers are
cached in the workspace's `llm-cache.sqlite` unless `--no-cache`. `--user-llm` (same forms, with
`--user-model`) gives the τ² user simulator its own model; the run id then carries a suffix naming it
and the manifest records it.

Other sub-commands (e.g. `eval contamination`) register on the same `app`.
"""

from __future__ import annotations

import dataclasses
import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

import envfactory
from envfactory.agent import AgentSettings, UserSettings
from envfactory.agent import prompt_hash as agent_prompt_hash
from envfactory.cli._output import console, emit_json
from envfactory.cli.contamination import contamination
from envfactory.cli.demo import _git_commit, _package_versions
from envfactory.cli.llm import build_settings
from envfactory.errors import SpecError
from envfactory.eval.report import EvalReport, Metrics
from envfactory.eval.run import (
    DEFAULT_SAMPLE,
    SUITES,
    EvalConfig,
    FanOut,
    SuiteSelection,
    require_suites,
    run_eval,
    select_tasks,
)
from envfactory.eval.run import Progress as RunProgress
from envfactory.llm import LLMSettings, UsageLedger, make_client
from envfactory.llm.hf import HFConfig
from envfactory.runtime.sandbox import SandboxPool
from envfactory.runtime.sources import DEFAULT_EPOCH
from envfactory.spec import RunManifest, content_hash
from envfactory.store import RunDir, Workspace, write_atomic

app = typer.Typer(
    name="eval",
    help="Evaluate agents on our tasks and on external benchmarks (BFCL v3 multi-turn, τ²-bench).",
    no_args_is_help=True,
    add_completion=False,
)

LOCAL_CONTEXT = 8192  # τ² policies and multi-turn BFCL histories exceed the 4096-token default


def parse_llm(spec: str, model: str | None, api_key: str | None, cassette: Path | None,
              models_dir: Path | None) -> LLMSettings:
    """`local`, `openai:URL` or `replay:FILE` as `LLMSettings` (through `llm`'s own flag handling)."""
    kind, _, rest = spec.partition(":")
    if kind == "local":
        settings = build_settings("local", model, None, api_key, "json_schema", "native", cassette, models_dir)
        return dataclasses.replace(settings, local=dataclasses.replace(settings.local, n_ctx=LOCAL_CONTEXT))
    if kind == "openai":
        if not rest:
            raise SpecError("--llm openai:URL needs the endpoint URL, e.g. openai:http://127.0.0.1:8000/v1")
        return build_settings("openai", model, rest, api_key, "json_schema", "native", cassette, models_dir)
    if kind == "hf":
        if not rest:
            raise SpecError("--llm hf:DIR needs a transformers checkpoint directory, e.g. hf:runs/<id>/sft/model")
        return dataclasses.replace(LLMSettings(provider="hf", hf=HFConfig(path=Path(rest))), cassette=cassette)
    if kind == "replay":
        if not rest:
            raise SpecError("--llm replay:FILE needs the cassette path")
        return build_settings("replay", model, None, api_key, "json_schema", "native", Path(rest), models_dir)
    raise SpecError(f"--llm must be local, openai:URL, hf:DIR or replay:FILE, not {spec!r}")


def _selections(suites: list[str], task_file: Path | None, tasks: int | None, all_tasks: bool) -> list[SuiteSelection]:
    unknown = sorted(set(suites) - set(SUITES) - {"tasks"})
    if unknown:
        raise SpecError(f"unknown suite(s) {unknown}; choose from {', '.join(s for s in SUITES if s != 'tasks')}")
    chosen = [s for s in suites if s != "tasks"] or ([] if task_file is not None else list(DEFAULT_SAMPLE))
    out = []
    for suite in dict.fromkeys(chosen):
        default = DEFAULT_SAMPLE.get(suite)  # type: ignore[call-overload]
        count = None if all_tasks else (tasks or default)
        out.append(SuiteSelection.model_validate({"suite": suite, "count": count}))
    if task_file is not None:
        out.append(SuiteSelection(suite="tasks", count=None if all_tasks else tasks, path=str(task_file)))
    return out


def _manifest(run_id: str, config: EvalConfig, user_model: str | None = None) -> RunManifest:
    dumped = config.model_dump(mode="json")
    return RunManifest(
        run_id=run_id, command="envfactory eval run",
        created_at=(DEFAULT_EPOCH + timedelta(seconds=config.seed)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        envfactory_version=envfactory.__version__,
        config=dumped if user_model is None else {**dumped, "user_model": user_model},
        package_versions=_package_versions(), git_commit=_git_commit(), seeds={"eval": config.seed},
        prompt_hashes={"agent": agent_prompt_hash()},
    )


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def _summary(report: EvalReport) -> Table:
    table = Table(title=f"eval {report.run_id} · {report.model}", title_justify="left")
    for column in ("group", "tasks", "attempts", "pass@1", f"pass^{report.k}", "mean reward"):
        table.add_column(column, justify="left" if column == "group" else "right", no_wrap=True)

    def row(name: str, m: Metrics, style: str = "") -> None:
        table.add_row(name, str(m.tasks), str(m.attempts), _pct(m.pass_at_1), _pct(m.pass_hat_k),
                      f"{m.mean_reward:.3f}", style=style)

    for name, metrics in report.by_suite.items():
        row(name, metrics)
    row("overall", report.overall, "bold")
    return table


# long: a Typer command whose 33 option declarations are its signature; the body is about 60 lines
@app.command("run")
def run(
    suite: Annotated[list[str] | None, typer.Option("--suite", help="bfcl_base, bfcl_miss_func, bfcl_miss_param, "
                                                     "bfcl_long_context, bfcl_composite, tau2_airline, "
                                                     "tau2_retail, tau2_telecom (repeatable; default: the seeded sample).")] = None,
    task_file: Annotated[Path | None, typer.Option("--task-file", exists=True,
                                                   help="Our own Task v1 files (.json, .jsonl or a directory).")] = None,
    tasks: Annotated[int | None, typer.Option("--tasks", min=1, help="Tasks sampled per suite.")] = None,
    all_tasks: Annotated[bool, typer.Option("--all", help="Every task of the chosen suites.")] = False,
    k: Annotated[int, typer.Option("--k", min=1, help="Attempts per task (pass^k).")] = 1,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    temperature: Annotated[float, typer.Option("--temperature", min=0.0, max=2.0,
                                               help="Agent sampling temperature (0: greedy).")] = 0.0,
    control: Annotated[str, typer.Option("--control", help="decide (loop-driven, for small models) or native.")] = "decide",
    max_steps: Annotated[int, typer.Option("--max-steps", min=1, help="Agent steps per turn.")] = 4,
    max_user_turns: Annotated[int, typer.Option("--max-user-turns", min=1,
                                                help="Simulated-user messages per τ² episode.")] = 3,
    llm: Annotated[str, typer.Option("--llm", envvar="ENVFACTORY_EVAL_LLM",
                                     help="local, openai:URL, hf:DIR or replay:FILE.")] = "local",
    user_llm: Annotated[str | None, typer.Option(
        "--user-llm", help="The user simulator's own model (τ² suites), same forms as --llm; default: the agent's.")] = None,
    user_model: Annotated[str | None, typer.Option("--user-model", help="Model name for --user-llm.")] = None,
    model: Annotated[str | None, typer.Option("--model", envvar="ENVFACTORY_LLM_MODEL",
                                              help="Local model key or the endpoint's model name.")] = None,
    api_key: Annotated[str | None, typer.Option("--api-key", envvar=["ENVFACTORY_LLM_API_KEY", "OPENAI_API_KEY"],
                                                help="Key for the endpoint.")] = None,
    cassette: Annotated[Path | None, typer.Option("--cassette", dir_okay=False,
                                                  help="Record every answer into this cassette.")] = None,
    models_dir: Annotated[Path | None, typer.Option("--models-dir", envvar="ENVFACTORY_MODELS_DIR",
                                                    file_okay=False)] = None,
    workspace: Annotated[Path, typer.Option("--workspace", "-w", envvar="ENVFACTORY_WORKSPACE",
                                            file_okay=False)] = Path("workspace"),
    run_id: Annotated[str | None, typer.Option("--run-id", help="Default: eval-<hash of the config>.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue a run, skipping finished attempts.")] = False,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Do not read or write the LLM response cache.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    executor: Annotated[str, typer.Option("--executor", help="serial (this process, default), pool or ray: "
                                          "where attempts run; results are the same.")] = "serial",
    workers: Annotated[int | None, typer.Option("--workers", min=1, help="Pool processes or local Ray CPUs.")] = None,
    ray_address: Annotated[str | None, typer.Option("--ray-address", help="Join this Ray cluster.")] = None,
) -> None:
    """Run an agent on task suites; write attempts, a JSON and a Markdown report under runs/<run-id>/."""
    if executor not in ("serial", "pool", "ray"):
        raise SpecError(f"--executor must be serial, pool or ray, not {executor!r}")
    if control not in ("decide", "native"):
        raise SpecError(f"--control must be decide or native, not {control!r}")
    mode: Literal["decide", "native"] = "decide" if control == "decide" else "native"
    settings = parse_llm(llm, model, api_key, cassette, models_dir)
    selections = _selections(suite or [], task_file, tasks, all_tasks)
    require_suites(selections)  # before any model is loaded: say how to install a missing benchmark
    ledger = UsageLedger()
    space = Workspace(workspace)
    cache = None if no_cache or settings.provider == "replay" else space.open_llm_cache()
    client = make_client(settings, cache=cache, ledger=ledger)
    user_settings = None if user_llm is None else parse_llm(user_llm, user_model, api_key, None, models_dir)
    user_client = None if user_settings is None else make_client(user_settings, cache=cache, ledger=ledger)
    config = EvalConfig(
        suites=selections, k=k, seed=seed, model=client.model_id, agent_prompts=agent_prompt_hash(),
        agent=AgentSettings(control=mode, max_steps_per_turn=max_steps, max_user_turns=max_user_turns,
                            temperature=temperature),
        user=UserSettings(temperature=temperature),
    )
    # The user's model is not a field of EvalConfig (a new field would rename every recorded run): it names
    # the run (its own id suffix) and the manifest instead.
    default_id = config.default_run_id() if user_client is None else \
        f"{config.default_run_id()}-user-{content_hash(user_client.model_id)[:8]}"
    run_dir = RunDir.create(space.ensure(), run_id or default_id)
    out = console()
    started = time.perf_counter()
    try:
        with SandboxPool(max_workers=4) as pool:
            items = select_tasks(config, sandbox=pool, workdir=run_dir.path / "work", envs_dir=space.envs_dir)
            if not (run_dir.path / "manifest.json").exists():
                run_dir.write_manifest(_manifest(run_dir.run_id, config,
                                                 None if user_client is None else user_client.model_id))
            if not as_json:
                out.print(Text.assemble(("envfactory eval", "bold"),
                                        f" · {len(items)} task(s) × {k} · {client.model_id} → {run_dir.path}"))
            columns = (TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
            with Progress(*columns, console=out, transient=True, disable=as_json) as progress:
                bar = progress.add_task("attempts", total=len(items) * k)

                def on_progress(event: RunProgress) -> None:
                    label = "attempts" if event.record is None else f"{event.record.suite} {event.record.source_id}"
                    progress.update(bar, completed=event.done, description=label)

                fan_out = _fan_out(executor, workers, ray_address, settings,
                                   None if cache is None else space.llm_cache_path, run_dir, space, user_settings)
                try:
                    report = run_eval(config, client, run_dir, items, resume=resume, on_progress=on_progress,
                                      fan_out=fan_out, user_client=user_client)
                finally:
                    if fan_out is not None:
                        fan_out.executor.close()
    finally:
        if cache is not None:
            cache.close()
    elapsed = time.perf_counter() - started
    usage = ledger.report().total()
    timing: dict[str, Any] = {"seconds": round(elapsed, 1), "llm_calls": usage.calls,
                              "cached_calls": usage.cached_calls, "prompt_tokens": usage.prompt_tokens,
                              "completion_tokens": usage.completion_tokens}
    write_atomic(run_dir.logs_dir / "timing.json", (json.dumps(timing, indent=1) + "\n").encode("utf-8"))
    if as_json:
        emit_json(report.model_dump(mode="json"))
        return
    out.print(_summary(report))
    out.print(Text(f"{elapsed:.1f}s · {usage.calls} LLM call(s), {usage.cached_calls} cached · "
                   f"report {run_dir.path / 'report.md'}", style="dim"))


def _fan_out(kind: str, workers: int | None, ray_address: str | None, settings: LLMSettings, cache_path: Path | None,
             run_dir: RunDir, space: Workspace, user_settings: LLMSettings | None = None) -> FanOut | None:
    """Where attempts run: None (this process) for `serial`, else the executor and the model its workers open."""
    if kind == "serial" and ray_address is None:
        return None
    from envfactory.exec import make_executor, usable_cores
    from envfactory.llm.workers import worker_model
    from envfactory.spec.pipeline import ExecutorConfig

    chosen = make_executor(ExecutorConfig(kind="ray" if ray_address else kind, workers=workers,
                                          ray_address=ray_address))
    threads = max(1, usable_cores() // max(1, chosen.workers))
    model = worker_model(settings, cache_path, threads=threads)
    user = None if user_settings is None else worker_model(user_settings, cache_path, threads=threads)
    return FanOut(executor=chosen, model=model, workdir=run_dir.path / "work", envs_dir=space.envs_dir,
                  user_model=user)


app.command("contamination")(contamination)  # `eval contamination`: envfactory.cli.contamination
