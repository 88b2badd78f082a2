"""Library builds on an executor (`build.fanout`): a pool, Ray and the CLI give the serial build's files;
speculative results the serial order would not have built are discarded; a proposal that fails on its
worker stops the build with its name, and a resume finishes it byte-identically; hooks and models that
cannot travel to workers are refused before any work. Runs on the small real catalog (no LLM) and, for
the CLI, on the user's catalog with a replay of the shipped library's recorded model answers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from envfactory.build.errors import BuildError
from envfactory.build.fanout import STAGING, build_speculatively
from envfactory.build.library import LLM_CASSETTE, BuildEvent, LibraryBuilder
from envfactory.cli.app import app
from envfactory.exec import PoolExecutor, RayExecutor, SerialExecutor, ray_available
from envfactory.resources import Catalog
from envfactory.spec.library import LibraryConfig, ProposalOutcome
from envfactory.spec.work_items import BuildHooks, WorkerModel

# Two accepted per domain (the office domain has six proposals): a window of four builds a third office
# proposal the serial order then skips, so discarding is exercised.
CONFIG = LibraryConfig(name="small", domains=["utilities", "office"], proposals_per_domain=8,
                       accept_per_domain=2, fuzz_calls=40, differential=False, contamination_check=False)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != "timings.json"}


@pytest.fixture(scope="module")
def serial_build(small_catalog: Catalog, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    root = tmp_path_factory.mktemp("serial") / "small"
    LibraryBuilder(small_catalog, CONFIG, root).run()
    return _files(root)


def test_a_pool_build_gives_the_serial_files_and_discards_what_the_serial_order_skips(
        small_catalog: Catalog, serial_build: dict[str, bytes], tmp_path: Path) -> None:
    events: list[BuildEvent] = []
    executor = PoolExecutor(workers=2)
    try:
        LibraryBuilder(small_catalog, CONFIG, tmp_path / "small", executor=executor, fan_out=build_speculatively, progress=events.append).run()
    finally:
        executor.close()
    assert _files(tmp_path / "small") == serial_build
    assert not (tmp_path / "small" / STAGING).exists()
    submitted = sum(int(e.message.split()[1]) for e in events if e.kind == "wave")
    built = sum(1 for name in serial_build if name.startswith("outcomes/")
                and ProposalOutcome.model_validate_json(serial_build[name]).built)
    assert submitted > built  # some speculative builds were thrown away, and the files still match
    done = [e.name for e in events if e.kind == "done"]
    assert len(done) == sum(1 for name in serial_build if name.startswith("outcomes/"))


@pytest.mark.skipif(not ray_available(), reason="ray is an optional extra: pip install -e '.[ray]'")
def test_a_ray_build_gives_the_serial_files(small_catalog: Catalog, serial_build: dict[str, bytes],
                                            tmp_path: Path) -> None:
    executor = RayExecutor(workers=2)
    try:
        LibraryBuilder(small_catalog, CONFIG, tmp_path / "small", executor=executor, fan_out=build_speculatively).run()
    finally:
        executor.close()
    assert _files(tmp_path / "small") == serial_build


def test_a_proposal_failing_on_its_worker_stops_the_build_and_a_resume_finishes_it(
        small_catalog: Catalog, serial_build: dict[str, bytes], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "small"
    original = LibraryBuilder.build_resolved
    seen: list[str] = []

    def crashing(self: LibraryBuilder, proposal, operations, base):  # type: ignore[no-untyped-def]
        if proposal.id not in seen:
            seen.append(proposal.id)
        if len(seen) > 1 and proposal.id == seen[1]:  # the second proposal built fails on every try
            raise RuntimeError("disk on fire")
        return original(self, proposal, operations, base)

    monkeypatch.setattr(LibraryBuilder, "build_resolved", crashing)
    with pytest.raises(BuildError, match=r"failed on its worker: .*disk on fire.*--resume") as raised:
        LibraryBuilder(small_catalog, CONFIG, root, executor=SerialExecutor(max_attempts=2), fan_out=build_speculatively).run()
    assert seen[1] in str(raised.value)
    saved = [ProposalOutcome.model_validate_json(p.read_bytes()).proposal_id for p in (root / "outcomes").glob("*.json")]
    assert saved == [seen[0]]  # the verdict before it in the serial order is checkpointed, nothing after
    assert not (root / STAGING).exists()
    monkeypatch.setattr(LibraryBuilder, "build_resolved", original)
    LibraryBuilder(small_catalog, CONFIG, root, executor=SerialExecutor(), fan_out=build_speculatively).run(resume=True)
    assert _files(root) == serial_build


def test_what_cannot_travel_to_workers_is_refused_before_any_work(small_catalog: Catalog, tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="fan_out"):
        LibraryBuilder(small_catalog, CONFIG, tmp_path / "z", executor=SerialExecutor()).run()
    with pytest.raises(BuildError, match="worker_hooks"):
        LibraryBuilder(small_catalog, CONFIG, tmp_path / "a", executor=SerialExecutor(), fan_out=build_speculatively,
                       contamination=lambda spec: []).run()
    with pytest.raises(BuildError, match="worker_model"):
        LibraryBuilder(small_catalog, CONFIG.model_copy(update={"seed_realism": True}), tmp_path / "b",
                       executor=SerialExecutor(), fan_out=build_speculatively).run()
    assert not (tmp_path / "a" / "outcomes").exists() and not (tmp_path / "b" / "outcomes").exists()
    # With the standard hooks named, the same builder goes ahead.
    LibraryBuilder(small_catalog, CONFIG.model_copy(update={"domains": ["office"], "accept_per_domain": 1}),
                   tmp_path / "c", executor=SerialExecutor(), fan_out=build_speculatively, contamination=lambda spec: [],
                   worker_hooks=BuildHooks(contamination=False),
                   worker_model=WorkerModel(provider="replay", cassette="unused")).run()
    assert any((tmp_path / "c" / "outcomes").glob("*.json"))


GEN1_CASSETTE = Path(__file__).resolve().parents[1] / "fixtures" / "library-gen1-llm-cassette.jsonl"
TINY = {"name": "tiny", "domains": ["lifestyle"], "proposals_per_domain": 6, "accept_per_domain": 2,
        "fuzz_calls": 20, "differential": False, "contamination_check": False, "seed_realism": True,
        "prefer_new_providers": True}


def test_library_build_on_a_pool_from_the_cli_replays_the_model_and_matches_the_serial_build(
        full_catalog: Catalog, tmp_path: Path) -> None:
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY))
    replay = f"replay:{GEN1_CASSETTE}"  # the generation-1 library's recorded 0.5B answers
    runner = CliRunner()
    serial = runner.invoke(app, ["library", "build", "--config", str(config), "-w", str(tmp_path / "s"),
                                 "--llm", replay])
    assert serial.exit_code == 0, serial.output
    pooled = runner.invoke(app, ["library", "build", "--config", str(config), "-w", str(tmp_path / "p"),
                                 "--llm", replay, "--executor", "pool", "--workers", "2"])
    assert pooled.exit_code == 0, pooled.output
    assert "on the pool executor (2 workers)" in pooled.output
    where = Path("runs") / "library-tiny" / "library"
    serial_files, pooled_files = _files(tmp_path / "s" / where), _files(tmp_path / "p" / where)
    assert "build/" + LLM_CASSETTE in pooled_files and "library.json" in pooled_files
    assert {k: v for k, v in pooled_files.items() if k != "manifest.json"} == \
        {k: v for k, v in serial_files.items() if k != "manifest.json"}  # the manifest holds timings
    bad = runner.invoke(app, ["library", "build", "--config", str(config), "-w", str(tmp_path / "x"),
                              "--executor", "cluster"])
    assert bad.exit_code != 0 and "--executor must be serial, pool or ray" in bad.output
