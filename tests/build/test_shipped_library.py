"""The library of verified environments shipped in the package (`src/envfactory/library`).

Cheap checks on every environment (load, spec hash, report digest, acceptance rules, licences);
library-wide richness figures; contamination against the BFCL and τ² tool sets; and a full rebuild
and re-verification of one environment per domain plus every differential-tested one, which must
reproduce the shipped spec hash and report digest. No LLM is involved (the library is compiled).
"""

from __future__ import annotations

import json
import shutil
import statistics
from collections import Counter
from pathlib import Path

import pytest

from envfactory.build.library import LibraryBuilder, recorded_llm
from envfactory.build.propose import permissive_licence
from envfactory.build.reference import library_differential
from envfactory.build.rounds import env_shape
from envfactory.resources import Catalog
from envfactory.resources.domains import organisation
from envfactory.runtime import library_env_names, library_root, load_env
from envfactory.spec import BuildRecord, EnvSpec, Proposal, VerificationReport
from envfactory.spec.build import SeedRealism
from envfactory.spec.library import LIBRARY_DOMAINS, LibraryConfig, LibraryFunnel, LibraryIndex

LIBRARY = library_root()


@pytest.fixture(scope="module")
def index() -> LibraryIndex:
    return LibraryIndex.model_validate_json((LIBRARY / "index.json").read_bytes())


@pytest.fixture(scope="module")
def specs(index: LibraryIndex) -> dict[str, EnvSpec]:
    return {e.name: EnvSpec.model_validate_json((LIBRARY / e.name / "spec.json").read_bytes()) for e in index.entries}


def test_the_index_lists_exactly_the_shipped_directories(index: LibraryIndex) -> None:
    assert sorted(e.name for e in index.entries) == library_env_names()
    config = LibraryConfig.model_validate_json((LIBRARY / "config.json").read_bytes())
    assert index.config_hash == config.config_hash()


def test_size_and_domains(index: LibraryIndex) -> None:
    per_domain = Counter(e.domain for e in index.entries)
    assert len(index.entries) >= 85
    assert {d: per_domain[d] for d in LIBRARY_DOMAINS if per_domain[d] < 8} == {}


def test_every_environment_passes_the_cheap_checks(index: LibraryIndex) -> None:
    for entry in index.entries:
        directory = LIBRARY / entry.name
        env = load_env(entry.name)
        assert env.directory is not None and env.directory.resolve() == directory.resolve()
        assert env.spec.content_hash == entry.spec_hash, entry.name
        report = VerificationReport.model_validate_json((directory / "report.json").read_bytes())
        assert report.verdict == "verified", entry.name
        assert report.compute_digest() == report.evidence_digest == entry.report_digest, entry.name
        assert report.spec_hash == entry.spec_hash
        record = BuildRecord.model_validate_json((directory / "build.json").read_bytes())
        assert record.spec_hash == entry.spec_hash and record.kept_ratio >= 0.6, entry.name
        tools = env.spec.tools
        assert len(tools) >= 3, entry.name
        assert any(t.effect == "write" for t in tools) and any(t.effect == "read" for t in tools), entry.name
        assert env.spec.meta.provenance and all(permissive_licence(p.licence) for p in env.spec.meta.provenance)
        assert all(t.source is not None and t.source.operation_id for t in tools), entry.name


def test_richness_across_the_library(specs: dict[str, EnvSpec]) -> None:
    shapes = [env_shape(spec) for spec in specs.values()]
    linked = sum(1 for _, linked_collections, _ in shapes if linked_collections >= 2) / len(shapes)
    rules = sum(1 for *_, uses_rules in shapes if uses_rules) / len(shapes)
    median_tools = statistics.median(len(s.tools) for s in specs.values())
    assert linked >= 0.5
    assert median_tools >= 6
    assert rules >= 0.2


def test_the_library_spans_at_least_forty_providers(index: LibraryIndex) -> None:
    """Providers are organisations: AWS, Google (all its hosts) and each other API's owner count once."""
    providers = {organisation(e.provider) for e in index.entries}
    assert len(providers) >= 40, sorted(providers)
    assert {"aws", "google"} <= providers


def test_funnel_matches_the_index(index: LibraryIndex) -> None:
    funnel = LibraryFunnel.model_validate_json((LIBRARY / "funnel.json").read_bytes())
    assert funnel.accepted == len(index.entries)
    assert funnel.accepted <= funnel.verified <= funnel.built <= funnel.proposals_processed <= funnel.proposals


def test_no_environment_overlaps_a_benchmark(specs: dict[str, EnvSpec]) -> None:
    from envfactory.resources.benchmarks import benchmark_tool_sets
    from envfactory.verify.contamination import contamination_check

    check = contamination_check(benchmark_tool_sets())
    flagged = {name: reasons for name, spec in specs.items() if (reasons := check(spec))}
    assert flagged == {}


def _rebuild_sample(index: LibraryIndex, specs: dict[str, EnvSpec]) -> list[str]:
    """One environment per domain (the first by name) and every differential-tested one."""
    chosen: dict[str, str] = {}
    for entry in index.entries:
        chosen.setdefault(entry.domain, entry.name)
    differential = [
        e.name for e in index.entries
        if VerificationReport.model_validate_json((LIBRARY / e.name / "report.json").read_bytes()).differential
    ]
    return sorted(set(chosen.values()) | set(differential))


@pytest.mark.slow
def test_rebuild_and_full_reverification_reproduce_the_shipped_evidence(
    full_catalog: Catalog, index: LibraryIndex, specs: dict[str, EnvSpec], tmp_path: Path
) -> None:
    config = LibraryConfig.model_validate_json((LIBRARY / "config.json").read_bytes())
    builder = LibraryBuilder(full_catalog, config, tmp_path / "rebuild",
                             differential=library_differential if config.differential else None,
                             llm=recorded_llm(LIBRARY, config))
    by_name = {e.name: e for e in index.entries}
    sample = _rebuild_sample(index, specs)
    assert len({by_name[n].domain for n in sample}) == len({e.domain for e in index.entries})
    for name in sample:
        proposal = Proposal.model_validate_json((LIBRARY / name / "proposal.json").read_bytes())
        outcome = builder.build_proposal(proposal)
        assert outcome.status == "accepted", (name, outcome.reason)
        assert outcome.spec_hash == by_name[name].spec_hash, name
        assert outcome.report_digest == by_name[name].report_digest, name


def test_envs_verify_reproduces_a_shipped_report_without_writing_it(index: LibraryIndex) -> None:
    from typer.testing import CliRunner

    from envfactory.cli.app import app

    name = index.entries[0].name
    report_path = LIBRARY / name / "report.json"
    before = report_path.read_bytes()
    result = CliRunner().invoke(app, ["envs", "verify", name, "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["verdict"] == "verified" and payload["changed"] is False
    assert payload["evidence_digest"] == index.entries[0].report_digest
    assert report_path.read_bytes() == before
    listed = CliRunner().invoke(app, ["envs", "list", "--library", "--json"])
    assert listed.exit_code == 0
    assert sorted(row["name"] for row in json.loads(listed.output)) == sorted(e.name for e in index.entries)


def test_seed_values_are_the_generators_and_no_model_answers_ship(index: LibraryIndex) -> None:
    """The generation-2 library was built without seed realism (configs/library.json `seed_realism`
    false): its seeds are the deterministic generator's (Faker-made), no build record claims model
    values, no LLM answers ship and none are needed to rebuild it. A config that does ask for realism
    still cannot be rebuilt from this library: its answers would have to ship for replay (a build with
    realism records and replays them: tests/build/test_realism.py)."""
    from envfactory.build.errors import BuildError

    config = LibraryConfig.model_validate_json((LIBRARY / "config.json").read_bytes())
    shipped_config = LibraryConfig.model_validate_json((Path(__file__).parents[2] / "configs" / "library.json").read_bytes())
    assert config == shipped_config and not config.seed_realism and not config.author_operations and config.embed_dedup
    assert not (LIBRARY / "llm-cassette.jsonl").exists()
    for entry in index.entries:
        record = BuildRecord.model_validate_json((LIBRARY / entry.name / "build.json").read_bytes())
        assert record.seed_realism is None and record.authoring is None, entry.name
    funnel = LibraryFunnel.model_validate_json((LIBRARY / "funnel.json").read_bytes())
    assert funnel.llm_tokens == 0
    assert recorded_llm(LIBRARY, config) is None
    with pytest.raises(BuildError, match=r"ships no llm-cassette\.jsonl"):
        recorded_llm(LIBRARY, config.model_copy(update={"seed_realism": True}))


def test_envs_show_gives_the_evidence_of_a_shipped_environment(index: LibraryIndex, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from envfactory.cli.app import app

    name = "ses_identities_identity_policies"
    result = CliRunner().invoke(app, ["envs", "show", name, "--json"])
    assert result.exit_code == 0, result.output
    details = json.loads(result.output)
    record = BuildRecord.model_validate_json((LIBRARY / name / "build.json").read_bytes())
    assert details["verification"]["verdict"] == "verified"
    assert details["verification"]["evidence_digest"] == next(e.report_digest for e in index.entries if e.name == name)
    assert details["verification"]["differential"] == ["moto==5.2.1:ses: 6/6"]
    assert [d["operation"] for d in details["build"]["dropped"]] == [d.operation_id for d in record.dropped]
    assert details["build"]["dropped"] and details["build"]["seed_realism"] is None  # built without realism
    assert details["sources"][0]["licence"] == "Apache-2.0" and details["sources"][0]["package"].startswith("botocore@")
    text = CliRunner().invoke(app, ["envs", "show", name])
    assert "verification: verified" in text.output and "dropped aws:ses" in text.output
    assert "seed realism" not in text.output
    # an environment whose build record does carry model values shows them
    copy = tmp_path / name
    shutil.copytree(LIBRARY / name, copy)
    realism = SeedRealism(model="scripted", requests=2, accepted=7, rejected=1)
    (copy / "build.json").write_text(record.model_copy(update={"seed_realism": realism}).model_dump_json())
    shown = CliRunner().invoke(app, ["envs", "show", str(copy), "--json"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["build"]["seed_realism"] == {"model": "scripted", "accepted": 7, "rejected": 1, "failures": 0}
    assert "seed realism: 7 values from scripted" in CliRunner().invoke(app, ["envs", "show", str(copy)]).output
