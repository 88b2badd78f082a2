"""`eval run` on the BFCL categories added by issue 18: the suites exist, unexpressible composite entries are
skipped with a warning naming each (the rest of the suite runs), and the agent is never given the
official-compat environments."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

pytest.importorskip("bfcl.eval_checker.multi_turn_eval.multi_turn_checker")
pytest.importorskip("mpmath")

from envfactory.eval import bfcl
from envfactory.eval.run import SUITES, EvalConfig, SuiteSelection, require_suites, select_tasks
from envfactory.runtime.sandbox import SandboxPool


def test_every_bfcl_category_is_a_suite() -> None:
    assert {f"bfcl_{c}" for c in bfcl.CATEGORIES} <= set(SUITES)
    require_suites([SuiteSelection(suite="bfcl_composite")])  # installed: no error


def test_composite_suite_skips_unexpressible_entries_by_name_and_keeps_the_rest(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = EvalConfig(suites=[SuiteSelection(suite="bfcl_composite"),
                                SuiteSelection(suite="bfcl_long_context", count=2),
                                SuiteSelection(suite="bfcl_miss_param", count=2)], model="none")
    with caplog.at_level(logging.WARNING, logger="envfactory.eval.run"), SandboxPool(max_workers=2) as pool:
        items = select_tasks(config, sandbox=pool, workdir=tmp_path)
    counts = {suite: sum(1 for i in items if i.suite == suite) for suite in ("bfcl_composite", "bfcl_long_context",
                                                                            "bfcl_miss_param")}
    assert counts == {"bfcl_composite": 184, "bfcl_long_context": 2, "bfcl_miss_param": 2}
    skipped = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(skipped) == 16
    assert any("multi_turn_composite_45" in m and "does not parse" in m for m in skipped)
    ids = {i.task.origin.source_id for i in items}
    assert "multi_turn_composite_45" not in ids and "multi_turn_composite_44" in ids
    # long-context tasks load the long-context scenarios; the agent's tools carry no unchecked-call tool
    long = next(i for i in items if i.suite == "bfcl_long_context")
    assert all(isinstance(state, dict) and state["long_context"] is True for state in long.task.initial_state.values())
    assert not [t.name for i in items for env in i.envs for t in env.spec.tools if t.name.startswith("raw_call_")]
