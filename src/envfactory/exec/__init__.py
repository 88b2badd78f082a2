"""`exec`: where independent work items run — serially, on a local process pool, or on Ray.

Items carry only what they need (paths, seeds, configs) and results come back as typed artifacts:
a work function is a module-level `f(item: SomeSpecModel) -> OtherSpecModel`, imported by name in the
worker, and only its reference and JSON bytes cross the process boundary. Every executor returns one
`Outcome` per item in the items' order, so a batch gives the same results (byte for byte, once
written) on `serial`, `pool` and `ray`. Failures are bounded: deliberate errors fail the item at once,
transient ones and dead workers are retried up to `max_attempts` tries, then recorded with the reason.

`make_executor(ExecutorConfig)` picks one; `Executor` is the protocol the layers above accept
(`build`, `synth`, `eval` may import `exec`; `exec` imports only `spec`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from envfactory.exec.local import OnOutcome, PoolExecutor, SerialExecutor, usable_cores
from envfactory.exec.ray_cluster import RAY_INSTALL, RayExecutor, ray_available
from envfactory.exec.work import ExecutorError, ItemT, Outcome, ResultT, describe, item_key, run_encoded
from envfactory.spec.pipeline import ExecutorConfig, WorkFailure


class Executor(Protocol):
    """Runs a work function over items; see the package docstring for the contract."""

    name: str
    workers: int

    def map(self, function: Callable[[ItemT], ResultT], items: Sequence[ItemT],
            on_outcome: OnOutcome | None = None) -> list[Outcome[ResultT]]:
        """Apply `function` to every item; one `Outcome` per item in `items`' order, each reported to
        `on_outcome` as it is settled. A failed item is an outcome with `error`, never an exception."""

    def close(self) -> None:
        """Release the executor's workers (idempotent)."""


def make_executor(config: ExecutorConfig) -> Executor:
    """The executor a config names (Ray: an `ExecutorError` with the install command when missing)."""
    if config.kind == "serial":
        return SerialExecutor(max_attempts=config.max_attempts)
    if config.kind == "pool":
        return PoolExecutor(workers=config.workers, max_attempts=config.max_attempts)
    return RayExecutor(address=config.ray_address, workers=config.workers, max_attempts=config.max_attempts)


def failures(outcomes: Sequence[Outcome[ResultT]]) -> list[WorkFailure]:
    """The failed outcomes as `WorkFailure` records (for a stage manifest or a run summary)."""
    return [WorkFailure(index=o.index, key=o.key, attempts=o.attempts, reason=o.error or "unknown")
            for o in outcomes if not o.ok]


__all__ = [
    "RAY_INSTALL",
    "Executor",
    "ExecutorError",
    "OnOutcome",
    "Outcome",
    "PoolExecutor",
    "RayExecutor",
    "SerialExecutor",
    "describe",
    "failures",
    "item_key",
    "make_executor",
    "ray_available",
    "run_encoded",
    "usable_cores",
]
