"""`envfactory graph build|eval|stats|show|sample`: the tool graph.

- `build`: from bundled or given environments (`--env NAME|PATH`, repeatable) and/or catalog services and
  operations (`--from aws:sqs,google:tasks:v1,aws:sns:Publish`); writes the graph stage of run
  `graph-build`, `<workspace>/runs/graph-build/graph/graph.json` with its manifest (or only the file `--out`). Deterministic and model-free by default; `--embed` adds embedding edges (the packaged
  all-MiniLM-L6-v2, cached in the workspace), `--llm` adds the configured model's edge review and
  `user_providable` labels (provider flags as for `envfactory llm`).
- `eval`: precision and recall per provenance and combined, per split of the labelled set (default: the
  committed `graph/data/edge_labels.jsonl`; `--labels FILE` for another); `--calibrate` chooses the
  thresholds on the calibration split and reports with them. `--llm` (provider flags as for `build`)
  has the model review the labelled pairs (`--llm-services` bounds it to some producer services) and
  reports the llm provenance on the reviewed rows; `--provider replay --cassette FILE` replays a run.
- `stats`: coverage, chain length and servers per chain, validity of topology-aware vs random-walk
  chains over `--samples` each; printed and saved as JSON (`stats.json` next to the built graph).
- `show`: the graph, or one tool's neighbourhood (`--tool`), as SVG, PNG or HTML (by the file suffix).
- `sample`: chains with their binding plans, printed or written as JSONL.

A workspace an older version left with `<workspace>/graph/` has it moved to `runs/graph-build/graph/`
by the first of these verbs that uses the workspace's graph (`graph.stage.migrate_legacy_graph`).
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.table import Table
from rich.text import Text

from envfactory.cli._output import console, emit_json, error_console, pretty_json
from envfactory.cli.llm import (
    ApiKeyOption,
    BaseUrlOption,
    CassetteOption,
    ForcedOption,
    ModelOption,
    ModelsDirOption,
    ProviderOption,
    StructuredOption,
    build_settings,
)
from envfactory.cli.resources import CacheOption, default_cache_dir
from envfactory.errors import EnvFactoryError, SpecError
from envfactory.graph import (
    DEFAULT_THRESHOLDS,
    GraphConfig,
    GraphIndex,
    ManualEdge,
    RandomWalkSampler,
    SamplerConfig,
    Thresholds,
    ToolGraph,
    ToolSet,
    TopologySampler,
    build_graph,
    check_chain,
    from_env_spec,
    graph_stats,
    load_graph,
    save_chains,
    save_graph,
    tools_from_operations,
)
from envfactory.graph.evaluate import (
    EdgeLabel,
    Metric,
    Report,
    Scoring,
    calibrate,
    default_labels_path,
    evaluate,
    label_services,
    load_labels,
    score_labels,
)
from envfactory.graph.render import html_page, neighbourhood_scene, overview_scene, scene_png, scene_svg
from envfactory.graph.stage import built_graph_dir, migrate_legacy_graph, write_built_graph
from envfactory.resources import Catalog, OperationEntry, ServiceEntry, UnknownResourceError, default_sources
from envfactory.spec import Operation
from envfactory.store import Workspace, write_atomic

app = typer.Typer(
    name="graph",
    help="The tool graph: build it, measure its edges, sample chains, draw it.",
    no_args_is_help=True,
    add_completion=False,
)

WorkspaceOption = Annotated[
    Path,
    typer.Option("--workspace", "-w", envvar="ENVFACTORY_WORKSPACE", file_okay=False,
                 help="Workspace directory: graphs go to <workspace>/runs/graph-build/graph/, embeddings to its "
                      "llm-cache.sqlite."),
]
GraphOption = Annotated[
    Path | None,
    typer.Option("--graph", "-g", dir_okay=False,
                 help="A graph file (default <workspace>/runs/graph-build/graph/graph.json; built from the bundled "
                      "environments if absent)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def graph_dir(workspace: Path) -> Path:
    """`<workspace>/runs/graph-build/graph`, where `graph build` writes and the other verbs read by default
    (not created here); an older version's `<workspace>/graph/` is moved there first, said on stderr."""
    space = Workspace(workspace)
    moved = migrate_legacy_graph(space)
    if moved is not None:
        error_console().print(Text(f"moved the graph files an earlier version kept in {workspace / 'graph'}/ "
                                   f"to {moved}", style="dim"))
    return built_graph_dir(space)


def _embedder(workspace: Path) -> Any:
    from envfactory.llm import CachedEmbedder, SentenceTransformerEmbedder

    embedder = SentenceTransformerEmbedder()
    embedder.load()
    return CachedEmbedder(embedder, Workspace(workspace).open_llm_cache())


def _open_catalog(cache_dir: Path | None) -> Catalog:
    """The default catalog (AWS, Google, what `resources setup` added), indexed in `cache_dir`."""
    cache = cache_dir or default_cache_dir()
    sources, missing = default_sources(cache)
    err = error_console()
    catalog = Catalog(sources, cache, missing,
                      progress=lambda key: err.print(Text(f"indexing {key} (first use; cached in {cache})…", style="dim")))
    catalog.refresh()
    return catalog


def _operations(catalog: Catalog, refs: list[str]) -> list[Operation]:
    """Catalog operations for `--from` refs (services or single operations; `name.vN` means `name:vN`)."""
    found: list[Operation] = []
    seen: set[str] = set()
    for ref in (r.strip() for chunk in refs for r in chunk.split(",")):
        if not ref:
            continue
        entry = _resolve(catalog, ref)
        ops = catalog.resource(entry.id).operations if isinstance(entry, ServiceEntry) else [catalog.operation(entry.id)]
        for op in ops:
            if op.id not in seen:
                seen.add(op.id)
                found.append(op)
    return found


def _resolve(catalog: Catalog, ref: str) -> ServiceEntry | OperationEntry:
    try:
        return catalog.resolve(ref)
    except UnknownResourceError:
        head, dot, tail = ref.rpartition(".")
        if dot and tail[:1] == "v" and tail[1:2].isdigit():
            return catalog.resolve(f"{head}:{tail}")
        raise


def _env_sets(envs: list[str], trust: bool) -> list[ToolSet]:
    from envfactory.runtime import bundled_env_names, load_env

    names = envs or bundled_env_names()
    return [from_env_spec(load_env(name, trusted=trust).spec, origin=f"environment {name}") for name in names]


def _manual(path: Path | None) -> list[ManualEdge]:
    if path is None:
        return []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise SpecError(f"{path}: cannot read manual edges ({exc})") from exc
    edges = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            data = orjson.loads(line)
            edges.append(ManualEdge(**data))
        except (ValueError, TypeError) as exc:
            raise SpecError(f"{path}:{number}: expected {{producer, output, consumer, input, verdict?, note?}} ({exc})") from exc
    return edges


def _load_or_build(graph: Path | None, workspace: Path) -> tuple[ToolGraph, str]:
    path = graph or graph_dir(workspace) / "graph.json"
    if graph is None and not path.is_file():
        result = build_graph(_env_sets([], False))
        return result.graph, "built in memory from the bundled environments (no graph file yet)"
    return load_graph(path), str(path)


@app.command("build")
def build(
    env: Annotated[list[str] | None, typer.Option("--env", help="A bundled environment name or an environment directory/file (repeatable).")] = None,
    from_: Annotated[list[str] | None, typer.Option("--from", help="Catalog services or operations, comma-separated (aws:sqs,google:tasks:v1,...).")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", dir_okay=False, help="Where to write the graph.")] = None,
    workspace: WorkspaceOption = Path("workspace"),
    embed: Annotated[bool, typer.Option("--embed/--no-embed", help="Add embedding-similarity edges (packaged all-MiniLM-L6-v2).")] = False,
    llm: Annotated[bool, typer.Option("--llm", help="Ask the configured LLM to review edges and label user-providable inputs.")] = False,
    manual: Annotated[Path | None, typer.Option("--manual", dir_okay=False, help="JSONL of manual edges and vetoes.")] = None,
    trust: Annotated[bool, typer.Option("--trust", help="Load python toolkits of --env directories in this process.")] = False,
    provider: ProviderOption = "local",
    model: ModelOption = None,
    base_url: BaseUrlOption = None,
    api_key: ApiKeyOption = None,
    structured: StructuredOption = "json_schema",
    forced_calls: ForcedOption = "native",
    cassette: CassetteOption = None,
    models_dir: ModelsDirOption = None,
    cache_dir: CacheOption = None,
    json_out: JsonOption = False,
) -> None:
    """Build the tool graph and write it as node-link JSON."""
    sets: list[ToolSet] = []
    if env or not from_:
        sets += _env_sets(env or [], trust)
    if from_:
        with _open_catalog(cache_dir) as catalog:
            sets += tools_from_operations(_operations(catalog, from_))
    embedder = _embedder(workspace) if embed else None
    client = None
    if llm:
        from envfactory.llm import make_client

        settings = build_settings(provider, model, base_url, api_key, structured, forced_calls, cassette, models_dir)
        client = make_client(settings, cache=Workspace(workspace).open_llm_cache()).for_stage("graph")
    err = error_console()
    started = time.perf_counter()
    result = build_graph(sets, GraphConfig(), embedder=embedder, llm=client, manual=_manual(manual),
                         progress=None if json_out else lambda m: err.print(Text(m, style="dim")))
    seconds = time.perf_counter() - started
    if out is not None:
        save_graph(result.graph, out)
        path = out
    else:
        graph_dir(workspace)  # an older version's graph/ moves first, so that it is not left beside the new one
        path = write_built_graph(Workspace(workspace), result.graph, {
            "envs": [*(env or [])], "from": [*(from_ or [])], "embed": embed, "llm": llm, "trust": trust,
            "manual": None if manual is None else str(manual)})
    info = result.graph.graph
    if json_out:
        emit_json({"path": str(path), "info": info.model_dump(mode="json"), "seconds": round(seconds, 3),
                   "timings": {k: round(v, 3) for k, v in result.timings.items()}, "llm_requests": result.llm_requests,
                   "llm_problems": result.llm_problems[:50]})
        return
    out_console = console()
    table = Table(title=f"graph → {path}")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row("servers", str(len(info.servers)))
    table.add_row("tools", str(info.tools))
    table.add_row("parameters", str(info.params))
    for kind, count in info.edges.items():
        table.add_row(f"{kind} edges (accepted)", str(count))
    for provenance, count in info.feeds_by_provenance.items():
        table.add_row(f"feeds edges from {provenance}", str(count))
    table.add_row("build time", f"{seconds:.2f} s")
    if client is not None:
        table.add_row("LLM requests", str(result.llm_requests))
    out_console.print(table)
    for warning in info.warnings[:20]:
        out_console.print(Text(f"warning: {warning}", style="yellow"))
    if len(info.warnings) > 20:
        out_console.print(Text(f"… and {len(info.warnings) - 20} more warnings (see the graph file)", style="yellow"))
    for problem in result.llm_problems[:10]:
        out_console.print(Text(f"llm: {problem}", style="yellow"))


def _report_table(report: Report) -> Table:
    table = Table(title="edge quality (precision / recall)")
    table.add_column("provenance")
    for split in ("calibration", "test", "all"):
        table.add_column(split, justify="right")
    names = []
    for metric in report.metrics:
        if metric.name not in names:
            names.append(metric.name)
    for name in names:
        cells = []
        for split in ("calibration", "test", "all"):
            metric = next(m for m in report.metrics if m.name == name and m.split == split)
            cells.append(f"{metric.precision:.3f} / {metric.recall:.3f}" if metric.available else "not run")
        table.add_row(name, *cells)
    return table


def _llm_services(rows: list[EdgeLabel], chosen: list[str] | None) -> list[str] | None:
    """Full service ids (`aws:sqs:2012-11-05`) for `--llm-services` refs (`aws:sqs` or a full id)."""
    if not chosen:
        return None
    known = label_services(rows)
    found: list[str] = []
    for ref in (r.strip() for chunk in chosen for r in chunk.split(",")):
        if not ref:
            continue
        matches = [s for s in known if s == ref or s.startswith(ref + ":")]
        if not matches:
            raise SpecError(f"--llm-services: no labelled service {ref!r}; labelled: {', '.join(known)}")
        found += [m for m in matches if m not in found]
    return found


@app.command("eval")
def eval_(
    labels: Annotated[Path | None, typer.Option("--labels", dir_okay=False, help="A label file (default: the committed set).")] = None,
    calibrate_: Annotated[bool, typer.Option("--calibrate", help="Choose the thresholds on the calibration split, then report.")] = False,
    embed: Annotated[bool, typer.Option("--embed/--no-embed", help="Score the embedding provenance too.")] = True,
    min_precision: Annotated[float, typer.Option("--min-precision", help="Calibration: precision floor.")] = 0.9,
    llm: Annotated[bool, typer.Option("--llm", help="Score the llm provenance too: the configured model reviews the labelled pairs (slow on a CPU; see --llm-services).")] = False,
    llm_services: Annotated[list[str] | None, typer.Option("--llm-services", help="Review only rows whose producer is one of these services (aws:sqs or aws:sqs:2012-11-05; comma-separated or repeated).")] = None,
    llm_pairs: Annotated[int, typer.Option("--llm-pairs", min=1, help="Labelled pairs per review request.")] = 4,
    llm_repairs: Annotated[int, typer.Option("--llm-repairs", min=0, help="Repair requests after an invalid answer.")] = 2,
    provider: ProviderOption = "local",
    model: ModelOption = None,
    base_url: BaseUrlOption = None,
    api_key: ApiKeyOption = None,
    structured: StructuredOption = "json_schema",
    forced_calls: ForcedOption = "native",
    cassette: CassetteOption = None,
    models_dir: ModelsDirOption = None,
    workspace: WorkspaceOption = Path("workspace"),
    cache_dir: CacheOption = None,
    json_out: JsonOption = False,
) -> None:
    """Precision and recall of the graph's edges against hand-labelled dependencies."""
    started = time.perf_counter()
    path = labels or default_labels_path()
    rows = load_labels(path)
    reviewed_services = _llm_services(rows, llm_services)
    client = None
    if llm:
        from envfactory.llm import ClientPolicy, make_client

        settings = build_settings(provider, model, base_url, api_key, structured, forced_calls, cassette, models_dir)
        settings = replace(settings, policy=ClientPolicy(max_repairs=llm_repairs))
        client = make_client(settings, cache=Workspace(workspace).open_llm_cache()).for_stage("graph-eval")
    with _open_catalog(cache_dir) as catalog:
        operations: list[Operation] = []
        for service in label_services(rows):
            try:
                operations += catalog.resource(service).operations
            except UnknownResourceError as exc:
                raise SpecError(f"{path}: {exc}") from exc
    embedder = None
    note = ""
    if embed:
        try:
            embedder = _embedder(workspace)
        except EnvFactoryError as exc:
            note = f"embedding not scored: {exc}"
    err = error_console()
    scoring = score_labels(rows, operations, embedder=embedder, llm=client, llm_services=reviewed_services,
                           pairs_per_request=llm_pairs,
                           progress=None if json_out else lambda m: err.print(Text(m, style="dim")))
    thresholds = DEFAULT_THRESHOLDS
    if calibrate_:
        thresholds, _ = calibrate(scoring, min_precision=min_precision)
    report = evaluate(scoring, thresholds)
    seconds = time.perf_counter() - started
    test = {m.name: m for m in report.metrics if m.split == "test"}["combined"]
    payload = {
        "labels": str(path), "rows": report.rows, "missing": report.missing, "embedder": report.embedder,
        "thresholds": thresholds.as_dict(), "calibrated_now": calibrate_,
        "llm": None if client is None else {
            "model": scoring.llm, "services": reviewed_services or "all", "rows_reviewed": report.llm_rows,
            "pairs_per_request": llm_pairs, "repairs": llm_repairs, "requests": scoring.llm_requests,
            "failed_requests": scoring.llm_failed_requests, "problems": len(scoring.llm_problems),
        },
        "metrics": [m.as_dict() for m in report.metrics],
        "targets": {"precision": 0.85, "recall": 0.80, "test_precision": round(test.precision, 4),
                    "test_recall": round(test.recall, 4), "met": test.precision >= 0.85 and test.recall >= 0.80},
        "seconds": round(seconds, 2),
    }
    if json_out:
        emit_json(payload)
        return
    _print_eval(rows, report, scoring, thresholds, calibrate_, note, client is not None, reviewed_services,
                path, test, payload["targets"]["met"], seconds)  # type: ignore[index]


def _print_eval(rows: list[EdgeLabel], report: Report, scoring: Scoring, thresholds: Thresholds,
                calibrated_now: bool, note: str, reviewed: bool, reviewed_services: list[str] | None, path: Path,
                test: Metric, met: bool, seconds: float) -> None:
    out = console()
    kinds: dict[str, int] = {}
    for row in rows:
        kinds[row.kind] = kinds.get(row.kind, 0) + 1
    out.print(f"{len(rows)} labelled pairs ({', '.join(f'{v} {k}' for k, v in sorted(kinds.items()))}) over "
              f"{len(label_services(rows))} services, {scoring.tools} operations scored; labels: {path}")
    out.print(f"thresholds{' (calibrated now, calibration split only)' if calibrated_now else ''}: "
              f"schema {thresholds.schema}, embedding {thresholds.embedding} (alone: schema {thresholds.schema_alone}, "
              f"embedding {thresholds.embedding_alone}); embedder: {report.embedder or 'none'}")
    if note:
        out.print(Text(note, style="yellow"))
    if reviewed:
        out.print(f"llm: {scoring.llm} reviewed {report.llm_rows} labelled pairs (producer services: "
                  f"{', '.join(reviewed_services) if reviewed_services else 'all'}) in {scoring.llm_requests} requests, "
                  f"{scoring.llm_failed_requests} failed, {len(scoring.llm_problems)} answers dropped or failed")
    for missing in report.missing[:10]:
        out.print(Text(f"missing: {missing}", style="yellow"))
    out.print(_report_table(report))
    verdict = "met" if met else "NOT met"
    out.print(f"combined, test split: precision {test.precision:.3f}, recall {test.recall:.3f} "
              f"(targets ≥ 0.85 and ≥ 0.80: {verdict}); {seconds:.1f} s")


def _sampler_config(max_length: int, max_depth: int, max_servers: int, p_optional: float) -> SamplerConfig:
    try:
        return SamplerConfig(max_length=max_length, max_depth=max_depth, max_servers=max_servers, p_optional=p_optional,
                             target_length=(min(2, max_length), min(6, max_length)))
    except ValueError as exc:
        raise SpecError(str(exc)) from exc


MaxLength = Annotated[int, typer.Option("--max-length", help="Hard cap on tools per chain.")]
MaxDepth = Annotated[int, typer.Option("--max-depth", help="How deep producers of producers are inserted.")]
MaxServers = Annotated[int, typer.Option("--max-servers", help="Servers per chain at most.")]
POptional = Annotated[float, typer.Option("--p-optional", help="Probability of feeding an optional input.")]


@app.command("stats")
def stats(
    graph: GraphOption = None,
    samples: Annotated[int, typer.Option("--samples", "-n", help="Chains per sampler.")] = 10_000,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    out: Annotated[Path | None, typer.Option("--out", "-o", dir_okay=False, help="Where to save the figures (JSON).")] = None,
    max_length: MaxLength = 8,
    max_depth: MaxDepth = 3,
    max_servers: MaxServers = 3,
    p_optional: POptional = 0.4,
    workspace: WorkspaceOption = Path("workspace"),
    json_out: JsonOption = False,
) -> None:
    """Coverage, chain-length and servers-per-chain distributions, validity of both samplers."""
    loaded, where = _load_or_build(graph, workspace)
    index = GraphIndex.from_graph(loaded)
    if not len(index):
        raise SpecError(f"{where}: the graph has no tools")
    report = graph_stats(index, samples=samples, seed=seed, config=_sampler_config(max_length, max_depth, max_servers, p_optional))
    figures = report.as_dict()
    figures["graph"] = where
    path = out or graph_dir(workspace) / "stats.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, pretty_json(figures))
    if json_out:
        emit_json({**figures, "saved": str(path), "timings": {k: round(v, 3) for k, v in report.timings.items()}})
        return
    console_ = console()
    console_.print(f"graph: {where}; {report.tools} tools, {report.servers} servers, {report.feeds} feeds edges, "
                   f"{report.depends} depends edges; {report.slots_without_source} of {report.slots} required inputs "
                   f"have no source")
    console_.print(f"coverage (tools in ≥ 1 valid chain of ≥ 2 tools with ≥ 1 data-flow binding): "
                   f"{report.coverage:.1%} (in the {samples} samples alone: {report.sampled_coverage:.1%}; "
                   f"analytic bound {report.reachable_coverage:.1%}; goal ≥ 90%)")
    table = Table(title=f"{samples} chains per sampler, seed {seed}")
    table.add_column("figure")
    table.add_column("topology-aware", justify="right")
    table.add_column("random walk", justify="right")
    t, w = report.topology.as_dict(), report.random_walk.as_dict()
    table.add_row("valid", f"{t['valid_rate']:.1%}", f"{w['valid_rate']:.1%}")
    table.add_row("valid, ≥ 2 tools, ≥ 1 data-flow binding", f"{t['counting_rate']:.1%}", f"{w['counting_rate']:.1%}")
    table.add_row("mean length", str(t["mean_length"]), str(w["mean_length"]))
    for length in sorted({*report.topology.lengths, *report.random_walk.lengths}):
        table.add_row(f"length {length}", str(report.topology.lengths.get(length, 0)), str(report.random_walk.lengths.get(length, 0)))
    for servers in sorted({*report.topology.servers, *report.random_walk.servers}):
        table.add_row(f"{servers} server(s)", str(report.topology.servers.get(servers, 0)),
                      str(report.random_walk.servers.get(servers, 0)))
    console_.print(table)
    rate = samples / report.timings["topology_s"] if report.timings.get("topology_s") else 0.0
    console_.print(f"topology-aware sampling and checking: {rate:,.0f} chains/s; saved {path}")


@app.command("show")
def show(
    out: Annotated[Path, typer.Option("--out", "-o", dir_okay=False, help="Output file: .svg, .png or .html.")],
    graph: GraphOption = None,
    tool: Annotated[str | None, typer.Option("--tool", "-t", help="Draw this tool's neighbourhood (a tool id, server__tool).")] = None,
    max_edges: Annotated[int, typer.Option("--max-edges", help="Whole graph: the strongest edges drawn.")] = 600,
    workspace: WorkspaceOption = Path("workspace"),
) -> None:
    """Render the graph, or one tool's neighbourhood, to SVG, PNG or HTML."""
    suffix = out.suffix.lower()
    if suffix not in (".svg", ".png", ".html", ".htm"):
        raise SpecError(f"{out}: write .svg, .png or .html")
    loaded, where = _load_or_build(graph, workspace)
    if tool is not None:
        try:
            scene = neighbourhood_scene(loaded, tool)
        except KeyError:
            close = [t.id for t in loaded.tools() if tool.lower() in t.id.lower()][:8]
            hint = f"; did you mean {', '.join(close)}" if close else ""
            raise SpecError(f"no tool {tool!r} in {where}{hint}") from None
        title = f"{tool} in {where}"
    else:
        scene = overview_scene(loaded, max_edges=max_edges)
        title = f"tool graph {where}"
    if suffix == ".png":
        try:
            data = scene_png(scene)
        except ImportError as exc:
            raise SpecError(f"{out}: PNG needs matplotlib (pip install 'envfactory[viz]'): {exc}") from None
    else:
        svg = scene_svg(scene)
        data = (svg if suffix == ".svg" else html_page(title, svg, scene.edges)).encode("utf-8")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, data)
    console().print(f"wrote {out} ({len(scene.edges)} edges drawn)")


@app.command("sample")
def sample(
    graph: GraphOption = None,
    count: Annotated[int, typer.Option("--count", "-n", help="How many chains.")] = 5,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    sampler: Annotated[str, typer.Option("--sampler", help="topology or random-walk.")] = "topology",
    start: Annotated[str | None, typer.Option("--start", help="Start every chain at this tool id.")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", dir_okay=False, help="Write the chains as JSONL.")] = None,
    max_length: MaxLength = 8,
    max_depth: MaxDepth = 3,
    max_servers: MaxServers = 3,
    p_optional: POptional = 0.4,
    workspace: WorkspaceOption = Path("workspace"),
    json_out: JsonOption = False,
) -> None:
    """Sample chains with their binding plans."""
    loaded, where = _load_or_build(graph, workspace)
    index = GraphIndex.from_graph(loaded)
    config = _sampler_config(max_length, max_depth, max_servers, p_optional)
    if sampler not in ("topology", "random-walk"):
        raise SpecError(f"--sampler must be topology or random-walk, not {sampler!r}")
    if start is not None and start not in index.position:
        raise SpecError(f"no tool {start!r} in {where}")
    chosen = TopologySampler(index, seed, config) if sampler == "topology" else RandomWalkSampler(index, seed, config)
    chains = [chosen.sample(start) for _ in range(count)]
    if out is not None:
        save_chains(chains, out)
    if json_out:
        emit_json([{**c.model_dump(mode="json"), "problems": check_chain(index, c)} for c in chains])
        return
    out_console = console()
    for chain in chains:
        problems = check_chain(index, chain)
        out_console.print(Text(f"chain {chain.number} ({'valid' if not problems else 'INVALID'}, "
                               f"{len(chain.steps)} tools, {chain.data_flow} data-flow bindings)", style="bold"))
        for number, step in enumerate(chain.steps):
            parts = []
            for b in step.bindings:
                src = b.source
                text = ("user" if src.kind == "user" else f"step {src.step}.{src.output}" if src.kind == "step" else "NONE")
                parts.append(f"{b.input} ← {text}")
            out_console.print(Text(f"  {number}. {step.tool}" + (f"  [{'; '.join(parts)}]" if parts else "")))
        for problem in problems[:5]:
            out_console.print(Text(f"  ! {problem}", style="red"))
    if out is not None:
        out_console.print(f"wrote {len(chains)} chain(s) to {out}")
