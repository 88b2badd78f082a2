"""The library's differential suite: every shipped AWS environment whose service moto implements runs
its generated scenarios (`build.differential_scenarios`) on our environment and on moto, compared by
the documented normalisation (`build.differential_compare.NORMALISATION`), each disagreement
classified (`build.differential_report`). `python -m envfactory.build.differential_suite` runs it and
writes `differential_suite.json` and `.md` (docs/verification.md, "The library differential suite").

Contract:
- `aws_library_envs(library)` lists the library's AWS environments (index.json `resource` starting
  `aws:`) with the moto operations of their source operations; a service moto implements has a moto
  package with a `responses.py` (read as text: moto is never imported in this process).
- `aws_library_envs` gives each environment's `reason`: moto has no backend for the service, or the
  source operations it lacks. `CI_SUBSET` names the environments the CI test runs (the smallest
  services, about 20 s); `--ci` runs only those, the default runs every one.
- `run_env(env_dir, service)` runs one environment: our side in this process, all of moto's scripts in
  one worker process (`moto_worker --batch`, each script from moto's empty state). A worker that fails
  or times out raises `DifferentialError`; `run_suite` then records the environment with no results and
  the reason in `not_compared` rather than shipping it as agreeing.
- Classification of a scenario's disagreements, first rule that applies: an operation moto answers
  "Not yet implemented" (or crashes on as unimplemented) -> `moto_limitation`; any later disagreement
  in a scenario that already disagreed -> `follow_on`; a repeated create (`duplicate`) both sides
  accept, of an operation whose model marks an idempotency token, whose answers differ ->
  `moto_limitation` (moto makes a second record; the API answers the first, as ours does); a reference call whose bound id was absent
  from the reference's earlier answer -> `ours_wrong` (our create invents an id the API does not
  return); ours succeeds where moto refuses -> `ours_wrong`; ours refuses as `invalid_arguments` a
  value the shape forbids where moto accepts it -> `moto_limitation`; ours refuses with a kind that an
  error the operation declares in the model maps to, moto accepts -> `undetermined`; other refusals of
  ours -> `ours_wrong`; different error kinds -> `ours_wrong` when the model declares moto's code for
  the operation, else `moto_limitation`; field and state differences -> `ours_wrong`. An `ours_wrong`
  call refused as not found (or whose bound id was absent) gets the root cause `key_cause` finds: the
  create that handed out an id the API does not know.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from envfactory.build.differential import (
    MOTO_VERSION,
    DifferentialError,
    DifferentialRun,
    PreparedRun,
    finish_run,
    prepare_run,
)
from envfactory.build.differential_compare import AWS_ERROR_KINDS, original_operation, output_name, unwrap
from envfactory.build.differential_report import (
    AwsEnvEntry,
    Disagreement,
    DisagreementClass,
    EnvDifferential,
    SuiteReport,
    render_markdown,
)
from envfactory.build.differential_scenarios import SuiteScenario, generate_scenarios, resolve_scenario
from envfactory.build.moto_worker import REFERENCE_CRASH
from envfactory.runtime import Environment, load_env
from envfactory.spec import DifferentialMismatch, declarative_model
from envfactory.spec.verification import ReferenceRun
from envfactory.store.atomic import write_atomic

__all__ = ["CI_SUBSET", "aws_library_envs", "classify", "idempotency_token", "key_cause", "main", "moto_operations", "run_env", "run_suite"]

LIBRARY = Path(__file__).parents[1] / "library"
BATCH_TIMEOUT_S = 600.0
CI_SUBSET = frozenset({"connectcampaigns", "ses_identities_identity_policies", "ses_receipt_rules_receipt_rule_sets"})
_MOTO_MODULES = {"lambda": "awslambda"}


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def moto_operations(service: str) -> set[str] | None:
    """The operation names (snake_case) moto's responses for `service` define, or None when moto has
    no package for it; read from moto's source files, never imported."""
    spec = importlib.util.find_spec("moto")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(next(iter(spec.submodule_search_locations)))
    package = root / _MOTO_MODULES.get(service, service.replace("-", ""))
    files = sorted(package.glob("responses*.py"))
    if not files:
        return None
    names: set[str] = set()
    for path in files:
        names.update(re.findall(r"^\s+def ([a-z]\w*)\(self", path.read_text(encoding="utf-8"), re.MULTILINE))
    return names


def aws_library_envs(library: Path = LIBRARY) -> list[AwsEnvEntry]:
    """The library's AWS environments and what moto implements of each (module contract)."""
    index = orjson.loads((library / "index.json").read_bytes())
    out: list[AwsEnvEntry] = []
    for entry in sorted(index["entries"], key=lambda e: e["name"]):
        resource = str(entry["resource"])
        if not resource.startswith("aws:"):
            continue
        service = resource.split(":")[1]
        spec = orjson.loads((library / entry["name"] / "spec.json").read_bytes())
        ops = sorted({t["source"]["operation_id"].rsplit(":", 1)[-1] for t in spec["tools"] if t.get("source")})
        implemented = moto_operations(service)
        covered = [o for o in ops if implemented and _snake(o) in implemented]
        missing = [o for o in ops if o not in covered]
        reason = (f"moto {MOTO_VERSION} has no backend for {service}" if implemented is None
                  else f"moto {MOTO_VERSION} lacks {', '.join(missing)}" if missing else "")
        out.append(AwsEnvEntry(
            name=entry["name"], service=service, resource=resource, moto_implements_service=implemented is not None,
            source_operations=ops, moto_operations=covered, reason=reason,
        ))
    return out


def _batch(prepared: list[PreparedRun], timeout_s: float) -> list[ReferenceRun]:
    payload = orjson.dumps([p.reference_script.model_dump(mode="json") for p in prepared])
    try:
        done = subprocess.run([sys.executable, "-m", "envfactory.build.moto_worker", "--batch"], input=payload,
                              capture_output=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        raise DifferentialError(f"the moto worker did not answer within {timeout_s:.0f} s") from exc
    if done.returncode != 0:
        tail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-5:]
        raise DifferentialError("the moto worker failed:\n" + "\n".join(tail))
    runs = [ReferenceRun.model_validate(item) for item in orjson.loads(done.stdout)]
    if len(runs) != len(prepared):
        raise DifferentialError(f"the moto worker answered {len(runs)} of {len(prepared)} scripts")
    return runs


def _declared_errors(model: Any, operation: str) -> set[str]:
    if operation not in model.operation_names:
        return set()
    return {shape.name for shape in model.operation_model(operation).error_shapes}


def idempotency_token(model: Any, operation: str) -> str | None:
    """The input member the API model marks `idempotencyToken` for `operation` (e.g. Managed
    Blockchain's `ClientRequestToken`), or None."""
    if operation not in model.operation_names:
        return None
    shape = model.operation_model(operation).input_shape
    members = shape.members if shape is not None else {}
    return next((name for name, member in members.items() if member.metadata.get("idempotencyToken")), None)


def _unimplemented(message: str | None) -> bool:
    text = message or ""
    return "Not yet implemented" in text or "has not been implemented" in text


def classify(mismatch: DifferentialMismatch, scenario: SuiteScenario, earlier: bool, ours_kind: str | None,
             reference_code: str | None, declared: set[str], token: str | None = None) -> tuple[DisagreementClass, str]:
    """The class and cause of one disagreement (module contract, "Classification"); `token`: the
    operation's idempotency-token member, if the model marks one."""
    op, tool = mismatch.operation, mismatch.tool
    reference_text = str(mismatch.reference or "")
    if reference_code in {"404", REFERENCE_CRASH} and _unimplemented(reference_text):
        return "moto_limitation", f"moto {MOTO_VERSION} does not implement {op}"
    if earlier:
        return "follow_on", "follows the scenario's first disagreement"
    if token and scenario.category == "duplicate" and ours_kind is None and reference_code is None:
        return "moto_limitation", (f"moto {MOTO_VERSION} ignores {op}'s idempotency token {token}: the repeated "
                                   "create with the same token makes a second record where ours answers the first")
    if mismatch.aspect != "outcome":
        return "ours_wrong", f"{tool}: {mismatch.aspect} differs from the API's answer ({mismatch.detail[:80]})"
    if reference_code == "ParamValidationError" and "value: None" in reference_text:
        return "ours_wrong", (f"{tool}: an id our environment generated has no counterpart in the API's answer "
                              "(our create invents a key the API's create does not return)")
    if ours_kind is None:
        return "ours_wrong", f"{tool} accepts what {op} refuses with {reference_code}"
    if reference_code is None:
        if ours_kind == "invalid_arguments" and scenario.category == "invalid_value":
            return "moto_limitation", f"moto {MOTO_VERSION} accepts a {op} value the shape forbids (enum or max length)"
        codes = sorted(c for c in declared if AWS_ERROR_KINDS.get(c) == ours_kind)
        if codes:
            return "undetermined", (f"{tool} refuses as {ours_kind} ({scenario.category}); the model declares "
                                    f"{', '.join(codes)} for {op}, moto {MOTO_VERSION} accepts")
        return "ours_wrong", f"{tool} refuses as {ours_kind} ({scenario.category}) where {op} declares no such error"
    if reference_code in declared or reference_code == "ParamValidationError":
        return "ours_wrong", f"{tool} answers {ours_kind} where {op} answers {reference_code}"
    return "moto_limitation", f"moto answers {reference_code}, which the model does not declare for {op}"


def _answers(shape: Any, name: str, depth: int = 0) -> bool:
    """Whether a botocore output shape has a member called `name` at any depth up to 4."""
    if shape is None or depth > 4:
        return False
    if shape.type_name == "list":
        return _answers(shape.member, name, depth + 1)
    if shape.type_name != "structure":
        return False
    return name in shape.members or any(_answers(m, name, depth + 1) for m in shape.members.values())


def key_cause(env: Environment, calls: list[Any], step: int, api: Any = None) -> str | None:
    """Why ids our environment handed out mean nothing to the API, for the call at `step`: an earlier
    create keys its records by the caller's argument where the collection's key is an id the API
    generates (Cloud Map `CreateService` by `Name`), or generates a key the API takes from the caller
    and never returns (SES receipt rules by `Rule.Name`; `api`, the botocore service model, says what the
    create returns). None when neither applies."""
    model = declarative_model(env.spec)
    if model is None:
        return None
    values = {v for v in calls[step].arguments.values() if isinstance(v, str)}
    target = model.operations.get(calls[step].tool)
    for earlier in calls[:step]:
        op = model.operations.get(earlier.tool)
        if op is None or op.kind != "create":
            continue
        key = model.collections[op.collection].key
        if op.key_arg and op.key_arg != key and earlier.arguments.get(op.key_arg) in values:
            return (f"{earlier.tool} keys {op.collection} by the caller's {op.key_arg}, where the API generates "
                    f"{key}: the {key} ours hands out is unknown to the API")
        operation = original_operation(env.tools[earlier.tool].spec)
        output = (api.operation_model(operation).output_shape
                  if api is not None and operation in api.operation_names else None)
        if op.key_arg is None and target is not None and target.collection == op.collection and not _answers(output, key):
            return (f"{earlier.tool} generates {op.collection}' {key}, which the API's create does not return "
                    f"(the API keys them by the caller's input): later calls name an id the API never gave")
    return None


def _omitted(env: Environment, prepared: PreparedRun, run: DifferentialRun) -> Counter[str]:
    """Operation.field the reference answered (scalar), our output schema declares, our answer lacked."""
    found: Counter[str] = Counter()
    ours_side = prepared.ours
    for call, ours, theirs in zip(ours_side.calls, ours_side.results, run.reference_run.outcomes, strict=True):
        if not (ours.ok and theirs.ok and isinstance(ours.output, dict)) or "items" in ours.output:
            continue
        spec = env.tools[call.tool].spec
        declared = spec.output_schema.get("properties")
        names = {output_name(spec, str(k)) for k in (declared if isinstance(declared, dict) else {})}
        mine = {output_name(spec, str(k)) for k in ours.output}
        answer = unwrap(theirs.response, mine, None)
        if isinstance(answer, dict):
            for name, value in answer.items():
                if name in names and name not in mine and not isinstance(value, dict | list):
                    found[f"{theirs.operation}.{name}"] += 1
    return found


def _crash_summary(operation: str, reason: str) -> str:
    """`Operation: ExceptionType` of a call moto crashed on (call numbers and ids left out)."""
    found = re.search(r"\((\w+(?:Error|Exception))\b", reason)
    return f"{operation}: {found.group(1) if found else reason[:80]}"


def run_env(env_dir: Path, service: str, *, seed: int = 0, timeout_s: float = BATCH_TIMEOUT_S) -> EnvDifferential:
    """Run one environment's scenarios on ours and on moto; the classified result (module contract)."""
    import botocore.session

    started = time.monotonic()
    env = load_env(env_dir)
    model = botocore.session.get_session().get_service_model(service)
    scenarios = generate_scenarios(env, service)
    reference = f"moto=={MOTO_VERSION}:{service}"
    prepared = [prepare_run(env, resolve_scenario(env, s, seed), reference=reference, service=service, seed=seed)
                for s in scenarios]
    runs = [finish_run(p, r) for p, r in zip(prepared, _batch(prepared, timeout_s), strict=True)]
    disagreements: list[Disagreement] = []
    omitted: Counter[str] = Counter()
    not_compared: set[str] = set()
    compared = matched = values = agreed = 0
    for scenario, prep, run in zip(scenarios, prepared, runs, strict=True):
        result = run.result
        compared, matched, values = compared + result.calls_compared, matched + result.matched, values + result.values_compared
        not_compared.update(_crash_summary(d.operation, d.reason) for d in result.dropped_ops_not_compared)
        omitted.update(_omitted(env, prep, run))
        agreed += not result.mismatches
        for index, mismatch in enumerate(result.mismatches):
            ours = prep.ours.results[mismatch.step]
            theirs = run.reference_run.outcomes[mismatch.step]
            klass, cause = classify(mismatch, scenario, index > 0, ours.error.kind if ours.error else None,
                                    theirs.error_code, _declared_errors(model, mismatch.operation),
                                    idempotency_token(model, mismatch.operation))
            code_kind = AWS_ERROR_KINDS.get(theirs.error_code or "")
            if klass == "ours_wrong" and mismatch.aspect == "outcome" and (
                    theirs.error_code == "ParamValidationError" or (ours.ok and code_kind == "not_found")):
                cause = key_cause(env, prep.ours.calls, mismatch.step, model) or cause
            disagreements.append(Disagreement(
                scenario=scenario.id, category=scenario.category, step=mismatch.step, tool=mismatch.tool,
                operation=mismatch.operation, aspect=mismatch.aspect, detail=mismatch.detail[:300], klass=klass,
                cause=cause,
            ))
    # calls moto answers "Not yet implemented" are not compared, like the calls it crashes on
    unimplemented = [d for d in disagreements if d.cause.startswith(f"moto {MOTO_VERSION} does not implement")]
    compared -= len(unimplemented)
    not_compared.update(f"{d.operation}: NotImplemented (404 Not yet implemented)" for d in unimplemented)
    by_class = Counter(d.klass for d in disagreements)
    causes: dict[str, list[str]] = {"moto_limitation": sorted(
        f"moto {MOTO_VERSION} crashes on {item} (not compared)" for item in not_compared if "NotImplemented" not in item
    ) + sorted(f"moto {MOTO_VERSION} does not implement {item.split(':')[0]} (not compared)"
               for item in not_compared if "NotImplemented" in item)}
    for d in disagreements:
        if d.klass != "follow_on" and d not in unimplemented and d.cause not in causes.setdefault(d.klass, []):
            causes[d.klass].append(d.cause)
    return EnvDifferential(
        env=env.name, service=service, reference=reference, scenarios=len(scenarios), scenarios_agreed=agreed,
        calls_compared=compared, calls_matched=matched, values_compared=values,
        agreement=round(matched / compared, 4) if compared else 0.0, by_class=dict(sorted(by_class.items())),
        disagreements=disagreements, not_compared=sorted(not_compared), omitted_fields=dict(sorted(omitted.items())),
        causes=causes, cause_counts=dict(sorted(Counter(d.cause for d in disagreements if d.klass != "follow_on").items())),
        seconds=round(time.monotonic() - started, 1),
    )


def run_suite(library: Path = LIBRARY, *, only: set[str] | None = None, seed: int = 0) -> SuiteReport:
    """Run every library AWS environment whose service moto implements (or those in `only`)."""
    import botocore

    entries = aws_library_envs(library)
    results: list[EnvDifferential] = []
    for entry in entries:
        if not entry.moto_implements_service or (only is not None and entry.name not in only):
            continue
        try:
            results.append(run_env(library / entry.name, entry.service, seed=seed))
        except DifferentialError as exc:  # a moto that crashes: recorded, never counted as agreement
            results.append(EnvDifferential(
                env=entry.name, service=entry.service, reference=f"moto=={MOTO_VERSION}:{entry.service}",
                scenarios=0, scenarios_agreed=0, calls_compared=0, calls_matched=0, values_compared=0,
                agreement=0.0, not_compared=[f"all: {exc}"],
            ))
    return SuiteReport(moto_version=MOTO_VERSION, botocore_version=botocore.__version__, library=library.name,
                       aws_envs=entries, results=results)


def main(argv: list[str] | None = None) -> int:
    """`python -m envfactory.build.differential_suite [--only NAME ... | --ci] [--out DIR]`: run the suite
    (every environment moto implements, or `CI_SUBSET`) and write `differential_suite.json` and
    `differential_suite.md` to DIR (default: print the markdown)."""
    parser = argparse.ArgumentParser(prog="python -m envfactory.build.differential_suite")
    parser.add_argument("--library", type=Path, default=LIBRARY)
    parser.add_argument("--only", nargs="*", default=None, help="environment names (default: every one)")
    parser.add_argument("--ci", action="store_true", help="only the CI subset (CI_SUBSET)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    only = set(CI_SUBSET) if args.ci else set(args.only) if args.only else None
    report = run_suite(args.library, only=only, seed=args.seed)
    markdown = render_markdown(report)
    if args.out is None:
        sys.stdout.write(markdown)
    else:
        args.out.mkdir(parents=True, exist_ok=True)
        write_atomic(args.out / "differential_suite.json", report.to_json_bytes())
        write_atomic(args.out / "differential_suite.md", markdown.encode("utf-8"))
        sys.stdout.write(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
