"""`envfactory envs list|show|validate|verify`: the bundled environment library and environment files.

- `list`: the bundled environments, each with its name, version, domain, implementation kind, tool
  counts and description.
- `show NAME|PATH`: the tools (effect, description, required arguments), the state (collections or
  state-schema properties) and the seed states with their record counts.
- `validate FILE_OR_DIR`: loads a declarative `env.json`, a python `env.json` or a sealed `spec.json`
  through the runtime loader. It also checks every seed state. It prints the content hash and counts,
  or every problem found, with exit code 1.
- `verify DIR|NAME`: runs every environment check (`verify.envchecks`, docs/verification.md) with the
  scenario tests of `DIR/scenarios.json` and the behavioural suite `DIR` keeps (`behaviour.json.gz`)
  when present, writes `DIR/report.json` and says whether its
  evidence changed; exit code 1 when the verdict is `rejected` (or, with `--check`, when it changed).
  Untrusted python toolkits run in a sandbox worker. `verify --library` runs the behavioural suite of
  every shipped environment (docs/behaviour.md).
- `behaviour [NAME...] [--library]`: behavioural acceptance from the source specs (`envs_behaviour.py`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.table import Table
from rich.text import Text

from envfactory.cli._output import console, emit_json, pretty_json, problems_of, report_error, write_atomic
from envfactory.cli.envs_behaviour import (
    behaviour,
    load_suite,
    print_beside,
    split_behaviour,
    verify_library_suites,
)
from envfactory.errors import EnvFactoryError, SandboxRequiredError
from envfactory.runtime import (
    Environment,
    bundled_env_names,
    library_config,
    library_env_names,
    library_root,
    load_env,
)
from envfactory.runtime.sandbox import SandboxPool
from envfactory.spec import (
    BuildRecord,
    DifferentialResult,
    HybridImplementation,
    ScenarioTest,
    VerificationReport,
    declarative_model,
)
from envfactory.spec.behaviour import BehaviourSuite
from envfactory.verify.envchecks import verify_environment

app = typer.Typer(
    name="envs",
    help="List, inspect and validate environments.",
    no_args_is_help=True,
    add_completion=False,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
app.command("behaviour")(behaviour)


# -- loading -----------------------------------------------------------------------------------------------


class _Loader:
    """Loads environments for the CLI, starting one sandbox worker pool the first time an environment
    needs it (authored tools of hybrid environments; untrusted toolkits when --trust is not given)."""

    def __init__(self, trusted: bool = False) -> None:
        self._trusted = trusted
        self._pool: SandboxPool | None = None

    def __call__(self, ref: str | Path) -> Environment:
        try:
            return load_env(ref, trusted=self._trusted, sandbox=self._pool)
        except SandboxRequiredError:
            if self._pool is not None:
                raise
            self._pool = SandboxPool(max_workers=2)
            return load_env(ref, trusted=self._trusted, sandbox=self._pool)

    @property
    def pool(self) -> SandboxPool | None:
        return self._pool

    def __enter__(self) -> _Loader:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.close()


# -- facts about one environment -------------------------------------------------------------------------


def record_counts(state: Any) -> dict[str, int]:
    """Records per collection of a state (declarative layout), else the size of each top-level entry."""
    if isinstance(state, dict) and isinstance(state.get("collections"), dict):
        return {name: len(records) for name, records in state["collections"].items() if isinstance(records, dict | list)}
    if isinstance(state, dict):
        return {key: len(value) for key, value in state.items() if isinstance(value, dict | list)}
    return {}


def _property_names(schema: dict[str, Any]) -> list[str]:
    properties = schema.get("properties")
    return list(properties) if isinstance(properties, dict) else []


def _required(schema: dict[str, Any]) -> list[str]:
    required = schema.get("required")
    return [str(name) for name in required] if isinstance(required, list) else []


def env_summary(env: Environment) -> dict[str, Any]:
    """One row of `envs list`: name, version, domain, kind, tool and write counts, description, ref and
    content hash, all read from `env.spec` (JSON-ready; no I/O)."""
    spec = env.spec
    return {
        "name": spec.meta.name,
        "version": spec.meta.version,
        "domain": spec.meta.domain,
        "kind": spec.implementation.kind,
        "tools": len(spec.tools),
        "writes": sum(1 for tool in spec.tools if tool.effect == "write"),
        "description": spec.meta.description,
        "ref": spec.ref,
        "content_hash": spec.content_hash,
    }


def env_details(env: Environment) -> dict[str, Any]:
    """What `envs show` prints: `env_summary` plus each tool's effect, parameters and required names and, for
    a declarative environment, its collections (JSON-ready; no I/O)."""
    spec = env.spec
    tools = [
        {
            "name": tool.name,
            "effect": tool.effect,
            "idempotent": tool.idempotent,
            "description": tool.description,
            "parameters": sorted(_property_names(tool.input_schema)),
            "required": _required(tool.input_schema),
        }
        for tool in spec.tools
    ]
    collections: list[dict[str, Any]] | None = None
    model = declarative_model(spec)
    if model is not None:
        collections = [
            {
                "name": name,
                "key": decl.key,
                "description": decl.description,
                "fields": _property_names(decl.record_schema),
                "references": [f"{ref.field} → {ref.collection}" for ref in decl.references],
                "transitions": [t.field for t in decl.transitions],
            }
            for name, decl in model.collections.items()
        ]
    state_properties = sorted(_property_names(spec.state_schema))
    return {
        **env_summary(env),
        "policy": spec.meta.policy,
        "provenance": [p.resource for p in spec.meta.provenance],
        "tool_specs": tools,
        "collections": collections,
        "state_properties": state_properties,
        "seeds": {name: record_counts(state) for name, state in sorted(env.seeds.items())},
        "directory": str(env.directory) if env.directory is not None else None,
        "sources": [
            {"resource": p.resource, "package": f"{p.package}@{p.package_version}" if p.package else "",
             "file": p.file, "licence": p.licence, "operations": len(p.operations)}
            for p in spec.meta.provenance
        ],
        **_build_evidence(env.directory),
    }


def _build_evidence(directory: Path | None) -> dict[str, Any]:
    """What a built environment's directory says about how it was made and verified (`build.json`,
    `report.json`): dropped operations with reasons, seed realism, the verdict and its checks."""
    out: dict[str, Any] = {"build": None, "verification": None}
    if directory is None:
        return out
    build_path, report_path = directory / "build.json", directory / "report.json"
    if build_path.is_file():
        record = BuildRecord.model_validate_json(build_path.read_bytes())
        realism = record.seed_realism
        out["build"] = {
            "kept_ratio": record.kept_ratio, "revise_rounds": record.revise_rounds,
            "dropped": [{"operation": d.operation_id, "stage": d.stage, "reason": d.reason} for d in record.dropped],
            "seed_realism": None if realism is None else {
                "model": realism.model, "accepted": realism.accepted, "rejected": realism.rejected,
                "failures": len(realism.failures)},
            "authoring": None if record.authoring is None else {
                "model": record.authoring.model, "requests": record.authoring.requests,
                "asked": len(record.authoring.targets), "authored": record.authoring.authored,
                "failures": record.authoring.failures},
        }
    if report_path.is_file():
        report = VerificationReport.model_validate_json(report_path.read_bytes())
        out["verification"] = {
            "verdict": report.verdict, "evidence_digest": report.evidence_digest,
            "checks": {c.name: c.status for c in report.checks},
            "differential": [f"{d.reference}: {d.matched}/{d.calls_compared}" for d in report.differential],
        }
    return out


def _first_sentence(text: str, limit: int = 60) -> str:
    head, dot, _ = text.partition(". ")
    head += dot.strip()
    return head if len(head) <= limit else head[: limit - 1].rstrip() + "…"


def _counts_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{name} {count}" for name, count in counts.items()) or "empty"


# -- verbs ---------------------------------------------------------------------------------------------


LibraryOption = Annotated[
    bool, typer.Option("--library", help="List the shipped library of verified environments instead of the bundled ones.")
]
DomainOption = Annotated[str | None, typer.Option("--domain", help="Only environments of this domain.")]


def _library_row(name: str, load: _Loader) -> dict[str, Any]:
    env = load(library_root() / name)
    row = env_summary(env)
    report_path = library_root() / name / "report.json"
    report = VerificationReport.model_validate_json(report_path.read_bytes()) if report_path.is_file() else None
    row["verdict"] = report.verdict if report is not None else "unverified"
    row["providers"] = sorted({p.provider for p in env.spec.meta.provenance})
    row["licences"] = sorted({p.licence for p in env.spec.meta.provenance})
    return row


@app.command("list")
def list_envs(as_json: JsonOption = False, library: LibraryOption = False, domain: DomainOption = None) -> None:
    """List the bundled environments (or, with --library, the shipped library)."""
    rows: list[dict[str, Any]] = []
    names = library_env_names() if library else bundled_env_names()
    with _Loader() as load:
        for name in names:
            try:
                rows.append(_library_row(name, load) if library else env_summary(load(name)))
            except EnvFactoryError as exc:
                rows.append({"name": name, "error": str(exc)})
    if domain is not None:
        rows = [row for row in rows if "error" in row or row.get("domain") == domain]
    failed = [row for row in rows if "error" in row]
    if as_json:
        emit_json(rows)
    else:
        what = "library" if library else "bundled"
        table = Table(title=f"{len(rows)} {what} environment(s)", title_justify="left")
        columns = ["name", "version", "domain", "kind", "tools", "writes"] + (["verdict", "provider"] if library else [])
        for column in columns:
            table.add_column(column, no_wrap=True, justify="right" if column in ("tools", "writes") else "left")
        table.add_column("description")
        for row in rows:
            if "error" in row:
                table.add_row(row["name"], *[""] * (len(columns) - 1), Text(f"cannot load: {row['error']}", style="red"))
            else:
                extra = [row["verdict"], ", ".join(row["providers"])] if library else []
                table.add_row(
                    row["name"], row["version"], row["domain"], row["kind"],
                    str(row["tools"]), str(row["writes"]), *extra, _first_sentence(row["description"]),
                )
        console().print(table)
    if failed:
        raise typer.Exit(1)


TrustOption = Annotated[
    bool,
    typer.Option(
        "--trust",
        help="Import a python toolkit that is not bundled into this process (only for code you trust; "
        "untrusted toolkits belong to sandbox workers).",
    ),
]


@app.command("show")
def show(
    ref: Annotated[str, typer.Argument(metavar="NAME|PATH", help="A bundled environment name, a directory or a file.")],
    as_json: JsonOption = False,
    trust: TrustOption = False,
) -> None:
    """Show an environment: tools, state, seeds."""
    with _Loader(trust) as load:
        details = env_details(load(ref))
    if as_json:
        emit_json(details)
        return
    out = console()
    out.print(Text.assemble((details["name"], "bold"), f" {details['version']}  ", (details["ref"], "dim")))
    out.print(f"domain {details['domain']} · {details['kind']} implementation · {details['tools']} tools "
              f"({details['writes']} write)")
    if details["description"]:
        out.print(Text(details["description"]))
    if details["policy"]:
        out.print(Text.assemble(("policy: ", "bold"), details["policy"]))
    tools = Table(title="tools", title_justify="left")
    tools.add_column("tool", style="bold")
    tools.add_column("effect")
    tools.add_column("arguments (* required)", overflow="fold")
    tools.add_column("description", overflow="fold")
    for tool in details["tool_specs"]:
        effect = tool["effect"] + (" · idempotent" if tool["idempotent"] else "")
        args = ", ".join(p + ("*" if p in tool["required"] else "") for p in tool["parameters"])
        tools.add_row(tool["name"], effect, args, tool["description"])
    out.print(tools)
    if details["collections"] is not None:
        state = Table(title="collections", title_justify="left")
        state.add_column("collection", style="bold")
        state.add_column("key")
        state.add_column("fields", overflow="fold")
        state.add_column("references", overflow="fold")
        for coll in details["collections"]:
            state.add_row(coll["name"], coll["key"], ", ".join(coll["fields"]), ", ".join(coll["references"]))
        out.print(state)
    else:
        out.print(Text.assemble(("state: ", "bold"), ", ".join(details["state_properties"]) or "(no properties)"))
    seeds = details["seeds"]
    out.print(Text.assemble(("seeds: ", "bold"), "; ".join(f"{name} ({_counts_text(c)})" for name, c in seeds.items())
                            or "none"))
    for source in details["sources"]:
        where = source["package"] or source["file"] or "-"
        out.print(Text.assemble(("source: ", "bold"), f"{source['resource']} ({where}), licence "
                                f"{source['licence'] or 'not stated'}, {source['operations']} operations"))
    if details["verification"] is not None:
        ver = details["verification"]
        failed = [name for name, status in ver["checks"].items() if status == "failed"]
        out.print(Text.assemble(("verification: ", "bold"), f"{ver['verdict']}, {len(ver['checks'])} checks"
                                + (f" (failed: {', '.join(failed)})" if failed else "")
                                + (f"; differential {', '.join(ver['differential'])}" if ver["differential"] else "")
                                + f"; evidence {ver['evidence_digest'][:16]}"))
    if details["build"] is not None:
        build = details["build"]
        out.print(Text.assemble(("build: ", "bold"), f"kept {build['kept_ratio']:.0%} of the proposed operations, "
                                f"{build['revise_rounds']} revision round(s)"))
        for dropped in build["dropped"]:
            out.print(Text(f"  dropped {dropped['operation']} ({dropped['stage']}): {dropped['reason'][:160]}"))
        authoring = build["authoring"]
        if authoring is not None:
            out.print(Text.assemble(("authored: ", "bold"), f"{len(authoring['authored'])} of {authoring['asked']} "
                                    f"operations written by {authoring['model']} in {authoring['requests']} request(s), "
                                    "run in sandbox workers"))
            for failure in authoring["failures"][:3]:
                out.print(Text(f"  failed attempt: {failure[:160]}"))
        realism = build["seed_realism"]
        if realism is not None:
            out.print(Text.assemble(("seed realism: ", "bold"), f"{realism['accepted']} values from {realism['model']} "
                                    f"accepted, {realism['rejected']} rejected, {realism['failures']} failed request(s)"))


@app.command("validate")
def validate(
    path: Annotated[Path, typer.Argument(metavar="FILE_OR_DIR", help="env.json, spec.json or an environment directory.")],
    as_json: JsonOption = False,
    trust: TrustOption = False,
) -> None:
    """Validate an environment file or directory (spec, implementation and seed states)."""
    try:
        if not path.exists():
            raise FileNotFoundError
        with _Loader(trust) as load:
            env = load(path)
    except FileNotFoundError:
        _invalid(path, f"{path}: no such file or directory", as_json)
    except EnvFactoryError as exc:
        message = str(exc)
        if str(path) not in message.partition("\n")[0]:
            message = f"{path}: {message}"
        _invalid(path, message, as_json)
    summary = env_summary(env)
    seeds = {name: record_counts(state) for name, state in sorted(env.seeds.items())}
    if as_json:
        emit_json({"ok": True, "path": str(path), **summary, "seeds": seeds})
        return
    out = console()
    out.print(Text.assemble(("OK ", "bold green"), f"{path}: ", (summary["ref"], "bold")))
    out.print(f"  content hash {summary['content_hash']}")
    out.print(f"  {summary['kind']} implementation · {summary['tools']} tools ({summary['writes']} write)"
              + _collections_note(env))
    for name, counts in seeds.items():
        out.print(f"  seed {name}: {_counts_text(counts)}")


def _collections_note(env: Environment) -> str:
    model = declarative_model(env.spec)
    if model is None:
        return ""
    impl = env.spec.implementation
    authored = f" · {len(impl.authored.tools)} authored tools (sandboxed)" if isinstance(impl, HybridImplementation) else ""
    return f" · {len(model.collections)} collections{authored}"


def _invalid(path: Path, message: str, as_json: bool) -> NoReturn:
    if as_json:
        emit_json({"ok": False, "path": str(path), "message": message, "problems": problems_of(message)})
    else:
        report_error(message)
    raise typer.Exit(1)


# -- verify --------------------------------------------------------------------------------------------

REPORT_FILE = "report.json"
SCENARIOS_FILE = "scenarios.json"


@app.command("verify")
def verify(
    ref: Annotated[str | None, typer.Argument(metavar="DIR|NAME", help="An environment directory or a bundled name.")] = None,
    as_json: JsonOption = False,
    seed: Annotated[int | None, typer.Option(help="Seed of every generated call plan (default 0, or the library's).")] = None,
    fuzz_calls: Annotated[int | None, typer.Option(
        help="Fuzzed calls, valid and corrupted arguments (default 240, or the library's).")] = None,
    write: Annotated[bool, typer.Option("--write/--no-write", help="Write DIR/report.json.")] = True,
    check: Annotated[
        bool, typer.Option("--check", help="Do not write; exit 1 when DIR/report.json differs from this run.")
    ] = False,
    trust: TrustOption = False,
    library: Annotated[bool, typer.Option(
        "--library", help="Run the behavioural suite of every shipped environment (no DIR|NAME).")] = False,
) -> None:
    """Verify an environment: load, parity, seeds, determinism, isolation, fuzz, scenarios and the
    behavioural suite (DIR/scenarios.json, DIR/behaviour.json.gz).

    Writes DIR/report.json (canonical JSON) unless --no-write, says whether it changed, and exits 1
    when the verdict is `rejected` (or, with --check, when the stored report differs). A name from the
    shipped library is re-verified with the library's settings (differential scripts against moto
    included) and compared with its shipped report, which is never rewritten; where the shipped report
    predates the behavioural suite, the suite's check is reported beside it. --library runs every
    shipped environment's behavioural suite and exits 1 when one fails unexpectedly.
    """
    if library or ref is None:
        if not library or ref is not None:
            report_error("give DIR|NAME, or --library alone")
            raise typer.Exit(2)
        verify_library_suites(as_json)
        return
    directory = Path(ref) if Path(ref).is_dir() else None
    differential: list[DifferentialResult] = []
    in_library = directory is None and ref not in bundled_env_names() and ref in library_env_names()
    if in_library:
        # A shipped library environment: re-verified exactly as it was accepted (the library's seed,
        # fuzz budget and differential scripts), compared with the shipped report, never written.
        from envfactory.build.reference import library_differential

        directory = library_root() / ref
        config = library_config()
        seed = config.seed if seed is None else seed
        fuzz_calls = config.fuzz_calls if fuzz_calls is None else fuzz_calls
        if config.differential:
            with _Loader() as load:
                differential = library_differential(directory, load(directory).spec, seed=seed, sandbox=load.pool)
        write = False
        check = True
    seed = 0 if seed is None else seed
    fuzz_calls = 240 if fuzz_calls is None else fuzz_calls
    scenarios, suite = _scenario_file(directory)
    with SandboxPool(max_workers=1) as pool:
        target: str | Path = directory if in_library and directory is not None else ref
        report = verify_environment(target, scenarios, seed=seed, fuzz_calls=fuzz_calls,
                                    sandbox=pool, trusted=trust, differential=differential, behaviour=suite)
    previous: VerificationReport | None = None
    report_path = directory / REPORT_FILE if directory is not None else None
    if report_path is not None and report_path.is_file():
        try:
            previous = VerificationReport.model_validate_json(report_path.read_bytes())
        except ValueError:
            previous = None
    report, beside = split_behaviour(report, previous if in_library else None)
    changed = previous is None or previous.evidence_digest != report.evidence_digest
    if report_path is not None and write and not check:
        write_atomic(report_path, pretty_json(report.model_dump(mode="json")))
    if as_json:
        emit_json({
            **report.model_dump(mode="json"),
            "failing_tools": report.failing_tools(),
            "previous_digest": previous.evidence_digest if previous else None,
            "changed": changed,
            **({"behaviour": beside.model_dump(mode="json")} if beside is not None else {}),
        })
    else:
        _print_report(report, previous, changed)
        if beside is not None:
            print_beside(beside)
    if report.verdict == "rejected" or (check and changed) or (beside is not None and beside.status == "failed"):
        raise typer.Exit(1)


def _scenario_file(directory: Path | None) -> tuple[list[ScenarioTest], BehaviourSuite | None]:
    """The scenario tests of DIR/scenarios.json and the suite DIR keeps (none without them); exit 1 when malformed."""
    if directory is None:
        return [], None
    try:
        return load_suite(directory)
    except ValueError as exc:
        report_error(f"{directory}: malformed {SCENARIOS_FILE} or behavioural suite: {exc}")
        raise typer.Exit(1) from exc


def _print_report(report: VerificationReport, previous: VerificationReport | None, changed: bool) -> None:
    out = console()
    style = "bold green" if report.verdict == "verified" else "bold red"
    out.print(Text.assemble((report.verdict.upper(), style), f" {report.env_name} ",
                            (f"spec {report.spec_hash[:12]} · evidence {report.evidence_digest[:12]}", "dim")))
    table = Table(title_justify="left")
    for column in ("check", "status", "counts", "detail"):
        table.add_column(column, overflow="fold")
    for result in report.checks:
        colour = {"passed": "green", "failed": "red", "skipped": "dim"}[result.status]
        counts = ", ".join(f"{k} {v}" for k, v in result.counts.items() if not k.startswith("mode:"))
        table.add_row(result.name, Text(result.status, style=colour), counts, result.detail)
    out.print(table)
    for result in report.checks:
        for problem in result.problems[:10]:
            out.print(Text(f"  {result.name}: {problem}", style="red"))
    for oracle, tally in report.scenarios_by_oracle.items():
        out.print(f"  scenarios from {oracle}: {tally.passed}/{tally.total} passed")
    if report.failing_tools():
        out.print(Text.assemble(("failing tools: ", "bold"), ", ".join(report.failing_tools())))
    if previous is not None:
        out.print("report.json " + ("changed: evidence differs from the stored report" if changed
                                    else "unchanged: same evidence digest as the stored report"))
