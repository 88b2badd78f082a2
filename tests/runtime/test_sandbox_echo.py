"""Sandboxed states come back with the reply that made them (issue 18, speed): reading a state a call or a
load just produced costs no round trip, the echoed bytes are checked against the authoritative hash
before use, a state over `STATE_ECHO_BYTES` is fetched as before, and commits ride along with the next
request instead of waking the worker on their own. The worker hands the next call on a handle the model
it validated when it made that handle's state (one validation per call instead of two), and only that
call: what a read, a failed call or an uncommitted write did to such a model never reaches a later
call, another session or a fork."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from envfactory.runtime import Environment, load_env, open_session
from envfactory.runtime.sandbox import SandboxPool, SandboxState
from envfactory.runtime.sandbox.process import WorkerProcess
from envfactory.runtime.sandbox.protocol import STATE_ECHO_BYTES

TOOLKIT = '''
from pydantic import BaseModel

from envfactory.runtime.toolkit import Toolkit, tool


class PadState(BaseModel):
    value: int = 0
    pad: str = ""


class Pad(Toolkit[PadState]):
    @tool(effect="write")
    def bump(self, by: int = 1) -> int:
        """Add to the value.

        Args:
            by: how much.
        """
        self.state.value += by
        return self.state.value

    @tool(effect="read")
    def scribble(self) -> int:
        """A misbehaving read: it changes the model it was given and returns the changed value."""
        self.state.value += 100
        return self.state.value

    @tool(effect="write")
    def bump_then_fail(self) -> int:
        """A write that changes the model and then fails."""
        self.state.value += 50
        raise ValueError("refused after changing the model")

    @tool(effect="write")
    def grow(self, size: int) -> int:
        """Make the state about `size` bytes long.

        Args:
            size: bytes of padding.
        """
        self.state.pad = "x" * size
        return len(self.state.pad)
'''


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Environment]:
    directory = tmp_path_factory.mktemp("envs") / "pad"
    directory.mkdir()
    (directory / "env.json").write_text(json.dumps({
        "schema_version": 1, "format": "envfactory.python", "meta": {"name": "pad", "description": "A pad."},
        "implementation": {"kind": "python", "module": "toolkit.py", "class_name": "Pad"},
    }))
    (directory / "toolkit.py").write_text(TOOLKIT)
    with SandboxPool(max_workers=1) as pool:
        yield load_env(directory, sandbox=pool)


@pytest.fixture
def requests(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ops of every request sent to a worker that expects a reply, in order: sent and waited for at once, or
    posted (calls planned ahead go out with the next write; their replies are read when first needed)."""
    sent: list[str] = []
    original, original_post = WorkerProcess.request, WorkerProcess.post

    def request(self: WorkerProcess, message: Any, body: bytes = b"", timeout: float | None = None) -> Any:
        sent.append(message.op)
        return original(self, message, body, timeout)

    def post(self: WorkerProcess, message: Any, body: bytes = b"") -> None:
        if hasattr(message, "seq"):
            sent.append(message.op)
        original_post(self, message, body)

    monkeypatch.setattr(WorkerProcess, "request", request)
    monkeypatch.setattr(WorkerProcess, "post", post)
    return sent


def test_reading_the_state_a_call_made_costs_no_round_trip(env: Environment, requests: list[str]) -> None:
    with open_session(env) as session:
        assert session.state_json() == {"value": 0, "pad": ""}  # echoed by the load
        assert session.call("bump", {"by": 2}).output == 2
        assert session.state_json() == {"value": 2, "pad": ""}
        assert session.call("bump", {"by": 3}).output == 5  # the posted commit reached the worker first
        fork = session.fork()
        assert fork.state_json() == session.state_json() == {"value": 5, "pad": ""}
    assert requests == ["load", "call", "call"]


def test_echoed_bytes_that_do_not_match_the_hash_are_never_used(env: Environment, requests: list[str]) -> None:
    with open_session(env) as session:
        session.call("bump", {"by": 4})
        handle = session._state  # the test reaches in to tamper with the parent's copy
        assert isinstance(handle, SandboxState)
        handle._blob = b'{"pad":"","value":99}'
        assert session.state_json() == {"value": 4, "pad": ""}
    assert requests == ["load", "call", "fetch"]


def test_a_state_over_the_echo_limit_is_fetched(env: Environment, requests: list[str]) -> None:
    with open_session(env) as session:
        session.call("grow", {"size": STATE_ECHO_BYTES + 10})
        assert len(session.state_json()["pad"]) == STATE_ECHO_BYTES + 10
        session.call("grow", {"size": 3})
        assert session.state_json()["pad"] == "xxx"
    assert requests == ["load", "call", "fetch", "call"]


def test_what_a_read_did_to_the_handed_model_never_reaches_the_next_call(env: Environment) -> None:
    with open_session(env) as session:
        assert session.call("scribble").output == 100  # on the model the load validated
        assert session.call("bump").output == 1
        assert session.call("scribble").output == 101  # on the model the write left
        assert session.call("bump").output == 2
        assert session.state_json() == {"value": 2, "pad": ""}


def test_a_failed_or_uncommitted_write_leaves_nothing_behind(env: Environment) -> None:
    with open_session(env) as session:
        session.call("bump", {"by": 3})
        assert session.call("bump_then_fail").error is not None
        assert session.call("bump").output == 4
        prepared = env.backend.execute(session._state, "bump", {"by": 10}, session._ctx)  # never committed
        assert prepared.output == 14
        assert session.call("bump").output == 5
        assert session.state_json() == {"value": 5, "pad": ""}


def test_sessions_and_forks_each_run_on_their_own_model(env: Environment) -> None:
    with open_session(env) as first, open_session(env) as second:
        first.call("bump", {"by": 2})
        second.call("bump", {"by": 7})
        fork = first.fork()
        assert first.call("bump").output == 3
        assert fork.call("bump").output == 3
        assert second.call("bump").output == 8
        assert fork.call("scribble").output == 103
        assert first.call("bump").output == 4
        assert fork.call("bump").output == 4
        assert (first.state_json(), second.state_json(), fork.state_json()) == ({"value": 4, "pad": ""}, {"value": 8, "pad": ""}, {"value": 4, "pad": ""})


CALLS: list[tuple[str, dict[str, Any]]] = [
    ("bump", {"by": 2}), ("scribble", {}), ("bump_then_fail", {}), ("bump", {"by": 3}), ("scribble", {}),
    ("grow", {"size": 4}), ("bump", {}),
]


def _outcomes(session: Any, calls: list[tuple[str, dict[str, Any]]]) -> list[tuple[Any, Any, str]]:
    out = []
    for tool, arguments in calls:
        result = session.call(tool, arguments)
        out.append((result.output, result.error.kind if result.error else None, session.hash()))
    return out


def test_planned_calls_run_ahead_in_one_round_trip_with_the_results_of_calls_made_one_by_one(
    env: Environment, requests: list[str]
) -> None:
    with open_session(env, seed=3) as alone:
        expected = _outcomes(alone, CALLS)
        final = alone.state_json()
    del requests[:]
    with open_session(env, seed=3) as planned:
        planned.plan(CALLS)
        assert _outcomes(planned, CALLS) == expected
        assert planned.state_json() == final == {"value": 6, "pad": "xxxx"}
        assert planned.call("bump").output == 7  # after the calls run ahead: a call of its own
    assert requests == ["load", "call_ahead", "call"]


def test_a_call_other_than_the_planned_one_drops_the_calls_run_ahead(env: Environment, requests: list[str]) -> None:
    with open_session(env) as session:
        session.plan([("bump", {"by": 1}), ("bump", {"by": 2}), ("bump", {"by": 3})])
        assert session.call("bump", {"by": 1}).output == 1
        assert session.call("bump", {"by": 5}).output == 6  # not as planned: run on its own
        assert session.call("bump", {"by": 3}).output == 9  # nor is this one taken from the calls run ahead
        fork = session.fork()
        session.plan([("bump", {"by": 1}), ("bump", {"by": 1})])
        assert session.call("bump", {"by": 1}).output == 10
        assert fork.call("bump", {"by": 1}).output == 10  # another handle: never the parent's calls run ahead
        assert session.call("bump", {"by": 1}).output == 11  # as planned, from the calls run ahead
        assert (session.state_json(), fork.state_json()) == ({"value": 11, "pad": ""}, {"value": 10, "pad": ""})
    assert requests == ["load", "call_ahead", "call", "call", "call_ahead", "call"]
