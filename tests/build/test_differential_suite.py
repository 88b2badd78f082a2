"""The library differential suite (`build.differential_suite`): which shipped AWS environments moto
implements, the scenarios generated from botocore shapes, the classification rules, the normalisation
added for it, and one run against moto 5.2.1 with per-environment floors on agreement and the known
disagreements: the CI subset (`CI_SUBSET`, about 20 s) by default, every environment (about 1 min on a
loaded 2-core machine) with ENVFACTORY_DIFFERENTIAL_FULL=1 or by `python -m
envfactory.build.differential_suite`."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.build.helpers import recorded_proposal

from envfactory.build.compile import compile_proposal
from envfactory.build.differential import ScriptCall
from envfactory.build.differential_compare import Bijection, compare_fields, pair_unpaired, unwrap
from envfactory.build.differential_report import render_markdown
from envfactory.build.differential_scenarios import MIN_SCENARIOS, generate_scenarios, resolve_scenario
from envfactory.build.differential_suite import (
    CI_SUBSET,
    LIBRARY,
    aws_library_envs,
    classify,
    idempotency_token,
    key_cause,
    run_suite,
)
from envfactory.build.envdir import write_env_dir
from envfactory.build.moto_worker import _get
from envfactory.resources import AwsSource, Catalog
from envfactory.runtime import Environment, load_env
from envfactory.spec import DifferentialMismatch

MOTO_ENVS = {
    "connectcampaigns": "connectcampaigns",
    "managedblockchain_members_networks": "managedblockchain",
    "servicediscovery": "servicediscovery",
    "ses_identities_identity_policies": "ses",
    "ses_receipt_rules_receipt_rule_sets": "ses",
}
ERROR_CATEGORIES = {"read_missing", "delete_missing", "update_missing", "delete_twice", "duplicate",
                    "missing_required", "invalid_value", "missing_reference", "parent_in_use"}


def test_the_library_aws_envs_and_those_moto_implements() -> None:
    entries = aws_library_envs()
    assert len(entries) == 27
    implemented = {e.name: e.service for e in entries if e.moto_implements_service}
    assert implemented == MOTO_ENVS
    by_name = {e.name: e for e in entries}
    # moto lacks SES identity policies and DeleteReceiptRule: listed, never pretended
    assert "PutIdentityPolicy" not in by_name["ses_identities_identity_policies"].moto_operations
    assert "VerifyEmailIdentity" in by_name["ses_identities_identity_policies"].moto_operations
    assert "DeleteReceiptRule" not in by_name["ses_receipt_rules_receipt_rule_sets"].moto_operations
    # every environment the suite does not run, or runs in part, says why
    assert by_name["braket_jobs"].reason == "moto 5.2.1 has no backend for braket"
    assert by_name["ses_receipt_rules_receipt_rule_sets"].reason == "moto 5.2.1 lacks DeleteReceiptRule"
    assert by_name["managedblockchain_members_networks"].reason == ""  # moto has all 16 of its operations
    assert all(e.reason for e in entries if len(e.moto_operations) < len(e.source_operations))
    assert set(MOTO_ENVS) >= CI_SUBSET


@pytest.mark.parametrize("name", sorted(MOTO_ENVS))
def test_each_env_gets_enough_multi_step_scenarios_with_error_cases(name: str) -> None:
    env = load_env(LIBRARY / name)
    scenarios = generate_scenarios(env, MOTO_ENVS[name])
    assert len(scenarios) >= MIN_SCENARIOS
    categories = Counter(s.category for s in scenarios)
    assert categories["lifecycle"] >= 1 and sum(categories[c] for c in ERROR_CATEGORIES) >= 5, categories
    assert all(len(s.steps) >= 2 for s in scenarios)  # multi-step, every one
    assert len({s.id for s in scenarios}) == len(scenarios)
    assert [s.id for s in generate_scenarios(env, MOTO_ENVS[name])] == [s.id for s in scenarios]  # deterministic


def test_refs_resolve_to_the_ids_our_env_generated() -> None:
    env = load_env(LIBRARY / "connectcampaigns")
    lifecycle = next(s for s in generate_scenarios(env, "connectcampaigns") if s.category == "lifecycle")
    assert lifecycle.steps[1].arguments["id"] == {"$ref": 0}
    calls = resolve_scenario(env, lifecycle)
    assert calls[1].arguments["id"] == "campaign_0001"
    # a delete then a describe of the same record: the describe after delete is an error case
    assert [c.tool for c in calls] == ["create_campaign", "describe_campaign", "get_campaign_state", "list_campaigns",
                                       "delete_campaign", "describe_campaign", "list_campaigns"]


def _mismatch(detail: str, reference: str | None = None, aspect: str = "outcome") -> DifferentialMismatch:
    return DifferentialMismatch(step=1, tool="t", operation="Op", aspect=aspect, detail=detail, reference=reference)


def test_classification_rules() -> None:
    env = load_env(LIBRARY / "connectcampaigns")
    invalid = next(s for s in generate_scenarios(env, "connectcampaigns") if s.category == "invalid_value")
    dup = next(s for s in generate_scenarios(env, "connectcampaigns") if s.category == "duplicate")
    assert classify(_mismatch("x", "Not yet implemented"), dup, False, None, "404", set())[0] == "moto_limitation"
    assert classify(_mismatch("x"), dup, True, None, "ConflictException", set())[0] == "follow_on"
    assert classify(_mismatch("x"), invalid, False, "invalid_arguments", None, set())[0] == "moto_limitation"
    assert classify(_mismatch("x"), dup, False, "rule_violation", None, {"ConflictException"})[0] == "undetermined"
    assert classify(_mismatch("x"), dup, False, "rule_violation", None, set())[0] == "ours_wrong"
    assert classify(_mismatch("x"), dup, False, None, "ResourceNotFoundException", set())[0] == "ours_wrong"
    unbound = _mismatch("x", "Invalid type for parameter arn, value: None")
    klass, cause = classify(unbound, dup, False, None, "ParamValidationError", set())
    assert klass == "ours_wrong" and "invents a key" in cause
    assert classify(_mismatch("listed records differ", aspect="state"), dup, False, None, None, set())[0] == "ours_wrong"
    # a repeated create with the same idempotency token: ours answers the first record, as the API
    # documents; moto makes a second one
    klass, cause = classify(_mismatch("NetworkId differs", aspect="field"), dup, False, None, None, set(),
                            "ClientRequestToken")
    assert klass == "moto_limitation" and "idempotency token ClientRequestToken" in cause
    assert classify(_mismatch("x"), dup, False, "rule_violation", None, set(), "ClientRequestToken")[0] == "ours_wrong"


def test_idempotency_tokens_come_from_the_api_model() -> None:
    import botocore.session

    session = botocore.session.get_session()
    assert idempotency_token(session.get_service_model("managedblockchain"), "CreateNetwork") == "ClientRequestToken"
    assert idempotency_token(session.get_service_model("ivs"), "CreateChannel") is None
    assert idempotency_token(session.get_service_model("ivs"), "NoSuchOperation") is None


@pytest.fixture(scope="module")
def keyed_by_generation_1(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Environment]]:
    """Cloud Map and SES receipt rules compiled at generation 1 from their proposals: generation 1 keyed
    Cloud Map services by the caller's Name and generated receipt rules' keys; generation 2 (the shipped
    library) keys them as the API does, so only the generation-1 form still has the causes to name."""
    with Catalog([AwsSource(["servicediscovery", "ses"])], tmp_path_factory.mktemp("key-cause-catalog")) as catalog:
        envs: dict[str, Environment] = {}
        for name in ("servicediscovery", "ses_receipt_rules_receipt_rule_sets"):
            proposal = recorded_proposal(name)
            operations = {o.operation_id: catalog.operation(o.operation_id) for o in proposal.operations}
            directory = tmp_path_factory.mktemp(name)
            write_env_dir(compile_proposal(proposal, operations, generation=1), directory)
            envs[name] = load_env(directory)
        yield envs


def test_key_cause_names_the_create_that_handed_out_an_id_the_api_does_not_know(
    keyed_by_generation_1: dict[str, Environment],
) -> None:
    import botocore.session

    session = botocore.session.get_session()
    cloud_map = session.get_service_model("servicediscovery")
    calls = [ScriptCall("create_service", {"Name": "web"}),
             ScriptCall("register_instance", {"ServiceId": "web", "InstanceId": "i1", "Attributes": {}})]
    cause = key_cause(keyed_by_generation_1["servicediscovery"], calls, 1, cloud_map)
    assert cause is not None and cause.startswith("create_service keys services by the caller's Name")
    assert key_cause(load_env(LIBRARY / "servicediscovery"), calls, 1, cloud_map) is None  # generation 2: by Id
    ses = session.get_service_model("ses")
    calls = [ScriptCall("create_receipt_rule", {"RuleSetName": "s", "Rule": {"Name": "r"}}),
             ScriptCall("describe_receipt_rule", {"RuleSetName": "s", "RuleName": "receipt_rule_0001"})]
    assert "create_receipt_rule generates" in (key_cause(keyed_by_generation_1["ses_receipt_rules_receipt_rule_sets"],
                                                         calls, 1, ses) or "")
    shipped_rules = load_env(LIBRARY / "ses_receipt_rules_receipt_rule_sets")
    assert key_cause(shipped_rules, calls, 1, ses) is None  # generation 2 keys them by the caller's Rule.Name
    # a create whose API answer does carry the key is not blamed (CreateMember answers MemberId)
    chain = load_env(LIBRARY / "managedblockchain_members_networks")
    calls = [ScriptCall("create_member", {"NetworkId": "n"}), ScriptCall("get_member", {"NetworkId": "n", "MemberId": "m"})]
    assert key_cause(chain, calls, 1, session.get_service_model("managedblockchain")) is None


def test_normalisation_for_envelopes_and_listed_only_ids() -> None:
    answer = {"channel": {"arn": "arn:1", "name": "a"}, "streamKey": {"arn": "arn:k", "value": "v"}}
    assert unwrap(answer, {"arn", "name"}, None) == {"arn": "arn:1", "name": "a"}
    assert unwrap({"channel": {"x": 1}, "name": "n"}, {"name"}, None) == {"channel": {"x": 1}, "name": "n"}
    assert _get(answer, "arn") == "arn:1"  # the worker's binding lookup: the first `arn`, depth-first
    bijection = Bijection()
    pair_unpaired(bijection, ["ns_1", "ns_2"], ["ns-a", "ns-b"], {"ns_1", "ns_2"})
    assert bijection.ours_to_theirs == {"ns_1": "ns-a", "ns_2": "ns-b"}
    unequal = Bijection()
    pair_unpaired(unequal, ["ns_1", "ns_2"], ["ns-a"], {"ns_1", "ns_2"})
    assert unequal.ours_to_theirs == {}  # counts differ: the listing must still disagree
    spec = load_env(LIBRARY / "connectcampaigns").tools["list_campaigns"].spec
    problem, _, _ = compare_fields(spec, {"items": [{"id": "c1"}, {"id": "c2"}]}, {"campaignSummaryList": [{"id": "x"}]},
                                   Bijection(), {"c1", "c2"}, "id", "campaignSummaryList")
    assert problem == "listed records differ"
    problem, _, _ = compare_fields(spec, {"items": [{"id": "c1"}]}, {"campaignSummaryList": [{"id": "x"}]},
                                   Bijection(), {"c1"}, "id", "campaignSummaryList")
    assert problem is None  # one generated id each side: paired, so the listing agrees


FULL = bool(os.environ.get("ENVFACTORY_DIFFERENTIAL_FULL"))
RUN = set(MOTO_ENVS) if FULL else set(CI_SUBSET)


@pytest.fixture(scope="module")
def suite_report():  # type: ignore[no-untyped-def]
    pytest.importorskip("moto", reason="moto is part of the test extra: pip install -e '.[test]'")
    return run_suite(only=None if FULL else set(CI_SUBSET))


# Floors from the full run on the generation-2 library, 2026-12-07 21:59 UTC (moto 5.2.1): measured
# connectcampaigns 92.8%, managedblockchain 75.2%, servicediscovery 85.1%, SES identities 94.7%, receipt
# rules 96.4%; calls matched / compared must not fall below these.
AGREEMENT_FLOOR = {
    "connectcampaigns": 0.88, "managedblockchain_members_networks": 0.7,
    "servicediscovery": 0.8, "ses_identities_identity_policies": 0.9, "ses_receipt_rules_receipt_rule_sets": 0.9,
}


@pytest.mark.slow
def test_every_moto_env_runs_its_suite_and_disagreements_are_classified(suite_report, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    results = {r.env: r for r in suite_report.results}
    assert set(results) == RUN
    for name, result in results.items():
        assert result.scenarios >= MIN_SCENARIOS, name
        assert result.calls_compared > 2 * result.scenarios, name
        # receipt rule sets: our answers share no field name with the API's (`Metadata.Name`, `RuleSets[].Name`
        # vs our `RuleSetName`), so only outcomes and counts compare there (docs/verification.md)
        assert result.values_compared > 0 or name == "ses_receipt_rules_receipt_rule_sets", name
        assert result.agreement >= AGREEMENT_FLOOR[name], (name, result.agreement)
        assert sum(result.by_class.values()) == len(result.disagreements)
        assert all(d.cause for d in result.disagreements)
        assert all(d.tool in load_env(LIBRARY / name).tools for d in result.disagreements)
    # moto 5.2.1's gaps are recorded as its limitations, never blamed on ours: SES identity policies and
    # DeleteReceiptRule are not implemented, and it accepts values the shapes forbid
    ses = results["ses_identities_identity_policies"]
    assert any("does not implement PutIdentityPolicy" in c for c in ses.causes["moto_limitation"])
    assert not any(d.operation == "PutIdentityPolicy" for d in ses.disagreements)
    rules = results["ses_receipt_rules_receipt_rule_sets"]
    assert any("does not implement DeleteReceiptRule" in c for c in rules.causes["moto_limitation"])
    invalid = [d for r in results.values() for d in r.disagreements if d.category == "invalid_value" and d.step == 0]
    assert invalid and all(d.klass == "moto_limitation" for d in invalid if "reference ok" in d.detail)
    markdown = render_markdown(suite_report)
    assert "| servicediscovery | servicediscovery | yes |" in markdown
    assert "| braket_jobs | braket | no | 0/4 | moto 5.2.1 has no backend for braket |" in markdown
    assert "| service | environments | scenarios | calls matched | agreement | ours_wrong | moto_limitation |" in markdown
