"""The environment checks that read the environment rather than drive it (`envchecks.py`): `load` (the
directory loads, or an environment opened from it is given; a `spec.json` next to the source matches what
the implementation derives; the same evidence either way) and
`parity` (tools <-> implementation, schemas usable for argument generation, tool sources resolve to the
provenance and, with catalog `operations`, to the operation and its original field names).

Each check returns a `CheckResult` naming the tools it blames; deterministic for a given seed.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from envfactory.errors import EnvFactoryError
from envfactory.runtime import Environment, load_env
from envfactory.spec import CheckResult, DeclarativeImplementation, EnvSpec, HybridImplementation, Operation
from envfactory.spec.schema_tools import property_names
from envfactory.verify.argsgen import generate_arguments
from envfactory.verify.envchecks_planner import CallPlanner
from envfactory.verify.envchecks_results import check_result

if TYPE_CHECKING:
    from envfactory.runtime.sandbox import SandboxPool

SOURCE_FREE_PROVIDERS = frozenset({"python", "manual", ""})


def check_load(
    ref: str | Path | Environment, sandbox: SandboxPool | None, trusted: bool, holder: list[Environment]
) -> CheckResult:
    """The `load` check: `ref` loads (appended to `holder`), and a `spec.json` next to the source matches what
    the implementation derives.

    An `Environment` is taken as loaded (the library build hands over the one it opened from the spec and
    seeds it has just written, `build.envdir.write_compiled`) and gets exactly the evidence `load_env` of its
    `directory` would give: the same spec hash, seed names and counts, and the same `spec.json` comparison
    when the directory holds one next to an `env.json` source. So verifying a directory and verifying the
    environment opened from the same bytes give the same report and `evidence_digest`.
    """
    if isinstance(ref, Environment):
        env = ref
    else:
        try:
            env = load_env(ref, trusted=trusted, sandbox=sandbox)
        except EnvFactoryError as exc:
            return check_result("load", [("", f"does not load: {exc}")], {"error": str(exc)}, {})
    holder.append(env)
    problems: list[tuple[str, str]] = []
    directory = env.directory
    spec_file = directory / "spec.json" if directory is not None else None
    if spec_file is not None and spec_file.is_file() and (directory / "env.json").is_file():  # type: ignore[operator]
        try:
            written = EnvSpec.model_validate_json(spec_file.read_bytes())
        except ValueError as exc:
            problems.append(("", f"spec.json is not a valid sealed EnvSpec: {exc}"))
        else:
            if written.content_hash != env.spec.content_hash:
                problems.extend(spec_differences(written, env.spec))
    return check_result(
        "load", problems, {"spec": env.spec.content_hash, "seeds": sorted(env.seeds)},
        {"tools": len(env.tools), "seeds": len(env.seeds)},
    )


def spec_differences(written: EnvSpec, derived: EnvSpec) -> list[tuple[str, str]]:
    """Where a written `spec.json` differs from the derived spec: tools missing on either side or different."""
    ours = {t.name: t for t in derived.tools}
    theirs = {t.name: t for t in written.tools}
    problems = [(name, "in spec.json but not implemented") for name in sorted(set(theirs) - set(ours))]
    problems += [(name, "implemented but missing from spec.json") for name in sorted(set(ours) - set(theirs))]
    problems += [
        (name, "spec.json differs from the implementation's tool spec")
        for name in sorted(set(ours) & set(theirs)) if ours[name] != theirs[name]
    ]
    return problems or [("", "spec.json differs from the implementation outside the tools (meta or state schema)")]


def check_parity(
    env: Environment, planner: CallPlanner, operations: Mapping[str, Operation] | None, seed: int
) -> CheckResult:
    """The `parity` check: tools match the implementation, input schemas allow argument generation, tool sources resolve."""
    problems: list[tuple[str, str]] = []
    spec = env.spec
    impl = spec.implementation
    names = {t.name for t in spec.tools}
    if isinstance(impl, DeclarativeImplementation | HybridImplementation):
        ops = set(impl.model.operations) | (set(impl.authored.tools) if isinstance(impl, HybridImplementation) else set())
        problems += [(n, "tool has no declarative operation") for n in sorted(names - ops)]
        problems += [(n, "operation has no tool spec") for n in sorted(ops - names)]
    problems += [(n, "tool is not compiled by the runtime") for n in sorted(names - set(env.tools))]
    rng = random.Random(seed)
    generable = 0
    for tool in spec.tools:
        if tool.input_schema.get("type") != "object":
            problems.append((tool.name, "input schema is not an object schema"))
            continue
        try:
            generate_arguments(tool.input_schema, rng, {})
            generable += 1
        except (ValueError, RecursionError) as exc:
            problems.append((tool.name, f"arguments cannot be generated from the input schema: {exc}"))
    problems += source_problems(spec, operations)
    sourced = sum(1 for t in spec.tools if t.source is not None and t.source.provider not in SOURCE_FREE_PROVIDERS)
    evidence = {"tools": sorted(names), "problems": sorted(problems)}
    return check_result("parity", problems, evidence, {"tools": len(names), "generable": generable, "sourced": sourced})


def source_problems(spec: EnvSpec, operations: Mapping[str, Operation] | None) -> list[tuple[str, str]]:
    """Tool sources that name no operation, one missing from the provenance or the catalog, or fields the operation lacks."""
    problems: list[tuple[str, str]] = []
    for tool in spec.tools:
        source = tool.source
        if source is None or source.provider in SOURCE_FREE_PROVIDERS:
            continue
        if not source.operation_id:
            problems.append((tool.name, f"source of provider {source.provider} names no operation"))
            continue
        short = source.operation_id.rsplit(":", 1)[-1]
        listed = any(
            p.provider == source.provider and (source.operation_id in p.operations or short in p.operations)
            for p in spec.meta.provenance
        )
        if not listed:
            problems.append((tool.name, f"operation {source.operation_id} is not listed in meta.provenance"))
        ours = {*property_names(tool.input_schema), *property_names(tool.output_schema)}
        for param in sorted(set(source.field_names) - ours):
            problems.append((tool.name, f"field_names maps {param!r}, which is not a field of the tool"))
        if operations is None:
            continue
        operation = resolve_operation(operations, source.operation_id)
        if operation is None:
            problems.append((tool.name, f"operation {source.operation_id} is not in the catalog"))
            continue
        original = {*property_names(operation.input_schema), *property_names(operation.output_schema)}
        for param, field in sorted(source.field_names.items()):
            # A dotted original name is either one top-level name (Google query parameters such as
            # `regionsVersion.version`) or a path whose last step is a nested property.
            if field not in original and field.split(".")[-1] not in original:
                problems.append((tool.name, f"{param!r} maps to {field!r}, which {operation.name} does not have"))
    return problems


def resolve_operation(operations: Mapping[str, Operation], operation_id: str) -> Operation | None:
    """The catalog operation a `ToolSource.operation_id` names: by full id, else by source name."""
    if operation_id in operations:
        return operations[operation_id]
    short = operation_id.rsplit(":", 1)[-1]
    matches = [op for op in operations.values() if op.name == short or op.id.endswith(f":{short}")]
    return matches[0] if len(matches) == 1 else None
