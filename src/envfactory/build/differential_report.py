"""The library differential suite's report (`build.differential_suite`): typed records of which AWS
environments the library ships and which moto implements, per-environment agreement, and every
disagreement with its class and cause; rendered as JSON and as a markdown table.

Contract:
- `DisagreementClass`: `ours_wrong` (our environment departs from the API: a cause for the compiler is
  given), `moto_limitation` (moto does not do what the API's model says: an unimplemented operation, a
  constraint of the shape moto does not check), `undetermined` (the API's model declares the error our
  environment gave, moto does not raise it, and nothing but the real service could decide), and
  `follow_on` (a later disagreement in a scenario that already disagreed, caused by the first one; not
  classified on its own).
- `EnvDifferential.agreement` is calls matched / calls compared under the documented normalisation;
  `scenarios_agreed` counts scenarios with no disagreement at all. Calls moto crashed on or does not
  implement are not compared (`not_compared`; the latter still listed as `moto_limitation`
  disagreements, outside the rate).
- `render_markdown(report)` is deterministic (sorted by environment).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from envfactory.spec.base import SpecModel

__all__ = ["AwsEnvEntry", "Disagreement", "DisagreementClass", "EnvDifferential", "SuiteReport", "render_markdown"]

DisagreementClass = Literal["ours_wrong", "moto_limitation", "undetermined", "follow_on"]
CLASSES: tuple[str, ...] = ("ours_wrong", "moto_limitation", "undetermined", "follow_on")


class AwsEnvEntry(SpecModel):
    """One AWS environment of the library and what moto implements of its service."""

    name: str
    service: str
    resource: str
    moto_implements_service: bool
    source_operations: list[str] = Field(default_factory=list)
    moto_operations: list[str] = Field(default_factory=list, description="of source_operations, those moto implements")
    reason: str = Field(default="", description="why the suite does not run it, or what moto leaves out of it")


class Disagreement(SpecModel):
    """One disagreement of one scenario, classified."""

    scenario: str
    category: str
    step: int
    tool: str
    operation: str
    aspect: str
    detail: str
    klass: DisagreementClass
    cause: str


class EnvDifferential(SpecModel):
    """The suite's result for one environment."""

    env: str
    service: str
    reference: str
    scenarios: int
    scenarios_agreed: int
    calls_compared: int
    calls_matched: int
    values_compared: int
    agreement: float
    by_class: dict[str, int] = Field(default_factory=dict)
    disagreements: list[Disagreement] = Field(default_factory=list)
    not_compared: list[str] = Field(default_factory=list, description="operation: reason")
    omitted_fields: dict[str, int] = Field(
        default_factory=dict,
        description="Operation.field the reference answered, our output schema declares, our answer lacked -> calls",
    )
    causes: dict[str, list[str]] = Field(default_factory=dict, description="class -> distinct causes")
    cause_counts: dict[str, int] = Field(default_factory=dict, description="cause -> disagreements (not follow_on)")
    seconds: float = 0.0


class SuiteReport(SpecModel):
    """The whole suite: the AWS environments of the library, and a result per moto-implemented one."""

    moto_version: str
    botocore_version: str
    library: str
    aws_envs: list[AwsEnvEntry]
    results: list[EnvDifferential]


def render_markdown(report: SuiteReport) -> str:
    """The report as markdown: the AWS environment list (with why one is not run), the per-environment
    and per-service tables (disagreements by class in both), the causes."""
    lines = [
        f"# Differential suite against moto {report.moto_version} (botocore {report.botocore_version})", "",
        "| environment | service | moto implements | source ops in moto | note |", "|---|---|---|---|---|",
    ]
    for entry in sorted(report.aws_envs, key=lambda e: e.name):
        lines.append(f"| {entry.name} | {entry.service} | {'yes' if entry.moto_implements_service else 'no'} | "
                     f"{len(entry.moto_operations)}/{len(entry.source_operations)} | {entry.reason} |")
    lines += ["", "| environment | scenarios | agreed | calls matched | agreement | values compared | "
              + " | ".join(CLASSES) + " |", "|---|---|---|---|---|---|" + "---|" * len(CLASSES)]
    for result in sorted(report.results, key=lambda r: r.env):
        counts = " | ".join(str(result.by_class.get(k, 0)) for k in CLASSES)
        lines.append(f"| {result.env} | {result.scenarios} | {result.scenarios_agreed} | "
                     f"{result.calls_matched}/{result.calls_compared} | {result.agreement:.1%} | "
                     f"{result.values_compared} | {counts} |")
    lines += ["", "| service | environments | scenarios | calls matched | agreement | " + " | ".join(CLASSES) + " |",
              "|---|---|---|---|---|" + "---|" * len(CLASSES)]
    for service in sorted({r.service for r in report.results}):
        group = [r for r in report.results if r.service == service]
        compared, matched = sum(r.calls_compared for r in group), sum(r.calls_matched for r in group)
        rate = f"{matched / compared:.1%}" if compared else "-"
        counts = " | ".join(str(sum(r.by_class.get(k, 0) for r in group)) for k in CLASSES)
        lines.append(f"| {service} | {len(group)} | {sum(r.scenarios for r in group)} | {matched}/{compared} | {rate} "
                     f"| {counts} |")
    for result in sorted(report.results, key=lambda r: r.env):
        lines += ["", f"## {result.env} ({result.service})", ""]
        for klass in CLASSES[:3]:
            for cause in result.causes.get(klass, []):
                count = result.cause_counts.get(cause)
                lines.append(f"- {klass}{f' ({count})' if count else ''}: {cause}")
        for item in result.not_compared:
            lines.append(f"- not compared: {item}")
        if result.omitted_fields:
            omitted = ", ".join(f"{k} ({v})" for k, v in sorted(result.omitted_fields.items()))
            lines.append(f"- fields the reference answers that ours omits (calls): {omitted}")
    return "\n".join(lines) + "\n"
