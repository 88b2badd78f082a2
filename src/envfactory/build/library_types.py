"""The parts of a library build that other modules share: where a build keeps its files (`BuildPaths`),
its progress events (`BuildEvent`), the tally that decides a skip (`BuildTally`), the name of its LLM
cassette, and the protocols of its injected hooks (differential tests, contamination).

Contract: plain data and protocols; nothing here reads or writes a file. `build.library` re-exports every
name (its users import them there).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from envfactory.resources.domains import organisation
from envfactory.runtime import Environment
from envfactory.runtime.loader import LIBRARY_CONFIG_FILE
from envfactory.runtime.sandbox import SandboxPool
from envfactory.spec import DifferentialResult, EnvSpec, Proposal
from envfactory.spec.library import LibraryConfig


class DifferentialHook(Protocol):
    """Differential results for a built environment. Hybrid environments (authored tools) are passed
    the builder's sandbox pool as `sandbox=`; the hook must accept it (`reference.library_differential`)."""

    def __call__(
        self, env_dir: Path, spec: EnvSpec, /, *, sandbox: SandboxPool | None = None, env: Environment | None = None
    ) -> list[DifferentialResult]:
        """Compare the environment in `env_dir` (its spec `spec`) with its reference; one result per
        compared tool (an empty list: nothing compared). `env`: that environment, already open (the
        builder passes the one it keeps in memory for the round; a hook may ignore it and load `env_dir`)."""


ContaminationHook = Callable[[EnvSpec], list[str]]


@dataclass(frozen=True, slots=True)
class BuildEvent:
    """Progress of a library build, for the CLI's display."""

    kind: str  # "proposing" | "proposals" | "start" | "authoring" | "done" | "skip"
    domain: str = ""
    name: str = ""
    message: str = ""
    accepted_in_domain: int = 0
    target: int = 0


@dataclass(slots=True)
class BuildPaths:
    """Where a library build keeps its files under `root` (config, proposals, outcomes, environments,
    rejections, funnel, timings)."""
    root: Path

    @property
    def config(self) -> Path:
        """`config.json`: the library config the build runs with (written at each start)."""
        return self.root / LIBRARY_CONFIG_FILE

    @property
    def proposals(self) -> Path:
        """`proposals.json`: the build's `ProposalBatch` (reused while its config hash is unchanged)."""
        return self.root / "proposals.json"

    @property
    def outcomes(self) -> Path:
        """`outcomes/`: one `ProposalOutcome` per settled proposal (`<id>.json`); what a resumed build skips."""
        return self.root / "outcomes"

    @property
    def envs(self) -> Path:
        """`envs/`: the accepted environments, one folder each."""
        return self.root / "envs"

    @property
    def rejected(self) -> Path:
        """`rejected/`: the environments that were built but not accepted, one folder each."""
        return self.root / "rejected"

    @property
    def funnel(self) -> Path:
        """`funnel.json`: the build's `LibraryFunnel`."""
        return self.root / "funnel.json"

    @property
    def timings(self) -> Path:
        """`timings.json`: the build's `BuildTimings` (differ between identical builds)."""
        return self.root / "timings.json"


@dataclass(slots=True)
class BuildTally:
    """Accepted environments so far, per domain and per (domain, provider): what decides a skip."""

    accepted: Counter[str]
    per_provider: Counter[tuple[str, str]]

    def skips(self, proposal: Proposal, config: LibraryConfig) -> bool:
        """Whether the serial order skips `proposal` now (its domain is full, or its provider is at its cap).
        Counts only grow, so a proposal skipped now is skipped for the rest of the build."""
        if self.accepted[proposal.domain] >= config.accept_per_domain:
            return True
        provider = organisation(proposal.provenance[0].provider)
        return self.per_provider[proposal.domain, provider] >= config.max_per_provider_in_domain


LLM_CASSETTE = "llm-cassette.jsonl"  # in a build root and in a published library: every LLM answer used
