"""`envfactory build`: the first EnvGen stages one at a time, for inspection.

- `propose [--domain D]... [--limit N] [--json]`: proposals per domain from the catalog (and, with
  `--json`, the skip list with reasons), deterministic.
- `compile SERVICE [--operation NAME] --out DIR`: compile the proposal of one service (the one that
  contains `--operation` when given) into an environment directory (`spec.json`, `seeds/`,
  `build.json`), loaded once to check it; prints the tools and the dropped operations with reasons.

The whole pipeline (verify, revise, checkpoints) is `envfactory library build`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from envfactory.build.compile import compile_proposal
from envfactory.build.envdir import write_env_dir
from envfactory.build.propose import DOMAINS, proposals_for_resource, propose_batch
from envfactory.cli._output import console, emit_json
from envfactory.cli.resources import CacheOption, open_catalog
from envfactory.errors import EnvFactoryError
from envfactory.spec import BuildRecord
from envfactory.spec.library import LATEST_GENERATION, SHIPPED_GENERATION
from envfactory.store import write_atomic

app = typer.Typer(help="Propose and compile environments from the resource catalog.", no_args_is_help=True)


@app.command("propose")
def propose_cmd(
    domain: Annotated[list[str] | None, typer.Option("--domain", help="Domain to propose for (repeatable).")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Proposals per domain.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="The ProposalBatch as JSON.")] = False,
    cache_dir: CacheOption = None,
) -> None:
    """Propose environments (coherent, stateful operation subsets of one service) per domain."""
    unknown = sorted(set(domain or []) - set(DOMAINS))
    if unknown:
        raise EnvFactoryError(f"unknown domain {', '.join(unknown)} (one of {', '.join(DOMAINS)})")
    with open_catalog(cache_dir, None, None, None, False) as catalog:
        batch = propose_batch(catalog, domains=domain or list(DOMAINS), limit_per_domain=limit)
    if as_json:
        emit_json(batch.model_dump(mode="json"))
        return
    table = Table("domain", "name", "tools", "state", "use", "licence", "collections")
    for p in batch.proposals:
        collections = sorted({o.collection for o in p.operations})
        table.add_row(p.domain, p.name, str(len(p.operations)), f"{p.statefulness:.2f}", f"{p.usefulness:.2f}",
                      p.provenance[0].licence, ", ".join(collections))
    out = console()
    out.print(table)
    out.print(f"{len(batch.proposals)} proposals; {len(batch.skipped)} resources skipped (--json lists why)")


@app.command("compile")
def compile_cmd(
    service: Annotated[str, typer.Argument(help="Catalog service id or prefix, e.g. aws:sqs, google:tasks.")],
    out: Annotated[Path, typer.Option("--out", file_okay=False, help="Environment directory to write.")],
    operation: Annotated[str | None, typer.Option("--operation", help="Pick the proposal holding this operation.")] = None,
    generation: Annotated[int, typer.Option("--generation", min=1, max=LATEST_GENERATION, help=(
        "Compiler generation: 1 as the library shipped until 2026-12-07, 2 with the issue-19 fixes (the shipped library; docs/envgen.md)."))] = SHIPPED_GENERATION,
    cache_dir: CacheOption = None,
) -> None:
    """Compile one service's proposal to a declarative environment directory."""
    with open_catalog(cache_dir, None, None, None, False) as catalog:
        entry = catalog.service(service)
        resource = catalog.resource(entry.id)
    domain = next((d for d in entry.domains if d in DOMAINS), "utilities")
    proposals, why = proposals_for_resource(resource, entry, domain)
    if operation is not None:
        proposals = [p for p in proposals if any(o.name == operation for o in p.operations)]
    if not proposals:
        raise EnvFactoryError(f"{entry.id}: no proposal{f' holds {operation}' if operation else ''} ({why})")
    proposal = proposals[0]
    start = time.perf_counter()
    compiled = compile_proposal(proposal, {op.id: op for op in resource.operations}, generation=generation)
    spec = write_env_dir(compiled, out)
    record = BuildRecord(
        proposal_id=proposal.id, env_name=spec.meta.name, spec_hash=spec.content_hash,
        compiled=compiled.compiled, dropped=compiled.dropped,
        kept_ratio=round(len(compiled.compiled) / len(proposal.operations), 4),
    )
    write_atomic(out / "build.json", record.to_json_bytes())
    elapsed = time.perf_counter() - start
    con = console()
    con.print(f"OK {out}: {spec.ref} · {len(spec.tools)} tools · {len(compiled.source.collections)} collections "
              f"· kept {record.kept_ratio:.0%} · {elapsed * 1000:.0f} ms")
    for tool in compiled.source.tools:
        con.print(f"  {tool.name:<40} {tool.operation.kind:<7} {tool.operation.collection}")
    for dropped in compiled.dropped:
        con.print(f"  dropped {dropped.operation_id.rsplit(':', 1)[-1]}: {dropped.reason}")
