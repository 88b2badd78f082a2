"""The build loop keeps each round's environment in memory and compiles a proposal once (issue 15):
`write_compiled` writes the same bytes as `write_env_dir` and opens the environment `load_env` would read;
a `prefer_rules` build takes the ordering's dry compile for each proposal's first round; the differential
hook and verification get the round's environment; and the build's files (reports included) do not change."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest
from tests.build.helpers import proposal_with

import envfactory.build.library as library_module
from envfactory.build.envdir import write_compiled, write_env_dir
from envfactory.build.library import LibraryBuilder
from envfactory.errors import SpecError
from envfactory.resources import Catalog
from envfactory.runtime import Environment, load_env, open_session
from envfactory.spec import DifferentialResult, EnvSpec, Proposal
from envfactory.spec.library import LibraryConfig
from envfactory.verify.envchecks import verify_environment

CONFIG = LibraryConfig(name="memory", domains=["utilities", "office"], proposals_per_domain=8, accept_per_domain=3,
                       fuzz_calls=40, differential=False, contamination_check=False, prefer_rules=True)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != "timings.json"}


def test_write_compiled_writes_what_write_env_dir_writes_and_opens_what_load_env_reads(
        small_catalog: Catalog, tmp_path: Path) -> None:
    _, compiled = proposal_with(small_catalog, "aws:sqs", "CreateQueue")
    spec, env = write_compiled(compiled, tmp_path / "memory")
    assert write_env_dir(compiled, tmp_path / "disk") == spec
    assert _files(tmp_path / "memory") == _files(tmp_path / "disk")
    loaded = load_env(tmp_path / "disk")
    assert env.spec == loaded.spec and env.seeds == loaded.seeds and env.directory == tmp_path / "memory"
    calls = [("create_queue", {"queue_name": "orders"}), ("list_queues", {})]
    outputs = []
    for environment in (env, loaded):
        session = open_session(environment, seed=3)
        outputs.append([session.call(tool, args).model_dump(mode="json") for tool, args in calls])
    assert outputs[0] == outputs[1]
    # verification drives the environment through its schemas in mapping order: the same report both ways
    assert verify_environment(env, fuzz_calls=40).to_json_bytes() == \
        verify_environment(tmp_path / "disk", fuzz_calls=40).to_json_bytes()


def test_a_seed_that_does_not_fit_is_refused_naming_its_file(small_catalog: Catalog, tmp_path: Path) -> None:
    _, compiled = proposal_with(small_catalog, "aws:sqs", "CreateQueue")
    bad = compiled.model_copy(update={"seeds": {"default": {"collections": {"nowhere": {}}, "counters": {}}}})
    with pytest.raises(SpecError, match=r"seeds/default\.json"):
        write_compiled(bad, tmp_path / "env")
    with pytest.raises(SpecError, match=r"seeds/default\.json"):
        write_env_dir(bad, tmp_path / "again")


def test_a_prefer_rules_build_compiles_each_proposal_once_and_hands_the_hook_its_environment(
        small_catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    compiles: Counter[str] = Counter()
    real = library_module.compile_proposal

    def counting(proposal: Proposal, operations: dict, **options: object) -> object:  # type: ignore[type-arg]
        compiles[proposal.id] += 1
        return real(proposal, operations, **options)  # type: ignore[arg-type]

    seen: list[Environment | None] = []

    def differential(env_dir: Path, spec: EnvSpec, env: Environment | None = None) -> list[DifferentialResult]:
        seen.append(env)
        return []

    verified: list[object] = []
    real_verify = library_module.verify_environment

    def verify(target: object, *args: object, **kwargs: object) -> object:
        verified.append(target)
        return real_verify(target, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(library_module, "compile_proposal", counting)
    monkeypatch.setattr(library_module, "verify_environment", verify)
    funnel = LibraryBuilder(small_catalog, CONFIG, tmp_path / "memory", differential=differential).run()
    assert funnel.built >= 2
    # verification got each round's environment, the one the hook got, not the directory to load again
    assert verified and all(isinstance(target, Environment) for target in verified)
    assert [id(env) for env in seen] == [id(target) for target in verified]
    # every proposal was compiled by the ordering's dry compile and by nothing else (no revise round here)
    assert compiles and set(compiles.values()) == {1}
    assert len(seen) == funnel.built and all(isinstance(env, Environment) for env in seen)
    assert all(env is not None and env.directory is not None and env.directory.name == env.name for env in seen)

    monkeypatch.setattr(library_module, "compile_proposal", real)
    monkeypatch.setattr(library_module, "verify_environment", real_verify)
    reloading = tmp_path / "reloading"

    # the loop before: compile again, write and read back (verification loads the directory: no environment)
    class Reloading(LibraryBuilder):
        def _richness(self, proposal: Proposal) -> tuple[int, int]:
            from envfactory.build.ordering import proposal_richness

            assert self.catalog is not None
            return proposal_richness(proposal, self.catalog)

        def _write_round(self, compiled, env_dir):  # type: ignore[no-untyped-def]
            return write_env_dir(compiled, env_dir), None

    Reloading(small_catalog, CONFIG, reloading).run()
    assert _files(reloading) == _files(tmp_path / "memory")
    shutil.rmtree(reloading)
