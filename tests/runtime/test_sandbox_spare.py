"""A sandbox worker hands the next call on a handle the model it validated when it made that handle's
state (issue 18, speed: one validation per call instead of two), and only that call: what a read, a
failed call or an uncommitted write did to such a model never reaches a later call, another session or
a fork."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from envfactory.runtime import Environment, load_env, open_session
from envfactory.runtime.sandbox import SandboxPool

TOOLKIT = '''
from pydantic import BaseModel

from envfactory.runtime.toolkit import Toolkit, tool


class CountState(BaseModel):
    value: int = 0


class Counter(Toolkit[CountState]):
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
'''


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Environment]:
    directory = tmp_path_factory.mktemp("envs") / "counter"
    directory.mkdir()
    (directory / "env.json").write_text(json.dumps({
        "schema_version": 1, "format": "envfactory.python", "meta": {"name": "counter", "description": "A counter."},
        "implementation": {"kind": "python", "module": "toolkit.py", "class_name": "Counter"},
    }))
    (directory / "toolkit.py").write_text(TOOLKIT)
    with SandboxPool(max_workers=1) as pool:
        yield load_env(directory, sandbox=pool)


def test_what_a_read_did_to_the_handed_model_never_reaches_the_next_call(env: Environment) -> None:
    with open_session(env) as session:
        assert session.call("scribble").output == 100  # on the model the load validated
        assert session.call("bump").output == 1
        assert session.call("scribble").output == 101  # on the model the write left
        assert session.call("bump").output == 2
        assert session.state_json() == {"value": 2}


def test_a_failed_or_uncommitted_write_leaves_nothing_behind(env: Environment) -> None:
    with open_session(env) as session:
        session.call("bump", {"by": 3})
        assert session.call("bump_then_fail").error is not None
        assert session.call("bump").output == 4
        prepared = env.backend.execute(session._state, "bump", {"by": 10}, session._ctx)  # never committed
        assert prepared.output == 14
        assert session.call("bump").output == 5
        assert session.state_json() == {"value": 5}


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
        assert (first.state_json(), second.state_json(), fork.state_json()) == ({"value": 4}, {"value": 8}, {"value": 4})
