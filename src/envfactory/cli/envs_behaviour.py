"""`envfactory envs behaviour [NAME...] [--library] [--write]`: behavioural acceptance from the source
specs (issue 19), and the behavioural-suite parts of `envs verify`.

For each environment of the shipped library named (or all, with `--library`), the suite written from
its proposal and catalog operations (`verify.behaviour_suite.generate_suite`: scenarios and prose rules)
runs against it, with the ignored-argument probe (`verify.behaviour_probes`); prints one row per
environment and the totals, or JSON. `--out DIR` writes each `BehaviourReport` as `DIR/<name>.json`
and `DIR/summary.json`. `--write` stores each suite as the environment's `behaviour.json.gz`
(`spec.behaviour.dump_suite_file`; a suite an older library kept inside `scenarios.json` is moved out of
it), with this run's failures as `known_failures` and their reasons: the baseline `envs verify`
compares with. Nothing else in the library is written, and no content hash changes (neither file is
part of a spec). The catalog comes from the default resource sources.

For `envs verify` (cli/envs.py): `load_suite` reads a directory's scenario tests and suite;
`split_behaviour` keeps a shipped report comparable when it predates the suite; `verify_library_suites` runs every shipped
suite (`envs verify --library`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from envfactory.cli._output import console, emit_json, pretty_json, report_error, write_atomic
from envfactory.cli.resources import open_catalog
from envfactory.errors import EnvFactoryError
from envfactory.runtime import library_env_names, library_root, load_env
from envfactory.spec import CheckResult, Operation, ScenarioTest, VerificationReport
from envfactory.spec.behaviour import (
    SUITE_FILE,
    BehaviourReport,
    BehaviourSuite,
    ScenarioFile,
    dump_scenario_file,
    dump_suite_file,
    load_scenario_file,
    stored_suite,
)
from envfactory.spec.build import Proposal
from envfactory.verify.behaviour_probes import probe_arguments
from envfactory.verify.behaviour_run import library_summary
from envfactory.verify.behaviour_suite import check_behaviour, generate_suite, run_suite, with_known_failures

SCENARIOS_FILE = "scenarios.json"


def behaviour(
    names: Annotated[list[str] | None, typer.Argument(metavar="[NAME...]", help="Library environments.")] = None,
    library: Annotated[bool, typer.Option("--library", help="Every environment of the shipped library.")] = False,
    probe: Annotated[bool, typer.Option("--probe/--no-probe", help="Probe every argument for an effect.")] = True,
    seed: Annotated[int, typer.Option(help="Seed of generated values and probes.")] = 0,
    out: Annotated[Path | None, typer.Option(help="Write each report and summary.json here.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    write: Annotated[bool, typer.Option(
        "--write", help="Store each suite, with this run's failures as known failures, as its behaviour.json.gz.")] = False,
) -> None:
    """Behavioural acceptance: lifecycle, scoping, references, state machines, pagination, ignored arguments."""
    chosen = library_env_names() if library else list(names or [])
    unknown = [n for n in chosen if n not in library_env_names()]
    if not chosen or unknown:
        report_error(f"not in the shipped library: {', '.join(unknown)}" if unknown else "name environments or pass --library")
        raise typer.Exit(2)
    reports: list[BehaviourReport] = []
    with open_catalog(None, None, None, None, False) as catalog:
        for name in chosen:
            directory = library_root() / name
            proposal = Proposal.model_validate_json((directory / "proposal.json").read_bytes())
            operations: dict[str, Operation] = {}
            for proposed in proposal.operations:
                try:
                    operations[proposed.operation_id] = catalog.operation(proposed.operation_id)
                except (EnvFactoryError, KeyError):
                    continue  # a catalog entry gone: its expectations are not written
            env = load_env(directory)
            suite = generate_suite(env, proposal, operations, seed=seed)
            verdicts, checks = run_suite(env, suite)
            reports.append(BehaviourReport(
                env_name=env.name, scenarios=suite.scenarios, verdicts=verdicts, checks=checks,
                probes=probe_arguments(env, seed=seed) if probe else [], not_generated=suite.not_generated))
            if write:
                _store_suite(directory, with_known_failures(suite, verdicts, checks))
    summary = library_summary(reports)
    if out is not None:
        for report in reports:
            write_atomic(out / f"{report.env_name}.json", report.to_json_bytes())
        write_atomic(out / "summary.json", pretty_json(summary))
    if as_json:
        emit_json({"summary": summary, "environments": {r.env_name: r.counts() for r in reports}})
        return
    table = Table(title_justify="left")
    for column in ("environment", "scenarios", "calls", "passed", "failed", "inconclusive", "ignored req/opt"):
        table.add_column(column, overflow="fold")
    for report in reports:
        c = report.counts()
        table.add_row(report.env_name, str(c["scenarios"]), str(c["calls"]), str(c["passed"]), str(c["failed"]),
                      str(c["inconclusive"]), f"{c.get('none_required', 0)}/{c.get('none_optional', 0)}")
    console().print(table)
    totals = summary["totals"]
    console().print(
        f"{summary['environments']} environments, {totals.get('scenarios', 0)} scenarios "
        f"({summary['with_5_scenarios']} with >= 5), pass rate {summary['pass_rate']}; final-state violations "
        f"{summary['final_state_violations']}, reference errors {summary['reference_errors']}, scoping leaks "
        f"{summary['scoping_leaks']}; arguments ignored: required {totals.get('none_required', 0)}/"
        f"{totals.get('args_required', 0)}, optional {totals.get('none_optional', 0)}/{totals.get('args_optional', 0)}")


def _store_suite(directory: Path, suite: BehaviourSuite) -> None:
    """Write `suite` to DIR/behaviour.json.gz; a suite kept inside DIR/scenarios.json by an older
    library is taken out of it (the file goes back to its array of scenario tests)."""
    write_atomic(directory / SUITE_FILE, dump_suite_file(suite))
    path = directory / SCENARIOS_FILE
    if path.is_file():
        file = load_scenario_file(path.read_bytes())
        if file.behaviour is not None:
            write_atomic(path, dump_scenario_file(ScenarioFile(tests=file.tests)))


def load_suite(directory: Path) -> tuple[list[ScenarioTest], BehaviourSuite | None]:
    """The scenario tests of DIR/scenarios.json (either form; none without the file) and the
    behavioural suite DIR keeps (`spec.behaviour.stored_suite`); `ValueError` when one is malformed."""
    path = directory / SCENARIOS_FILE
    tests = list(load_scenario_file(path.read_bytes()).tests) if path.is_file() else []
    return tests, stored_suite(directory)


def split_behaviour(report: VerificationReport, shipped: VerificationReport | None
                    ) -> tuple[VerificationReport, CheckResult | None]:
    """`(report, None)`, except when `shipped` (a shipped library report) predates the behavioural
    suite: then the report without its `behaviour` check (re-sealed, verdict from the other checks),
    comparable with the shipped one, and the `behaviour` check to report beside it."""
    found = report.check("behaviour")
    if shipped is None or found is None or shipped.check("behaviour") is not None:
        return report, None
    checks = [c for c in report.checks if c.name != "behaviour"]
    timings = {k: v for k, v in report.timings_ms.items() if k != "behaviour"}
    verdict = "rejected" if any(c.status == "failed" for c in checks) else "verified"
    return report.model_copy(update={"checks": checks, "verdict": verdict, "timings_ms": timings}).sealed(), found


def print_beside(check: CheckResult) -> None:
    """Print a `behaviour` check reported beside a shipped report that predates it."""
    out = console()
    out.print(f"behaviour (beside the shipped report, which predates the suite): {check.status}: {check.detail}")
    for problem in check.problems[:20]:
        out.print(f"  behaviour: {problem}", style="red" if "known:" not in problem else "yellow")


def verify_library_suites(as_json: bool) -> None:
    """`envs verify --library`: every shipped environment's behavioural suite; exit 1 on an unexpected
    failure or an environment without a suite."""
    rows: dict[str, CheckResult | None] = {}
    for name in library_env_names():
        suite = stored_suite(library_root() / name)
        rows[name] = check_behaviour(load_env(library_root() / name), suite) if suite is not None else None
    bad = sorted(n for n, c in rows.items() if c is None or c.status == "failed")
    if as_json:
        emit_json({"environments": {n: c.model_dump(mode="json") if c else None for n, c in rows.items()},
                   "failed": bad})
    else:
        table = Table(title_justify="left")
        for column in ("environment", "status", "counts"):
            table.add_column(column, overflow="fold")
        for name, result in rows.items():
            counts = result.counts if result else {}
            table.add_row(name, result.status if result else "no suite",
                          ", ".join(f"{k} {counts.get(k, 0)}" for k in (
                              "scenarios", "passed", "failed", "known_failed", "inconclusive")))
        console().print(table)
        console().print(f"{len(rows)} environments, {len(bad)} failed or without a suite: {', '.join(bad) or 'none'}")
    if bad:
        raise typer.Exit(1)
