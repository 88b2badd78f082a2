"""The exec contract on Ray: a local multi-worker cluster (ray.init with 2 CPUs) gives the same results,
byte for byte, as the serial path and the process pool; failures are bounded and a dead worker is
recorded with Ray's reason. Skipped only when the `ray` extra is not installed."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from exec_workload import EpisodeItem, TroubleItem, episode, trouble

from envfactory.exec import PoolExecutor, RayExecutor, SerialExecutor
from envfactory.spec import canonical_json

pytest.importorskip("ray")

ITEMS = [EpisodeItem(env=env, seed=seed, calls=20) for env in ("shop", "calendar", "tracker") for seed in range(3)]


@pytest.fixture(scope="module")
def ray_executor() -> Iterator[RayExecutor]:
    # Ray workers are fresh interpreters: they find the test's work functions through PYTHONPATH
    here = str(Path(__file__).resolve().parent)
    previous = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (here, previous) if p)
    executor = RayExecutor(workers=2, max_attempts=2)
    try:
        yield executor
    finally:
        executor.close()
        if previous is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = previous


def _bytes(outcomes: list) -> bytes:  # type: ignore[type-arg]
    return b"".join(canonical_json(o.result.model_dump(mode="json")) + b"\n" for o in outcomes)


@pytest.mark.slow
def test_serial_pool_and_ray_give_byte_identical_results(ray_executor: RayExecutor) -> None:
    assert ray_executor.workers >= 2
    on_ray = ray_executor.map(episode, ITEMS)
    assert all(o.ok and o.attempts == 1 for o in on_ray)
    assert _bytes(on_ray) == _bytes(SerialExecutor().map(episode, ITEMS)) == _bytes(PoolExecutor(workers=2).map(episode, ITEMS))


@pytest.mark.slow
def test_ray_runs_on_several_workers_and_bounds_failures(ray_executor: RayExecutor, tmp_path: Path) -> None:
    items = [
        TroubleItem(value=1, behaviour="permanent", marker=str(tmp_path / "p")),
        TroubleItem(value=2, behaviour="transient_once", marker=str(tmp_path / "t")),
        TroubleItem(value=3, behaviour="kill", marker=str(tmp_path / "k")),
        *(TroubleItem(value=v) for v in range(4, 10)),
    ]
    outcomes = ray_executor.map(trouble, items)
    permanent, transient, killed = outcomes[:3]
    assert not permanent.ok and permanent.attempts == 1 and "SpecError" in (permanent.error or "")
    assert transient.ok and transient.attempts == 2
    assert not killed.ok and killed.attempts == 2 and (killed.error or "").startswith("worker died (Ray)")
    assert (tmp_path / "k").read_text() == "xx"  # Ray's own retry: max_attempts tries, no more
    assert [o.result.value for o in outcomes[3:]] == [v * v for v in range(4, 10)]  # type: ignore[union-attr]
