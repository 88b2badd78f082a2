"""Deferred loads (issue 18, speed): a session opened with `defer_load` sends its initial state to the sandbox
worker without waiting, and its first call goes out right behind it, so the two cost the parent one wait.
Results, hashes and states are those of a session whose load was awaited; a state that does not fit raises
`StateLoadError` (a `SpecError`) where it is first used, never as a call result, and the worker stays; a
deferred load whose worker is lost before answering is loaded again in the next one."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from envfactory.errors import SpecError, StateLoadError
from envfactory.runtime import Environment, load_env, open_group, open_session
from envfactory.runtime.sandbox import SandboxBackend, SandboxPool
from envfactory.runtime.sandbox.process import WorkerLost, WorkerProcess
from envfactory.runtime.sandbox.protocol import Call, split_frame
from envfactory.runtime.sandbox.worker import EXIT_PROTOCOL

TOOLKIT = '''
from pydantic import BaseModel

from envfactory.runtime.toolkit import Toolkit, tool


class TallyState(BaseModel):
    value: int = 0
    notes: list[str] = []


class Tally(Toolkit[TallyState]):
    @tool(effect="write")
    def bump(self, by: int = 1) -> int:
        """Add to the value.

        Args:
            by: how much.
        """
        self.state.value += by
        self.state.notes.append(f"+{by}")
        return self.state.value

    @tool(effect="read")
    def peek(self) -> int:
        """The value."""
        return self.state.value
'''

STATE = {"value": 5, "notes": ["start"]}
CALLS = [("bump", {"by": 2}), ("peek", {}), ("bump", {"by": 3})]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Environment]:
    directory = tmp_path_factory.mktemp("envs") / "tally"
    directory.mkdir()
    (directory / "env.json").write_text(json.dumps({
        "schema_version": 1, "format": "envfactory.python", "meta": {"name": "tally", "description": "A tally."},
        "implementation": {"kind": "python", "module": "toolkit.py", "class_name": "Tally"},
    }))
    (directory / "toolkit.py").write_text(TOOLKIT)
    with SandboxPool(max_workers=1) as pool:
        yield load_env(directory, sandbox=pool)


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The replies the parent read, by the op of the request it waited on (`request`) or read later (`receive`)."""
    seen: list[str] = []
    request, receive = WorkerProcess.request, WorkerProcess.receive

    def counted_request(self: WorkerProcess, message: Any, body: bytes = b"", timeout: float | None = None) -> Any:
        seen.append(f"request:{message.op}")
        return request(self, message, body, timeout)

    def counted_receive(self: WorkerProcess, seq: int, timeout: float | None = None) -> Any:
        reply = receive(self, seq, timeout)
        seen.append(f"receive:{reply[0].op}")
        return reply

    monkeypatch.setattr(WorkerProcess, "request", counted_request)
    monkeypatch.setattr(WorkerProcess, "receive", counted_receive)
    return seen


def _run(session: Any) -> list[tuple[Any, Any, str]]:
    out = []
    for tool, arguments in CALLS:
        result = session.call(tool, arguments)
        out.append((result.output, result.error, session.hash()))
    return out


def test_a_deferred_load_goes_out_with_the_first_call_and_changes_nothing(env: Environment, waits: list[str]) -> None:
    with open_session(env, STATE, seed=1) as awaited:
        expected = (_run(awaited), awaited.state_json())
    waits.clear()
    with open_session(env, STATE, seed=1, defer_load=True) as deferred:
        assert waits == []  # sent, not waited for
        first = deferred.call(*CALLS[0])
        # One request written after the load, then both replies read: the load's first.
        assert waits == ["receive:loaded", "receive:called"]
        assert first.error is None and first.output == 7
        rest = [(r.output, r.error, deferred.hash()) for r in (deferred.call(t, a) for t, a in CALLS[1:])]
        assert ([(first.output, first.error, expected[0][0][2]), *rest], deferred.state_json()) == expected


def test_a_deferred_state_read_before_any_call_is_the_awaited_one(env: Environment) -> None:
    with open_session(env, STATE, seed=1) as awaited, open_session(env, STATE, seed=1, defer_load=True) as deferred:
        assert deferred.hash() == awaited.hash()
        assert deferred.state_json() == awaited.state_json()
        child = deferred.fork()
        assert child.call("bump").output == 6 and deferred.call("peek").output == 5


def test_a_group_with_deferred_loads_gives_the_same_results(env: Environment) -> None:
    with open_group([env], {"tally": STATE}, seed=2) as awaited:
        expected = [awaited.call(tool, arguments).output for tool, arguments in CALLS], awaited.hash()
    with open_group([env], {"tally": STATE}, seed=2, defer_loads=True) as deferred:
        deferred.plan([(tool, arguments) for tool, arguments in CALLS])
        assert ([deferred.call(tool, arguments).output for tool, arguments in CALLS], deferred.hash()) == expected


def test_a_state_that_does_not_fit_raises_where_it_is_first_used_and_the_worker_stays(env: Environment) -> None:
    backend = env.backend
    assert isinstance(backend, SandboxBackend)
    pid = backend.worker_pid
    with pytest.raises(SpecError):
        open_session(env, {"value": "many"})
    bad = open_session(env, {"value": "many"}, defer_load=True)  # returns at once
    with pytest.raises(StateLoadError):
        bad.call("bump")
    with pytest.raises(StateLoadError):
        bad.state_json()
    with pytest.raises(StateLoadError):
        bad.hash()
    assert not bad.log  # raised, not recorded as a call result
    with open_session(env, STATE, defer_load=True) as good:
        assert good.call("peek").output == 5
    assert backend.worker_pid == pid  # a refused state is no protocol violation


def test_a_deferred_load_whose_worker_is_lost_is_loaded_again(env: Environment) -> None:
    backend = env.backend
    assert isinstance(backend, SandboxBackend)
    with open_session(env, STATE, seed=3) as awaited:
        expected = _run(awaited)
    deferred = open_session(env, STATE, seed=3, defer_load=True)
    worker = backend._worker
    assert worker is not None
    worker.kill()  # before the load's reply was read: the next worker loads the state again
    assert _run(deferred) == expected
    assert backend.worker_pid not in (None, worker.pid)


def test_an_unchecked_call_on_a_state_not_just_loaded_ends_the_worker(env: Environment) -> None:
    """An empty `expect` skips the worker's hash check only for the first request after a handle's load: on any
    other handle it is a protocol violation, so the check on every other call stays."""
    backend = env.backend
    assert isinstance(backend, SandboxBackend)
    with open_session(env, STATE, seed=4) as session:
        assert session.call("bump").error is None  # the handle is no longer fresh
        worker = backend._worker
        assert worker is not None
        handle = session._state.handle  # type: ignore[union-attr]
        unchecked = Call(seq=worker.next_seq(), handle=handle, token=10**6, expect="", tool="peek", seed=4, step=1,
                         clock_start="2025-01-01T00:00:00+00:00", clock_tick_us=1_000_000)
        with pytest.raises(WorkerLost):
            worker.request(unchecked, b"{}")
        assert worker._proc.wait(timeout=30) == EXIT_PROTOCOL
        assert session.call("peek").output == 6  # rebuilt from its record in a new worker


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The ops of the messages in every write to a worker's request pipe, one list a write."""
    seen: list[list[str]] = []
    write = WorkerProcess._write

    def counted(self: WorkerProcess, frame: bytes, timeout: float | None) -> None:
        buffer, ops = bytearray(frame), []
        while (part := split_frame(buffer, len(frame))) is not None:
            ops.append(json.loads(part[0])["op"])
        seen.append(ops)
        write(self, frame, timeout)

    monkeypatch.setattr(WorkerProcess, "_write", counted)
    return seen


def test_plans_posted_by_several_sessions_reach_the_worker_in_one_write_and_change_nothing(
    env: Environment, writes: list[list[str]]
) -> None:
    """A plan made with the session's context is posted (`SandboxBackend.plan`): the loads and planned calls of
    several sessions go out in the first write any of them needs, and every result, hash and state is what
    calls made one by one give."""
    with open_session(env, STATE, seed=5) as one, open_session(env, {"value": 1}, seed=6) as two:
        expected = (_run(one), _run(two), one.state_json(), two.state_json())
    writes.clear()
    with (open_session(env, STATE, seed=5, defer_load=True) as one,
          open_session(env, {"value": 1}, seed=6, defer_load=True) as two):
        one.plan(CALLS)
        two.plan(CALLS)
        assert writes == []  # posted, not written
        got = (_run(one), _run(two), one.state_json(), two.state_json())
        # Both loads and both plans in the first write; later writes (the parent flushes what is posted whenever
        # it waits) carry only one-way messages: the second session's replies came from the first write.
        one_way = ("commit", "release")
        assert [op for op in writes[0] if op not in one_way] == ["load", "load", "call_ahead", "call_ahead"]
        assert all(op in one_way for later in writes[1:] for op in later)
    assert got == expected


def test_a_posted_plan_not_followed_is_dropped_and_changes_nothing(env: Environment) -> None:
    with open_session(env, STATE, seed=7) as alone:
        expected = [alone.call("bump", {"by": 9}).output, *[r[0] for r in _run(alone)]], alone.hash()
    with open_session(env, STATE, seed=7, defer_load=True) as session:
        session.plan(CALLS)
        first = session.call("bump", {"by": 9})  # not the planned first call: the replies run ahead are dropped
        assert ([first.output, *[r[0] for r in _run(session)]], session.hash()) == expected
