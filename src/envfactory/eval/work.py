"""Evaluation attempts as `exec` work items: `eval_attempt(EvalAttemptItem) -> AttemptRecord`.

Contract: an item names one (suite, task, attempt) of a run's `EvalConfig` and the models a worker opens
(`WorkerModel`s). The worker selects the run's tasks itself with the same seeded `select_tasks` (once per
process, with its own sandbox pool for BFCL backends, generated in a directory of its own) and runs the
attempt exactly as `run_eval` does in its own process (`run_attempt`), so the records — and with cached or
replayed answers every byte of `attempts.jsonl` and the report — are the same on every executor. An item
whose task is not in the selection is a `EvalRunError` (permanent).
"""

from __future__ import annotations

import atexit
import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from envfactory.agent import UserSimulator
from envfactory.eval.report import AttemptRecord
from envfactory.eval.run import EvalConfig, EvalItem, EvalRunError, Suite, run_attempt, select_tasks
from envfactory.llm.workers import worker_client
from envfactory.runtime.sandbox import SandboxPool
from envfactory.spec import SpecModel
from envfactory.spec.work_items import WorkerModel


class EvalAttemptItem(SpecModel):
    """One attempt of one task of an evaluation run, with where the worker generates BFCL backends
    (`workdir`, a directory every worker can write) and the workspace's own environments (`envs_dir`)."""

    schema_version: Literal[1] = 1
    config: EvalConfig
    suite: Suite
    task_id: str
    attempt: int
    model: WorkerModel
    user_model: WorkerModel | None = None
    workdir: str
    envs_dir: str = ""


@dataclass(frozen=True, slots=True)
class _Selection:
    items: dict[tuple[str, str], EvalItem]


def eval_attempt(item: EvalAttemptItem) -> AttemptRecord:
    """The `AttemptRecord` of `item` (see the module contract)."""
    selection = _selection(item.config.to_json_bytes(), item.workdir, item.envs_dir)
    chosen = selection.items.get((item.suite, item.task_id))
    if chosen is None:
        raise EvalRunError(f"task {item.task_id[:12]} is not in the run's {item.suite} selection")
    client = worker_client(item.model)
    user = UserSimulator(worker_client(item.user_model or item.model), item.config.user)
    return run_attempt(item.config, client, user, chosen, item.attempt)


# A per-process memo of the worker's selection (tasks, environments, its sandbox pool): results never
# depend on it, only the cost of a process's first attempt does. The pool closes when the worker exits.
@functools.lru_cache(maxsize=1)
def _selection(config_bytes: bytes, workdir: str, envs_dir: str) -> _Selection:
    config = EvalConfig.model_validate_json(config_bytes)
    pool = SandboxPool(max_workers=2)
    atexit.register(pool.close)
    own = Path(workdir) / f"worker-{os.getpid()}"  # generated BFCL backends: one directory per process
    chosen = select_tasks(config, sandbox=pool, workdir=own, envs_dir=Path(envs_dir) if envs_dir else None)
    return _Selection({(i.suite, i.task.id): i for i in chosen})
