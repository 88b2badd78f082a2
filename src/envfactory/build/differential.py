"""Differential tests: the same call script against our environment and a reference implementation
(moto for AWS services, an MCP server for MCP-derived environments), compared modulo generated ids and
timestamps (docs/verification.md, "Differential tests").

Contract:
- A script is a list of our tool calls. `reference_script` turns each into the reference's own terms
  through the tool's `ToolSource`: operation = last segment of `operation_id`, parameters renamed with
  `field_names` (our name -> original dotted path, `entities.0.name`; a name it does not list is the
  original name). The reference side drops parameters its operation does not define (our paging
  arguments) and reports them in `ReferenceOutcome.ignored_params`.
  Ids our env generated earlier become `ReferenceBinding`s to the reference's answer of that call, so
  the reference uses its own generated ids.
- Comparison (`compare_runs`), per call:
  outcome: success/failure must agree; when both fail and the reference error code has a known kind
  (`AWS_ERROR_KINDS`), the kinds must agree.
  fields: the reference response is unwrapped when it is an object with one object member
  (`{"TableDescription": {...}}`); our fields are renamed to original names; only names present on both
  sides are compared. Generated ids compare through one consistent bijection (ours <-> theirs, built
  from create outputs, never two partners for one id). Timestamps (names ending in `_at`, `Date`,
  `Time`, `Timestamp`, `DateTime`, or ISO 8601 values) are not compared. Scalars compare as text, since
  AWS query protocols return numbers as strings; objects on their common keys; lists item by item.
  lists: our list outputs `{items: [...], next_page_token}` compare with the reference's only top-level
  array: scalar members as a multiset against our items' collection keys (through the bijection),
  object members matched on the original name of our key field.
  state: after the script every list tool of ours that maps to a reference operation and needs no
  argument runs once more on both sides (aspect `state`).
- `run_moto(env_dir, service, script)` runs the reference in a subprocess (moto patches botocore
  process-wide; `envfactory.build.moto_worker`). Operations that the environment does not implement are
  reported in `dropped_ops_not_compared` with the reason given (build records, or `dropped=`), never
  compared against made-up behaviour.

The normalisation and the comparison of outputs live in `differential_compare.py` (`NORMALISATION`
and `set_path` re-exported here).
"""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from envfactory.build.differential_compare import (
    AWS_ERROR_KINDS,
    NORMALISATION,
    Bijection,
    compare_fields,
    generated_values,
    holds_generated,
    is_timestamp,
    original_field,
    original_operation,
    output_name,
    set_path,
)
from envfactory.build.moto_worker import REFERENCE_CRASH, walk_path
from envfactory.errors import EnvFactoryError
from envfactory.resources.mcp_tools import McpServerConfig, known_servers
from envfactory.runtime import Environment, load_env, open_session
from envfactory.spec import (
    DifferentialMismatch,
    DifferentialResult,
    DroppedComparison,
    HybridImplementation,
    ScenarioStep,
    ScenarioTest,
    ToolResult,
    content_hash,
    declarative_model,
)
from envfactory.spec.verification import (
    ReferenceBinding,
    ReferenceCall,
    ReferenceOutcome,
    ReferenceRun,
    ReferenceScript,
)

__all__ = [
    "AWS_ERROR_KINDS",
    "MOTO_VERSION",
    "NORMALISATION",
    "Comparison",
    "DifferentialError",
    "DifferentialRun",
    "PreparedRun",
    "ScriptCall",
    "compare_runs",
    "differential_run",
    "finish_run",
    "moto_run",
    "prepare_run",
    "reference_scenario",
    "reference_script",
    "run_differential",
    "run_mcp",
    "run_memory_server",
    "run_moto",
    "set_path",
]

MOTO_VERSION = "5.2.1"
MOTO_TIMEOUT_S = 120.0



class DifferentialError(EnvFactoryError):
    """The reference could not be run (moto missing, worker crashed, server did not start)."""


@dataclass(frozen=True)
class ScriptCall:
    """One call of a differential script, in our env's terms."""

    tool: str
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Ours:
    calls: list[ScriptCall]
    results: list[ToolResult]
    state_probe: list[bool]


def _collection(env: Environment, tool: str) -> str | None:
    model = declarative_model(env.spec)
    if model is None or tool not in model.operations:
        return None
    return model.operations[tool].collection


def _generated_fields(env: Environment) -> dict[str, list[str]]:
    """tool -> output paths holding ids the environment generates: the key of a declarative create
    without key_arg, and the paths an authored tool declares (`Messages[].ReceiptHandle`)."""
    model = declarative_model(env.spec)
    paths: dict[str, list[str]] = {}
    if model is not None:
        for tool, op in model.operations.items():
            if op.kind == "create" and op.key_arg is None:
                paths[tool] = [model.collections[op.collection].key]
    impl = env.spec.implementation
    if isinstance(impl, HybridImplementation):
        for tool, declared in impl.authored.generated_outputs.items():
            paths.setdefault(tool, []).extend(declared)
    return paths


def _list_key(env: Environment, tool: str) -> str | None:
    model = declarative_model(env.spec)
    if model is None or tool not in model.operations:
        return None
    op = model.operations[tool]
    return model.collections[op.collection].key if op.kind == "list" else None


def _empty_session_state(env: Environment) -> Any:
    return env.backend.load_state(None).to_json()


def _run_ours(env: Environment, script: Sequence[ScriptCall], seed: int) -> _Ours:
    session = open_session(env, _empty_session_state(env), seed=seed)
    calls = list(script)
    probes = [False] * len(calls)
    for name in sorted(env.tools):
        spec = env.tools[name].spec
        required = spec.input_schema.get("required")
        if _list_key(env, name) is not None and original_operation(spec) is not None and not required:
            calls.append(ScriptCall(name, {}))
            probes.append(True)
    results = [session.call(call.tool, call.arguments) for call in calls]
    return _Ours(calls, results, probes)


def reference_script(
    env: Environment, calls: Sequence[ScriptCall], results: Sequence[ToolResult], *, reference: str, service: str,
    region: str = "us-east-1",
) -> ReferenceScript:
    """The reference's version of our calls (see the module contract)."""
    generated = _generated_fields(env)
    origin: dict[str, tuple[int, str]] = {}
    out: list[ReferenceCall] = []
    for step, (call, result) in enumerate(zip(calls, results, strict=True)):
        spec = env.tools[call.tool].spec
        operation = original_operation(spec) or call.tool
        params: dict[str, Any] = {}
        bindings: list[ReferenceBinding] = []
        for name, value in call.arguments.items():
            original = original_field(spec, name) or name  # unmapped names are the original names
            if isinstance(value, str) and value in origin:
                earlier, path = origin[value]
                bindings.append(ReferenceBinding(param=original, step=earlier, path=path))
            else:
                set_path(params, original, value)
        out.append(ReferenceCall(operation=operation, params=params, bindings=bindings))
        if result.ok and call.tool in generated:
            for value, path in generated_values(generated[call.tool], result.output):
                head, _, rest = path.partition(".")
                origin.setdefault(value, (step, ".".join(p for p in (original_field(spec, head) or head, rest) if p)))
    return ReferenceScript(reference=reference, service=service, region=region, calls=out)


_DISAGREED = "__disagreed__"


@dataclass(frozen=True)
class Comparison:
    """The outcome of `compare_runs`. `agreed[i]` is, for a call that matched, the reference's values of
    the fields both sides had (original names; None when only the outcome was comparable), and
    `_DISAGREED` for a call that did not match."""

    matched: int
    values_compared: int
    mismatches: list[DifferentialMismatch]
    agreed: list[Any]
    generated_ids: list[str]
    reference_crashes: list[DroppedComparison]


def compare_runs(
    env: Environment, calls: Sequence[ScriptCall], ours: Sequence[ToolResult], theirs: ReferenceRun,
    *, state_probe: Sequence[bool] | None = None,
) -> Comparison:
    """How two runs of the same script compare (module contract)."""
    generated_fields = _generated_fields(env)
    generated: set[str] = set()
    bijection = Bijection()
    mismatches: list[DifferentialMismatch] = []
    matched = 0
    agreed: list[Any] = []
    probes = list(state_probe or [False] * len(calls))
    crashed: list[DroppedComparison] = []
    for step, (call, mine, reference) in enumerate(zip(calls, ours, theirs.outcomes, strict=True)):
        spec = env.tools[call.tool].spec
        if reference.error_code == REFERENCE_CRASH:
            crashed.append(DroppedComparison(
                operation=reference.operation,
                reason=f"the reference crashed on call {step} ({reference.error_message[:200]}): not compared",
            ))
            agreed.append(_DISAGREED)
            continue
        aspect_if_fields = "state" if probes[step] else "field"
        before = len(mismatches)
        projection: Any = None
        if mine.ok and call.tool in generated_fields:
            generated.update(value for value, _ in generated_values(generated_fields[call.tool], mine.output))
        if mine.ok != reference.ok:
            mine_text = "ok" if mine.ok else (mine.error.kind if mine.error else "?")
            their_text = "ok" if reference.ok else f"{reference.error_code}"
            mismatches.append(DifferentialMismatch(
                step=step, tool=call.tool, operation=reference.operation, aspect="outcome",
                detail=f"ours {mine_text}, reference {their_text}",
                ours=mine.error.message if mine.error else None, reference=reference.error_message or None,
            ))
        elif not mine.ok:
            expected = AWS_ERROR_KINDS.get(reference.error_code or "")
            if expected is not None and mine.error is not None and mine.error.kind != expected:
                mismatches.append(DifferentialMismatch(
                    step=step, tool=call.tool, operation=reference.operation, aspect="outcome",
                    detail=f"ours {mine.error.kind}, reference {reference.error_code} ({expected})",
                    ours=mine.error.message, reference=reference.error_message,
                ))
        else:
            problem, a, b = compare_fields(spec, mine.output, reference.response, bijection, generated,
                                            _list_key(env, call.tool), _collection(env, call.tool))
            if problem is not None:
                mismatches.append(DifferentialMismatch(
                    step=step, tool=call.tool, operation=reference.operation, aspect=aspect_if_fields,
                    detail=problem, ours=a, reference=b,
                ))
            elif isinstance(b, dict):
                projection = b
        matched += len(mismatches) == before
        agreed.append(projection if len(mismatches) == before else _DISAGREED)
    return Comparison(matched, bijection.values_compared, mismatches, agreed, sorted(generated), crashed)


def run_differential(
    env: Environment,
    script: Sequence[ScriptCall],
    runner: Callable[[ReferenceScript], ReferenceRun],
    *,
    reference: str,
    service: str,
    dropped: Mapping[str, str] | None = None,
    seed: int = 0,
) -> DifferentialResult:
    """Run `script` on our env (from the empty state) and through `runner`, and compare."""
    return differential_run(
        env, script, runner, reference=reference, service=service, dropped=dropped, seed=seed
    ).result


@dataclass(frozen=True)
class DifferentialRun:
    """A differential run in full: the result, the reference's answers, and the `reference`-oracle
    scenario that freezes what the reference answered (see `reference_scenario`)."""

    result: DifferentialResult
    reference_run: ReferenceRun
    scenario: ScenarioTest | None


def differential_run(
    env: Environment,
    script: Sequence[ScriptCall],
    runner: Callable[[ReferenceScript], ReferenceRun],
    *,
    reference: str,
    service: str,
    dropped: Mapping[str, str] | None = None,
    seed: int = 0,
) -> DifferentialRun:
    """`run_differential`, keeping the reference's answers and the reference scenario."""
    prepared = prepare_run(env, script, reference=reference, service=service, seed=seed)
    return finish_run(prepared, runner(prepared.reference_script), dropped=dropped)


@dataclass(frozen=True)
class PreparedRun:
    """Our side of a differential run, done: the calls (script + state probes), our results, and the
    reference's version of the calls, ready for a runner (`finish_run` compares)."""

    env: Environment
    ours: _Ours
    reference_script: ReferenceScript


def prepare_run(env: Environment, script: Sequence[ScriptCall], *, reference: str, service: str,
                seed: int = 0) -> PreparedRun:
    """Run `script` on our env from the empty state and translate it for the reference."""
    unknown = sorted({c.tool for c in script} - set(env.tools))
    if unknown:
        raise DifferentialError(f"the script calls tools {', '.join(unknown)} that {env.name} does not have")
    ours = _run_ours(env, script, seed)
    ref_script = reference_script(env, ours.calls, ours.results, reference=reference, service=service)
    return PreparedRun(env, ours, ref_script)


def finish_run(prepared: PreparedRun, theirs: ReferenceRun, *, dropped: Mapping[str, str] | None = None
               ) -> DifferentialRun:
    """Compare a prepared run with the reference's answers (`ReferenceRun` of its `reference_script`)."""
    env, ours, ref_script = prepared.env, prepared.ours, prepared.reference_script
    reference = ref_script.reference
    if len(theirs.outcomes) != len(ref_script.calls):
        raise DifferentialError(f"{reference} answered {len(theirs.outcomes)} of {len(ref_script.calls)} calls")
    comparison = compare_runs(env, ours.calls, ours.results, theirs, state_probe=ours.state_probe)
    compared = sorted({c.operation for c in ref_script.calls})
    result = DifferentialResult(
        reference=reference,
        operations_compared=compared,
        calls_compared=len(ours.calls) - len(comparison.reference_crashes),
        matched=comparison.matched,
        values_compared=comparison.values_compared,
        mismatches=comparison.mismatches,
        dropped_ops_not_compared=[
            DroppedComparison(operation=op, reason=reason) for op, reason in sorted((dropped or {}).items())
            if op not in compared
        ] + comparison.reference_crashes,
        normalisation=NORMALISATION,
    )
    scenario = reference_scenario(env, ours.calls, theirs, comparison, reference=reference)
    return DifferentialRun(result, theirs, scenario)


def reference_scenario(
    env: Environment, calls: Sequence[ScriptCall], theirs: ReferenceRun, comparison: Comparison, *, reference: str
) -> ScenarioTest | None:
    """The `reference`-oracle scenario of a differential run: our calls from the empty state, each step
    expecting what the reference answered: its error kind (`AWS_ERROR_KINDS`), or the values of the
    fields the comparison covered, renamed to our names (generated ids and timestamps volatile). It
    stops before the first call that disagreed or whose reference error has no known kind, so it
    freezes only behaviour both sides showed; None when not even the first call qualifies."""
    steps: list[ScenarioStep] = []
    generated = set(comparison.generated_ids)
    # The top-level output field of each generated path: its value is the reference's own id.
    heads = {tool: {path.split(".")[0].removesuffix("[]") for path in paths}
             for tool, paths in _generated_fields(env).items()}
    for call, outcome, agreed in zip(calls, theirs.outcomes, comparison.agreed, strict=True):
        if agreed == _DISAGREED:
            break
        if not outcome.ok:
            kind = AWS_ERROR_KINDS.get(outcome.error_code or "")
            if kind is None:
                break
            steps.append(ScenarioStep(tool=call.tool, arguments=call.arguments, expect_error=kind))
            continue
        spec = env.tools[call.tool].spec
        declared = spec.output_schema.get("properties")
        names = {output_name(spec, str(ours)): str(ours) for ours in (declared if isinstance(declared, dict) else {})}
        expected: dict[str, Any] = {}
        volatile: list[str] = []
        for original, value in (agreed or {}).items():
            ours = names.get(original)
            if ours is None:
                continue
            expected[ours] = value
            if ours in heads.get(call.tool, ()) or is_timestamp(ours, value) or holds_generated(value, generated):
                volatile.append(ours)
        steps.append(ScenarioStep(tool=call.tool, arguments=call.arguments, expect_output=expected or None,
                                  volatile=sorted(volatile)))
    if not steps:
        return None
    return ScenarioTest(
        id=f"reference-{env.name}-{content_hash([[c.tool, c.arguments] for c in calls])[:12]}",
        title=f"{len(steps)} call(s) as {reference} answered them",
        oracle="reference",
        source=f"differential run against {reference}",
        initial_state=None,
        steps=steps,
    )


def _moto_runner(timeout_s: float) -> Callable[[ReferenceScript], ReferenceRun]:
    def run(script: ReferenceScript) -> ReferenceRun:
        try:
            completed = subprocess.run(
                [sys.executable, "-m", "envfactory.build.moto_worker"],
                input=script.to_json_bytes(), capture_output=True, timeout=timeout_s, check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise DifferentialError(f"the moto worker did not answer within {timeout_s:.0f} s") from exc
        if completed.returncode != 0:
            tail = completed.stderr.decode("utf-8", "replace").strip().splitlines()[-5:]
            raise DifferentialError("the moto worker failed:\n" + "\n".join(tail))
        return ReferenceRun.model_validate_json(completed.stdout)

    return run


def dropped_from_build_record(env_dir: Path) -> dict[str, str]:
    """Operation -> reason for every operation the build dropped (`build.json`), when there is one."""
    path = env_dir / "build.json"
    if not path.is_file():
        return {}
    try:
        from envfactory.spec.build import BuildRecord  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return {}
    record = BuildRecord.model_validate_json(path.read_bytes())
    return {d.operation_id.rsplit(":", 1)[-1]: f"{d.stage}: {d.reason}" for d in record.dropped}


def run_moto(
    env_dir: str | Path | Environment,
    service: str,
    script: Sequence[ScriptCall],
    *,
    dropped: Mapping[str, str] | None = None,
    seed: int = 0,
    timeout_s: float = MOTO_TIMEOUT_S,
) -> DifferentialResult:
    """Differential run of `script` against moto's `service` (see the module contract)."""
    return moto_run(env_dir, service, script, dropped=dropped, seed=seed, timeout_s=timeout_s).result


def _env_and_drop_reasons(
    env_dir: str | Path | Environment, dropped: Mapping[str, str] | None
) -> tuple[Environment, dict[str, str]]:
    """The environment, and why operations are absent: its build record's reasons, then the caller's."""
    env = env_dir if isinstance(env_dir, Environment) else load_env(env_dir)
    reasons = dict(dropped_from_build_record(env.directory)) if env.directory is not None else {}
    reasons.update(dropped or {})
    return env, reasons


def moto_run(
    env_dir: str | Path | Environment,
    service: str,
    script: Sequence[ScriptCall],
    *,
    dropped: Mapping[str, str] | None = None,
    seed: int = 0,
    timeout_s: float = MOTO_TIMEOUT_S,
) -> DifferentialRun:
    """`run_moto` in full: also the reference answers and the `reference`-oracle scenario."""
    env, reasons = _env_and_drop_reasons(env_dir, dropped)
    return differential_run(
        env, script, _moto_runner(timeout_s), reference=f"moto=={MOTO_VERSION}:{service}", service=service,
        dropped=reasons, seed=seed,
    )


# ---------------------------------------------------------------------------------------------------
# MCP servers as references (the memory server: @modelcontextprotocol/server-memory)

MCP_TIMEOUT_S = 120.0


def memory_server(cache_dir: Path, memory_file: Path) -> McpServerConfig | None:
    """The memory server installed by `envfactory resources setup` under `cache_dir`, keeping its graph in
    `memory_file` (a scratch path), or None when it is not installed."""
    found, _ = known_servers(cache_dir)
    for config in found:
        if config.name == "memory":
            return dataclasses.replace(config, env={"MEMORY_FILE_PATH": str(memory_file)})
    return None


def _mcp_answer(result: Any) -> tuple[bool, Any, str]:
    text = " ".join(getattr(part, "text", "") for part in (result.content or []))
    if result.is_error:
        return False, None, text
    if result.structured_content is not None:
        return True, result.structured_content, ""
    try:
        return True, orjson.loads(text), ""
    except orjson.JSONDecodeError:
        return True, text, ""


async def _run_mcp_script(config: McpServerConfig, script: ReferenceScript) -> ReferenceRun:
    from mcp import Client, StdioServerParameters

    server = StdioServerParameters(command=config.command, args=list(config.args), env=dict(config.env) or None)
    outcomes: list[ReferenceOutcome] = []
    async with Client(server, read_timeout_seconds=MCP_TIMEOUT_S, mode="legacy") as client:
        listed = await client.list_tools()
        defined = {tool.name: set((tool.input_schema or {}).get("properties") or {}) for tool in listed.tools}
        for call in script.calls:
            params: dict[str, Any] = orjson.loads(orjson.dumps(call.params))
            ignored = sorted(name for name in params if name not in defined.get(call.operation, set(params)))
            for name in ignored:
                del params[name]
            for binding in call.bindings:
                earlier = outcomes[binding.step].response if binding.step < len(outcomes) else None
                set_path(params, binding.param, walk_path(earlier, binding.path))
            ok, response, message = _mcp_answer(await client.call_tool(call.operation, params))
            outcomes.append(ReferenceOutcome(
                operation=call.operation, ok=ok, response=response,
                error_code=None if ok else "tool_error", error_message=message, ignored_params=ignored,
            ))
    return ReferenceRun(reference=script.reference, outcomes=outcomes)


def run_mcp(
    env_dir: str | Path | Environment,
    config: McpServerConfig,
    script: Sequence[ScriptCall],
    *,
    dropped: Mapping[str, str] | None = None,
    seed: int = 0,
    timeout_s: float = MCP_TIMEOUT_S,
) -> DifferentialRun:
    """Differential run of `script` against a stdio MCP server started fresh for it (official SDK client)."""
    env, reasons = _env_and_drop_reasons(env_dir, dropped)

    def runner(ref_script: ReferenceScript) -> ReferenceRun:
        try:
            return asyncio.run(asyncio.wait_for(_run_mcp_script(config, ref_script), timeout_s))
        except (Exception, ExceptionGroup) as exc:  # the server did not start, crashed or timed out
            raise DifferentialError(f"MCP server {config.name!r} could not run the script: {exc}") from exc

    reference = f"npm:{config.package}@{config.package_version}" if config.package else f"mcp:{config.name}"
    return differential_run(env, script, runner, reference=reference, service=config.name, dropped=reasons, seed=seed)


def run_memory_server(
    env_dir: str | Path | Environment,
    script: Sequence[ScriptCall],
    *,
    cache_dir: Path,
    dropped: Mapping[str, str] | None = None,
    seed: int = 0,
) -> DifferentialResult:
    """`run_mcp` against the npm memory server, its graph file in a fresh temporary directory."""
    with tempfile.TemporaryDirectory(prefix="envfactory-memory-") as scratch:
        config = memory_server(cache_dir, Path(scratch) / "memory.jsonl")
        if config is None:
            raise DifferentialError(
                "the MCP memory server is not installed: envfactory resources setup --only mcp-memory"
            )
        return run_mcp(env_dir, config, script, dropped=dropped, seed=seed).result

