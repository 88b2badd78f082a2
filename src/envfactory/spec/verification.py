"""Verification artifacts of a built environment: scenario tests, check results, differential results
and the `report.json` verdict (DESIGN §4, issue #6).

Contract:
- `ScenarioTest` is data: the expectation of every step comes from an oracle independent of our
  implementation (`oracle` says which, `source` says where exactly), never from running our env.
  Steps may `capture` values from an output (dotted path) and later arguments may use them whole as
  `"${name}"`; `volatile` paths in `expect_output` are generated values (ids, timestamps) whose
  presence is checked but whose value is not.
- `CheckResult.failing_tools` names the tools a failed check blames, so the build's revise stage can
  drop exactly those and verify again (`VerificationReport.failing_tools()`).
- `VerificationReport.evidence_digest` is the sha256 of the canonical JSON of the report without the
  digest itself and without `timings_ms`: timings are reported but never hashed, so verifying the
  same environment and scenarios with the same seed gives the same digest in every process.
- `scenarios.json` is a JSON array of `ScenarioTest`; `dump_scenarios`/`load_scenarios` are its
  encoding (canonical bytes, so the build writes identical files for identical inputs). Since issue 19
  the file may instead be an object `{"schema_version": 2, "tests": [...], "behaviour": {...}}` that
  also keeps the environment's behavioural suite (`spec.behaviour.ScenarioFile`); `load_scenarios`
  reads the scenario tests of either form.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, TypeAdapter

from envfactory.spec.base import JSONObject, JSONValue, SpecModel, canonical_json, content_hash, parse_json
from envfactory.spec.tool import ErrorKind

OracleKind = Literal["spec_example", "awscli_example", "reference", "llm_fixed"]
"""Where a scenario's expectation came from: the API specification's own examples (AWS
`examples-1.json`, OpenAPI/Google examples), the awscli documentation examples, a reference
implementation run differentially (moto, an MCP server), or an LLM-written scenario frozen after review."""

ORACLE_KINDS: tuple[str, ...] = ("spec_example", "awscli_example", "reference", "llm_fixed")

CheckName = Literal[
    "load", "parity", "seed_roundtrip", "determinism", "isolation", "fuzz", "scenarios", "differential",
    "authored_exercised", "behaviour",
]
# `authored_exercised` runs only for hybrid environments (tools an LLM wrote): each must show it works.
# `behaviour` runs only when the environment keeps a behavioural suite (issue 19, docs/behaviour.md).
CHECK_NAMES: tuple[str, ...] = (
    "load", "parity", "seed_roundtrip", "determinism", "isolation", "fuzz", "scenarios", "differential",
    "authored_exercised", "behaviour",
)

CheckStatus = Literal["passed", "failed", "skipped"]
Verdict = Literal["verified", "rejected"]


class ScenarioStep(SpecModel):
    """One call of a scenario and what the oracle says about its outcome."""

    schema_version: Literal[1] = 1
    tool: str
    arguments: JSONObject = Field(default_factory=dict)
    expect_error: ErrorKind | None = Field(default=None, description="the error kind the call must fail with")
    expect_output: JSONValue = Field(
        default=None, description="JSON subset the output must contain (None: only success is expected)"
    )
    volatile: list[str] = Field(
        default_factory=list,
        description="dotted paths in expect_output holding generated ids/timestamps: presence is checked, value is not",
    )
    capture: dict[str, str] = Field(
        default_factory=dict, description="variable name -> dotted path in the output, usable later as '${name}'"
    )


class StateAssertion(SpecModel):
    """A fact about the state after the steps: a record (by key or by filter) contains `expect`, or is absent."""

    schema_version: Literal[1] = 1
    collection: str
    key: str | None = Field(default=None, description="record key; may be a captured '${name}'")
    filter: JSONObject | None = Field(default=None, description="field values identifying the record when the key is generated")
    expect: JSONObject | Literal["absent"] = Field(default_factory=dict)


class ScenarioTest(SpecModel):
    """A scenario test as data; see the module contract for the oracle policy."""

    schema_version: Literal[1] = 1
    id: str
    title: str
    oracle: OracleKind
    source: str = Field(description="where the expectation came from, e.g. aws:sqs CreateQueue examples-1.json#0")
    initial_state: str | JSONObject | None = Field(
        default="default", description="name of a seed, an inline state, or None for the empty state"
    )
    steps: list[ScenarioStep]
    state_assertions: list[StateAssertion] = Field(default_factory=list)

    def tools(self) -> list[str]:
        """The distinct tools the scenario's steps call, sorted."""
        return sorted({step.tool for step in self.steps})


class CheckResult(SpecModel):
    """The outcome of one check; `evidence_digest` hashes what the check observed (never timings)."""

    schema_version: Literal[1] = 1
    name: CheckName
    status: CheckStatus
    detail: str = ""
    evidence_digest: str = ""
    counts: dict[str, int] = Field(default_factory=dict)
    failing_tools: list[str] = Field(default_factory=list)
    problems: list[str] = Field(default_factory=list, description="one line per problem found, tool named first")


class DifferentialMismatch(SpecModel):
    """One disagreement between our environment and a reference implementation."""

    schema_version: Literal[1] = 1
    step: int
    tool: str
    operation: str
    aspect: Literal["outcome", "field", "state"]
    detail: str
    ours: JSONValue = None
    reference: JSONValue = None


class DroppedComparison(SpecModel):
    """A reference operation that was not compared, and why (never silently faked)."""

    schema_version: Literal[1] = 1
    operation: str
    reason: str


class DifferentialResult(SpecModel):
    """Our environment vs one reference implementation over one call script."""

    schema_version: Literal[1] = 1
    reference: str = Field(description="e.g. moto==5.2.1:sqs or npm:@modelcontextprotocol/server-memory@2025.x")
    operations_compared: list[str] = Field(default_factory=list, description="original operation names compared")
    calls_compared: int = 0
    matched: int = Field(default=0, description="calls whose outcome and compared fields agree")
    values_compared: int = Field(default=0, description="scalar response values compared (ids and fields)")
    mismatches: list[DifferentialMismatch] = Field(default_factory=list)
    dropped_ops_not_compared: list[DroppedComparison] = Field(default_factory=list)
    normalisation: str = Field(default="", description="how responses were normalised before comparison")

    def failing_tools(self) -> list[str]:
        """The tools with at least one mismatch, sorted."""
        return sorted({m.tool for m in self.mismatches})


class OracleTally(SpecModel):
    """How many scenario tests with an independent oracle passed, out of how many ran."""
    passed: int = 0
    total: int = 0


class VerificationReport(SpecModel):
    """`report.json`: every check's result and the verdict (verified only when no check failed)."""

    schema_version: Literal[1] = 1
    env_name: str
    spec_hash: str
    seed: int = 0
    verdict: Verdict
    checks: list[CheckResult]
    scenarios_by_oracle: dict[str, OracleTally] = Field(default_factory=dict)
    differential: list[DifferentialResult] = Field(default_factory=list)
    evidence_digest: str = ""
    timings_ms: dict[str, float] = Field(
        default_factory=dict, description="wall time per check; informative only, never hashed"
    )

    def compute_digest(self) -> str:
        """The sha256 of the report's canonical JSON without `evidence_digest` and timings: what `sealed` stores."""
        payload = self.model_dump(mode="json", exclude={"evidence_digest", "timings_ms"})
        return content_hash(payload)

    def sealed(self) -> VerificationReport:
        """A copy whose `evidence_digest` is filled in."""
        return self.model_copy(update={"evidence_digest": self.compute_digest()})

    def check(self, name: str) -> CheckResult | None:
        """The result of the check named `name`, or None when the report has none."""
        for result in self.checks:
            if result.name == name:
                return result
        return None

    def failing_tools(self) -> list[str]:
        """Every tool blamed by a failed check or a differential mismatch, sorted."""
        blamed: set[str] = set()
        for result in self.checks:
            if result.status == "failed":
                blamed.update(result.failing_tools)
        for diff in self.differential:
            blamed.update(diff.failing_tools())
        return sorted(blamed)


_SCENARIO_LIST: TypeAdapter[list[ScenarioTest]] = TypeAdapter(list[ScenarioTest])


def dump_scenarios(scenarios: list[ScenarioTest]) -> bytes:
    """Canonical bytes of `scenarios.json`."""
    return canonical_json([s.model_dump(mode="json") for s in scenarios])


def load_scenarios(data: bytes | str) -> list[ScenarioTest]:
    """Parse `scenarios.json`, either form (module contract): its scenario tests (raises `ValueError`,
    pydantic's `ValidationError` included, on malformed content)."""
    parsed = parse_json(data)
    if isinstance(parsed, dict):
        if parsed.get("schema_version") != 2 or not isinstance(parsed.get("tests"), list):
            raise ValueError("scenarios.json: an object must have schema_version 2 and a list of tests")
        parsed = parsed["tests"]
    return _SCENARIO_LIST.validate_python(parsed)


# ---------------------------------------------------------------------------------------------------
# The call script a reference implementation runs (crosses the process boundary to the moto worker).


class ReferenceBinding(SpecModel):
    """Fill parameter `param` (dotted path) with the value at `path` of the response of call `step`:
    how generated ids (a queue URL, a message id) flow from one reference call to the next."""

    schema_version: Literal[1] = 1
    param: str
    step: int = Field(ge=0)
    path: str


class ReferenceCall(SpecModel):
    """One call in the reference's own terms: original operation name and original field names."""

    schema_version: Literal[1] = 1
    operation: str
    params: JSONObject = Field(default_factory=dict)
    bindings: list[ReferenceBinding] = Field(default_factory=list)


class ReferenceScript(SpecModel):
    """Calls to replay on a reference implementation (moto for AWS services) for a differential test."""
    schema_version: Literal[1] = 1
    reference: str = Field(description="e.g. moto==5.2.1:sqs")
    service: str
    region: str = "us-east-1"
    calls: list[ReferenceCall]


class ReferenceOutcome(SpecModel):
    """What the reference answered: a response on success, an error code otherwise."""

    schema_version: Literal[1] = 1
    operation: str
    ok: bool
    response: JSONValue = None
    error_code: str | None = None
    error_message: str = ""
    ignored_params: list[str] = Field(
        default_factory=list, description="our parameters the reference operation does not define (not sent)"
    )


class ReferenceRun(SpecModel):
    """What a reference implementation answered to a `ReferenceScript`, one outcome per call."""
    schema_version: Literal[1] = 1
    reference: str
    outcomes: list[ReferenceOutcome]
