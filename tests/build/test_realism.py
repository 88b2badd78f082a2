"""Seed realism (`build.realism`) and its place in library builds.

The model-dependent tests use a scripted client whose answers are what a model returns for these
requests (JSON records with names, titles and notes, including the usual defects: a value that is too
long, a control character, a repeated unique value), plus one run of the bundled Qwen2.5-Coder-0.5B
model on a real compiled collection; nothing here trusts an answer without validation.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from envfactory.build.compile import CompiledEnv, compile_proposal
from envfactory.build.envdir import write_env_dir
from envfactory.build.library import LLM_CASSETTE, LibraryBuilder
from envfactory.build.propose import propose
from envfactory.build.publish import publish_library, reproduce_library
from envfactory.build.realism import candidate_fields, realism_request, realistic_seeds
from envfactory.errors import ProviderError
from envfactory.llm.errors import ModelNotInstalledError
from envfactory.llm.replay import CassetteWriter, RecordingClient, ReplayClient
from envfactory.llm.scripted import ScriptedClient, text_response
from envfactory.llm.types import ChatRequest, ChatResponse, Usage
from envfactory.resources import Catalog
from envfactory.runtime import load_env
from envfactory.runtime.validation import CompiledSchema
from envfactory.spec import EnvSpec
from envfactory.spec.build import BuildRecord
from envfactory.spec.library import LibraryConfig, LibraryFunnel

REALISTIC = {  # what a model writes for the fields of Google Tasks and SQS-like records
    "title": ["Plan the team offsite", "Renew passport", "Quarterly tax filing"],
    "notes": ["Book the venue and send invites", "Photos from the shop on Main St", "Ask the accountant"],
    "kind": ["tasks#task", "tasks#task", "tasks#task"],
}


def _tasks(small_catalog: Catalog) -> CompiledEnv:
    (proposal,) = [p for p in propose(small_catalog, domains=["office"], limit_per_domain=20) if p.name == "tasks"]
    operations = {o.operation_id: small_catalog.operation(o.operation_id) for o in proposal.operations}
    return compile_proposal(proposal, operations)


def _answer_from_schema(request: ChatRequest, override: dict[str, list[str]] | None = None) -> ChatResponse:
    """A model's answer to a realism request: the asked number of records with realistic strings."""
    assert request.response_format is not None
    records_schema = request.response_format.json_schema["properties"]["records"]
    fields = list(records_schema["items"]["properties"])
    values = {**REALISTIC, **(override or {})}
    records = [{f: values.get(f, [f"Sample {f} {i}" for i in range(5)])[i % 3] for f in fields}
               for i in range(records_schema["minItems"])]
    return text_response(json.dumps({"records": records}), usage=Usage(prompt_tokens=180, completion_tokens=60))


def test_candidate_fields_are_free_text_only(small_catalog: Catalog) -> None:
    compiled = _tasks(small_catalog)
    for decl in compiled.source.collections.values():
        fields = candidate_fields(decl)
        props = decl.record_schema.get("properties", {})
        assert decl.key not in fields
        assert not {ref.field for ref in decl.references} & set(fields)
        for name in fields:
            assert props[name].get("type") == "string" and "enum" not in props[name]
            assert not name.lower().endswith(("id", "url", "etag")), name
    tasks = compiled.source.collections["tasks"]
    assert "title" in candidate_fields(tasks) and "notes" in candidate_fields(tasks)
    assert "selfLink" not in candidate_fields(tasks) or "format" not in tasks.record_schema["properties"]["selfLink"]


def test_validated_values_replace_the_deterministic_ones_and_nothing_else(small_catalog: Catalog) -> None:
    compiled = _tasks(small_catalog)
    seeds = compiled.seeds["default"]
    too_long = "x" * 500
    echo = "Google Tasks API"  # small models copy the prompt's title: refused
    defects = {  # per field: the answers for the first and the second record
        "notes": ["Bring \x07 the bell", echo, "-"],
        "title": ["Renew passport", "Renew passport", "-"],  # the second repeats the first
        "position": ["00000000000000000001", too_long, "-"],
    }
    client = ScriptedClient([lambda r: _answer_from_schema(r, defects) for _ in range(len(compiled.source.collections))])
    realistic, realism = realistic_seeds(compiled.source, seeds, client, api_title="Google Tasks API: task lists")
    assert realism.requests == len(client.requests) >= 1 and realism.tokens == 240 * realism.requests
    assert realism.accepted > 0 and realism.rejected >= 1
    assert any("control characters" in r for r in realism.rejections)
    assert any("copies the prompt" in r for r in realism.rejections)
    assert any("repeats another record's value" in r for r in realism.rejections)
    assert any("longer than the 48 characters" in r for r in realism.rejections)
    before, after = seeds["collections"], realistic["collections"]
    assert set(before) == set(after)
    changed = 0
    for name, records in before.items():
        decl = compiled.source.collections[name]
        allowed = set(candidate_fields(decl))
        assert set(records) == set(after[name])  # the same keys: references and examples still hold
        for key, record in records.items():
            for field, value in after[name][key].items():
                if value != record.get(field):
                    assert field in allowed, (name, field)
                    changed += 1
            schema = CompiledSchema(decl.record_schema)
            assert schema.check(after[name][key]) is None
    assert changed == realism.accepted
    titles = [r.get("title") for r in after["tasks"].values()]
    notes = [r.get("notes") for r in after["tasks"].values()]
    assert titles.count("Renew passport") == 1 and echo not in notes
    # the request is data-only structured output with short strings, the same for the same input
    request = client.requests[0]
    assert request.temperature == 0 and request.seed == 0 and request.response_format is not None
    again = realism_request("Google Tasks", *_first_request_args(compiled))
    assert again == realism_request("Google Tasks", *_first_request_args(compiled))


def _first_request_args(compiled: CompiledEnv) -> tuple[Any, ...]:
    name, decl = next((n, d) for n, d in compiled.source.collections.items() if candidate_fields(d))
    return name, decl, candidate_fields(decl), 2


def test_a_failing_or_nonsense_model_leaves_the_deterministic_seeds(small_catalog: Catalog) -> None:
    compiled = _tasks(small_catalog)
    seeds = compiled.seeds["default"]
    n = len(compiled.source.collections)
    down = ScriptedClient([ProviderError("model crashed")] * n)
    same, realism = realistic_seeds(compiled.source, seeds, down, api_title="Google Tasks")
    assert same == seeds and realism.accepted == 0 and realism.failures
    chatty = ScriptedClient(["Sure! Here are some records: title = Groceries"] * n)
    same, realism = realistic_seeds(compiled.source, seeds, chatty, api_title="Google Tasks")
    assert same == seeds and realism.failures and realism.accepted == 0
    missing = ScriptedClient([ModelNotInstalledError("the model packages are not installed: pip install ...")])
    with pytest.raises(ModelNotInstalledError):  # a set-up problem stops the build instead of degrading it
        realistic_seeds(compiled.source, seeds, missing, api_title="Google Tasks")
    wrong_shape = ScriptedClient([json.dumps({"records": "none"})] * n)
    same, realism = realistic_seeds(compiled.source, seeds, wrong_shape, api_title="Google Tasks")
    assert same == seeds and any("no list of records" in f for f in realism.failures)


def test_example_keys_are_kept_out_of_realism(small_catalog: Catalog) -> None:
    compiled = _tasks(small_catalog)
    seeds = compiled.seeds["default"]
    kept = {name: list(records)[:1] for name, records in seeds["collections"].items()}
    client = ScriptedClient([_answer_from_schema for _ in range(len(kept))])
    realistic, _ = realistic_seeds(compiled.source, seeds, client, api_title="Google Tasks", keep_keys=kept)
    for name, keys in kept.items():
        for key in keys:
            assert realistic["collections"][name][key] == seeds["collections"][name][key]


CONFIG = LibraryConfig(name="realistic", domains=["office"], proposals_per_domain=8, accept_per_domain=2,
                       fuzz_calls=30, differential=False, contamination_check=False, seed_realism=True)


def test_a_library_build_with_seed_realism_records_replays_and_reproduces(small_catalog: Catalog, tmp_path: Path) -> None:
    root = tmp_path / "build"
    with pytest.raises(Exception, match="seed_realism"):
        LibraryBuilder(small_catalog, CONFIG, tmp_path / "no-llm").run()
    root.mkdir(parents=True)
    client = RecordingClient(ScriptedClient([_answer_from_schema] * 40), CassetteWriter(root / LLM_CASSETTE))
    funnel = LibraryBuilder(small_catalog, CONFIG, root, llm=client).run()
    assert funnel.accepted >= 1 and funnel.llm_tokens > 0 and funnel.seed_values_from_llm > 0
    saved = LibraryFunnel.model_validate_json((root / "funnel.json").read_bytes())
    assert saved.llm_tokens == funnel.llm_tokens
    for env_dir in sorted((root / "envs").iterdir()):
        record = BuildRecord.model_validate_json((env_dir / "build.json").read_bytes())
        assert record.seed_realism is not None and record.seed_realism.model == "scripted"
        env = load_env(env_dir)
        state = json.loads((env_dir / "seeds" / "default.json").read_bytes())
        env.backend.load_state(state)  # the realistic seed state loads (raises SpecError otherwise)
        report = json.loads((env_dir / "report.json").read_bytes())
        assert report["verdict"] == "verified"
    library = tmp_path / "library"
    index = publish_library(root, library)
    assert (library / LLM_CASSETTE).is_file()
    results = reproduce_library(small_catalog, library, tmp_path / "again", llm=ReplayClient(library / LLM_CASSETTE))
    assert [(r.name, r.spec_same, r.report_same) for r in results] == [(e.name, True, True) for e in index.entries]
    spec = EnvSpec.model_validate_json((library / index.entries[0].name / "spec.json").read_bytes())
    assert spec.content_hash == index.entries[0].spec_hash


@pytest.mark.slow
def test_the_bundled_model_makes_validated_seed_values(small_catalog: Catalog, tmp_path: Path) -> None:
    """The embedded default model (Qwen2.5-Coder-0.5B) on the compiled Google Tasks collections."""
    from envfactory.llm import LocalConfig, LocalProvider, ManagedClient

    compiled = _tasks(small_catalog)
    provider = LocalProvider(LocalConfig())
    try:
        realistic, realism = realistic_seeds(compiled.source, compiled.seeds["default"], ManagedClient(provider),
                                             api_title="Google Tasks API: task lists and tasks")
    finally:
        provider.close()
    assert realism.requests >= 1 and realism.tokens > 0
    assert realism.accepted >= 1, (realism.failures, realism.rejections)
    write_env_dir(compiled.model_copy(update={"seeds": {"default": realistic}}), tmp_path / "env")
    env = load_env(tmp_path / "env")
    env.backend.load_state(realistic)


class _Killed(Exception):
    """Stands for the process dying in the middle of a proposal."""


def test_a_killed_build_with_seed_realism_resumes_to_the_same_files_and_cassette(
        small_catalog: Catalog, tmp_path: Path) -> None:
    config = CONFIG.model_copy(update={"domains": ["utilities", "office"], "accept_per_domain": 3})

    def client_for(root: Path) -> RecordingClient:
        return RecordingClient(ScriptedClient([_answer_from_schema] * 60), CassetteWriter(root / LLM_CASSETTE))

    whole = tmp_path / "whole"
    whole.mkdir()
    LibraryBuilder(small_catalog, config, whole, llm=client_for(whole)).run()

    killed = tmp_path / "killed"
    killed.mkdir()
    starts: list[str] = []

    def die_on_third_start(event: object) -> None:
        if getattr(event, "kind", "") == "start":
            starts.append(getattr(event, "name", ""))
            if len(starts) == 3:
                raise _Killed
    with pytest.raises(_Killed):
        LibraryBuilder(small_catalog, config, killed, llm=client_for(killed), progress=die_on_third_start).run()
    LibraryBuilder(small_catalog, config, killed, llm=client_for(killed)).run(resume=True)

    def files(root: Path) -> dict[str, bytes]:
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
                if p.is_file() and p.name not in {"timings.json", LLM_CASSETTE}}
    assert files(killed) == files(whole)
    keys = [json.loads(line)["key"] for line in (killed / LLM_CASSETTE).read_text().splitlines()]
    assert len(keys) == len(set(keys))  # nothing recorded twice
    assert set(keys) == {json.loads(line)["key"] for line in (whole / LLM_CASSETTE).read_text().splitlines()}
