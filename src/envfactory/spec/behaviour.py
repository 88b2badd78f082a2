"""Behavioural acceptance (issue 19): scenarios derived from an environment's SOURCE spec, their
per-check outcomes with evidence, and the ignored-argument probe.

Contract:
- A `BehaviourScenario` is written from the catalog operations and the proposal's roles before the
  environment runs: every `BehaviourStep` carries its expectation (`expect`) and the spec fact it comes
  from (`because`). The environment contributes nothing to an expectation; setup values (a parent key
  taken from the seed state) are arguments, never expectations.
- `"${name}"` in a step's arguments or expectations is replaced by a value captured by an earlier step.
- Step kinds of expectation (`StepExpect`):
  - `ok`: the call succeeds; `fields` (when given) must appear, with these values, in the returned
    record (the output itself or a record inside an envelope); `includes`/`excludes` name values that
    must / must not appear anywhere in the output (a list containing a created key, or not).
  - `error`: the call fails with one of `error_kinds`; with `state_unchanged` the state hash after the
    call equals the hash before it.
  - `setup`: the call should succeed, but if it does not the scenario is `inconclusive` (the spec does
    not say the environment must accept it: e.g. driving a record into a final state).
- `BehaviourCheck` records one judged step: the call, the expectation, what was observed, `passed`,
  and for a success whose operation has a response schema, whether the output's envelope matches it
  (`envelope`; kept apart from `passed`, so the scenario verdicts measure behaviour only).
- `ArgumentProbe` records whether one tool argument showed an observable effect and how.
- `BehaviourSuite` is what an environment keeps in its `behaviour.json.gz` (`dump_suite_file`,
  `stored_suite`; libraries before the generation-2 one of 2026-12-07 kept it inside `scenarios.json`,
  `ScenarioFile`'s object form next to the scenario tests, which still loads): the generated
  scenarios, the prose rules they test, the kinds the spec did not allow, and `known_failures` (scenario id -> reason): failures recorded before the
  compiler fixes, listed with their reason so `envs verify` reports them instead of hiding them.
  `dump_scenario_file`/`load_scenario_file` are its encoding (canonical bytes; a legacy array of
  `ScenarioTest`s loads as a file without a suite).
All models are versioned (`schema_version`).
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Literal

from pydantic import Field

from envfactory.spec.base import JSONObject, JSONValue, SpecModel, canonical_json, parse_json
from envfactory.spec.rules import ProseRule
from envfactory.spec.tool import ErrorKind
from envfactory.spec.verification import ScenarioTest

__all__ = [
    "SUITE_FILE",
    "ArgumentProbe",
    "BehaviourCheck",
    "BehaviourKind",
    "BehaviourReport",
    "BehaviourScenario",
    "BehaviourStep",
    "BehaviourSuite",
    "ProbeEffect",
    "ScenarioFile",
    "ScenarioVerdict",
    "StepExpect",
    "dump_scenario_file",
    "dump_suite_file",
    "load_scenario_file",
    "load_suite_file",
    "stored_suite",
]

BehaviourKind = Literal["lifecycle", "scoping", "reference", "state_machine", "pagination", "rule", "validation"]
BEHAVIOUR_KINDS: tuple[str, ...] = ("lifecycle", "scoping", "reference", "state_machine", "pagination", "rule",
                                    "validation")
ScenarioVerdict = Literal["passed", "failed", "inconclusive"]
ProbeEffect = Literal["output", "error", "state", "none", "unprobed"]


class StepExpect(SpecModel):
    """What the spec says about one call's outcome (module contract)."""

    schema_version: Literal[1] = 1
    outcome: Literal["ok", "error", "setup"] = "ok"
    error_kinds: list[ErrorKind] = Field(default_factory=list, description="accepted kinds when outcome=error")
    state_unchanged: bool = False
    fields: JSONObject = Field(default_factory=dict, description="field -> value the returned record must show")
    includes: list[JSONValue] = Field(default_factory=list, description="values that must appear in the output")
    excludes: list[JSONValue] = Field(default_factory=list, description="values that must not appear in the output")
    distinct: bool = Field(default=False, description="pagination walk: every `includes` value exactly once overall")
    key_fields: list[str] = Field(
        default_factory=list,
        description="`includes`/`excludes` look only at values under these fields (all values when the output has none)",
    )


class BehaviourStep(SpecModel):
    """One call of a behavioural scenario, its expectation and the spec fact behind it."""

    schema_version: Literal[1] = 1
    tool: str
    arguments: JSONObject = Field(default_factory=dict)
    expect: StepExpect = Field(default_factory=StepExpect)
    because: str = Field(default="", description="the spec fact the expectation comes from")
    capture: dict[str, list[str]] = Field(
        default_factory=dict,
        description="variable -> field names tried in order, looked up in the returned record (or anywhere in it)",
    )
    follow_token: str | None = Field(
        default=None, description="pagination: repeat the call passing the output's next token in this argument"
    )
    response: Literal["object", "array", ""] = Field(default="", description="the spec's response shape")
    response_keys: list[str] = Field(default_factory=list, description="the spec's top-level response properties")


class BehaviourScenario(SpecModel):
    """A scenario of at least three calls whose expectations come from the source spec."""

    schema_version: Literal[1] = 1
    id: str
    kind: BehaviourKind
    collection: str
    title: str
    source: str = Field(description="catalog operations the expectations were read from")
    initial_state: Literal["empty", "default"] = "default"
    steps: list[BehaviourStep] = Field(min_length=3)


class BehaviourCheck(SpecModel):
    """One judged step: the call made, what the spec expected, what was observed."""

    schema_version: Literal[1] = 1
    scenario: str
    kind: BehaviourKind
    step: int
    tool: str
    arguments: JSONObject = Field(default_factory=dict)
    expected: str
    observed: str
    passed: bool
    because: str = ""
    envelope: str | None = Field(
        default=None, description="a success compared with the spec's response: 'match' or 'mismatch: ...'"
    )


class ArgumentProbe(SpecModel):
    """Whether one argument of one tool had an observable effect when varied on forks of one session."""

    schema_version: Literal[1] = 1
    tool: str
    argument: str
    required: bool
    effect: ProbeEffect
    evidence: str = ""


class BehaviourReport(SpecModel):
    """Per-environment behavioural acceptance: scenarios, their verdicts, checks and argument probes."""

    schema_version: Literal[1] = 1
    env_name: str
    scenarios: list[BehaviourScenario] = Field(default_factory=list)
    verdicts: dict[str, ScenarioVerdict] = Field(default_factory=dict, description="scenario id -> verdict")
    checks: list[BehaviourCheck] = Field(default_factory=list)
    probes: list[ArgumentProbe] = Field(default_factory=list)
    not_generated: list[str] = Field(default_factory=list, description="scenarios the spec did not allow, why")

    def counts(self) -> dict[str, int]:
        """Headline figures: scenarios by verdict and kind, calls, failures by kind, ignored arguments."""
        out: dict[str, int] = {"scenarios": len(self.scenarios),
                               "calls": sum(len(s.steps) for s in self.scenarios)}
        for verdict in ("passed", "failed", "inconclusive"):
            out[verdict] = sum(v == verdict for v in self.verdicts.values())
        for scenario in self.scenarios:
            verdict = self.verdicts.get(scenario.id, "inconclusive")
            out[f"{scenario.kind}:{verdict}"] = out.get(f"{scenario.kind}:{verdict}", 0) + 1
        for check in self.checks:
            if check.envelope is not None:
                out["envelope_checked"] = out.get("envelope_checked", 0) + 1
                out["envelope_mismatch"] = out.get("envelope_mismatch", 0) + check.envelope.startswith("mismatch")
        for probe in self.probes:
            side = "required" if probe.required else "optional"
            out[f"args_{side}"] = out.get(f"args_{side}", 0) + 1
            if probe.effect in ("none", "unprobed"):
                out[f"{probe.effect}_{side}"] = out.get(f"{probe.effect}_{side}", 0) + 1
        return out


class BehaviourSuite(SpecModel):
    """An environment's behavioural suite as kept in its `behaviour.json.gz` (module contract)."""

    schema_version: Literal[1] = 1
    env_name: str
    generator: int = Field(default=1, description="version of the scenario generator that wrote it")
    seed: int = 0
    scenarios: list[BehaviourScenario] = Field(default_factory=list)
    rules: list[ProseRule] = Field(default_factory=list)
    not_generated: list[str] = Field(default_factory=list)
    known_failures: dict[str, str] = Field(default_factory=dict, description="scenario id -> why it fails")


class ScenarioFile(SpecModel):
    """`scenarios.json` in its object form: the scenario tests and the behavioural suite."""

    schema_version: Literal[2] = 2
    tests: list[ScenarioTest] = Field(default_factory=list)
    behaviour: BehaviourSuite | None = None


def dump_scenario_file(file: ScenarioFile) -> bytes:
    """Canonical bytes of `scenarios.json`: the legacy array when there is no suite, else the object.

    The suite leaves out every field at its default (a step's empty `error_kinds`, `outcome: "ok"`...):
    reading fills them back, so the model read is the model written, and the shipped library's suites
    take about a third less room (the library's size bound, issue 20)."""
    if file.behaviour is None:
        return canonical_json([t.model_dump(mode="json") for t in file.tests])
    return canonical_json({
        "schema_version": file.schema_version,
        "tests": [t.model_dump(mode="json", by_alias=True) for t in file.tests],
        "behaviour": file.behaviour.model_dump(mode="json", by_alias=True, exclude_defaults=True),
    })


SUITE_FILE = "behaviour.json.gz"  # an environment directory's behavioural suite, beside `scenarios.json`


def dump_suite_file(suite: BehaviourSuite) -> bytes:
    """The bytes of `behaviour.json.gz`: the suite's canonical JSON (defaults left out, as in
    `dump_scenario_file`), gzip-compressed with no name and a zero time stamp, so the same suite gives
    the same bytes. Compressed because a library's suites are thousands of generated scenarios (about
    7 MB of JSON for 118 environments, a tenth of that compressed; the library's size bound, issue 20)."""
    data = canonical_json(suite.model_dump(mode="json", by_alias=True, exclude_defaults=True))
    return gzip.compress(data, compresslevel=9, mtime=0)


def load_suite_file(data: bytes) -> BehaviourSuite:
    """Parse `behaviour.json.gz` (raises `ValueError` when it is not a gzip of a suite)."""
    try:
        raw = gzip.decompress(data)
    except (OSError, EOFError) as exc:
        raise ValueError(f"not a gzip file: {exc}") from exc
    return BehaviourSuite.model_validate(parse_json(raw))


def stored_suite(directory: Path) -> BehaviourSuite | None:
    """The behavioural suite an environment directory keeps: `behaviour.json.gz`, else one kept inside
    `scenarios.json` (the object form libraries before the generation-2 one of 2026-12-07 used), else None. Raises `ValueError`
    on a malformed file."""
    if (directory / SUITE_FILE).is_file():
        return load_suite_file((directory / SUITE_FILE).read_bytes())
    scenarios = directory / "scenarios.json"
    return load_scenario_file(scenarios.read_bytes()).behaviour if scenarios.is_file() else None


def load_scenario_file(data: bytes | str) -> ScenarioFile:
    """Parse `scenarios.json` in either form (raises `ValueError` on malformed content)."""
    parsed = parse_json(data)
    if isinstance(parsed, list):
        return ScenarioFile(tests=[ScenarioTest.model_validate(t) for t in parsed])
    return ScenarioFile.model_validate(parsed)
