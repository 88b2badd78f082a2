"""The library schema check's report (`build.spec_conformance`): typed records of how the served tool
results of each Google and OpenAPI environment conform to the source specification's response schemas,
and whether the specification's documented examples are accepted; rendered as JSON and markdown.

Contract:
- `ViolationClass` of a non-conforming result, the first that applies: `envelope` (the result's top
  level is another JSON type than the spec's response, or an object sharing no property with it: this
  one counts even where the schema's validator accepts the object, as an open schema without required
  fields accepts any),
  `missing_field` (a property the response requires is absent), `value` (a value of another type,
  format, enum or pattern), `extra_field` (a property the response schema closes out).
- `EnvConformance.rate` is conforming results / results checked; results of tools whose operation
  declares no response schema (or an empty one) are not checked and the tools are listed in
  `no_response_schema`.
- Examples: `ExampleCheck.status` is `accepted`, `refused` (with the reason) or `not_mapped` (the
  example is not an object of named values, names an external file, or is not JSON). `direction`
  says what was checked: `input` (the example request against our tool's served input schema),
  `output` (the documented response against our tool's served output schema); `spec_input` and `spec_output` check the same example against the spec's own input and
  response schemas: a specification whose examples break its schemas is recorded, never blamed on ours.
- `EnvConformance.example_classes()` pairs each example's check on our side with the spec-side one:
  `ours_wrong` only where the spec's own schema accepts what ours refuses.
- `render_markdown(report)` is deterministic (environments sorted by name).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from envfactory.spec.base import SpecModel

__all__ = ["ConformanceReport", "EnvConformance", "ExampleCheck", "ToolConformance", "ViolationClass",
           "render_markdown"]

ViolationClass = Literal["envelope", "missing_field", "value", "extra_field"]
VIOLATION_CLASSES: tuple[ViolationClass, ...] = ("envelope", "missing_field", "value", "extra_field")
ExampleDirection = Literal["input", "spec_input", "output", "spec_output"]
ExampleStatus = Literal["accepted", "refused", "not_mapped"]


class ToolConformance(SpecModel):
    """One tool's served results against its operation's response schema."""

    tool: str
    operation_id: str
    checked: int = 0
    conforming: int = 0
    by_class: dict[str, int] = Field(default_factory=dict)
    first_violation: str = Field(default="", description="the first violation seen: class, pointer, message")
    with_undeclared: int = Field(default=0, description="results with top-level fields the open schema does not declare")


class ExampleCheck(SpecModel):
    """One documented example (request or response) checked against our tool or the spec."""

    tool: str
    operation_id: str
    source: str = Field(description="`operation example #i` or `response schema example`")
    direction: ExampleDirection
    status: ExampleStatus
    detail: str = ""


class EnvConformance(SpecModel):
    """The schema check of one environment."""

    env: str
    kind: Literal["google", "openapi"]
    tools: int
    suite: Literal["stored", "generated", "none"] = Field(default="stored", description="the behavioural suite run")
    no_response_schema: list[str] = Field(default_factory=list, description="tools whose operation has none")
    unresolved: list[str] = Field(default_factory=list, description="operation ids the catalog could not give")
    calls_checked: int = 0
    calls_conforming: int = 0
    rate: float = 0.0
    by_class: dict[str, int] = Field(default_factory=dict)
    calls_with_undeclared: int = 0
    undeclared_fields: dict[str, int] = Field(default_factory=dict, description="tool.field -> results")
    tool_results: list[ToolConformance] = Field(default_factory=list)
    examples: list[ExampleCheck] = Field(default_factory=list)

    def example_counts(self, direction: ExampleDirection) -> tuple[int, int]:
        """(accepted, checked) examples in one direction; `not_mapped` ones are not checked."""
        checked = [e for e in self.examples if e.direction == direction and e.status != "not_mapped"]
        return sum(e.status == "accepted" for e in checked), len(checked)


    def example_classes(self) -> dict[str, int]:
        """Each checked example (request or response) by what it shows: `agree` (ours and the spec accept
        it), `ours_wrong` (ours refuses what the spec's schema accepts), `spec_inconsistent` (the spec's
        own schema refuses its example), `ours_only` (no spec-side check: ours refused it, the spec has no
        schema for it)."""
        pairs: dict[tuple[str, str, str], dict[str, str]] = {}
        for e in self.examples:
            if e.status != "not_mapped":
                side = "spec" if e.direction.startswith("spec_") else "ours"
                pairs.setdefault((e.tool, e.source, e.direction.removeprefix("spec_")), {})[side] = e.status
        found: dict[str, int] = {}
        for pair in pairs.values():
            if pair.get("spec") == "refused":
                klass = "spec_inconsistent"
            elif pair.get("ours") == "refused":
                klass = "ours_wrong" if pair.get("spec") == "accepted" else "ours_only"
            else:
                klass = "agree"
            found[klass] = found.get(klass, 0) + 1
        return dict(sorted(found.items()))


class ConformanceReport(SpecModel):
    """Every Google and OpenAPI environment of a library, checked."""

    library: str
    seed: int = 0
    results: list[EnvConformance]
    not_checked: dict[str, str] = Field(default_factory=dict, description="environment -> why")


def _ratio(accepted: int, checked: int) -> str:
    return f"{accepted}/{checked}" if checked else "-"


def _pct(part: int, whole: int) -> str:
    return f"{part / whole:.1%}" if whole else "-"


def _kind_rows(report: ConformanceReport) -> list[str]:
    """The per-kind tables: results and examples, then the examples by what they show."""
    lines = ["| kind | environments | results conforming | rate | results with undeclared fields | "
             "example requests ours accepts | example requests the spec accepts | example responses ours accepts | "
             "example responses the spec accepts |", "|---|---|---|---|---|---|---|---|---|"]
    for kind in ("google", "openapi"):
        group = [r for r in report.results if r.kind == kind]
        checked, ok = sum(r.calls_checked for r in group), sum(r.calls_conforming for r in group)
        extra = sum(r.calls_with_undeclared for r in group)
        counts = [tuple(map(sum, zip(*(r.example_counts(d) for r in group), strict=True))) if group else (0, 0)
                  for d in ("input", "spec_input", "output", "spec_output")]
        lines.append(f"| {kind} | {len(group)} | {ok}/{checked} | {_pct(ok, checked)} | {extra}/{checked} | "
                     + " | ".join(_ratio(a, c) for a, c in counts) + " |")
    lines += ["", "| kind | examples checked | agree | ours_wrong | spec_inconsistent | ours_only |",
              "|---|---|---|---|---|---|"]
    for kind in ("google", "openapi"):
        totals: dict[str, int] = {}
        for r in report.results:
            for klass, n in (r.example_classes().items() if r.kind == kind else ()):
                totals[klass] = totals.get(klass, 0) + n
        lines.append(f"| {kind} | {sum(totals.values())} | " + " | ".join(
            str(totals.get(k, 0)) for k in ("agree", "ours_wrong", "spec_inconsistent", "ours_only")) + " |")
    return lines


def render_markdown(report: ConformanceReport) -> str:
    """The report as markdown: per-kind totals, a row per environment, then the violations per tool."""
    lines = [f"# Schema check of {report.library} (Google and OpenAPI environments)", "", *_kind_rows(report)]
    lines += ["", "| environment | kind | tools (no response schema) | results conforming | rate | "
              + " | ".join(VIOLATION_CLASSES) + " | undeclared fields | example requests (ours / spec) | "
              "example responses (ours / spec) |",
              "|---|---|---|---|---|" + "---|" * len(VIOLATION_CLASSES) + "---|---|---|"]
    for r in sorted(report.results, key=lambda x: x.env):
        classes = " | ".join(str(r.by_class.get(k, 0)) for k in VIOLATION_CLASSES)
        lines.append(f"| {r.env} | {r.kind} | {r.tools} ({len(r.no_response_schema)}) | "
                     f"{r.calls_conforming}/{r.calls_checked} | {_pct(r.calls_conforming, r.calls_checked)} | "
                     f"{classes} | {r.calls_with_undeclared} | "
                     f"{_ratio(*r.example_counts('input'))} / {_ratio(*r.example_counts('spec_input'))} | "
                     f"{_ratio(*r.example_counts('output'))} / {_ratio(*r.example_counts('spec_output'))} |")
    for name, why in sorted(report.not_checked.items()):
        lines.append(f"| {name} | not checked: {why} |")
    for r in sorted(report.results, key=lambda x: x.env):
        bad = [t for t in r.tool_results if t.conforming < t.checked]
        refused = [e for e in r.examples if e.status == "refused"]
        if not bad and not refused and not r.undeclared_fields:
            continue
        lines += ["", f"## {r.env}", ""]
        lines += [f"- {t.tool}: {t.checked - t.conforming}/{t.checked} results violate; {t.first_violation}" for t in bad]
        lines += [f"- example {e.direction} of {e.tool} ({e.source}) refused: {e.detail}" for e in refused]
        if r.undeclared_fields:
            fields = ", ".join(f"{k} ({v})" for k, v in r.undeclared_fields.items())
            lines.append(f"- fields ours answers that the spec's open response schema does not declare (results): {fields}")
    return "\n".join(lines) + "\n"
