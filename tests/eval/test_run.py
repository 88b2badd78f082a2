"""`eval.run`: the agent on BFCL and τ² tasks, scored, reported and resumable.

The model is one of the scripted oracles of `run_oracles.py`: `GoldClient` answers what a model that
knows the gold calls would answer in the agent loop's protocol (and plays the τ² user); `SilentClient`
never calls a tool. Both return the exact response shapes the local provider returns.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("bfcl.eval_checker.multi_turn_eval.multi_turn_checker")
pytest.importorskip("mpmath")
pytest.importorskip("tau2.domains.airline.environment")

from run_oracles import GoldClient, SilentClient

from envfactory.agent import AgentSettings
from envfactory.cli.app import app
from envfactory.eval.report import EvalReport
from envfactory.eval.run import (
    ATTEMPTS_FILE,
    EvalConfig,
    EvalItem,
    EvalRunError,
    SuiteSelection,
    read_attempts,
    run_eval,
    select_tasks,
)
from envfactory.runtime.sandbox import SandboxPool
from envfactory.store import RunDir, Workspace

SUITES = [SuiteSelection(suite="bfcl_base", count=1), SuiteSelection(suite="bfcl_miss_func", count=2),
          SuiteSelection(suite="tau2_airline", count=4)]
AGENT = AgentSettings(max_steps_per_turn=12)  # room for the longest gold turn plus the answer


@pytest.fixture(scope="module")
def pool() -> Iterator[SandboxPool]:
    with SandboxPool(max_workers=4) as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def items(pool: SandboxPool, tmp_path_factory: pytest.TempPathFactory) -> list[EvalItem]:
    config = EvalConfig(suites=SUITES, seed=3, model="x")
    chosen = select_tasks(config, sandbox=pool, workdir=tmp_path_factory.mktemp("work"))
    # τ² tasks whose gold includes a write: a silent agent cannot pass them
    writes = {t.name for t in chosen[-1].envs[0].spec.tools if t.effect == "write"}
    keep = [i for i in chosen if i.suite != "tau2_airline" or any(c.tool in writes for c in i.task.gold_calls())]
    assert len([i for i in keep if i.suite == "tau2_airline"]) >= 1
    return keep


def _run(tmp: Path, client: object, items: list[EvalItem], run_id: str, **kwargs: object) -> EvalReport:
    config = EvalConfig(suites=SUITES, seed=3, model=client.model_id, k=kwargs.pop("k", 1), agent=AGENT)  # type: ignore[attr-defined, arg-type]
    run_dir = RunDir.create(Workspace(tmp).ensure(), run_id)
    return run_eval(config, client, run_dir, items, **kwargs)  # type: ignore[arg-type]


def test_gold_playing_agent_passes_everything_and_silent_agent_nothing(tmp_path: Path, items: list[EvalItem]) -> None:
    gold = _run(tmp_path, GoldClient([i.task for i in items]), items, "gold")
    assert gold.overall.pass_at_1 == 1.0 and gold.overall.mean_reward == 1.0
    assert set(gold.by_suite) == {"bfcl_base", "bfcl_miss_func", "tau2_airline"}
    assert gold.by_suite["bfcl_base"].tasks == 1 and gold.overall.tasks == len(items)
    assert gold.overall.components["tau2_db"] == 1.0 and gold.overall.components["bfcl_multi_turn"] == 1.0
    assert any(env.startswith("bfcl_") for env in gold.by_environment) and "tau2_airline" in gold.by_environment

    silent = _run(tmp_path, SilentClient(), items, "silent")
    assert silent.overall.pass_at_1 == 0.0 and silent.overall.mean_reward == 0.0
    records = read_attempts(tmp_path / "runs" / "silent" / ATTEMPTS_FILE)
    assert all(r.tool_calls == 0 and not r.passed and r.verdict for r in records)
    assert any("empty_turn" in r.verdict for r in records if r.suite.startswith("bfcl"))

    run_dir = tmp_path / "runs" / "gold"
    for name in ("config.json", "attempts.jsonl", "report.json", "report.md", "by_suite.svg", "by_environment.svg"):
        assert (run_dir / name).is_file(), name
    assert EvalReport.model_validate_json((run_dir / "report.json").read_bytes()) == gold
    markdown = (run_dir / "report.md").read_text()
    assert "| bfcl_miss_func | 2 | 2 | 100.0% |" in markdown and "![by_suite](by_suite.svg)" in markdown
    assert (run_dir / "by_suite.svg").read_text().startswith("<svg")


def test_pass_hat_k_counts_tasks_whose_every_attempt_passed(tmp_path: Path, items: list[EvalItem]) -> None:
    report = _run(tmp_path, GoldClient([i.task for i in items]), items[:2], "k3", k=3)
    assert report.overall.attempts == 6 and report.overall.pass_hat_k == 1.0
    seeds = {r.seed for r in read_attempts(tmp_path / "runs" / "k3" / ATTEMPTS_FILE)}
    assert len(seeds) == 6  # every (task, attempt) has its own seed


class Killed(Exception):
    pass


def test_a_killed_run_resumes_without_loss_or_duplicates(tmp_path: Path, items: list[EvalItem]) -> None:
    tasks = [i.task for i in items]
    whole = _run(tmp_path, GoldClient(tasks), items, "whole")
    whole_bytes = (tmp_path / "runs" / "whole" / ATTEMPTS_FILE).read_bytes()

    def kill_after_three(event: object) -> None:
        if getattr(event, "done", 0) == 3 and getattr(event, "record", None) is not None:
            raise Killed

    with pytest.raises(Killed):
        _run(tmp_path, GoldClient(tasks), items, "killed", on_progress=kill_after_three)
    path = tmp_path / "runs" / "killed" / ATTEMPTS_FILE
    assert len(read_attempts(path)) == 3
    with path.open("ab") as handle:  # a torn line from a kill in the middle of a write
        handle.write(b'{"schema_version": 1, "suite": "bfcl_b')
    with pytest.raises(EvalRunError, match="--resume"):
        _run(tmp_path, GoldClient(tasks), items, "killed")
    client = GoldClient(tasks)
    resumed = _run(tmp_path, client, items, "killed", resume=True)
    keys = [r.key for r in read_attempts(path)]
    assert len(keys) == len(set(keys)) == len(items)
    assert path.read_bytes() == whole_bytes  # same order, same bytes: nothing lost, nothing twice
    assert resumed == whole.model_copy(update={"run_id": "killed"})
    again = GoldClient(tasks)
    _run(tmp_path, again, items, "killed", resume=True)
    assert again.calls == 0  # everything finished: nothing reruns


def test_missing_benchmark_package_is_reported_with_the_install_command(monkeypatch: pytest.MonkeyPatch,
                                                                         tmp_path: Path) -> None:
    from typer.testing import CliRunner

    import envfactory.eval.bfcl as bfcl_module

    real = bfcl_module.importlib.import_module

    def no_bfcl(name: str, *args: object) -> object:
        if name.startswith("bfcl"):
            raise ImportError(f"No module named {name!r}")
        return real(name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(bfcl_module.importlib, "import_module", no_bfcl)
    cassette = tmp_path / "empty.jsonl"
    cassette.write_text("")
    result = CliRunner().invoke(app, ["eval", "run", "--suite", "bfcl_base", "--llm", "replay:" + str(cassette),
                                      "-w", str(tmp_path)])
    assert result.exit_code == 1
    assert "pip install --no-deps nvidia-bfcl==26.3" in result.output
