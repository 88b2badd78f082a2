"""The library builder: checkpoints and resume, determinism, revision, acceptance rules, export and
reproduction. Runs on a small real catalog (AWS SQS and SES from botocore, Google Tasks); no LLM."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from envfactory.build.errors import BuildError
from envfactory.build.library import LibraryBuilder
from envfactory.build.propose import PROPOSER_VERSION
from envfactory.build.publish import publish_library, reproduce_library
from envfactory.resources import Catalog
from envfactory.runtime import Environment
from envfactory.spec import BuildRecord, DifferentialMismatch, DifferentialResult, EnvSpec, VerificationReport
from envfactory.spec.library import LibraryConfig, LibraryFunnel, ProposalOutcome

CONFIG = LibraryConfig(name="small", domains=["utilities", "office"], proposals_per_domain=8,
                       accept_per_domain=3, fuzz_calls=40, differential=False, contamination_check=False)


def _build(catalog: Catalog, root: Path, **hooks: object) -> LibraryFunnel:
    return LibraryBuilder(catalog, CONFIG, root, **hooks).run()  # type: ignore[arg-type]


def _files(root: Path) -> dict[str, bytes]:
    skip = {"timings.json"}
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name not in skip}


@pytest.fixture(scope="module")
def built(small_catalog: Catalog, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, LibraryFunnel]:
    root = tmp_path_factory.mktemp("lib") / "small"
    return root, _build(small_catalog, root)


def test_build_accepts_verified_rich_environments_and_writes_every_artifact(built: tuple[Path, LibraryFunnel]) -> None:
    root, funnel = built
    assert funnel.accepted >= 3
    assert funnel.proposals_processed >= funnel.built >= funnel.verified >= funnel.accepted
    outcomes = [ProposalOutcome.model_validate_json(p.read_bytes()) for p in (root / "outcomes").glob("*.json")]
    assert len(outcomes) == funnel.proposals_processed
    for outcome in outcomes:
        if outcome.status != "accepted":
            assert outcome.reason and not (root / "envs" / outcome.env_name).exists()
            continue
        env_dir = root / "envs" / outcome.env_name
        spec = EnvSpec.model_validate_json((env_dir / "spec.json").read_bytes())
        report = VerificationReport.model_validate_json((env_dir / "report.json").read_bytes())
        record = BuildRecord.model_validate_json((env_dir / "build.json").read_bytes())
        assert report.verdict == "verified" and report.evidence_digest == outcome.report_digest
        assert spec.content_hash == outcome.spec_hash == record.spec_hash
        assert len(spec.tools) >= 3 and outcome.kept_ratio >= 0.6
        assert any(t.effect == "write" for t in spec.tools) and any(t.effect == "read" for t in spec.tools)
        assert all(p.licence for p in spec.meta.provenance)
        assert (env_dir / "scenarios.json").is_file() and (env_dir / "proposal.json").is_file()


def test_same_config_gives_byte_identical_builds(small_catalog: Catalog, built: tuple[Path, LibraryFunnel],
                                                 tmp_path: Path) -> None:
    root, _ = built
    again = tmp_path / "small"
    _build(small_catalog, again)
    assert _files(again) == _files(root)


def test_resume_rebuilds_only_the_proposal_in_flight(small_catalog: Catalog, built: tuple[Path, LibraryFunnel],
                                                     tmp_path: Path) -> None:
    root, funnel = built
    copy = tmp_path / "small"
    shutil.copytree(root, copy)
    accepted = sorted(p for p in (copy / "outcomes").glob("*.json")
                      if ProposalOutcome.model_validate_json(p.read_bytes()).status == "accepted")
    victim = ProposalOutcome.model_validate_json(accepted[-1].read_bytes())
    accepted[-1].unlink()  # killed before its checkpoint: its env directory is half there
    (copy / "envs" / victim.env_name / "report.json").unlink()
    built_names: list[str] = []
    builder = LibraryBuilder(small_catalog, CONFIG, copy,
                             progress=lambda e: built_names.append(e.name) if e.kind == "done" else None)
    resumed = builder.run(resume=True)
    assert built_names == [victim.env_name]
    assert resumed == funnel
    assert _files(copy) == _files(root)


def test_a_finished_build_is_not_overwritten_without_resume(small_catalog: Catalog, built: tuple[Path, LibraryFunnel]) -> None:
    root, _ = built
    with pytest.raises(BuildError, match="resume"):
        LibraryBuilder(small_catalog, CONFIG, root).run()


def test_revise_drops_the_tool_a_reference_disagrees_with(small_catalog: Catalog, tmp_path: Path) -> None:
    blamed: list[str] = []

    def differential(env_dir: Path, spec: EnvSpec, env: Environment | None = None) -> list[DifferentialResult]:
        # A scripted reference that disagrees with the first list tool it sees, every round.
        tool = next((t.name for t in spec.tools if t.name.startswith("list_")), None)
        if tool is None:
            return []
        blamed.append(tool)
        return [DifferentialResult(reference="scripted", operations_compared=[tool], calls_compared=1, matched=0,
                                   mismatches=[DifferentialMismatch(step=0, tool=tool, operation="List", aspect="field",
                                                                    detail="scripted disagreement")])]

    root = tmp_path / "small"
    funnel = _build(small_catalog, root, differential=differential)
    assert blamed, "no environment had a list tool"
    records = [BuildRecord.model_validate_json(p.read_bytes()) for p in root.glob("*/*/build.json")]
    revised = [d for r in records for d in r.dropped if d.stage == "revise"]
    assert revised and all("scripted" in d.reason for d in revised)
    assert {d.tool_name for d in revised} <= set(blamed)
    assert funnel.first_round_check_rates != funnel.final_check_rates or funnel.accepted == 0


def test_contaminated_environments_are_rejected(small_catalog: Catalog, tmp_path: Path) -> None:
    funnel = _build(small_catalog, tmp_path / "small", contamination=lambda spec: ["looks like a benchmark"])
    assert funnel.accepted == 0
    assert funnel.rejected_reasons.get("contaminated", 0) >= 1


def test_export_then_reproduce_gives_the_same_hashes(small_catalog: Catalog, built: tuple[Path, LibraryFunnel],
                                                     tmp_path: Path) -> None:
    root, funnel = built
    library = tmp_path / "library"
    index = publish_library(root, library)
    assert len(index.entries) == funnel.accepted
    assert (library / "index.json").is_file() and (library / "funnel.json").is_file()
    results = reproduce_library(small_catalog, library, tmp_path / "again")
    assert [r.name for r in results] == [e.name for e in index.entries]
    assert all(r.spec_same and r.report_same for r in results)
    # A tampered shipped spec hash is caught.
    tampered = index.model_copy(update={"entries": [index.entries[0].model_copy(update={"spec_hash": "0" * 64}),
                                                    *index.entries[1:]]})
    (library / "index.json").write_bytes(tampered.to_json_bytes())
    again = reproduce_library(small_catalog, library, tmp_path / "third", only=[index.entries[0].name])
    assert [r.spec_same for r in again] == [False]


def test_prefer_new_providers_goes_round_the_providers(small_catalog: Catalog, tmp_path: Path) -> None:
    """With `prefer_new_providers`, every provider's first proposal is built before any provider's
    second; `first` resources still lead. Without it, batch order (after the rules ranking) stands."""
    from envfactory.build.propose import propose

    proposals = [p for p in propose(small_catalog, domains=["utilities", "office"], limit_per_domain=8)
                 if p.domain == "office"]
    aws = [p for p in proposals if p.provenance[0].provider == "aws"]
    google = [p for p in proposals if p.provenance[0].provider == "google"]
    assert len(aws) >= 2 and google, "the small catalog has SES (aws) and Tasks (google) office proposals"
    batch_order = aws + google  # aws crowds the front, as a catalog with hundreds of AWS services would
    plain = LibraryBuilder(small_catalog, CONFIG.model_copy(update={"prefer_rules": False}), tmp_path)
    assert plain._ordered(batch_order) == batch_order
    config = CONFIG.model_copy(update={"prefer_rules": False, "prefer_new_providers": True})
    ordered = LibraryBuilder(small_catalog, config, tmp_path)._ordered(batch_order)
    assert [p.provenance[0].provider for p in ordered[:2]] == ["aws", "google"]
    assert sorted(p.id for p in ordered) == sorted(p.id for p in batch_order)
    leading = CONFIG.model_copy(update={"prefer_rules": False, "prefer_new_providers": True,
                                        "first": [google[0].provenance[0].resource]})
    assert LibraryBuilder(small_catalog, leading, tmp_path)._ordered(batch_order)[0].id == google[0].id


class _SameVectorEmbedder:
    """An embedder under which every text is the same point: embedding dedup keeps one proposal."""

    model_id = "test/same-vector"
    dimension = 2

    def embed(self, texts: object) -> list[list[float]]:
        return [[1.0, 0.0] for _ in texts]  # type: ignore[attr-defined]


def test_embed_dedup_needs_an_embedder_and_keys_the_proposals_by_it(small_catalog: Catalog, tmp_path: Path) -> None:
    config = CONFIG.model_copy(update={"embed_dedup": True, "domains": ["office"]})
    with pytest.raises(BuildError, match="embed_dedup"):
        LibraryBuilder(small_catalog, config, tmp_path / "none").run()
    root = tmp_path / "dedup"
    LibraryBuilder(small_catalog, config, root, embedder=_SameVectorEmbedder()).run()  # type: ignore[arg-type]
    from envfactory.spec import ProposalBatch

    batch = ProposalBatch.model_validate_json((root / "proposals.json").read_bytes())
    assert len(batch.proposals) == 1 and any(s.reason.startswith("near-duplicate of") for s in batch.skipped)
    marker = (root / "proposals.config-hash").read_text().strip()
    assert marker != config.proposals_hash(PROPOSER_VERSION)
    assert marker == config.proposals_hash(PROPOSER_VERSION, "test/same-vector")
