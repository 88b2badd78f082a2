"""Executors on this machine: `SerialExecutor` (in process) and `PoolExecutor` (a local process pool).

Contract (shared with `RayExecutor`):
- `map(function, items, on_outcome=None) -> list[Outcome]` runs `function` on every item and returns one
  `Outcome` per item in the items' order, whatever order they finished in, so the same items give the
  same results on every executor (results are validated back into the function's result type).
- An item whose function raised a deliberate error (`EnvFactoryError`) fails at once with the reason;
  any other error is retried, at most `max_attempts` tries in all, then recorded as failed.
- Pool: a worker that dies (killed, out of memory, a segfault in a native library) breaks the pool for
  every item in flight; those items are then run again one at a time, each in its own process, so the
  one that kills its worker is found and recorded as failed with how its worker ended ("worker died:
  SIGKILL") after `max_attempts` tries, and the others complete. The pool is rebuilt for what is left.
- Workers start with `forkserver` (no inherited threads or open model handles) and import the work
  function by name; nothing but references and JSON bytes cross the process boundary.
- Pool workers are started on the first `map` and kept until `close()`, so what a worker loads for its
  first item serves every later call (synthesis waves, library-build windows); a pool a dying worker
  broke is replaced by a fresh one.
- Workers leave within about a second of their driver's death (`follow_driver`), even a `kill -9`: no
  orphan goes on computing an item nobody will read. The driver's checkpoints decide what a resume redoes.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from envfactory.exec.work import (
    ItemT,
    Outcome,
    ResultT,
    WorkSpec,
    describe,
    is_permanent,
    item_key,
    run_encoded,
)
from envfactory.spec import SpecModel

OnOutcome = Callable[[Outcome[Any]], None]


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


@dataclass(slots=True)
class Batch:
    """Book-keeping of one `map` call: tries per item and the settled outcomes (shared by executors)."""

    spec: WorkSpec[Any, Any]
    items: Sequence[SpecModel]
    max_attempts: int
    on_outcome: OnOutcome | None
    payloads: list[bytes] = field(default_factory=list)
    attempts: list[int] = field(default_factory=list)
    outcomes: dict[int, Outcome[Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.payloads = [item.to_json_bytes() for item in self.items]
        self.attempts = [0] * len(self.items)

    def settle(self, index: int, ok: bool, data: bytes, reason: str) -> bool:
        """Record one try of item `index`; True when the item is settled (done or given up)."""
        self.attempts[index] += 1
        if ok:
            result = self.spec.result_type.model_validate_json(data)
            self._done(Outcome(index, item_key(self.items[index]), self.attempts[index], result=result))
            return True
        if is_permanent(reason) or self.attempts[index] >= self.max_attempts:
            self._done(Outcome(index, item_key(self.items[index]), self.attempts[index], error=reason))
            return True
        return False

    def fail_all(self, indices: Sequence[int], reason: str) -> None:
        """Give up on items without another try (the executor itself is gone)."""
        for index in indices:
            self._done(Outcome(index, item_key(self.items[index]), max(1, self.attempts[index]), error=reason))

    def _done(self, outcome: Outcome[Any]) -> None:
        self.outcomes[outcome.index] = outcome
        if self.on_outcome is not None:
            self.on_outcome(outcome)

    def ordered(self) -> list[Outcome[Any]]:
        """The outcomes in the items' order (every item must be settled)."""
        return [self.outcomes[i] for i in range(len(self.items))]


class SerialExecutor:
    """Every item in this process, one after the other (tests, debugging, single-core machines)."""

    name = "serial"

    def __init__(self, *, max_attempts: int = 3) -> None:
        """Run in this process, trying an item at most `max_attempts` times."""
        self.workers = 1
        self.max_attempts = max_attempts

    def map(self, function: Callable[[ItemT], ResultT], items: Sequence[ItemT],
            on_outcome: OnOutcome | None = None) -> list[Outcome[ResultT]]:
        """Run `function` on every item; outcomes in the items' order."""
        batch = Batch(describe(function), items, self.max_attempts, on_outcome)
        for index, payload in enumerate(batch.payloads):
            while not batch.settle(index, *run_encoded(batch.spec.reference, payload)):
                pass
        return batch.ordered()

    def close(self) -> None:
        """Nothing to release."""


def _exit_reason(exitcode: int | None) -> str:
    if exitcode is None:
        return "worker died: it did not exit"
    if exitcode < 0:
        try:
            return f"worker died: {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"worker died: signal {-exitcode}"
    return f"worker died: exit code {exitcode}"


DRIVER_POLL_S = 1.0
"""How often a worker checks that its driver is still alive."""


def follow_driver(driver: int) -> None:
    """Worker initializer: leave as soon as the driver process `driver` is gone. A driver killed by a signal
    runs no clean-up, and its workers, children of the forkserver rather than of the driver, would otherwise
    finish the item in hand (model calls: minutes) for nobody."""

    def watch() -> None:
        while True:
            time.sleep(DRIVER_POLL_S)
            if not _alive(driver):
                os._exit(70)  # EX_SOFTWARE: no clean-up of a half-done item is worth running

    threading.Thread(target=watch, name="envfactory-driver-watch", daemon=True).start()


def _alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, killed and not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process under a reused id: ours is gone
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def _isolated_entry(connection: Connection, reference: str, payload: bytes, driver: int) -> None:
    follow_driver(driver)
    connection.send(run_encoded(reference, payload))
    connection.close()


class PoolExecutor:
    """A local process pool (default size: the usable cores)."""

    name = "pool"

    def __init__(self, *, workers: int | None = None, max_attempts: int = 3) -> None:
        """A pool of `workers` processes (default: the usable cores), started on first use; an item is
        tried at most `max_attempts` times."""
        self.workers = workers or usable_cores()
        self.max_attempts = max_attempts
        self._context = multiprocessing.get_context("forkserver")
        self._pool: ProcessPoolExecutor | None = None

    def _workers(self) -> ProcessPoolExecutor:
        """The pool's processes, started on first use and kept between `map` calls: a worker's context (the
        environments, graphs and model it loaded for its first item) serves every later wave too."""
        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=self._context,
                                             initializer=follow_driver, initargs=(os.getpid(),))
        return self._pool

    def _discard(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def map(self, function: Callable[[ItemT], ResultT], items: Sequence[ItemT],
            on_outcome: OnOutcome | None = None) -> list[Outcome[ResultT]]:
        """Run `function` on every item in worker processes; outcomes in the items' order."""
        batch = Batch(describe(function), items, self.max_attempts, on_outcome)
        pending = list(range(len(items)))
        while pending:
            retry, suspects = self._round(batch, pending)
            for index in suspects:  # one at a time, each alone in a process: find the item that kills
                while not batch.settle(index, *self._isolated(batch.spec.reference, batch.payloads[index])):
                    pass
            pending = retry
        return batch.ordered()

    def _round(self, batch: Batch, pending: list[int]) -> tuple[list[int], list[int]]:
        """Submit `pending` to the pool; (items to try again, items in flight when a worker died). A broken
        pool is discarded; the next round starts a fresh one."""
        retry: list[int] = []
        suspects: list[int] = []
        pool = self._workers()
        futures: dict[Future[tuple[bool, bytes, str]], int] = {
            pool.submit(run_encoded, batch.spec.reference, batch.payloads[index]): index for index in pending
        }
        for future in as_completed(futures):
            index = futures[future]
            try:
                answer = future.result()
            except BrokenProcessPool:
                suspects.append(index)
                continue
            if not batch.settle(index, *answer):
                retry.append(index)
        if suspects:
            self._discard()
        # The pool hands items to workers in submission order and queues at most one more than it has
        # workers, so the items in flight when it broke are the first `workers + 1` of the broken ones;
        # the rest never started and go back to the next pool without a try counted against them.
        suspects.sort()
        in_flight = self.workers + 1
        return sorted(retry + suspects[in_flight:]), suspects[:in_flight]

    def _isolated(self, reference: str, payload: bytes) -> tuple[bool, bytes, str]:
        receiver, sender = self._context.Pipe(duplex=False)
        process = self._context.Process(target=_isolated_entry, args=(sender, reference, payload, os.getpid()),
                                        daemon=True)
        process.start()
        sender.close()
        try:
            answer: tuple[bool, bytes, str] = receiver.recv()
        except EOFError:
            process.join()
            return False, b"", _exit_reason(process.exitcode)
        finally:
            receiver.close()
        process.join()
        return answer

    def close(self) -> None:
        """Stop the worker processes (idempotent); a later `map` starts new ones."""
        self._discard()
