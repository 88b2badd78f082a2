"""The exec contract on the serial path and the local process pool: same results in the same order,
bounded tries, deliberate errors not retried, a worker that dies found and recorded with its signal."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from exec_workload import EpisodeItem, TroubleItem, episode, trouble

from envfactory.exec import (
    ExecutorError,
    PoolExecutor,
    SerialExecutor,
    describe,
    failures,
    make_executor,
    usable_cores,
)
from envfactory.spec import ExecutorConfig, canonical_json

ITEMS = [EpisodeItem(env=env, seed=seed) for env in ("shop", "calendar", "tracker") for seed in (0, 1)]


def _bytes(outcomes: list) -> bytes:  # type: ignore[type-arg]
    return b"".join(canonical_json(o.result.model_dump(mode="json")) + b"\n" for o in outcomes)


def test_serial_and_pool_give_byte_identical_results_in_item_order() -> None:
    serial = SerialExecutor().map(episode, ITEMS)
    pool = PoolExecutor(workers=2).map(episode, ITEMS)
    assert all(o.ok and o.attempts == 1 for o in serial + pool)
    assert [o.result.env for o in pool] == [i.env for i in ITEMS]  # type: ignore[union-attr]
    assert _bytes(serial) == _bytes(pool)
    # different seeds really differ: the comparison above is not of constants
    assert serial[0].result != serial[1].result


def test_pool_runs_items_in_other_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXEC_TEST_PARENT", str(os.getpid()))
    outcomes = PoolExecutor(workers=2).map(trouble, [TroubleItem(value=v) for v in range(4)])
    assert [o.result.value for o in outcomes] == [0, 1, 4, 9]  # type: ignore[union-attr]
    assert all(o.result.pid_is_worker for o in outcomes)  # type: ignore[union-attr]
    serial = SerialExecutor().map(trouble, [TroubleItem(value=3)])
    assert serial[0].result.pid_is_worker is False  # type: ignore[union-attr]


def test_pool_workers_serve_every_map_until_closed(tmp_path: Path) -> None:
    pool = PoolExecutor(workers=2)
    marker = str(tmp_path / "pids")
    try:
        for wave in range(3):
            items = [TroubleItem(value=wave * 4 + v, behaviour="record_pid", marker=marker) for v in range(4)]
            assert [o.result.value for o in pool.map(trouble, items)] == [i.value ** 2 for i in items]  # type: ignore[union-attr]
        pids = set((tmp_path / "pids").read_text().split())
        assert 1 <= len(pids) <= 2  # three waves, the same (at most two) processes
    finally:
        pool.close()
    assert not any(_running(int(pid)) for pid in pids)
    pool.map(trouble, [TroubleItem(value=5, behaviour="record_pid", marker=marker)])  # a closed pool starts anew
    pool.close()
    assert len(set((tmp_path / "pids").read_text().split()) - pids) == 1


@pytest.mark.parametrize("kind", ["serial", "pool"])
def test_failures_are_bounded_and_deliberate_errors_are_not_retried(kind: str, tmp_path: Path) -> None:
    executor = make_executor(ExecutorConfig(kind=kind, workers=2, max_attempts=3))  # type: ignore[arg-type]
    items = [
        TroubleItem(value=1, behaviour="permanent", marker=str(tmp_path / "p")),
        TroubleItem(value=2, behaviour="transient_once", marker=str(tmp_path / "t")),
        TroubleItem(value=3, behaviour="always_transient", marker=str(tmp_path / "a")),
        TroubleItem(value=4),
    ]
    outcomes = executor.map(trouble, items)
    permanent, transient, always, fine = outcomes
    assert not permanent.ok and permanent.attempts == 1 and "SpecError: item 1 is malformed" in (permanent.error or "")
    assert transient.ok and transient.attempts == 2 and transient.result.value == 4  # type: ignore[union-attr]
    assert not always.ok and always.attempts == 3 and "No space left on device" in (always.error or "")
    assert fine.ok and fine.result.value == 16  # type: ignore[union-attr]
    assert (tmp_path / "a").read_text() == "xxx" and (tmp_path / "p").read_text() == "x"
    assert [f.index for f in failures(outcomes)] == [0, 2]


def test_a_worker_that_dies_is_found_retried_and_recorded_and_the_others_finish(tmp_path: Path) -> None:
    items = [TroubleItem(value=v) for v in range(6)]
    items[2] = TroubleItem(value=2, behaviour="kill", marker=str(tmp_path / "k"))
    seen: list[int] = []
    outcomes = PoolExecutor(workers=2, max_attempts=2).map(trouble, items, on_outcome=lambda o: seen.append(o.index))
    assert sorted(seen) == list(range(6))
    killed = outcomes[2]
    assert not killed.ok and killed.attempts == 2 and killed.error == "worker died: SIGKILL"
    # it was tried once in the shared pool and twice alone: no more
    assert (tmp_path / "k").read_text() == "xxx"
    assert [o.result.value for o in outcomes if o.ok] == [0, 1, 9, 16, 25]  # type: ignore[union-attr]


DRIVER = """
import sys
from exec_workload import TroubleItem, trouble
from envfactory.exec import PoolExecutor

if __name__ == "__main__":
    items = [TroubleItem(value=v, behaviour="hang", marker=f"{sys.argv[1]}/{v}") for v in range(2)]
    PoolExecutor(workers=2).map(trouble, items)
"""


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_workers_leave_when_their_driver_is_killed(tmp_path: Path) -> None:
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    driver = subprocess.Popen([sys.executable, str(script), str(tmp_path)], env=env)
    try:
        deadline = time.monotonic() + 120
        while len(list(tmp_path.glob("*.pid"))) < 2 and time.monotonic() < deadline:
            assert driver.poll() is None, "the driver ended before its workers started"
            time.sleep(0.2)
        workers = [int(p.read_text()) for p in tmp_path.glob("*.pid")]
        assert len(workers) == 2 and all(_running(pid) for pid in workers)
    finally:
        driver.kill()  # no clean-up runs in the driver
        driver.wait()
    deadline = time.monotonic() + 15
    while any(_running(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_running(pid) for pid in workers), "pool workers outlived their killed driver"


def test_work_functions_must_be_module_level_and_typed() -> None:
    def local(item: EpisodeItem) -> EpisodeItem:
        return item

    with pytest.raises(ExecutorError, match="module-level"):
        describe(local)
    with pytest.raises(ExecutorError, match="SpecModel"):
        describe(os.getpid)
    assert describe(episode).reference == "exec_workload:episode"
    local.__module__ = "__main__"
    local.__qualname__ = "local"
    with pytest.raises(ExecutorError, match="__main__ script"):
        describe(local)


def test_the_pool_is_sized_from_the_usable_cores() -> None:
    assert PoolExecutor().workers == usable_cores() == len(os.sched_getaffinity(0))
    assert PoolExecutor(workers=3).workers == 3
