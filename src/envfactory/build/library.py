"""Build a library of verified environments: discover → propose → compile → scenarios → verify →
revise → accept, with one checkpoint per proposal (DESIGN §1, §3–4; issue "EnvGen").

Contract:
- Layout of a build, under its root (`library build` and `envfactory run`: `runs/<id>/library/build/`):
  `config.json` (the `LibraryConfig`), `proposals.json` (the `ProposalBatch`, written once per
  proposals hash: domains and proposals per domain), `outcomes/<proposal id>.json` (a `ProposalOutcome` per finished proposal), `envs/<env name>/`
  (accepted environments: `spec.json`, `seeds/`, `scenarios.json`, `report.json`, `build.json`),
  `rejected/<env name>/` (the last attempt of a rejected proposal, for inspection), `funnel.json`
  (`LibraryFunnel`, counts only) and `timings.json` (`BuildTimings`, never compared).
- Resume: an existing `proposals.json` is reused only when its proposals hash matches; a proposal with an
  outcome is never rebuilt; the proposal that was in flight when a run died is rebuilt from scratch
  (its directories are cleared first), so nothing is lost or duplicated. Every file is written
  atomically.
- Revise: when verification rejects an environment, the tools its failed checks blame are dropped
  from the proposal (each recorded as a `DroppedOperation` of stage `revise`, with the checks and
  their detail as the reason), and the rest is compiled and verified again, at most
  `max_revise_rounds` times. A check that fails without blaming a tool rejects the proposal.
- In memory: each round compiles once (with `prefer_rules`, the ordering's dry compile of a proposal is its
  first round's compile, and its resolved operations are reused) and writes its environment once
  (`build.envdir.write_compiled`): the environment is opened from the objects just written, never read
  back, and serves the seed check, the differential hook and verification (whose `load` check records the
  same evidence for it as for the directory, so reports do not depend on it). A revise round compiles
  the smaller proposal (the input changed). The dry compiles are kept until their proposal is built or the
  run ends (about 0.1 MiB each).
- Acceptance: verified, at least `min_tools` tools with at least one write and one read, at least
  `min_kept_ratio` of the proposed operations kept, every source licence permissive, and not
  contaminated (when a contamination hook is given).
- Ordering: `first` resources lead their domain; with `prefer_rules`, proposals whose dry compile has
  rules and linked collections come next; with `prefer_new_providers`, every provider (organisation,
  `resources.domains.organisation`) gets its first proposal built before any gets its second.
- Embedding dedup (`config.embed_dedup`): proposals are also deduplicated by the injected embedder's
  cosine (`propose.deduplicate`); its model id is part of the proposals hash.
- Seed realism (`config.seed_realism`): after each compile the LLM client proposes values for the seed
  records' free-text fields (`build.realism`, validated, never trusted); what it did is in
  `build.json`, its tokens in the outcome and the funnel. The CLI records every answer in
  `llm-cassette.jsonl` in the build root; `publish_library` ships it and `reproduce_library` replays it.
- Authoring (`config.author_operations`): after each compile the LLM writes python for the operations
  the compiler dropped (`build.author`, `config.author_batch` per request); the environment becomes
  hybrid and is loaded, verified and differentially tested with the builder's sandbox pool (authored
  code never runs in the build process). Authored tools that verification blames are asked again with
  the evidence, at most `max_author_rounds` times, the others keep their code; operations still failing
  stay dropped. `build.json` records the requests, tokens, what was authored and every failure; the
  outcome counts authored tools and adds their tokens to `llm_tokens`.
- Executor (`executor`, with `fan_out=build.fanout.build_speculatively`): proposals are built on a
  process pool or Ray, a speculative window at a time, and consumed in the serial order, so the files are the serial build's. Workers wire
  the standard hooks themselves (`worker_hooks`) and open `worker_model`; hooks given only as functions,
  or a config that needs a model without a `worker_model`, are a `BuildError` before any work.
- Deterministic: proposals come in catalog order and ids are content hashes; the same config and
  catalog (and the same LLM answers) give the same accepted environments with the same spec hashes
  and report digests.
"""

from __future__ import annotations

import shutil
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from envfactory.build.author import AuthoredPiece
from envfactory.build.author_round import AuthorRound, author_round
from envfactory.build.compile import CompiledEnv, compile_proposal
from envfactory.build.envdir import write_compiled
from envfactory.build.errors import BuildError
from envfactory.build.funnel import funnel_of
from envfactory.build.library_types import (
    LLM_CASSETTE,
    BuildEvent,
    BuildPaths,
    BuildTally,
    ContaminationHook,
    DifferentialHook,
)
from envfactory.build.ordering import order_proposals, source_richness
from envfactory.build.propose import PROPOSER_VERSION, permissive_licence, propose_batch
from envfactory.build.realism import realistic_seeds
from envfactory.build.rounds import (
    authored_operations,
    authored_tool_names,
    build_record,
    failure_evidence,
    final_outcome,
    without_tools,
)
from envfactory.build.scenarios import scenarios_from_examples
from envfactory.build.seeds import example_keys
from envfactory.exec import Executor
from envfactory.llm.protocols import Embedder, LLMClient
from envfactory.llm.replay import ReplayClient
from envfactory.resources.catalog import Catalog
from envfactory.resources.domains import organisation
from envfactory.runtime import Environment
from envfactory.runtime.sandbox import SandboxPool
from envfactory.spec import (
    DifferentialResult,
    DroppedOperation,
    EnvSpec,
    HybridImplementation,
    Operation,
    Proposal,
    ProposalBatch,
    ScenarioTest,
    VerificationReport,
    canonical_json,
)
from envfactory.spec.build import AuthoringRecord, SeedRealism
from envfactory.spec.library import (
    BuildTimings,
    LibraryConfig,
    LibraryFunnel,
    OutcomeCheck,
    ProposalOutcome,
)
from envfactory.spec.verification import dump_scenarios
from envfactory.spec.work_items import BuildHooks, WorkerModel
from envfactory.store.atomic import write_atomic
from envfactory.verify.envchecks import verify_environment

__all__ = [  # the shared parts live in `build.library_types`; their users import them here
    "LLM_CASSETTE", "BuildEvent", "BuildPaths", "BuildTally", "ContaminationHook", "DifferentialHook",
    "FanOut", "LibraryBuilder", "recorded_llm",
]

class FanOut(Protocol):
    """Builds the remaining proposals on the builder's executor, settling each verdict in the serial order
    (`build.fanout.build_speculatively`)."""

    def __call__(self, builder: LibraryBuilder, todo: Sequence[Proposal], outcomes: dict[str, ProposalOutcome],
                 tally: BuildTally, /) -> None:
        """Build the proposals of `todo`, recording each verdict in `outcomes` (by proposal id) and
        `tally` in `todo`'s order, as the serial loop would."""


@dataclass(slots=True)
class LibraryBuilder:
    """Builds one library. Hooks are injected: the CLI wires moto and the benchmark tool sets."""

    catalog: Catalog | None  # None only in an executor worker, which is handed resolved operations
    config: LibraryConfig
    root: Path
    differential: DifferentialHook | None = None
    contamination: ContaminationHook | None = None
    llm: LLMClient | None = None
    embedder: Embedder | None = None
    progress: Callable[[BuildEvent], None] = lambda event: None
    clock: Callable[[], float] = time.perf_counter
    executor: Executor | None = None
    """Where proposals are built (`build.fanout`); None: one after another in this process."""
    worker_hooks: BuildHooks | None = None
    """The standard hooks workers wire for themselves; required with an executor when hooks are given."""
    worker_model: WorkerModel | None = None
    """The model workers open (seed realism, authoring); required with an executor when the config uses one."""
    fan_out: FanOut | None = None
    """How proposals go to the executor: `build.fanout.build_speculatively` (injected, because `build.fanout`
    builds on this module; required with an executor)."""
    _timings: dict[str, float] = field(default_factory=dict)
    _pool: SandboxPool | None = None
    _dry: dict[str, tuple[dict[str, Operation], CompiledEnv | Exception]] = field(default_factory=dict)
    """The ordering's dry compiles (`prefer_rules`), by proposal id: the operations resolved and what
    `compile_proposal` gave (or raised), taken by the proposal's first round so that it compiles once."""

    @property
    def paths(self) -> BuildPaths:
        """Where this build keeps its files."""
        return BuildPaths(self.root)

    # -- the run ---------------------------------------------------------------------------------------
    def run(self, *, resume: bool = False) -> LibraryFunnel:
        """Build every proposal the config reaches (or, with `resume`, those without an outcome yet); write
        the funnel and the timings; return the funnel. See the module contract."""
        try:
            return self._run(resume)
        finally:
            self.close()

    def _run(self, resume: bool) -> LibraryFunnel:
        started = self.clock()
        paths = self.paths
        if self.executor is not None:
            self.check_fan_out()
        if paths.root.exists() and not resume and any(paths.root.iterdir()):
            raise BuildError(f"{paths.root} holds an earlier build; pass resume (--resume) to continue it "
                             "or choose another workspace")
        paths.root.mkdir(parents=True, exist_ok=True)
        write_atomic(paths.config, canonical_json(self.config.model_dump(mode="json")))
        batch = self._proposals()
        outcomes = self._existing_outcomes()
        accepted: Counter[str] = Counter(o.domain for o in outcomes.values() if o.status == "accepted")
        per_provider: Counter[tuple[str, str]] = Counter(
            (o.domain, organisation(o.provider)) for o in outcomes.values() if o.status == "accepted")
        ordering = " (ordering them by a dry compile of each)" if self.config.prefer_rules else ""
        self.progress(BuildEvent("proposals", message=f"{len(batch.proposals)} proposals{ordering}"))
        todo = [p for p in self._ordered(batch.proposals) if p.id not in outcomes]
        tally = BuildTally(accepted, per_provider)
        if self.executor is None:
            for proposal in todo:
                if tally.skips(proposal, self.config):
                    continue
                self.announce(proposal, tally)
                began = self.clock()
                outcome = self.build_proposal(proposal, taken=self.taken_names(outcomes))
                self._timings[proposal.id] = round(self.clock() - began, 3)
                self.settle(proposal, outcome, outcomes, tally)
        else:
            assert self.fan_out is not None  # check_fan_out said so
            self.fan_out(self, todo, outcomes, tally)
        funnel = funnel_of(self.config, batch, list(outcomes.values()))
        write_atomic(paths.funnel, funnel.to_json_bytes())
        earlier = (BuildTimings.model_validate_json(paths.timings.read_bytes()).per_proposal_s
                   if paths.timings.is_file() else {})
        merged = {**earlier, **self._timings}
        timings = BuildTimings(total_s=round(self.clock() - started, 3), per_proposal_s=dict(sorted(merged.items())))
        write_atomic(paths.timings, timings.to_json_bytes())
        return funnel

    def check_fan_out(self) -> None:
        """A `BuildError` when this build cannot go to workers: no `fan_out`, hooks given as functions
        without the `worker_hooks` that say how workers wire them, or a config that uses a model without
        `worker_model`."""
        if self.fan_out is None:
            raise BuildError("an executor needs fan_out=build.fanout.build_speculatively (the speculative window)")
        if (self.differential is not None or self.contamination is not None) and self.worker_hooks is None:
            raise BuildError("hooks given as functions cannot travel to workers: pass worker_hooks (the standard "
                             "hooks, build.fanout.standard_hooks) or build on the serial executor")
        if (self.config.seed_realism or self.config.author_operations) and self.worker_model is None:
            raise BuildError("the config asks for a model (seed_realism or author_operations) but no worker_model "
                             "says which model the workers open; build on the serial executor or pass one")

    def record_time(self, proposal_id: str, seconds: float) -> None:
        """Note how long a proposal's build took (`timings.json`; reported, never compared)."""
        self._timings[proposal_id] = round(seconds, 3)

    def announce(self, proposal: Proposal, tally: BuildTally) -> None:
        """Report that the serial order now builds `proposal`."""
        self.progress(BuildEvent("start", proposal.domain, proposal.name,
                                 accepted_in_domain=tally.accepted[proposal.domain],
                                 target=self.config.accept_per_domain))

    def settle(self, proposal: Proposal, outcome: ProposalOutcome, outcomes: dict[str, ProposalOutcome],
                tally: BuildTally) -> None:
        """Checkpoint one proposal's verdict (its directories are in place already) and count it."""
        write_atomic(self.paths.outcomes / f"{proposal.id}.json", outcome.to_json_bytes())
        outcomes[proposal.id] = outcome
        if outcome.status == "accepted":
            tally.accepted[proposal.domain] += 1
            tally.per_provider[outcome.domain, organisation(outcome.provider)] += 1
        self.progress(BuildEvent("done", proposal.domain, outcome.env_name or proposal.name,
                                 message=outcome.status if not outcome.reason else f"{outcome.status}: {outcome.reason}",
                                 accepted_in_domain=tally.accepted[proposal.domain],
                                 target=self.config.accept_per_domain))

    def _ordered(self, proposals: Sequence[Proposal]) -> list[Proposal]:
        """Proposals in the order the build considers them (`build.ordering`)."""
        return order_proposals(proposals, self.config, self._richness)

    def _richness(self, proposal: Proposal) -> tuple[int, int]:
        """`build.ordering.proposal_richness`, keeping the dry compile for the proposal's first round."""
        if self.catalog is None:
            return 0, 0
        try:
            operations = {op.operation_id: self.catalog.operation(op.operation_id) for op in proposal.operations}
        except Exception:  # resolved again (and the failure recorded) if the proposal is built
            return 0, 0
        try:
            compiled: CompiledEnv | Exception = compile_proposal(proposal, operations, generation=self.config.generation)
        except Exception as exc:  # a proposal that cannot compile is not rich; its build says why
            compiled = exc
        self._dry[proposal.id] = (operations, compiled)
        return (0, 0) if isinstance(compiled, Exception) else source_richness(compiled.source)

    def _compile(self, proposal: Proposal, operations: dict[str, Operation],
                 dry: tuple[dict[str, Operation], CompiledEnv | Exception] | None) -> CompiledEnv:
        """`compile_proposal(proposal, operations)`, or the dry compile of the same operations when there is one
        (`compile_proposal` is a pure function of them: the same result, raised or returned)."""
        if dry is not None and dry[0] == operations:
            if isinstance(dry[1], Exception):
                raise dry[1]
            return dry[1]
        return compile_proposal(proposal, operations, generation=self.config.generation)

    def take_dry_compile(self, proposal: Proposal, operations: Mapping[str, Operation]) -> CompiledEnv | None:
        """The ordering's dry compile of `proposal` over `operations`, forgotten here (a driver hands it to the
        worker that builds the proposal); None when there is none (or it raised: the worker compiles)."""
        dry = self._dry.pop(proposal.id, None)
        if dry is None or dry[0] != operations or isinstance(dry[1], Exception):
            return None
        return dry[1]

    def keep_dry_compile(self, proposal: Proposal, operations: Mapping[str, Operation], compiled: CompiledEnv) -> None:
        """Take `compiled` as the dry compile of `proposal` over `operations` (a worker, from its driver):
        its first round in `build_resolved` uses it instead of compiling."""
        self._dry[proposal.id] = (dict(operations), compiled)

    def _write_round(self, compiled: CompiledEnv, env_dir: Path) -> tuple[EnvSpec, Environment | None]:
        """Write the round's compiled environment and open it in memory (`build.envdir.write_compiled`):
        the environment the round's seed check and differential tests use."""
        return write_compiled(compiled, env_dir)

    def _realistic(self, compiled: CompiledEnv, proposal: Proposal,
                   operations: Mapping[str, Operation]) -> tuple[CompiledEnv, SeedRealism]:
        """`compiled` with LLM-proposed seed values where they validate (`build.realism`)."""
        if self.llm is None:
            raise BuildError("the config asks for seed_realism but no LLM client was given "
                             "(install the local model: see `envfactory llm info`, or set seed_realism false)")
        prov = proposal.provenance[0]
        keep = example_keys(compiled.source, list(operations.values()))
        seeds = dict(compiled.seeds)
        realistic, realism = realistic_seeds(compiled.source, seeds["default"], self.llm,
                                             api_title=f"{prov.service} by {prov.provider}: {proposal.title}",
                                             keep_keys=keep)
        seeds["default"] = realistic
        return compiled.model_copy(update={"seeds": seeds}), realism

    def _proposals(self) -> ProposalBatch:
        path = self.paths.proposals
        marker = self.paths.root / "proposals.config-hash"
        embedder = None
        if self.config.embed_dedup:
            if self.embedder is None:
                raise BuildError("the config asks for embed_dedup but no embedder was given "
                                 "(install the default embedder: `envfactory llm info`, or set embed_dedup false)")
            embedder = self.embedder
        expected = self.config.proposals_hash(PROPOSER_VERSION, embedder.model_id if embedder else "")
        if path.is_file() and marker.is_file() and marker.read_text().strip() == expected:
            return ProposalBatch.model_validate_json(path.read_bytes())
        if self.catalog is None:
            raise BuildError("this builder has no catalog to propose from")
        self.progress(BuildEvent("proposing", message="proposing over the catalog (minutes on a first run; cached after)"))
        batch = propose_batch(self.catalog, domains=self.config.domains,
                              limit_per_domain=self.config.proposals_per_domain,
                              embed=embedder.embed if embedder else None, selection=self.config.selection,
                              granularity=self.config.granularity)
        write_atomic(path, batch.to_json_bytes())
        write_atomic(marker, (expected + "\n").encode())
        return batch

    def _existing_outcomes(self) -> dict[str, ProposalOutcome]:
        found: dict[str, ProposalOutcome] = {}
        if self.paths.outcomes.is_dir():
            for path in sorted(self.paths.outcomes.glob("*.json")):
                outcome = ProposalOutcome.model_validate_json(path.read_bytes())
                found[outcome.proposal_id] = outcome
        return found

    @staticmethod
    def taken_names(outcomes: Mapping[str, ProposalOutcome]) -> set[str]:
        """The names of the environments accepted so far."""
        return {o.env_name for o in outcomes.values() if o.status == "accepted" and o.env_name}

    # -- one proposal ----------------------------------------------------------------------------------
    def build_proposal(self, proposal: Proposal, *, taken: set[str] | None = None) -> ProposalOutcome:
        """Compile, verify and revise one proposal; write its directory; return the verdict."""
        early = self.precheck(proposal, taken or set())
        if early is not None:
            return early
        base, operations = self.resolve(proposal)
        return self.build_resolved(proposal, operations, base)

    @staticmethod
    def base_outcome(proposal: Proposal) -> ProposalOutcome:
        """The outcome a proposal starts from: rejected, with nothing built yet."""
        resource = proposal.provenance[0]
        return ProposalOutcome(
            proposal_id=proposal.id, proposal_name=proposal.name, domain=proposal.domain,
            provider=resource.provider, resource=resource.resource, status="rejected",
            proposed_operations=len(proposal.operations),
        )

    def precheck(self, proposal: Proposal, taken: set[str]) -> ProposalOutcome | None:
        """The rejection decided before any work (a licence that is not permissive, a name an accepted
        environment already has), or None. Names are only ever taken, never freed, during a build."""
        base = self.base_outcome(proposal)
        bad_licences = [p.licence or "none stated" for p in proposal.provenance if not permissive_licence(p.licence)]
        if bad_licences:
            return base.model_copy(update={"reason": f"licence not permissive: {', '.join(bad_licences)}"})
        if proposal.name in taken:
            return base.model_copy(update={"reason": f"an accepted environment is already named {proposal.name}"})
        return None

    def resolve(self, proposal: Proposal) -> tuple[ProposalOutcome, dict[str, Operation]]:
        """The proposal's operations from the catalog, and the base outcome (a broken catalog entry drops
        its operation, never the run, and is recorded as the reason)."""
        if self.catalog is None:
            raise BuildError("this builder has no catalog: it builds resolved proposals only (build_resolved)")
        base = self.base_outcome(proposal)
        dry = self._dry.get(proposal.id)
        if dry is not None:  # resolved by the ordering's dry compile: the same catalog entries
            return base, dict(dry[0])
        operations: dict[str, Operation] = {}
        for proposed in proposal.operations:
            try:
                operations[proposed.operation_id] = self.catalog.operation(proposed.operation_id)
            except Exception as exc:  # a broken catalog entry drops the operation, never the run
                operations.pop(proposed.operation_id, None)
                base = base.model_copy(update={"reason": f"{proposed.operation_id}: {exc}"})
        return base, operations

    # long: the compile → author → verify → revise rounds share a dozen locals; splitting them into
    # methods would pass that state around in a tuple.
    def build_resolved(self, proposal: Proposal, operations: dict[str, Operation],
                       base: ProposalOutcome) -> ProposalOutcome:
        """`build_proposal` after `precheck` and `resolve`: the work itself, writing `envs/<name>/` (or
        `rejected/<name>/`) under this builder's root. Needs no catalog, so a worker can run it."""
        env_dir = self.paths.envs / proposal.name
        rejected_dir = self.paths.rejected / proposal.name
        for stale in (env_dir, rejected_dir):
            if stale.exists():
                shutil.rmtree(stale)
        dry = self._dry.pop(proposal.id, None)
        current = proposal
        revise_dropped: list[DroppedOperation] = []
        first_checks: list[OutcomeCheck] = []
        outcome = base
        report: VerificationReport | None = None
        compiled: CompiledEnv | None = None
        realism: SeedRealism | None = None
        spec: EnvSpec | None = None
        authoring: AuthoringRecord | None = None
        no_author: set[str] = set()  # operations whose authoring failed every round: they stay dropped
        pieces: dict[str, AuthoredPiece] = {}  # authored tools that passed so far, kept across rounds
        feedback: dict[str, list[str]] = {}  # evidence against the last attempt, per authored tool
        author_rounds_left = self.config.max_author_rounds
        rounds = 0
        for rounds in range(self.config.max_revise_rounds + self.config.max_author_rounds + 1):
            try:
                compiled = self._compile(current, operations, dry if rounds == 0 else None)
            except Exception as exc:
                return outcome.model_copy(update={"reason": f"compile failed: {exc}", "revise_rounds": rounds})
            if not compiled.source.tools:
                return outcome.model_copy(update={"reason": "no operation compiled", "revise_rounds": rounds})
            if self.config.seed_realism:
                compiled, realism = self._realistic(compiled, current, operations)
            if env_dir.exists():
                shutil.rmtree(env_dir)
            hybrid: EnvSpec | None = None
            env: Environment | None = None  # the round's environment, open in memory
            unresolved: dict[str, str] = {}  # authored tool -> operation id, for tools asked and not written
            if self.config.author_operations:
                hybrid, env, authoring, pieces, feedback, unresolved = self._author(
                    compiled, operations, env_dir, no_author, feedback, authoring, pieces)
            try:
                if hybrid is None:
                    spec, env = self._write_round(compiled, env_dir)
                else:
                    spec = hybrid
            except Exception as exc:
                return outcome.model_copy(update={"reason": f"compiled environment does not load: {exc}",
                                                  "revise_rounds": rounds})
            authored_ops = authored_operations(spec)
            outcome = outcome.model_copy(update={"built": True})
            # The drop record so far, so the differential hook can say why an operation is absent.
            write_atomic(env_dir / "build.json", build_record(
                proposal, spec, compiled, [*revise_dropped], rounds, realism, authoring, authored_ops,
            ).to_json_bytes())
            scenarios = scenarios_from_examples(spec, operations, compiled.seeds)
            write_atomic(env_dir / "scenarios.json", dump_scenarios(scenarios))
            differential = self._differential(env_dir, spec, env)
            report = self._verify(env_dir, env, spec, scenarios, differential, operations)
            write_atomic(env_dir / "report.json", report.to_json_bytes())
            if not first_checks:
                first_checks = [OutcomeCheck(name=c.name, status=c.status) for c in report.checks]
            blamed = report.failing_tools()
            authored_tools = set(authored_tool_names(spec))
            for tool in set(blamed) & authored_tools:
                pieces.pop(tool, None)
                unresolved[tool] = authored_ops[tool]
            feedback.update((tool, failure_evidence(report, {tool})) for tool in set(blamed) & authored_tools)
            retry = bool(feedback) and author_rounds_left > 0
            if report.verdict == "verified" or (blamed and set(blamed) <= authored_tools):
                # Only the authored part failed (or some authoring failed before it ran): ask again with
                # the evidence while rounds remain, else keep those operations dropped, without them.
                if retry:
                    author_rounds_left -= 1
                    continue
                no_author.update(unresolved.values())
                feedback = {}
                if report.verdict != "verified":
                    continue
                break
            failed = [c for c in report.checks if c.status == "failed"]
            unblamed = [c.name for c in failed if not c.failing_tools]
            if unblamed or not blamed or rounds >= self.config.max_revise_rounds:
                break
            current, dropped_now = without_tools(current, spec, blamed, report)
            revise_dropped.extend(dropped_now)
            no_author.update(op for tool, op in authored_ops.items() if tool in blamed)
            for tool in blamed:
                pieces.pop(tool, None)
            if not current.operations:
                break
        assert compiled is not None and spec is not None and report is not None
        authored_ops = authored_operations(spec)
        outcome = final_outcome(outcome, proposal, spec, compiled, report, rounds, first_checks, realism, authoring)
        record = build_record(proposal, spec, compiled, revise_dropped, rounds, realism, authoring, authored_ops)
        write_atomic(env_dir / "build.json", record.to_json_bytes())
        write_atomic(env_dir / "proposal.json", proposal.to_json_bytes())
        reason = self._rejection(outcome, report, len(spec.tools) - outcome.write_tools, spec)
        if reason:
            rejected_dir.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(env_dir), str(rejected_dir))
            return outcome.model_copy(update={"status": "rejected", "reason": reason})
        return outcome.model_copy(update={"status": "accepted", "reason": ""})

    def _verify(self, env_dir: Path, env: Environment | None, spec: EnvSpec, scenarios: Sequence[ScenarioTest],
                differential: Sequence[DifferentialResult], operations: Mapping[str, Operation]) -> VerificationReport:
        """Verify the round: its environment `env` when the round kept one (opened from the bytes just
        written to `env_dir`; verification records the same `load` evidence as for the directory, so the
        report is the same), else `env_dir`, which verification loads itself."""
        target: Path | Environment = env if env is not None else env_dir
        return verify_environment(target, scenarios, seed=self.config.seed, fuzz_calls=self.config.fuzz_calls,
                                  differential=differential, operations=operations, sandbox=self._sandbox(spec))

    def _sandbox(self, spec: EnvSpec) -> SandboxPool | None:
        """The builder's sandbox pool (started on first use): hybrid environments run only there."""
        if not isinstance(spec.implementation, HybridImplementation):
            return None
        if self._pool is None:
            self._pool = SandboxPool(max_workers=2)
        return self._pool

    def close(self) -> None:
        """Stop the sandbox workers this builder started and forget the dry compiles (idempotent)."""
        self._dry.clear()
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def _differential(self, env_dir: Path, spec: EnvSpec, env: Environment | None) -> list[DifferentialResult]:
        if self.differential is None:
            return []
        pool = self._sandbox(spec)
        if pool is None:
            return self.differential(env_dir, spec, env=env)
        return self.differential(env_dir, spec, sandbox=pool, env=env)

    def _author(
        self, compiled: CompiledEnv, operations: Mapping[str, Operation], env_dir: Path, no_author: set[str],
        feedback: dict[str, list[str]], record: AuthoringRecord | None, pieces: dict[str, AuthoredPiece],
    ) -> AuthorRound:
        """One round's authoring (`build.author_round`) with this builder's model and sandbox pool."""
        return author_round(self.llm, self.progress, self.config.author_batch, self._sandbox,
                            compiled, operations, env_dir, no_author, feedback, record, pieces)

    def _rejection(self, outcome: ProposalOutcome, report: VerificationReport, read_tools: int, spec: EnvSpec) -> str:
        if report.verdict != "verified":
            failed = [c for c in report.checks if c.status == "failed"]
            return "verification failed: " + "; ".join(f"{c.name}: {c.detail[:160]}" for c in failed)
        if outcome.tools < self.config.min_tools:
            return f"too few tools: {outcome.tools} < {self.config.min_tools} after compile and revision"
        if outcome.write_tools < 1 or read_tools < 1:
            return "no shared state: needs at least one write and one read tool"
        if outcome.kept_ratio < self.config.min_kept_ratio:
            return (f"too few operations kept: {outcome.kept_ratio:.0%} of the proposed operations "
                    f"(< {self.config.min_kept_ratio:.0%})")
        if self.contamination is not None:
            reasons = self.contamination(spec)
            if reasons:
                return "contaminated: " + "; ".join(reasons)
        return ""


def recorded_llm(library: Path, config: LibraryConfig) -> LLMClient | None:
    """The replay of a library's recorded LLM answers when its config used a model, else None."""
    if not (config.seed_realism or config.author_operations):
        return None
    cassette = library / LLM_CASSETTE
    if not cassette.is_file():
        raise BuildError(f"{library} was built with an LLM (seed_realism or author_operations) but ships no {LLM_CASSETTE} to replay")
    return ReplayClient(cassette)
