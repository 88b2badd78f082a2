"""`RayExecutor`: work items as Ray tasks, on a local cluster (`ray.init()`) or an existing one.

Contract (the `map` contract of `exec.local` holds: outcomes in the items' order, typed results,
bounded tries, deliberate errors not retried):
- Ray is an optional extra. Without it, creating the executor raises `ExecutorError` naming the install
  command (`pip install -e '.[ray]'`).
- `address=None` starts a private local cluster with `workers` CPUs (the usable cores by default);
  `address="auto"` or `"ray://host:10001"` joins a running one, whose workers must have envfactory
  installed (the work function is imported there by name). The executor shuts down only a cluster it
  started itself.
- A worker that dies is retried by Ray itself (`max_retries = max_attempts - 1`); when those tries are
  spent the item is recorded as failed with Ray's reason. A cluster that vanishes mid-run fails every
  unfinished item with the reason, so the run ends with a summary and can be resumed.
- Only the work function's reference and JSON bytes go to the cluster.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any

from envfactory.exec.local import Batch, OnOutcome, usable_cores
from envfactory.exec.work import ExecutorError, ItemT, Outcome, ResultT, describe, run_encoded

RAY_INSTALL = "pip install -e '.[ray]'  (or: pip install 'ray==2.60.0')"


def _import_ray() -> Any:
    try:
        return importlib.import_module("ray")
    except ImportError as exc:
        raise ExecutorError(f"--executor ray needs Ray, which is not installed; install it with: {RAY_INSTALL}") from exc


def ray_available() -> bool:
    """Whether Ray can be imported here."""
    try:
        _import_ray()
    except ExecutorError:
        return False
    return True


class RayExecutor:
    """Items as Ray tasks (one CPU each)."""

    name = "ray"

    def __init__(self, *, address: str | None = None, workers: int | None = None, max_attempts: int = 3) -> None:
        """Join the Ray cluster at `address`, or start a private local one of `workers` CPUs (default: the
        usable cores) unless Ray is already initialised; an `ExecutorError` when Ray is missing or
        cannot be started or reached. Ray retries an item at most `max_attempts - 1` times."""
        self._ray = _import_ray()
        self.address = address
        self.max_attempts = max_attempts
        self._started_here = False
        if not self._ray.is_initialized():
            options: dict[str, Any] = {"address": address, "include_dashboard": False,
                                       "log_to_driver": False, "configure_logging": False}
            if address is None:  # a private local cluster, sized like the pool
                options |= {"num_cpus": workers or usable_cores(), "object_store_memory": 200 * 1024 * 1024}
            try:
                self._ray.init(**options)
            except Exception as exc:
                where = address or "a local cluster"
                raise ExecutorError(f"cannot start or reach Ray at {where}: {type(exc).__name__}: {exc}") from exc
            self._started_here = True
        self.workers = int(self._ray.cluster_resources().get("CPU", 1))
        self._remote = self._ray.remote(num_cpus=1, max_retries=max_attempts - 1, retry_exceptions=False)(run_encoded)

    def map(self, function: Callable[[ItemT], ResultT], items: Sequence[ItemT],
            on_outcome: OnOutcome | None = None) -> list[Outcome[ResultT]]:
        """Run `function` on every item as Ray tasks; outcomes in the items' order."""
        ray = self._ray
        batch = Batch(describe(function), items, self.max_attempts, on_outcome)
        waiting = {self._remote.remote(batch.spec.reference, batch.payloads[i]): i for i in range(len(items))}
        while waiting:
            try:
                ready, _ = ray.wait(list(waiting), num_returns=1)
            except Exception as exc:  # the cluster is gone: nothing left can finish
                batch.fail_all(sorted(waiting.values()), f"Ray cluster lost: {type(exc).__name__}: {exc}")
                break
            ref = ready[0]
            index = waiting.pop(ref)
            try:
                answer = ray.get(ref)
            except ray.exceptions.RayError as exc:  # worker died and Ray's own retries are spent
                batch.attempts[index] = self.max_attempts - 1
                batch.settle(index, False, b"", f"worker died (Ray): {type(exc).__name__}: {str(exc).splitlines()[0][:300]}")
                continue
            if not batch.settle(index, *answer):
                waiting[self._remote.remote(batch.spec.reference, batch.payloads[index])] = index
        return batch.ordered()

    def close(self) -> None:
        """Shut down the cluster when this executor started it."""
        if self._started_here and self._ray.is_initialized():
            self._ray.shutdown()
            self._started_here = False
