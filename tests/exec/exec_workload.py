"""Work functions for the exec tests: a real runtime workload and items that fail on purpose.

Imported by name in pool and Ray workers (the tests put this directory on their import path).
"""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path
from typing import Literal

from envfactory.errors import SpecError
from envfactory.spec import SpecModel, content_hash


class EpisodeItem(SpecModel):
    """Seeded schema-guided calls on one bundled environment."""

    schema_version: Literal[1] = 1
    env: str
    seed: int
    calls: int = 12


class EpisodeResult(SpecModel):
    schema_version: Literal[1] = 1
    env: str
    seed: int
    outcomes: list[str]
    final_hash: str


def episode(item: EpisodeItem) -> EpisodeResult:
    """Open the environment with the item's seed, make seeded calls, hash every result and the state."""
    from envfactory.runtime import load_env, open_session
    from envfactory.verify.argsgen import generate_arguments

    env = load_env(item.env)
    session = open_session(env, seed=item.seed)
    rng = random.Random(f"{item.env}:{item.seed}")
    tools = sorted(env.spec.tools, key=lambda t: t.name)
    outcomes = []
    for _ in range(item.calls):
        tool = rng.choice(tools)
        result = session.call(tool.name, generate_arguments(tool.input_schema, rng, {}))
        outcomes.append(content_hash(result.model_dump(mode="json")))
    return EpisodeResult(env=item.env, seed=item.seed, outcomes=outcomes, final_hash=session.hash())


class TroubleItem(SpecModel):
    """An item that misbehaves as told; `marker` counts its tries across processes."""

    schema_version: Literal[1] = 1
    value: int
    behaviour: Literal["ok", "kill", "permanent", "transient_once", "always_transient", "hang", "record_pid"] = "ok"
    marker: str = ""


class TroubleResult(SpecModel):
    schema_version: Literal[1] = 1
    value: int
    pid_is_worker: bool


def _count_try(marker: str) -> int:
    path = Path(marker)
    with path.open("a") as handle:
        handle.write("x")
    return len(path.read_text())


def trouble(item: TroubleItem) -> TroubleResult:
    """Square the value, or misbehave: kill the worker, raise a deliberate or a transient error, hang."""
    if item.behaviour == "record_pid":  # which process ran it, one line per item
        with Path(item.marker).open("a") as handle:
            handle.write(f"{os.getpid()}\n")
        return TroubleResult(value=item.value * item.value, pid_is_worker=True)
    tries = _count_try(item.marker) if item.marker else 1
    if item.behaviour == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if item.behaviour == "hang":  # say who runs it, then outlive any test
        Path(f"{item.marker}.pid").write_text(str(os.getpid()))
        time.sleep(600)
    if item.behaviour == "permanent":
        raise SpecError(f"item {item.value} is malformed")
    if item.behaviour == "always_transient" or (item.behaviour == "transient_once" and tries == 1):
        raise OSError(28, "No space left on device")
    return TroubleResult(value=item.value * item.value, pid_is_worker=os.getpid() != int(os.environ.get("EXEC_TEST_PARENT", "0")))
