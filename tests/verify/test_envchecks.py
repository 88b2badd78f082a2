"""Environment verification (`verify.envchecks`): bundled environments pass every check, re-verifying
gives the same report and evidence digest, and deliberately broken environments are rejected with the
failing tool named (a nondeterministic tool, a tool leaking state between sessions through module
globals, a crashing tool — an untrusted python toolkit run in the sandbox — and a declarative tool
whose source is not in the provenance). No LLM is involved."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from envfactory.runtime import Environment, bundled_env_names, load_env
from envfactory.runtime.sandbox import SandboxLimits, SandboxPool
from envfactory.spec import ScenarioStep, ScenarioTest, StateAssertion, VerificationReport
from envfactory.verify.envchecks import verify_environment

LIBRARY = Path(__file__).parents[1] / "fixtures" / "envs" / "library"

BROKEN_TOOLKIT = '''
from __future__ import annotations

import time

from pydantic import BaseModel

from envfactory.runtime.toolkit import Toolkit, tool

_NOTES: list[str] = []  # module state: shared by every session the worker serves (the defect)


class BrokenState(BaseModel):
    total: int = 0


class Broken(Toolkit[BrokenState]):
    @tool(effect="write")
    def add(self, amount: int) -> int:
        """Add to the total (healthy).

        Args:
            amount: how much.
        """
        self.state.total += amount
        return self.state.total

    @tool(effect="read")
    def total(self) -> int:
        """The total (healthy)."""
        return self.state.total

    @tool(effect="write")
    def roll(self) -> int:
        """A number from the wall clock instead of the session RNG (nondeterministic)."""
        self.state.total += 1
        return time.perf_counter_ns() % 1000003

    @tool(effect="write")
    def remember(self, note: str) -> int:
        """Keep a note in module state instead of the session state (leaks between sessions).

        Args:
            note: the note.
        """
        _NOTES.append(note)
        return len(_NOTES)

    @tool(effect="read")
    def recall(self) -> list[str]:
        """Every note kept so far."""
        return list(_NOTES)

    @tool(effect="read")
    def explode(self, depth: int = 1) -> int:
        """Crash (a bug).

        Args:
            depth: ignored.
        """
        return depth // 0
'''


@pytest.fixture(scope="module")
def pool() -> Iterator[SandboxPool]:
    with SandboxPool(max_workers=2, limits=SandboxLimits(call_timeout_s=5.0)) as shared:
        yield shared


@pytest.fixture(scope="module")
def broken_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("broken")
    document = {
        "schema_version": 1,
        "format": "envfactory.python",
        "meta": {"name": "broken", "description": "A toolkit with planted defects."},
        "implementation": {"kind": "python", "module": "toolkit.py", "class_name": "Broken"},
    }
    (directory / "env.json").write_text(json.dumps(document))
    (directory / "toolkit.py").write_text(BROKEN_TOOLKIT)
    return directory


@pytest.fixture(scope="module")
def broken_report(broken_dir: Path, pool: SandboxPool) -> VerificationReport:
    return verify_environment(broken_dir, sandbox=pool, fuzz_calls=120)


@pytest.mark.parametrize("name", [*bundled_env_names(), str(LIBRARY)])
def test_reference_environments_are_verified(name: str) -> None:
    report = verify_environment(name, fuzz_calls=120)
    assert report.verdict == "verified", [c for c in report.checks if c.status == "failed"]
    assert report.failing_tools() == []
    statuses = {c.name: c.status for c in report.checks}
    assert statuses == {
        "load": "passed", "parity": "passed", "seed_roundtrip": "passed", "determinism": "passed",
        "isolation": "passed", "fuzz": "passed", "scenarios": "skipped", "differential": "skipped",
    }
    fuzz = report.check("fuzz")
    assert fuzz is not None and fuzz.counts["calls"] == 120 and fuzz.counts["ok"] > 0
    assert fuzz.counts["error:invalid_arguments"] > 0  # corrupted calls were really sent
    assert report.evidence_digest == report.compute_digest()


def test_reverifying_gives_the_same_report_and_digest_and_timings_are_not_hashed() -> None:
    first = verify_environment(LIBRARY, fuzz_calls=80)
    second = verify_environment(LIBRARY, fuzz_calls=80, record_timings=True)
    assert second.timings_ms and set(second.timings_ms) >= {"fuzz", "determinism"}
    assert first.evidence_digest == second.evidence_digest
    assert first.to_json_bytes() == second.model_copy(update={"timings_ms": {}}).to_json_bytes()
    other_seed = verify_environment(LIBRARY, fuzz_calls=80, seed=7)
    assert other_seed.verdict == "verified"
    assert other_seed.evidence_digest != first.evidence_digest  # the evidence really depends on the calls


def test_broken_toolkit_is_rejected_with_each_defect_blamed_on_its_tool(broken_report: VerificationReport) -> None:
    report = broken_report
    assert report.verdict == "rejected"
    by_name = {c.name: c for c in report.checks}
    assert by_name["load"].status == "passed"
    assert "roll" in by_name["determinism"].failing_tools
    # The sandbox gives every session its own copy of a toolkit's module globals (runtime/sandbox/isolation.py),
    # so notes kept in a module list no longer leak between sessions: isolation holds for them now.
    assert not {"remember", "recall"} & set(by_name["isolation"].failing_tools)
    assert by_name["fuzz"].failing_tools == ["explode"]
    assert any("ZeroDivisionError" in p for p in by_name["fuzz"].problems)
    blamed = report.failing_tools()
    assert {"roll", "explode"} <= set(blamed)
    assert not {"add", "total"} & set(blamed), blamed  # healthy tools are never blamed


def test_a_load_failure_rejects_and_skips_the_rest(broken_dir: Path) -> None:
    report = verify_environment(broken_dir)  # untrusted toolkit, no sandbox pool: refuses to load
    assert report.verdict == "rejected"
    assert report.checks[0].name == "load" and report.checks[0].status == "failed"
    assert "sandbox" in report.checks[0].problems[0].lower()
    assert {c.status for c in report.checks[1:]} == {"skipped"}


def _library_copy(tmp_path: Path) -> tuple[Path, dict]:
    target = tmp_path / "library"
    shutil.copytree(LIBRARY, target)
    return target, json.loads((target / "env.json").read_text())


def test_a_tool_source_missing_from_the_provenance_fails_parity_naming_the_tool(tmp_path: Path) -> None:
    target, document = _library_copy(tmp_path)
    for tool in document["tools"]:
        if tool["name"] == "add_book":
            tool["source"] = {"provider": "openapi:books.example", "service": "books", "operation_id": "createBook",
                              "field_names": {"isbn": "isbn13", "shelf": "shelfCode"}}
    (target / "env.json").write_text(json.dumps(document))
    report = verify_environment(target, fuzz_calls=40)
    parity = report.check("parity")
    assert parity is not None and parity.status == "failed"
    assert parity.failing_tools == ["add_book"]
    assert any("not listed in meta.provenance" in p for p in parity.problems)
    assert any("'shelf'" in p for p in parity.problems)  # a mapped parameter the tool does not have
    assert report.failing_tools() == ["add_book"]


def _with_stale_spec_json(tmp_path: Path) -> tuple[Path, Environment]:
    """A library copy whose spec.json lacks `list_books`, and the environment loaded before it went stale."""
    target, _ = _library_copy(tmp_path)
    env = load_env(target)
    stale = env.spec.model_copy(update={"tools": [t for t in env.spec.tools if t.name != "list_books"]}).seal()
    (target / "spec.json").write_bytes(stale.to_json_bytes())
    return target, env


def test_a_stale_spec_json_next_to_the_source_fails_load(tmp_path: Path) -> None:
    target, _ = _with_stale_spec_json(tmp_path)
    report = verify_environment(target, fuzz_calls=20)
    load = report.check("load")
    assert load is not None and load.status == "failed" and load.failing_tools == ["list_books"]


@pytest.mark.parametrize("ref", [bundled_env_names()[0], str(LIBRARY)])
def test_an_environment_given_loaded_gets_the_report_of_its_directory(ref: str) -> None:
    # the library build hands verification the environment it opened from the bytes it wrote: the
    # `load` evidence (spec hash, seed names and counts) and so the whole report must not depend on that
    from_disk = verify_environment(ref, fuzz_calls=40)
    given = verify_environment(load_env(ref), fuzz_calls=40)
    assert given.to_json_bytes() == from_disk.to_json_bytes()
    load = given.check("load")
    assert load is not None and load.counts["seeds"] >= 1 and load.counts["tools"] >= 1


def test_a_stale_spec_json_fails_load_also_for_an_environment_given_loaded(tmp_path: Path) -> None:
    target, env = _with_stale_spec_json(tmp_path)
    report = verify_environment(env, fuzz_calls=20)
    load = report.check("load")
    assert load is not None and load.status == "failed" and load.failing_tools == ["list_books"]
    assert report.to_json_bytes() == verify_environment(target, fuzz_calls=20).to_json_bytes()


def test_scenarios_are_run_and_tallied_per_oracle() -> None:
    passing = ScenarioTest(
        id="add-then-find", title="A new book is listed", oracle="spec_example", source="hand-written test",
        steps=[
            ScenarioStep(tool="add_book", arguments={"isbn": "9780000000017", "title": "Dune", "copies": 2},
                         expect_output={"isbn": "9780000000017", "title": "Dune"}),
            ScenarioStep(tool="add_member", arguments={"name": "Ann", "email": "ann@example.org"},
                         expect_output={"id": "mem_x", "name": "Ann"}, volatile=["id"], capture={"member": "id"}),
            ScenarioStep(tool="borrow_book", arguments={"member_id": "${member}", "isbn": "9780000000017"},
                         expect_output={"member_id": "${member}", "status": "open"}),
            ScenarioStep(tool="add_book", arguments={"isbn": "9780000000017", "title": "Again", "copies": 1},
                         expect_error="rule_violation"),
        ],
        state_assertions=[
            StateAssertion(collection="books", key="9780000000017", expect={"copies": 1}),
            StateAssertion(collection="loans", filter={"isbn": "9780000000017"}, expect={"status": "open"}),
            StateAssertion(collection="members", filter={"email": "nobody@example.org"}, expect="absent"),
        ],
    )
    failing = ScenarioTest(
        id="wrong-copies", title="An oracle our env disagrees with", oracle="awscli_example", source="hand-written test",
        steps=[ScenarioStep(tool="add_book", arguments={"isbn": "9780000000024", "title": "Emma", "copies": 3},
                            expect_output={"copies": 4})],
    )
    report = verify_environment(LIBRARY, [passing, failing], fuzz_calls=20)
    scenarios = report.check("scenarios")
    assert scenarios is not None and scenarios.status == "failed"
    assert scenarios.failing_tools == ["add_book"]
    assert scenarios.counts == {"passed": 1, "scenarios": 2}
    assert {k: (v.passed, v.total) for k, v in report.scenarios_by_oracle.items()} == {
        "spec_example": (1, 1), "awscli_example": (0, 1)
    }
    assert report.failing_tools() == ["add_book"]


def test_the_digest_is_the_same_in_processes_with_different_hash_seeds() -> None:
    code = (
        "from envfactory.verify.envchecks import verify_environment;"
        f"print(verify_environment({str(LIBRARY)!r}, fuzz_calls=60).evidence_digest)"
    )
    digests = {
        subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONHASHSEED": seed},
                       capture_output=True, text=True, check=True).stdout.strip()
        for seed in ("1", "2")
    }
    assert digests == {verify_environment(LIBRARY, fuzz_calls=60).evidence_digest}
