"""Seed generation (`build.seeds_faker`, `build.fake_values`) and the seed-realism check (`build.seed_report`):
sizes, links between collections, state and enum coverage, determinism per environment name, and the
placeholder measure on real defects of the first library's seeds."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from envfactory.build.seed_regen import regenerate_seeds
from envfactory.build.seed_report import env_seed_stats, is_placeholder, summarize
from envfactory.build.seeds_faker import CHILD_RECORDS, RECORDS_PER_COLLECTION, seed_state
from envfactory.cli.app import app
from envfactory.runtime import Environment, open_session
from envfactory.runtime.declarative import DeclarativeBackend, compile_source
from envfactory.runtime.loader import library_root
from envfactory.runtime.validation import CompiledSchema
from envfactory.spec import DeclarativeEnvSource
from envfactory.spec.library import LibraryIndex

STATES = ["DRAFT", "OPEN", "ON_HOLD", "CLOSED", "REOPENED", "ARCHIVED", "DELETED", "MERGED", "ESCALATED", "SPLIT"]


def _obj(props: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": required, "additionalProperties": False}


def _source(name: str = "legal_holds") -> DeclarativeEnvSource:
    s = {"type": "string"}
    return DeclarativeEnvSource.model_validate({
        "meta": {"name": name, "domain": "office"},
        "collections": {
            "matters": {"key": "matterId", "id_prefix": "matter_", "id_width": 4,
                        "record_schema": _obj({"matterId": s, "name": s, "description": s,
                                               "state": {"type": "string", "enum": STATES},
                                               "region": {"type": "string", "enum": ["ANY", "US", "EUROPE"]}},
                                              ["matterId", "name"]),
                        "transitions": [{"field": "state", "allowed": {
                            "DRAFT": ["OPEN"], "OPEN": STATES[2:], **{st: ["OPEN"] for st in STATES[2:]}}}]},
            "holds": {"key": "holdId", "id_prefix": "hold_", "id_width": 4,
                      "record_schema": _obj({"holdId": s, "matterId": s, "name": s, "createTime": s, "updateTime": s},
                                            ["holdId"]),
                      "references": [{"field": "matterId", "collection": "matters", "on_delete": "cascade"}]},
            "accounts": {"key": "accountId", "id_prefix": "account_", "id_width": 4,
                         "record_schema": _obj({"accountId": s, "email": s, "firstName": s, "lastName": s,
                                                "matterId": s, "holdId": s, "age": {"type": "integer", "minimum": 18,
                                                                                     "maximum": 99}},
                                               ["accountId", "email"]),
                         "references": [{"field": "matterId", "collection": "matters"},
                                        {"field": "holdId", "collection": "holds"}]},
        },
        "tools": [{"name": "get_matter", "description": "Get a matter.",
                   "input_schema": _obj({"matterId": s}, ["matterId"]),
                   "operation": {"kind": "get", "collection": "matters"}}],
    })


def test_sizes_links_and_state_coverage() -> None:
    source = _source()
    state = seed_state(source, [])
    colls = state["collections"]
    assert isinstance(colls, dict)
    matters, holds, accounts = colls["matters"], colls["holds"], colls["accounts"]
    assert len(matters) == len(STATES) > RECORDS_PER_COLLECTION  # one record per state at least
    assert {m["state"] for m in matters.values()} == set(STATES)
    assert {m["region"] for m in matters.values()} == {"ANY", "US", "EUROPE"}
    assert len(holds) == len(accounts) == CHILD_RECORDS
    assert all(h["matterId"] in matters for h in holds.values())
    assert all(h["createTime"] <= h["updateTime"] for h in holds.values())  # not updated before created
    for account in accounts.values():  # the account's matter is its hold's matter
        assert account["holdId"] in holds and account["matterId"] == holds[account["holdId"]]["matterId"]
    for name, records in colls.items():
        check = CompiledSchema(source.collections[name].record_schema)
        assert all(check.check(r) is None for r in records.values()), name
    emails = [a["email"] for a in accounts.values()]
    assert len(set(emails)) == len(emails)
    first = next(iter(accounts.values()))
    assert first["email"].startswith(first["firstName"].lower().replace(" ", "").replace("'", "")[:3])
    assert 18 <= first["age"] <= 99
    assert state["counters"] == {"matters": len(STATES), "holds": CHILD_RECORDS, "accounts": CHILD_RECORDS}


def test_the_seed_loads_in_the_runtime() -> None:
    source = _source()
    spec = compile_source(source)
    env = Environment.create(DeclarativeBackend(spec), {"default": seed_state(source, [])})
    session = open_session(env, env.seeds["default"])
    out = session.call("get_matter", {"matterId": "matter_0001"})
    assert out.error is None and out.output["state"] == STATES[0]  # type: ignore[index]


def test_deterministic_per_environment_and_different_across_environments() -> None:
    one, again = seed_state(_source("legal_holds"), []), seed_state(_source("legal_holds"), [])
    other = seed_state(_source("case_tracker"), [])
    assert json.dumps(one, sort_keys=True) == json.dumps(again, sort_keys=True)

    def names(state: Any) -> set[str]:
        return {f"{a['firstName']} {a['lastName']}" for a in state["collections"]["accounts"].values()}

    assert len(names(one)) == CHILD_RECORDS
    assert not names(one) & names(other)


def test_placeholders_are_recognised_and_real_values_are_not() -> None:
    env = ("vault", "exports")
    for value, field in [("anchor 1", "anchor"), ("This is a test comment.", "comment"), ("afterselectedtext 1",
                         "afterSelectedText"), ("Export 1", "name"), ("Vault Exports", "name"), ("layerid-2", "layerId"),
                         ("resourceowne", "ResourceOwner"), ("MyExport", "Name"), ("foo", "label"),
                         ("I'm sorry, but I can't help with that.", "description")]:
        assert is_placeholder(value, field, env), value
    for value, field in [("Priya Raman", "name"), ("priya.raman@acme.io", "email"), ("Invoice shows the wrong VAT rate",
                         "subject"), ("layer-5f3a91c2d0e4", "layerId"), ("2025-03-04T10:00:00Z", "createTime"),
                         ("books#annotation", "kind"), ("Bar across impact attorney.", "description")]:
        assert not is_placeholder(value, field, env), value


def test_the_report_counts_placeholders_duplicates_and_coverage() -> None:
    source = _source()
    state = seed_state(source, [])
    fresh = summarize([env_seed_stats(source, state)])
    assert fresh.placeholder_rate < 0.01 and fresh.state_coverage == 1.0 and fresh.enum_coverage == 1.0
    assert fresh.records_min == len(STATES) and fresh.dangling_references == 0
    colls = state["collections"]
    assert isinstance(colls, dict)
    for i, record in enumerate(colls["holds"].values()):  # the old generator's shape of values
        record["name"] = "Holds 1" if i % 2 else f"name {i}"
    assert fresh.links_checked == CHILD_RECORDS and fresh.inconsistent_links == 0
    colls["accounts"]["account_0001"]["holdId"] = "hold_9999"
    account = colls["accounts"]["account_0002"]
    account["matterId"] = next(m for m in colls["matters"] if m != account["matterId"])  # not its hold's matter
    stale = summarize([env_seed_stats(source, state)])
    assert stale.placeholder_rate > fresh.placeholder_rate + 0.02
    assert stale.duplicate_rate > fresh.duplicate_rate and stale.dangling_references == 1
    assert stale.inconsistent_links == 1


def _small_library(tmp_path: Path, names: list[str]) -> Path:
    shipped = library_root()
    index = LibraryIndex.model_validate_json((shipped / "index.json").read_bytes())
    lib = tmp_path / "library"
    lib.mkdir()
    for name in names:
        shutil.copytree(shipped / name, lib / name)
    small = index.model_copy(update={"entries": [e for e in index.entries if e.name in names]})
    (lib / "index.json").write_bytes(small.to_json_bytes())
    return lib


def test_regeneration_writes_loading_seeds_and_leaves_the_library_alone(tmp_path: Path) -> None:
    lib = _small_library(tmp_path, ["vault", "servicediscovery"])
    before = (lib / "vault" / "seeds" / "default.json").read_bytes()
    stats, failures = regenerate_seeds(lib, tmp_path / "out", lambda proposal: [])
    assert failures == {}
    assert (lib / "vault" / "seeds" / "default.json").read_bytes() == before
    report = summarize(stats)
    assert report.records_min >= RECORDS_PER_COLLECTION and report.placeholder_rate < 0.01
    assert report.state_coverage == 1.0
    result = CliRunner().invoke(app, ["library", "seeds-report", "--library", str(lib), "--json"])
    assert result.exit_code == 0, result.output
    shipped = json.loads(result.output)["library"]
    # the generation-2 library's seeds are Faker-made like the regenerated ones: no placeholders either
    assert shipped["environments"] == 2 and shipped["placeholder_rate"] < 0.01
    # the report reads the library it is given: placeholder names planted in its seeds show up there
    seeds = lib / "vault" / "seeds" / "default.json"
    state = json.loads(seeds.read_bytes())
    for i, record in enumerate(state["collections"]["matters"].values()):
        record["name"] = record["description"] = f"name {i}"
    seeds.write_text(json.dumps(state))
    result = CliRunner().invoke(app, ["library", "seeds-report", "--library", str(lib), "--json"])
    assert result.exit_code == 0, result.output
    planted = json.loads(result.output)["library"]
    assert planted["placeholder_rate"] > max(shipped["placeholder_rate"], report.placeholder_rate) + 0.005
