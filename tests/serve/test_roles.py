"""Roles of the HTTP server (issue #17): the trainer's token drives every route, the policy's token only
lists a session's tools and calls them; everything else answers 403 `forbidden` and leaves the
session as it was. Against a uvicorn server in a background thread."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from envfactory.runtime import load_env, open_group
from envfactory.serve.catalog import EnvCatalog
from envfactory.serve.client import EnvClient, RemoteSession
from envfactory.serve.config import ServeConfig
from envfactory.serve.errors import RemoteError, ServeConfigError
from envfactory.serve.roles import policy_may
from envfactory.serve.runner import BackgroundServer, build_http
from envfactory.spec import EnvRef, GoldCall, ScriptedUser, Task, Turn

TRAINER = "trainer-token-0123456789abcdef"
POLICY = "policy-token-0123456789abcdef"
TOP_UP = ("shop__top_up_wallet", {"id": "cus_0002", "amount": 10})


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    served = build_http(EnvCatalog.load(["shop"]), ServeConfig(token=TRAINER, policy_token=POLICY))
    with BackgroundServer(served) as server:
        yield server.url


@pytest.fixture(scope="module")
def task() -> Task:
    shop = load_env("shop")
    expected = open_group([shop], {"shop": shop.default_state()}, 0)
    expected.call(*TOP_UP)
    return Task.create(
        envs=[EnvRef(name="shop", version=shop.spec.meta.version, content_hash=shop.spec.content_hash)],
        initial_state={"shop": shop.default_state()},
        turns=[Turn(user=ScriptedUser(text="Add 10 to Grace's wallet."), gold_calls=[GoldCall(tool=TOP_UP[0], arguments=TOP_UP[1])])],
        expected_final_state={"shop": expected.sessions["shop"].state_json()},
    )


def forbidden(action: object) -> None:
    with pytest.raises(RemoteError) as excinfo:
        action()  # type: ignore[operator]
    assert (excinfo.value.status, excinfo.value.code) == (403, "forbidden"), excinfo.value
    assert "policy role" in excinfo.value.message


def test_the_policy_lists_tools_and_calls_them_and_nothing_else(url: str, task: Task) -> None:
    with EnvClient(url, token=TRAINER) as trainer, EnvClient(url, token=POLICY) as policy_client:
        session = trainer.create_session(task=task)
        policy = RemoteSession(policy_client, session.info)
        assert "shop__top_up_wallet" in {t.name for t in policy.tools()}
        assert policy.openai_tools() and policy.mcp_tools()
        gold_state = None
        with trainer.create_session(task=task) as scout:
            scout.call(*TOP_UP)
            gold_state = scout.state().snapshots
        for action in (policy.state, policy.hash, policy.log, policy.fork, policy.reward, policy.refresh,
                       lambda: policy.restore(gold_state), lambda: policy.reward(task=task), policy.close,
                       lambda: policy_client.create_session(task=task), policy_client.sessions):
            forbidden(action)
        assert policy.call(*TOP_UP).ok
        assert session.refresh().steps == 1, "refused requests left the session as it was"
        assert session.reward().total == pytest.approx(1.0)
        session.close()


def test_health_stays_open_and_unknown_tokens_are_unauthorized(url: str) -> None:
    assert httpx.get(f"{url}/v1/health").status_code == 200
    response = httpx.get(f"{url}/v1/sessions", headers={"authorization": "Bearer not-a-token-at-all-000"})
    assert response.status_code == 401


def test_policy_routes() -> None:
    assert policy_may("POST", "/v1/sessions/ses_1/calls") and policy_may("GET", "/v1/sessions/ses_1/tools/openai")
    assert policy_may("POST", "/mcp")
    assert not policy_may("POST", "/v1/sessions/ses_1/restore") and not policy_may("POST", "/v1/sessions")
    assert not policy_may("GET", "/v1/sessions/ses_1/calls") and not policy_may("POST", "/v1/sessions/ses_1/reward")


@pytest.mark.parametrize(("config", "problem"), [
    (ServeConfig(policy_token=POLICY), "needs a trainer token"),
    (ServeConfig(token=TRAINER, policy_token=TRAINER), "differ from the trainer's token"),
    (ServeConfig(token=TRAINER, policy_token="short"), "at least 16 characters"),
])
def test_bad_role_configurations_are_refused(config: ServeConfig, problem: str) -> None:
    with pytest.raises(ServeConfigError, match=problem):
        config.check()


def test_the_cli_reads_the_policy_token_and_refuses_it_without_a_trainer_token(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from envfactory.cli.app import app

    policy_file = tmp_path / "policy"
    policy_file.write_text(POLICY + "\n")
    result = CliRunner().invoke(app, ["serve", "--http", "--policy-token-file", str(policy_file)],
                                env={"ENVFACTORY_SERVE_TOKEN": ""})
    assert result.exit_code != 0
    assert "a policy token needs a trainer token" in result.output
