"""Sandbox workers for untrusted python toolkits: loader integration, equivalence with in-process runs,
state operations across the boundary, crash recovery, timeouts, pool bounds, shutdown, bad toolkits,
integrity checks and the confinement report (issue 3; the hostile suite is test_sandbox_hostile.py)."""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from envfactory.errors import SandboxError, SandboxRequiredError, SpecError
from envfactory.runtime import Environment, load_env, open_group, open_session
from envfactory.runtime.loader import bundled_envs_root
from envfactory.runtime.sandbox import SandboxBackend, SandboxLimits, SandboxPool, SandboxState
from envfactory.runtime.sandbox.confine import landlock_abi
from envfactory.runtime.sandbox.protocol import LoadState
from envfactory.spec import ToolResult

COUNTER = '''
from __future__ import annotations

import os

from pydantic import BaseModel, Field

from envfactory.runtime.toolkit import Toolkit, tool


class CounterState(BaseModel):
    value: int = 0
    draws: list[int] = Field(default_factory=list)
    stamps: list[str] = Field(default_factory=list)


class Counter(Toolkit[CounterState]):
    @tool(effect="write")
    def bump(self, by: int = 1) -> int:
        """Add to the counter and stamp the time.

        Args:
            by: how much.
        """
        self.state.value += by
        self.state.stamps.append(self.ctx.now_iso())
        return self.state.value

    @tool(effect="write")
    def draw(self) -> int:
        """Store a number from the session's RNG."""
        number = self.ctx.rng.randint(0, 10**9)
        self.state.draws.append(number)
        return number

    @tool(effect="read")
    def peek_draw(self) -> int:
        """Draw a number without storing it."""
        return self.ctx.rng.randint(0, 10**9)

    @tool(effect="write")
    def fail(self) -> int:
        """Draw, then fail (failed calls must not move the RNG)."""
        self.ctx.rng.random()
        raise self.rule_violation("refused on purpose")

    @tool(effect="write")
    def crash(self) -> int:
        """Change the state, then end the worker."""
        self.state.value = -1
        os._exit(7)

    @tool(effect="read")
    def spin(self) -> int:
        """Loop forever."""
        while True:
            pass

    @tool(effect="read")
    def shapeless(self) -> int:
        """Return something that is not an int."""
        return object()  # type: ignore[return-value]
'''

NO_TOOLS = '''
from pydantic import BaseModel
from envfactory.runtime.toolkit import Toolkit

class CounterState(BaseModel):
    value: int = 0

class Counter(Toolkit[CounterState]):
    def helper(self) -> int:
        return 1
'''

LIMITS = SandboxLimits(call_timeout_s=1.0)


def write_env(directory: Path, source: str = COUNTER, name: str = "counter") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    document = {
        "schema_version": 1,
        "format": "envfactory.python",
        "meta": {"name": name, "description": "A counter."},
        "implementation": {"kind": "python", "module": "toolkit.py", "class_name": "Counter"},
    }
    (directory / "env.json").write_text(json.dumps(document))
    (directory / "toolkit.py").write_text(source)
    return directory


def ok(result: ToolResult) -> Any:
    assert result.error is None, result.error
    return result.output


def fingerprint(result: ToolResult) -> tuple[Any, ...]:
    error = result.error
    return (result.output, error.kind if error else None, error.message if error else None, result.step)


@pytest.fixture(scope="module")
def pool() -> Iterator[SandboxPool]:
    with SandboxPool(max_workers=3, limits=LIMITS) as shared:
        yield shared


@pytest.fixture(scope="module")
def calendar_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("envs") / "calendar"
    shutil.copytree(bundled_envs_root() / "calendar", target)
    return target


@pytest.fixture(scope="module")
def sandboxed(pool: SandboxPool, calendar_dir: Path) -> Environment:
    return load_env(calendar_dir, sandbox=pool)


@pytest.fixture(scope="module")
def trusted(calendar_dir: Path) -> Environment:
    return load_env(calendar_dir, trusted=True)


@pytest.fixture
def counter_dir(tmp_path: Path) -> Path:
    return write_env(tmp_path / "counter")


CALENDAR_CALLS: list[tuple[str, dict[str, Any]]] = [
    ("find_conflicts", {"user_id": "usr_002", "start": "2026-01-05T14:30:00Z", "end": "2026-01-05T15:30:00Z"}),
    ("create_event", {"calendar_id": "cal_002", "title": "Retro", "start": "2026-01-05T14:30:00Z",
                      "end": "2026-01-05T15:30:00Z"}),
    ("create_event", {"calendar_id": "cal_002", "title": "Retro", "start": "2026-01-05T15:00:00Z",
                      "end": "2026-01-05T16:00:00Z", "attendee_ids": ["usr_001", "usr_003", "usr_001"]}),
    ("respond_to_event", {"event_id": "evt_0008", "user_id": "usr_001", "response": "accepted"}),
    ("reschedule_event", {"event_id": "evt_0008", "start": "2026-01-06T09:00:00Z", "end": "2026-01-06T09:45:00Z"}),
    ("get_event", {"event_id": "evt_9999"}),
    ("cancel_event", {"event_id": "evt_0008", "reason": "Not needed"}),
    ("cancel_event", {"event_id": "evt_0008"}),
    ("create_event", {"calendar_id": "cal_001", "title": "Yesterday", "start": "2025-12-31T09:00:00Z",
                      "end": "2025-12-31T10:00:00Z"}),
    ("list_events", {"user_id": "usr_003", "start": "2026-01-05T00:00:00Z", "end": "2026-01-07T00:00:00Z"}),
    ("get_event", {"event_id": 42}),
    ("no_such_tool", {}),
]


# -- loading ---------------------------------------------------------------------------------------------
def test_untrusted_toolkit_without_a_pool_says_to_pass_one(calendar_dir: Path) -> None:
    with pytest.raises(SandboxRequiredError, match="SandboxPool"):
        load_env(calendar_dir)


def test_spec_is_derived_in_the_worker_and_the_module_is_never_imported_here(
    pool: SandboxPool, sandboxed: Environment, trusted: Environment, counter_dir: Path
) -> None:
    assert isinstance(sandboxed.backend, SandboxBackend)
    assert sandboxed.spec.tools == trusted.spec.tools
    assert sandboxed.spec.state_schema == trusted.spec.state_schema
    assert sandboxed.spec.implementation.kind == "python" and not sandboxed.spec.implementation.trusted
    assert sandboxed.spec.content_hash == sandboxed.spec.compute_hash()
    before = set(sys.modules)
    counter = load_env(counter_dir, sandbox=pool)
    assert {t.name for t in counter.spec.tools} >= {"bump", "draw", "crash"}
    assert not any(name.startswith("envfactory_toolkit_counter") for name in set(sys.modules) - before)


# -- equivalence with in-process runs ---------------------------------------------------------------------
def test_same_calls_and_seed_give_the_same_results_and_hashes_as_in_process(
    sandboxed: Environment, trusted: Environment
) -> None:
    with open_session(sandboxed, seed=7) as boxed, open_session(trusted, seed=7) as local:
        assert boxed.hash() == local.hash()
        for tool, arguments in CALENDAR_CALLS:
            assert fingerprint(boxed.call(tool, arguments)) == fingerprint(local.call(tool, arguments)), tool
            assert boxed.hash() == local.hash(), tool
        mine, theirs = boxed.snapshot(), local.snapshot()
        assert (mine.state, mine.state_hash, mine.step, mine.clock_step) == (
            theirs.state, theirs.state_hash, theirs.step, theirs.clock_step
        )


def test_the_session_rng_travels_and_only_committed_writes_move_it(pool: SandboxPool, counter_dir: Path) -> None:
    boxed_env = load_env(counter_dir, sandbox=pool)
    local_env = load_env(counter_dir, trusted=True)
    script = ["draw", "peek_draw", "fail", "draw", "bump", "peek_draw", "draw"]
    with open_session(boxed_env, seed=3) as boxed, open_session(local_env, seed=3) as local:
        for tool in script:
            assert fingerprint(boxed.call(tool)) == fingerprint(local.call(tool)), tool
        assert boxed.hash() == local.hash()
        assert boxed.state_json() == local.state_json()
        assert len(boxed.state_json()["draws"]) == 3


# -- state operations across the boundary ---------------------------------------------------------------
def test_fork_snapshot_restore_and_diff_across_the_boundary(
    sandboxed: Environment, trusted: Environment
) -> None:
    move = ("respond_to_event", {"event_id": "evt_0001", "user_id": "usr_002", "response": "declined"})
    with open_session(sandboxed, seed=1) as boxed, open_session(trusted, seed=1) as local:
        base = boxed.hash()
        child, local_child = boxed.fork(), local.fork()
        ok(child.call(*move))
        ok(local_child.call(*move))
        assert boxed.hash() == base and child.hash() == local_child.hash() != base
        assert boxed.diff(child) == local.diff(local_child) and boxed.diff(child).changes
        assert boxed.diff(boxed.fork()).changes == []
        snapshot = child.snapshot()
        assert snapshot.state == local_child.snapshot().state
        assert boxed.diff(snapshot) == local.diff(local_child.snapshot())
        boxed.restore(snapshot)
        assert boxed.hash() == child.hash() and boxed.state_json() == child.state_json()
        with open_session(sandboxed, snapshot, seed=1) as reopened:
            assert reopened.hash() == snapshot.state_hash
        grandchild = child.fork()
        ok(grandchild.call("cancel_event", {"event_id": "evt_0001"}))
        assert child.hash() == snapshot.state_hash != grandchild.hash()


def test_sessions_work_inside_a_group(sandboxed: Environment) -> None:
    shop = load_env("shop")
    with open_group([sandboxed, shop], seed=5) as group:
        assert ok(group.call("calendar__get_event", {"event_id": "evt_0001"}))["id"] == "evt_0001"
        assert ok(group.call("shop__get_customer", {"id": "cus_0001"}))["id"] == "cus_0001"


def test_threads_can_share_a_sandboxed_environment(sandboxed: Environment) -> None:
    errors: list[BaseException] = []

    def work(seed: int) -> None:
        try:
            with open_session(sandboxed, seed=seed) as session:
                for index in range(30):
                    response = ["accepted", "declined", "tentative"][index % 3]
                    ok(session.call("respond_to_event", {"event_id": "evt_0001", "user_id": "usr_002",
                                                         "response": response}))
                assert session.state_json()["events"]["evt_0001"]["attendees"]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


# -- failures and recovery -------------------------------------------------------------------------------
def test_a_crash_is_a_sandbox_failure_and_sessions_are_rebuilt_exactly(pool: SandboxPool, counter_dir: Path) -> None:
    env = load_env(counter_dir, sandbox=pool)
    backend = env.backend
    assert isinstance(backend, SandboxBackend)
    local_env = load_env(counter_dir, trusted=True)
    with open_session(env, seed=11) as first, open_session(local_env, seed=11) as reference:
        for tool in ("bump", "draw", "bump"):
            assert fingerprint(first.call(tool)) == fingerprint(reference.call(tool))
        second = first.fork()
        ok(second.call("bump", {"by": 5}))
        before = [(s.hash(), s.state_json()) for s in (first, second)]
        old_pid = backend.worker_pid
        crashed = first.call("crash")
        assert crashed.error is not None and crashed.error.kind == "sandbox_failure"
        assert "exited with status 7" in crashed.error.message
        assert backend.worker_pid is None  # replaced lazily, on next use
        assert [(s.hash(), s.state_json()) for s in (first, second)] == before  # the parent's echoed copies
        assert backend.worker_pid is None
        # The next use of each session starts a new worker and rebuilds it there (a read call: no state change).
        assert first.call("peek_draw").error is None and second.call("peek_draw").error is None
        assert backend.worker_pid not in (None, old_pid)
        assert backend.replayed_calls >= 4  # both sessions, without the crashed call
        for tool in ("bump", "draw"):  # the rebuilt session continues exactly like an uncrashed one
            assert fingerprint(first.call(tool))[:3] == fingerprint(reference.call(tool))[:3]
        assert first.hash() == reference.hash()


def test_replacing_workers_leaks_no_descriptors(pool: SandboxPool, counter_dir: Path) -> None:
    env = load_env(counter_dir, sandbox=pool)

    def crash_and_recover() -> None:
        with open_session(env) as session:
            ok(session.call("bump"))
            crashed = session.call("crash")
            assert crashed.error is not None and crashed.error.kind == "sandbox_failure"
            assert ok(session.call("bump")) == 2

    crash_and_recover()
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(3):
        crash_and_recover()
    assert len(os.listdir("/proc/self/fd")) == before


def test_a_timeout_then_the_next_call_works(pool: SandboxPool, counter_dir: Path) -> None:
    env = load_env(counter_dir, sandbox=pool)
    with open_session(env) as session:
        ok(session.call("bump"))
        started = time.monotonic()
        stuck = session.call("spin")
        assert stuck.error is not None and stuck.error.kind == "timeout"
        assert time.monotonic() - started < LIMITS.call_timeout_s + 2
        assert ok(session.call("bump")) == 2


def test_a_tampered_state_in_the_worker_is_detected_and_rebuilt(
    sandboxed: Environment, trusted: Environment, caplog: pytest.LogCaptureFixture
) -> None:
    backend = sandboxed.backend
    assert isinstance(backend, SandboxBackend)
    move = ("respond_to_event", {"event_id": "evt_0001", "user_id": "usr_002", "response": "tentative"})
    with open_session(sandboxed, seed=2) as boxed, open_session(trusted, seed=2) as local:
        ok(boxed.call(*move))
        ok(local.call(*move))
        for read_back in ("call", "state"):
            # Overwrite the session's state inside the worker behind the parent's back.
            handle = boxed._state
            assert isinstance(handle, SandboxState)
            worker = backend._worker
            assert worker is not None
            worker.request(LoadState(seq=worker.next_seq(), handle=handle.handle), b"null")
            if read_back == "call":
                event = ok(boxed.call("get_event", {"event_id": "evt_0001"}))
                assert event == ok(local.call("get_event", {"event_id": "evt_0001"}))
            else:
                assert boxed.state_json() == local.state_json()
            assert boxed.hash() == local.hash()
        assert "does not match its session's record" in caplog.text


# -- bad toolkits ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("import not_a_module_anywhere\n", "ModuleNotFoundError"),
        ("def broken(:\n", "SyntaxError"),
        ("raise RuntimeError('boom at import')\n", "boom at import"),
        (NO_TOOLS, "defines no tools"),
    ],
)
def test_bad_toolkits_are_spec_errors_and_the_pool_stays_healthy(
    pool: SandboxPool, sandboxed: Environment, tmp_path: Path, source: str, fragment: str
) -> None:
    alive = set(pool.worker_pids())
    with pytest.raises(SpecError, match=fragment):
        load_env(write_env(tmp_path / "bad", source=source), sandbox=pool)
    assert set(pool.worker_pids()) <= alive  # the failed worker is gone (the pool may have made room for it)
    with open_session(sandboxed) as session:
        assert ok(session.call("get_event", {"event_id": "evt_0001"}))["id"] == "evt_0001"


def test_non_serialisable_output_is_an_execution_error_naming_the_tool(pool: SandboxPool, counter_dir: Path) -> None:
    env = load_env(counter_dir, sandbox=pool)
    with open_session(env) as session:
        result = session.call("shapeless")
        assert result.error is not None and result.error.kind == "execution_error"
        assert "shapeless returned object" in result.error.message
        assert ok(session.call("bump")) == 1


# -- pool ------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_the_pool_stays_within_bounds_and_replays_evicted_sessions(tmp_path: Path, calendar_dir: Path) -> None:
    with SandboxPool(max_workers=1, limits=LIMITS) as small:
        calendar = load_env(calendar_dir, sandbox=small)
        counter = load_env(write_env(tmp_path / "counter"), sandbox=small)
        with open_session(calendar, seed=1) as cal, open_session(counter, seed=1) as cnt:
            for round_ in range(3):
                response = ["accepted", "declined", "tentative"][round_]
                ok(cal.call("respond_to_event", {"event_id": "evt_0001", "user_id": "usr_002", "response": response}))
                assert len(small.worker_pids()) <= 1
                assert ok(cnt.call("bump")) == round_ + 1
                assert len(small.worker_pids()) <= 1
            assert cal.state_json()["events"]["evt_0001"]["attendees"][0]["response"] == "tentative"
            assert isinstance(calendar.backend, SandboxBackend) and isinstance(counter.backend, SandboxBackend)
            assert calendar.backend.replayed_calls > 0 and counter.backend.replayed_calls > 0


def test_close_kills_every_worker_and_removes_scratch(tmp_path: Path, calendar_dir: Path) -> None:
    small = SandboxPool(max_workers=2, limits=LIMITS, scratch_dir=tmp_path)
    calendar = load_env(calendar_dir, sandbox=small)
    counter = load_env(write_env(tmp_path / "counter"), sandbox=small)
    session = open_session(counter)
    ok(session.call("bump"))
    pids = small.worker_pids()
    assert len(pids) == 2 and all(Path(f"/proc/{pid}").exists() for pid in pids)
    small.close()
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists()  # killed and reaped: not even a zombie
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
    assert list(tmp_path.glob("envfactory-sandbox-*")) == []
    closed = session.call("bump")
    assert closed.error is not None and closed.error.kind == "sandbox_failure"
    with pytest.raises(SandboxError, match="closed"):
        load_env(calendar_dir, sandbox=small)
    small.close()  # idempotent
    assert calendar.name == "calendar"


# -- confinement report ----------------------------------------------------------------------------------
def _status(pid: int) -> dict[str, str]:
    text = Path(f"/proc/{pid}/status").read_text()
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def test_the_report_is_what_the_kernel_says_and_as_strong_as_this_machine_allows(
    sandboxed: Environment, pool: SandboxPool, caplog: pytest.LogCaptureFixture
) -> None:
    backend = sandboxed.backend
    assert isinstance(backend, SandboxBackend)
    with open_session(sandboxed) as session:
        session.call("get_event", {"event_id": "evt_0001"})  # make sure a worker is alive
    pid = backend.worker_pid
    report = backend.report
    assert pid is not None and report is not None and pool.report is not None
    status = _status(pid)
    uids = [int(v) for v in status["Uid"].split()]
    assert (report.uid, report.fsuid) == (uids[0], uids[3])
    assert status["NoNewPrivs"].strip() == "1" and report.no_new_privs
    assert int(status["CapEff"], 16) == 0 and report.capabilities_dropped
    limits = {limit.name: limit for limit in report.limits}
    assert limits["RLIMIT_AS"].hard == LIMITS.memory_bytes and limits["RLIMIT_CORE"].hard == 0
    assert limits["RLIMIT_NPROC"].hard == LIMITS.max_processes
    # The strongest guarantee this machine offers must be the one in force.
    if os.geteuid() == 0:
        assert uids[:3] == [65534, 65534, 65534] and report.identity.startswith("nobody")
        assert report.network_namespace
        assert os.stat(f"/proc/{pid}/ns/net").st_ino != os.stat("/proc/self/ns/net").st_ino
        assert "rlimit-nproc" in report.processes
    abi = landlock_abi()
    assert report.landlock_abi == abi
    if abi:
        assert report.filesystem == ("landlock",)
    else:
        assert report.filesystem == ("audit-hook",) and any("Landlock" in f for f in report.fallbacks)
    if platform.machine() == "x86_64":
        assert report.seccomp and status["Seccomp"].strip() == "2"
    assert report.write_root != "" and str(sandboxed.directory) in report.read_roots
    # Degradation is visible: every fallback is in the report and was logged when the pool saw it.
    if report.degraded:
        with SandboxPool(max_workers=1, limits=LIMITS) as fresh, caplog.at_level(logging.WARNING):
            assert sandboxed.directory is not None
            load_env(sandboxed.directory, sandbox=fresh)
        assert "sandbox workers run with fallbacks" in caplog.text
        assert all(fallback in caplog.text for fallback in report.fallbacks)


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError):
        SandboxLimits(cpu_seconds_per_call=20, cpu_seconds_total=10)
    with pytest.raises(ValueError):
        SandboxLimits(call_timeout_s=0)
    with pytest.raises(ValueError):
        SandboxPool(max_workers=0)

