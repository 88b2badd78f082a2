"""Environment pages: the list of every environment (library, workspace, builds) and one environment's
spec, tools, collections and rules, seeds, provenance, verification report and dropped operations.

Each function returns a `Page` (template and context); artifacts that cannot be read become problem
lines on the page, and the rest of it is still shown.
"""

from __future__ import annotations

from typing import Any

from envfactory.spec import BuildRecord, EnvSpec, VerificationReport, declarative_model
from envfactory.spec.library import LibraryIndex, ProposalOutcome
from envfactory.viewer.jsonl import Page
from envfactory.viewer.render import PageResult, pretty, query_int
from envfactory.viewer.workspace import ArtifactProblem, EnvSource, WorkspaceData

PAGE_SIZE = 50


def _env_summary(data: WorkspaceData, source: EnvSource, name: str) -> dict[str, Any]:
    """Name, domain, provider, tools and verdict of one environment, read without full validation."""
    directory = source.path / name
    row: dict[str, Any] = {"source": source.key, "source_label": source.label, "name": name,
                           "domain": "", "provider": "", "tools": 0, "verdict": "", "problem": ""}
    try:
        spec = data.json(directory / "spec.json")
        meta = spec.get("meta", {}) if isinstance(spec, dict) else {}
        row["domain"] = str(meta.get("domain", ""))
        provenance = meta.get("provenance") or [{}]
        row["provider"] = str(provenance[0].get("provider", "")) if isinstance(provenance[0], dict) else ""
        row["tools"] = len(spec.get("tools", [])) if isinstance(spec, dict) else 0
    except (ArtifactProblem, AttributeError, TypeError, IndexError) as exc:
        row["problem"] = str(exc) or "unreadable spec.json"
    if (directory / "report.json").is_file():
        try:
            report = data.json(directory / "report.json")
            row["verdict"] = str(report.get("verdict", "")) if isinstance(report, dict) else ""
        except ArtifactProblem as exc:
            row["problem"] = row["problem"] or str(exc)
    return row


def _library_rows(data: WorkspaceData, source: EnvSource) -> list[dict[str, Any]] | None:
    """Rows of the shipped library from its `index.json` (no spec needs parsing), or None without one."""
    try:
        index = data.model(source.path / "index.json", LibraryIndex, "library index")
    except ArtifactProblem:
        return None
    present = set(data.env_names(source))
    rows = []
    for entry in index.entries:
        row = {"source": source.key, "source_label": source.label, "name": entry.name, "domain": entry.domain,
               "provider": entry.provider, "tools": entry.tools, "verdict": "", "problem": ""}
        if entry.name not in present:
            row["problem"] = "listed in index.json but its directory is missing"
        elif (source.path / entry.name / "report.json").is_file():
            try:
                report = data.json(source.path / entry.name / "report.json")
                row["verdict"] = str(report.get("verdict", "")) if isinstance(report, dict) else ""
            except ArtifactProblem as exc:
                row["problem"] = str(exc)
        rows.append(row)
    listed = {entry.name for entry in index.entries}
    rows += [_env_summary(data, source, name) for name in sorted(present - listed)]
    return rows


def env_rows(data: WorkspaceData) -> list[dict[str, Any]]:
    """A summary row for every environment of every source (the library's from its index)."""
    rows: list[dict[str, Any]] = []
    for source in data.env_sources():
        library = _library_rows(data, source) if source.key == "library" else None
        rows += library if library is not None else [_env_summary(data, source, name)
                                                     for name in data.env_names(source)]
    return rows


def envs_page(data: WorkspaceData, query: dict[str, str]) -> PageResult:
    """`/envs?q=&source=&page=`: every environment, searchable by name, domain, provider and source."""
    needle = query.get("q", "").strip().lower()
    source = query.get("source", "")
    rows = [row for row in env_rows(data) if not source or row["source"] == source]
    if needle:
        rows = [row for row in rows if any(needle in str(row[field]).lower()
                                           for field in ("name", "domain", "provider", "source_label", "verdict"))]
    page = Page.of(rows, query_int(query, "page", 1), PAGE_SIZE)
    sources = [(s.key, s.label) for s in data.env_sources()]
    return PageResult("envs.html", {"title": "Environments", "page": page, "q": query.get("q", ""),
                                    "source": source, "sources": sources})


def _collections(spec: EnvSpec) -> list[dict[str, Any]]:
    model = declarative_model(spec)
    if model is None:
        return []
    rows = []
    for name, decl in sorted(model.collections.items()):
        rows.append({
            "name": name, "key": decl.key, "description": decl.description,
            "unique": [", ".join(fields) for fields in decl.unique],
            "references": [f"{r.field} → {r.collection} (on delete: {r.on_delete})" for r in decl.references],
            "transitions": [{"field": t.field, "initial": t.initial,
                             "allowed": [f"{old} → {', '.join(new) or '(final)'}" for old, new in t.allowed.items()]}
                            for t in decl.transitions],
            "record_schema": pretty(decl.record_schema),
        })
    return rows


def _operations(spec: EnvSpec) -> dict[str, dict[str, Any]]:
    model = declarative_model(spec)
    if model is None:
        return {}
    return {
        tool: {"kind": op.kind, "collection": op.collection, "key_arg": op.key_arg,
               "requires": [{"message": r.message, "error": r.error,
                             "condition": pretty(r.condition.model_dump(mode="json"))} for r in op.requires],
               "effects": [pretty(e.model_dump(mode="json")) for e in op.effects]}
        for tool, op in model.operations.items()
    }


def _seeds(data: WorkspaceData, directory: Any) -> list[dict[str, Any]]:
    seeds_dir = directory / "seeds"
    rows: list[dict[str, Any]] = []
    if not seeds_dir.is_dir():
        return rows
    for path in sorted(seeds_dir.glob("*.json")):
        try:
            state = data.json(path)
            collections = state.get("collections", {}) if isinstance(state, dict) else {}
            counts = {name: len(records) for name, records in collections.items() if isinstance(records, dict | list)}
            rows.append({"name": path.stem, "counts": counts, "problem": "",
                         "state": pretty(state, limit=20_000)})
        except (ArtifactProblem, AttributeError) as exc:
            rows.append({"name": path.stem, "counts": {}, "problem": str(exc), "state": ""})
    return rows


def _outcome(data: WorkspaceData, source: EnvSource, name: str) -> ProposalOutcome | None:
    """The proposal outcome of a build's environment (why it was rejected), if the build kept one."""
    outcomes = source.path.parent / "outcomes"
    if source.key == "library" or not outcomes.is_dir():
        return None
    for path in sorted(outcomes.glob("*.json")):
        try:
            outcome = data.model(path, ProposalOutcome, "proposal outcome")
        except ArtifactProblem:
            continue
        if outcome.env_name == name or outcome.proposal_name == name:
            return outcome
    return None


def _library_entry(data: WorkspaceData, name: str) -> dict[str, Any] | None:
    try:
        index = data.model(data.library / "index.json", LibraryIndex, "library index")
    except ArtifactProblem:
        return None
    entry = next((e for e in index.entries if e.name == name), None)
    return None if entry is None else entry.model_dump(mode="json")


def env_page(data: WorkspaceData, source_key: str, name: str) -> PageResult:
    """`/env/<source>/<name>`: one environment, every part that can be read."""
    directory = data.env_dir(source_key, name)
    source = data.env_source(source_key)
    problems: list[str] = []
    context: dict[str, Any] = {"title": f"Environment {name}", "name": name, "source": source,
                               "problems": problems, "spec": None, "report": None, "build": None}
    try:
        spec = data.model(directory / "spec.json", EnvSpec, "environment spec")
        context.update(spec=spec, tools=[_tool(t) for t in spec.tools], collections=_collections(spec),
                       operations=_operations(spec), policy=spec.meta.policy,
                       authored=getattr(spec.implementation, "authored", None))
    except ArtifactProblem as exc:
        problems.append(str(exc))
    for filename, model, key, kind in (("report.json", VerificationReport, "report", "verification report"),
                                       ("build.json", BuildRecord, "build", "build record")):
        if (directory / filename).is_file():
            try:
                context[key] = data.model(directory / filename, model, kind)
            except ArtifactProblem as exc:
                problems.append(str(exc))
    context["seeds"] = _seeds(data, directory)
    context["outcome"] = _outcome(data, source, name)
    context["library_entry"] = _library_entry(data, name) if source.key == "library" else None
    return PageResult("env.html", context)


def _tool(tool: Any) -> dict[str, Any]:
    return {"name": tool.name, "description": tool.description, "effect": tool.effect,
            "idempotent": tool.idempotent, "input_schema": pretty(tool.input_schema),
            "output_schema": pretty(tool.output_schema),
            "source": tool.source.model_dump(mode="json") if tool.source is not None else None}


def env_count(data: WorkspaceData) -> int:
    """How many environments every source holds together."""
    return sum(len(data.env_names(source)) for source in data.env_sources())
