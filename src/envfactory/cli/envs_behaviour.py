"""`envfactory envs behaviour [NAME...] [--library]`: behavioural acceptance from the source specs (issue 19).

For each environment of the shipped library named (or all, with `--library`), the scenarios written
from its proposal and catalog operations (`verify.behaviour`) run against it, with the ignored-argument
probe (`verify.behaviour_probes`); prints one row per environment and the totals, or JSON. Nothing in
the library is written; `--out DIR` writes each `BehaviourReport` as `DIR/<name>.json` and
`DIR/summary.json`. The catalog (operations) comes from the default resource sources.
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
from envfactory.spec import Operation
from envfactory.spec.behaviour import BehaviourReport
from envfactory.spec.build import Proposal
from envfactory.verify.behaviour_run import behaviour_report, library_summary


def behaviour(
    names: Annotated[list[str] | None, typer.Argument(metavar="[NAME...]", help="Library environments.")] = None,
    library: Annotated[bool, typer.Option("--library", help="Every environment of the shipped library.")] = False,
    probe: Annotated[bool, typer.Option("--probe/--no-probe", help="Probe every argument for an effect.")] = True,
    seed: Annotated[int, typer.Option(help="Seed of generated values and probes.")] = 0,
    out: Annotated[Path | None, typer.Option(help="Write each report and summary.json here.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
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
            reports.append(behaviour_report(load_env(directory), proposal, operations, seed=seed, probe=probe))
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
