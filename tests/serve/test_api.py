"""The HTTP env API through the typed client, against a uvicorn server: every operation, the tool
formats, and bad input (each answered with a 4xx naming the problem, the server serving on)."""

from __future__ import annotations

import asyncio
import time

import httpx
import orjson
import pytest
from serve_helpers import TOKEN, Running, running

from envfactory.runtime import load_env, open_group
from envfactory.serve.catalog import EnvCatalog
from envfactory.serve.client import AsyncEnvClient, EnvClient
from envfactory.serve.config import ServeConfig, ServeLimits, is_loopback
from envfactory.serve.errors import RemoteError, ServeConfigError
from envfactory.serve.models import McpTool
from envfactory.serve.tools import mcp_tool
from envfactory.spec import EnvRef, GoldCall, ScriptedUser, Task, Turn


@pytest.fixture()
def client(server: Running) -> EnvClient:
    with EnvClient(server.url) as c:
        yield c


def assert_serving(client: EnvClient) -> None:
    assert client.health().status == "ok"


def remote_error(excinfo: pytest.ExceptionInfo[RemoteError], status: int, code: str, *fragments: str) -> None:
    err = excinfo.value
    assert (err.status, err.code) == (status, code), err
    for fragment in fragments:
        assert fragment in err.message, err.message


# -- the operations -------------------------------------------------------------------------------------


def test_health_and_envs(client: EnvClient) -> None:
    health = client.health()
    assert health.status == "ok" and health.max_sessions == 1024
    envs = {env.name: env for env in client.envs().envs}
    assert set(envs) == {"shop", "tracker", "calendar"}
    assert envs["shop"].ref == load_env("shop").spec.ref
    assert envs["calendar"].kind == "python"


def test_session_lifecycle(client: EnvClient, server: Running) -> None:
    session = client.create_session(envs=["shop", "tracker"], seed=7)
    assert session.info.origin == "http" and session.info.seed == 7
    assert "shop__create_order" in session.info.tools and "tracker__create_task" in session.info.tools
    assert session.id in {s.id for s in client.sessions().sessions}

    result = session.call("shop__get_customer", {"id": "cus_0001"})
    assert result.ok and result.output["name"] == "Ada Byron"  # type: ignore[index]
    made = session.call_with_hash("shop__top_up_wallet", {"id": "cus_0001", "amount": 5})
    assert made.result.ok and made.state_hash == session.hash()

    state = session.state()
    assert set(state.snapshots) == {"shop", "tracker"}
    assert state.snapshots["shop"].state["collections"]["customers"]["cus_0001"]["wallet_balance"] == 255.0  # type: ignore[index, call-overload]

    child = session.fork()
    assert child.info.parent == session.id
    child.call("shop__top_up_wallet", {"id": "cus_0001", "amount": 100})
    assert child.hash() != session.hash()
    child.restore(state.snapshots)
    assert child.hash() == session.hash() == state.state_hash

    log = session.log()
    assert [entry.call.tool for entry in log] == ["shop__get_customer", "shop__top_up_wallet"]
    assert session.refresh().steps == 2

    # the same calls in process give the same state
    local = open_group([load_env("shop"), load_env("tracker")], seed=7)
    for entry in log:
        local.call(entry.call.tool, entry.call.arguments)
    assert local.hash() == session.hash()

    child.close()
    session.close()
    assert session.id not in server.service.registry and child.id not in server.service.registry


def test_tool_formats(client: EnvClient, server: Running) -> None:
    with client.create_session(envs=["shop", "calendar"]) as session:
        specs = session.tools()
        assert [spec.name for spec in specs] == session.info.tools
        openai = session.openai_tools()
        assert [tool.model_dump(by_alias=True) for tool in openai] == [spec.openai_function() for spec in specs]
        mcp = {tool.name: tool for tool in session.mcp_tools()}
        assert mcp["shop__get_customer"].annotations.model_dump(by_alias=True) == {
            "readOnlyHint": True, "destructiveHint": False, "idempotentHint": True, "openWorldHint": False}
        assert mcp["shop__create_order"].annotations.model_dump(by_alias=True) == {
            "readOnlyHint": False, "destructiveHint": True, "idempotentHint": False, "openWorldHint": False}
        assert mcp["calendar__respond_to_event"].annotations.idempotent_hint is True
        assert mcp["calendar__list_events"].output_schema is None  # an array output: no MCP output schema
        assert mcp["shop__create_order"].output_schema is not None
        assert list(mcp.values()) == [mcp_tool(spec) for spec in specs]
        raw = httpx.get(f"{server.url}/v1/sessions/{session.id}/tools/mcp").json()
        assert "inputSchema" in raw["tools"][0] and "readOnlyHint" in raw["tools"][0]["annotations"]
        assert McpTool.model_validate(raw["tools"][0]) == mcp[raw["tools"][0]["name"]]


def test_tool_failures_are_results_not_http_errors(client: EnvClient) -> None:
    with client.create_session(envs=["shop"]) as session:
        missing = session.call("shop__get_customer", {"id": "cus_9999"})
        assert missing.error is not None and missing.error.kind == "not_found"
        malformed = session.call("shop__get_customer", '{"id": ')
        assert malformed.error is not None and malformed.error.kind == "invalid_arguments"
        assert "not valid JSON" in malformed.error.message
        unknown = session.call("shop__launch", {})
        assert unknown.error is not None and unknown.error.kind == "unknown_tool"


def shop_task(seed: int = 0) -> Task:
    shop = load_env("shop")
    ref = EnvRef(name="shop", version=shop.spec.meta.version, content_hash=shop.spec.content_hash)
    gold = [GoldCall(tool="shop__top_up_wallet", arguments={"id": "cus_0002", "amount": 10})]
    expected = open_group([shop], {"shop": shop.default_state()}, seed)
    for call in gold:
        expected.call(call.tool, call.arguments)
    return Task.create(
        envs=[ref], initial_state={"shop": shop.default_state()}, seed=seed,
        turns=[Turn(user=ScriptedUser(text="Add 10 to Grace's wallet."), gold_calls=gold)],
        expected_final_state={"shop": expected.sessions["shop"].state_json()},
    )


def test_reward_from_a_task(client: EnvClient) -> None:
    task = shop_task()
    with client.create_session(task=task) as session:
        assert session.info.task_id == task.id
        assert session.reward().total == 0.0  # nothing done yet
        session.call("shop__top_up_wallet", {"id": "cus_0002", "amount": 10})
        reward = session.reward()
        assert reward.total == pytest.approx(1.0)
        assert reward.component("final_state") is not None
    with client.create_session(envs=["shop"]) as plain:
        with pytest.raises(RemoteError) as excinfo:
            plain.reward()
        remote_error(excinfo, 409, "conflict", "not opened from a task")
        plain.call("shop__top_up_wallet", {"id": "cus_0002", "amount": 10})
        with pytest.raises(RemoteError) as excinfo:
            plain.reward(task=task)  # the task is fixed when a session is created
        remote_error(excinfo, 409, "conflict", "not opened from a task")


def test_a_reward_request_cannot_name_another_task(client: EnvClient) -> None:
    task, other = shop_task(), shop_task(seed=5)
    with client.create_session(task=task) as session:
        session.call("shop__top_up_wallet", {"id": "cus_0002", "amount": 10})
        with pytest.raises(RemoteError) as excinfo:
            session.reward(task=other)
        remote_error(excinfo, 409, "conflict", "cannot name another task", other.id[:12])
        assert session.reward(task=task).total == pytest.approx(1.0)  # naming its own task is fine


def test_a_restored_gold_state_earns_nothing(client: EnvClient) -> None:
    task = shop_task()
    with client.create_session(task=task) as scout:
        scout.call("shop__top_up_wallet", {"id": "cus_0002", "amount": 10})
        gold = scout.state().snapshots
    with client.create_session(task=task) as session:
        session.restore(gold)
        assert session.reward().total == 0.0
        child = session.fork()  # a fork keeps the restored start
        assert child.reward().total == 0.0
        child.close()


def test_task_for_another_version_is_refused(client: EnvClient) -> None:
    task = shop_task()
    stale = Task.create(**{**task.model_dump(exclude={"id"}),
                           "envs": [EnvRef(name="shop", version="1.0.0", content_hash="0" * 64)]})
    with pytest.raises(RemoteError) as excinfo:
        client.create_session(task=stale)
    remote_error(excinfo, 422, "invalid_request", "the task was made for shop@1.0.0#000000000000")
    assert_serving(client)


def test_initial_state_and_snapshots(client: EnvClient) -> None:
    shop = load_env("shop")
    state = shop.default_state()
    state["collections"]["customers"]["cus_0001"]["name"] = "Changed Name"
    with client.create_session(envs=["shop"], initial_state={"shop": state}) as session:
        assert session.call("shop__get_customer", {"id": "cus_0001"}).output["name"] == "Changed Name"  # type: ignore[index]
        snapshot = session.state().snapshots["shop"]
    with client.create_session(envs=["shop"], snapshots={"shop": snapshot}) as again:
        assert again.hash() == open_group([shop], {"shop": snapshot}).hash()
    with pytest.raises(RemoteError) as excinfo:
        client.create_session(envs=["shop"], initial_state={"shop": {"collections": {"customers": 3}}})
    remote_error(excinfo, 422, "invalid_request")
    assert_serving(client)


def test_concurrent_calls_on_one_session_serialise(server: Running) -> None:
    async def run() -> None:
        async with AsyncEnvClient(server.url) as client:
            session = await client.create_session(envs=["shop"])
            results = await asyncio.gather(*[
                session.call("shop__top_up_wallet", {"id": "cus_0002", "amount": 1}) for _ in range(60)])
            assert all(result.ok for result in results)
            assert sorted(result.step for result in results) == list(range(60))
            customer = await session.call("shop__get_customer", {"id": "cus_0002"})
            assert customer.output["wallet_balance"] == 40.0 + 60  # type: ignore[index]
            await session.close()

    asyncio.run(run())


# -- bad input ---------------------------------------------------------------------------------------------


def test_unknown_session_and_calls_after_close(client: EnvClient) -> None:
    with pytest.raises(RemoteError) as excinfo:
        client.session("ses_nope")
    remote_error(excinfo, 404, "unknown_session", "ses_nope")
    session = client.create_session(envs=["shop"])
    session.close()
    for operation in (lambda: session.call("shop__get_customer", {"id": "cus_0001"}), session.hash,
                      session.state, session.fork, session.close):
        with pytest.raises(RemoteError) as excinfo:
            operation()
        remote_error(excinfo, 410, "session_closed", session.id, "closed by its client")
    assert_serving(client)


def test_bad_bodies(server: Running, client: EnvClient) -> None:
    http = httpx.Client(base_url=server.url)
    bad_json = http.post("/v1/sessions", content=b'{"envs": ["shop"', headers={"content-type": "application/json"})
    assert bad_json.status_code == 400
    assert "not valid JSON" in bad_json.json()["error"]["message"]
    extra = http.post("/v1/sessions", json={"envs": ["shop"], "colour": "blue"})
    assert extra.status_code == 422
    assert "colour" in extra.json()["error"]["message"]
    neither = http.post("/v1/sessions", json={})
    assert neither.status_code == 422 and "name the environments" in neither.json()["error"]["message"]
    unknown_env = http.post("/v1/sessions", json={"envs": ["zoo"]})
    assert unknown_env.status_code == 404
    assert unknown_env.json()["error"] == {
        "code": "unknown_environment", "message": "unknown environment 'zoo'; this server serves: shop, tracker, calendar"}
    no_route = http.get("/v2/sessions")
    assert no_route.status_code == 404 and no_route.json()["error"]["code"] == "unknown_route"
    wrong_method = http.put("/v1/sessions")
    assert wrong_method.status_code == 405
    session = client.create_session(envs=["shop"])
    not_a_call = http.post(f"/v1/sessions/{session.id}/calls", json={"arguments": {}})
    assert not_a_call.status_code == 422 and "tool" in not_a_call.json()["error"]["message"]
    assert session.call("shop__get_customer", {"id": "cus_0001"}).ok
    session.close()
    assert_serving(client)


def test_oversized_payloads(catalog: EnvCatalog) -> None:
    limits = ServeLimits(max_body_bytes=4096)
    with running(catalog, limits=limits) as srv, httpx.Client(base_url=srv.url) as http:
        session = http.post("/v1/sessions", json={"envs": ["shop"]}).json()["id"]
        big = {"tool": "shop__get_customer", "arguments": {"id": "x" * 10_000}}
        answer = http.post(f"/v1/sessions/{session}/calls", json=big)
        assert answer.status_code == 413
        assert answer.json()["error"]["message"] == (
            f"request body of {len(orjson.dumps(big))} bytes exceeds the server's limit of 4096 bytes")

        def chunks() -> object:
            for _ in range(10):
                yield b" " * 1000

        streamed = http.post(f"/v1/sessions/{session}/calls", content=chunks(),  # type: ignore[arg-type]
                             headers={"content-type": "application/json"})
        assert streamed.status_code == 413 and "exceeds the server's limit" in streamed.json()["error"]["message"]
        ok = http.post(f"/v1/sessions/{session}/calls", json={"tool": "shop__get_customer", "arguments": {"id": "cus_0001"}})
        assert ok.status_code == 200 and ok.json()["result"]["output"]["id"] == "cus_0001"


def test_session_cap(catalog: EnvCatalog) -> None:
    with running(catalog, limits=ServeLimits(max_sessions=2)) as srv, EnvClient(srv.url) as client:
        first = client.create_session(envs=["shop"])
        second = first.fork()
        with pytest.raises(RemoteError) as excinfo:
            client.create_session(envs=["shop"])
        remote_error(excinfo, 503, "session_cap", "maximum of 2 sessions")
        with pytest.raises(RemoteError):
            second.fork()
        first.close()
        client.create_session(envs=["shop"]).close()
        second.close()


def test_idle_reaper(catalog: EnvCatalog) -> None:
    limits = ServeLimits(idle_timeout_s=0.5, reap_interval_s=0.1)
    with running(catalog, limits=limits) as srv, EnvClient(srv.url) as client:
        idle = client.create_session(envs=["shop"])
        busy = client.create_session(envs=["shop"])
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            busy.call("shop__get_customer", {"id": "cus_0001"})
            time.sleep(0.05)
        with pytest.raises(RemoteError) as excinfo:
            idle.call("shop__get_customer", {"id": "cus_0001"})
        remote_error(excinfo, 410, "session_closed", "idle for more than 0.5 s")
        assert busy.call("shop__get_customer", {"id": "cus_0001"}).ok
        assert srv.service.registry.ids() == [busy.id]


# -- auth -------------------------------------------------------------------------------------------------


def test_bearer_token(catalog: EnvCatalog) -> None:
    with running(catalog, token=TOKEN) as srv:
        with httpx.Client(base_url=srv.url) as anonymous:
            assert anonymous.get("/v1/health").status_code == 200  # open
            assert anonymous.get("/openapi.json").status_code == 200
            refused = anonymous.post("/v1/sessions", json={"envs": ["shop"]})
            assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
            assert "missing bearer token" in refused.json()["error"]["message"]
            wrong = anonymous.get("/v1/sessions", headers={"authorization": "Bearer nope"})
            assert wrong.status_code == 401 and wrong.json()["error"]["message"] == "invalid bearer token"
            assert anonymous.post("/mcp", json={}).status_code == 401
        with EnvClient(srv.url, token=TOKEN) as client:
            client.create_session(envs=["shop"]).close()
        assert len(srv.service.registry) == 0


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("localhost", True), ("::1", True), ("[::1]", True), ("127.1.2.3", True),
    ("0.0.0.0", False), ("::", False), ("10.0.0.5", False), ("example.com", False),
])
def test_loopback_detection(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_beyond_loopback_needs_a_token() -> None:
    with pytest.raises(ServeConfigError, match=r"refusing to listen on 0\.0\.0\.0 without a bearer token"):
        ServeConfig(host="0.0.0.0").check()
    with pytest.raises(ServeConfigError, match="at least 16 characters"):
        ServeConfig(host="0.0.0.0", token="short").check()
    ServeConfig(host="0.0.0.0", token=TOKEN).check()
    ServeConfig(host="127.0.0.1").check()


def test_openapi_documents_the_typed_models(server: Running) -> None:
    schema = httpx.get(f"{server.url}/openapi.json").json()
    paths = schema["paths"]
    assert {"/v1/sessions", "/v1/sessions/{session_id}/calls", "/v1/sessions/{session_id}/reward",
            "/v1/sessions/{session_id}/fork", "/v1/sessions/{session_id}/state"} <= set(paths)
    call = paths["/v1/sessions/{session_id}/calls"]["post"]
    assert call["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/CallRequest")
    assert call["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/CallResponse")
    assert call["responses"]["410"]["content"]["application/json"]["schema"]["$ref"].endswith("/ApiError")
    assert "/mcp" not in paths
