"""Typed Python client of the HTTP environment API (httpx), synchronous and asynchronous.

Each operation is defined once, as a `_Op` (method, path, body, response model); `EnvClient` sends
operations with `httpx.Client`, `AsyncEnvClient` with `httpx.AsyncClient`. Responses are parsed into
the wire models of `models.py`; error answers raise `RemoteError` with the server's code and message.
`RemoteSession` / `AsyncRemoteSession` are handles on one session (context managers that close it).

    with EnvClient("http://127.0.0.1:8000", token=...) as client:
        with client.create_session(envs=["shop"], seed=1) as session:
            result = session.call("shop__get_customer", {"id": "cus_0001"})
            print(result.output, session.hash())
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Generic, TypeVar

import httpx
from pydantic import ValidationError

from envfactory.serve.errors import RemoteError
from envfactory.serve.models import (
    API_PREFIX,
    ApiError,
    ApiModel,
    CallRequest,
    CallResponse,
    Closed,
    CreateSessionRequest,
    EnvList,
    HashResponse,
    Health,
    LogEntry,
    LogResponse,
    McpTool,
    McpToolList,
    Naming,
    OpenAITool,
    OpenAIToolList,
    RestoreRequest,
    RewardRequest,
    RewardResponse,
    SessionInfo,
    SessionList,
    StateResponse,
    ToolSpecList,
)
from envfactory.spec import JSONObject, JSONValue, Message, Reward, Snapshot, Task, ToolResult, ToolSpec

R = TypeVar("R", bound=ApiModel)


@dataclass(frozen=True, slots=True)
class _Op(Generic[R]):
    method: str
    path: str
    response: type[R]
    body: ApiModel | None = None


def _session_path(session_id: str, suffix: str = "") -> str:
    return f"{API_PREFIX}/sessions/{session_id}{suffix}"


class _Ops:
    """The API, one builder per operation (shared by the sync and async clients)."""

    @staticmethod
    def health() -> _Op[Health]:
        return _Op("GET", f"{API_PREFIX}/health", Health)

    @staticmethod
    def envs() -> _Op[EnvList]:
        return _Op("GET", f"{API_PREFIX}/envs", EnvList)

    @staticmethod
    def sessions() -> _Op[SessionList]:
        return _Op("GET", f"{API_PREFIX}/sessions", SessionList)

    @staticmethod
    def create(request: CreateSessionRequest) -> _Op[SessionInfo]:
        return _Op("POST", f"{API_PREFIX}/sessions", SessionInfo, request)

    @staticmethod
    def info(session_id: str) -> _Op[SessionInfo]:
        return _Op("GET", _session_path(session_id), SessionInfo)

    @staticmethod
    def close(session_id: str) -> _Op[Closed]:
        return _Op("DELETE", _session_path(session_id), Closed)

    @staticmethod
    def tools(session_id: str) -> _Op[ToolSpecList]:
        return _Op("GET", _session_path(session_id, "/tools"), ToolSpecList)

    @staticmethod
    def openai_tools(session_id: str) -> _Op[OpenAIToolList]:
        return _Op("GET", _session_path(session_id, "/tools/openai"), OpenAIToolList)

    @staticmethod
    def mcp_tools(session_id: str) -> _Op[McpToolList]:
        return _Op("GET", _session_path(session_id, "/tools/mcp"), McpToolList)

    @staticmethod
    def call(session_id: str, tool: str, arguments: JSONObject | str | None, with_hash: bool) -> _Op[CallResponse]:
        body = CallRequest(tool=tool, arguments=arguments if arguments is not None else {}, with_hash=with_hash)
        return _Op("POST", _session_path(session_id, "/calls"), CallResponse, body)

    @staticmethod
    def state(session_id: str) -> _Op[StateResponse]:
        return _Op("GET", _session_path(session_id, "/state"), StateResponse)

    @staticmethod
    def hash(session_id: str) -> _Op[HashResponse]:
        return _Op("GET", _session_path(session_id, "/hash"), HashResponse)

    @staticmethod
    def restore(session_id: str, snapshots: Mapping[str, Snapshot]) -> _Op[HashResponse]:
        return _Op("POST", _session_path(session_id, "/restore"), HashResponse,
                   RestoreRequest(snapshots=dict(snapshots)))

    @staticmethod
    def fork(session_id: str) -> _Op[SessionInfo]:
        return _Op("POST", _session_path(session_id, "/fork"), SessionInfo)

    @staticmethod
    def log(session_id: str) -> _Op[LogResponse]:
        return _Op("GET", _session_path(session_id, "/log"), LogResponse)

    @staticmethod
    def reward(session_id: str, task: Task | None, messages: list[Message] | None) -> _Op[RewardResponse]:
        return _Op("POST", _session_path(session_id, "/reward"), RewardResponse,
                   RewardRequest(task=task, messages=messages))


def _create_request(envs: list[str] | None, initial_state: Mapping[str, JSONValue] | None,
                    snapshots: Mapping[str, Snapshot] | None, task: Task | None, seed: int | None,
                    naming: Naming | None) -> CreateSessionRequest:
    return CreateSessionRequest(envs=list(envs or []), initial_state=dict(initial_state or {}),
                                snapshots=dict(snapshots or {}), task=task, seed=seed, naming=naming)


def _verify(base_url: str) -> bool:
    # Plain-http URLs never use TLS (and redirects are not followed), so skip building a certificate
    # store: httpx loads the system CA bundle for every client otherwise (~20 ms each).
    return not base_url.startswith("http://")


def _headers(token: str | None) -> dict[str, str]:
    headers = {"accept": "application/json"}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    return headers


def _request_kwargs(op: _Op[Any]) -> dict[str, Any]:
    if op.body is None:
        return {}
    return {"content": op.body.model_dump_json(by_alias=True), "headers": {"content-type": "application/json"}}


def _parse(op: _Op[R], response: httpx.Response) -> R:
    if response.is_success:
        return op.response.model_validate_json(response.content)
    try:
        error = ApiError.model_validate_json(response.content).error
        raise RemoteError(response.status_code, error.code, error.message)
    except ValidationError:
        text = response.text.strip()[:300] or response.reason_phrase
        raise RemoteError(response.status_code, "http_error", f"{op.method} {op.path}: {text}") from None


# -- synchronous ---------------------------------------------------------------------------------------------


class EnvClient:
    """Synchronous client. `http`: an `httpx.Client` to use (its base URL and auth are yours to set)."""

    def __init__(self, base_url: str, *, token: str | None = None, timeout_s: float = 60.0,
                 http: httpx.Client | None = None) -> None:
        """A client of the server at `base_url`, sending `token` as a bearer token. With `http`, that client is
        used (and not closed by `close`); otherwise one is made with `timeout_s`. Every operation raises
        `RemoteError` for an error answer and `httpx.TransportError` when the server cannot be reached."""
        self._owned = http is None
        self._http = http or httpx.Client(base_url=base_url, headers=_headers(token), timeout=timeout_s,
                                          verify=_verify(base_url))

    def _send(self, op: _Op[R]) -> R:
        return _parse(op, self._http.request(op.method, op.path, **_request_kwargs(op)))

    def health(self) -> Health:
        """`GET /health`: the server's version, open sessions and limits."""
        return self._send(_Ops.health())

    def envs(self) -> EnvList:
        """`GET /envs`: the environments the server serves."""
        return self._send(_Ops.envs())

    def sessions(self) -> SessionList:
        """`GET /sessions`: the open sessions (HTTP and MCP)."""
        return self._send(_Ops.sessions())

    def create_session(self, *, envs: list[str] | None = None, initial_state: Mapping[str, JSONValue] | None = None,
                       snapshots: Mapping[str, Snapshot] | None = None, task: Task | None = None,
                       seed: int | None = None, naming: Naming | None = None) -> RemoteSession:
        """`POST /sessions`: a new session over `envs` (or the task's environments) on `initial_state` or
        `snapshots`, seeded with `seed`; `RemoteError` when the server refuses (unknown env, session cap)."""
        info = self._send(_Ops.create(_create_request(envs, initial_state, snapshots, task, seed, naming)))
        return RemoteSession(self, info)

    def session(self, session_id: str) -> RemoteSession:
        """A handle on an existing session (an HTTP session, or an MCP session `mcp_<id>`)."""
        return RemoteSession(self, self._send(_Ops.info(session_id)))

    def close(self) -> None:
        """Close the HTTP client if this object made it (idempotent); sessions stay open on the server."""
        if self._owned:
            self._http.close()

    def __enter__(self) -> EnvClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class RemoteSession:
    """A handle on one session of an `EnvClient`; every method is one request (errors as the client's).
    A context manager that closes the session on exit."""
    def __init__(self, client: EnvClient, info: SessionInfo) -> None:
        """A handle on the session `info` describes (nothing is sent)."""
        self._client = client
        self.info = info
        self.id = info.id

    def call(self, tool: str, arguments: JSONObject | str | None = None) -> ToolResult:
        """Call `tool` with `arguments` (an object, or its JSON text); the `ToolResult` holds a tool's own error."""
        return self._client._send(_Ops.call(self.id, tool, arguments, False)).result

    def call_with_hash(self, tool: str, arguments: JSONObject | str | None = None) -> CallResponse:
        """`call`, also returning the state hash after the call."""
        return self._client._send(_Ops.call(self.id, tool, arguments, True))

    def tools(self) -> list[ToolSpec]:
        """The session's tools as `ToolSpec`s."""
        return self._client._send(_Ops.tools(self.id)).tools

    def openai_tools(self) -> list[OpenAITool]:
        """The session's tools in OpenAI function-calling form."""
        return self._client._send(_Ops.openai_tools(self.id)).tools

    def mcp_tools(self) -> list[McpTool]:
        """The session's tools in MCP `tools/list` form."""
        return self._client._send(_Ops.mcp_tools(self.id)).tools

    def state(self) -> StateResponse:
        """The session's state: one snapshot per environment and the combined hash."""
        return self._client._send(_Ops.state(self.id))

    def hash(self) -> str:
        """The session's combined state hash."""
        return self._client._send(_Ops.hash(self.id)).state_hash

    def hashes(self) -> HashResponse:
        """The combined state hash and each environment's."""
        return self._client._send(_Ops.hash(self.id))

    def restore(self, snapshots: Mapping[str, Snapshot]) -> HashResponse:
        """Replace the state with `snapshots` (one per environment); the new hashes."""
        return self._client._send(_Ops.restore(self.id, snapshots))

    def fork(self) -> RemoteSession:
        """A new session with a copy of this one's state (this one is unchanged)."""
        return RemoteSession(self._client, self._client._send(_Ops.fork(self.id)))

    def log(self) -> list[LogEntry]:
        """The session's call log, in call order."""
        return self._client._send(_Ops.log(self.id)).calls

    def reward(self, task: Task | None = None, messages: list[Message] | None = None) -> Reward:
        """Score the episode so far against the task the session was opened from (`task`, when given, must be
        that task: 409 otherwise); `messages` let answer facts be scored."""
        return self._client._send(_Ops.reward(self.id, task, messages)).reward

    def refresh(self) -> SessionInfo:
        """Re-read the session's info from the server (and keep it in `info`)."""
        self.info = self._client._send(_Ops.info(self.id))
        return self.info

    def close(self) -> None:
        """Close the session on the server; `RemoteError` when it is already gone."""
        self._client._send(_Ops.close(self.id))

    def __enter__(self) -> RemoteSession:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


# -- asynchronous ------------------------------------------------------------------------------------------


class AsyncEnvClient:
    """Asynchronous client; the same operations as `EnvClient`, awaited."""

    def __init__(self, base_url: str, *, token: str | None = None, timeout_s: float = 60.0,
                 http: httpx.AsyncClient | None = None, max_connections: int = 100) -> None:
        """As `EnvClient.__init__`, over an `httpx.AsyncClient` allowing `max_connections` connections."""
        self._owned = http is None
        self._http = http or httpx.AsyncClient(
            base_url=base_url, headers=_headers(token), timeout=timeout_s, verify=_verify(base_url),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        )

    async def _send(self, op: _Op[R]) -> R:
        return _parse(op, await self._http.request(op.method, op.path, **_request_kwargs(op)))

    async def health(self) -> Health:
        """`EnvClient.health`, awaited."""
        return await self._send(_Ops.health())

    async def envs(self) -> EnvList:
        """`EnvClient.envs`, awaited."""
        return await self._send(_Ops.envs())

    async def sessions(self) -> SessionList:
        """`EnvClient.sessions`, awaited."""
        return await self._send(_Ops.sessions())

    async def create_session(self, *, envs: list[str] | None = None,
                             initial_state: Mapping[str, JSONValue] | None = None,
                             snapshots: Mapping[str, Snapshot] | None = None, task: Task | None = None,
                             seed: int | None = None, naming: Naming | None = None) -> AsyncRemoteSession:
        """`EnvClient.create_session`, awaited."""
        info = await self._send(_Ops.create(_create_request(envs, initial_state, snapshots, task, seed, naming)))
        return AsyncRemoteSession(self, info)

    async def session(self, session_id: str) -> AsyncRemoteSession:
        """`EnvClient.session`, awaited: a handle on an existing session."""
        return AsyncRemoteSession(self, await self._send(_Ops.info(session_id)))

    async def aclose(self) -> None:
        """Close the HTTP client if this object made it; sessions stay open on the server."""
        if self._owned:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncEnvClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()


class AsyncRemoteSession:
    """`RemoteSession` for `AsyncEnvClient`: the same operations, awaited; an async context manager."""
    def __init__(self, client: AsyncEnvClient, info: SessionInfo) -> None:
        """A handle on the session `info` describes (nothing is sent)."""
        self._client = client
        self.info = info
        self.id = info.id

    async def call(self, tool: str, arguments: JSONObject | str | None = None) -> ToolResult:
        """`RemoteSession.call`, awaited."""
        return (await self._client._send(_Ops.call(self.id, tool, arguments, False))).result

    async def call_with_hash(self, tool: str, arguments: JSONObject | str | None = None) -> CallResponse:
        """`RemoteSession.call_with_hash`, awaited."""
        return await self._client._send(_Ops.call(self.id, tool, arguments, True))

    async def tools(self) -> list[ToolSpec]:
        """`RemoteSession.tools`, awaited."""
        return (await self._client._send(_Ops.tools(self.id))).tools

    async def openai_tools(self) -> list[OpenAITool]:
        """`RemoteSession.openai_tools`, awaited."""
        return (await self._client._send(_Ops.openai_tools(self.id))).tools

    async def mcp_tools(self) -> list[McpTool]:
        """`RemoteSession.mcp_tools`, awaited."""
        return (await self._client._send(_Ops.mcp_tools(self.id))).tools

    async def state(self) -> StateResponse:
        """`RemoteSession.state`, awaited."""
        return await self._client._send(_Ops.state(self.id))

    async def hash(self) -> str:
        """`RemoteSession.hash`, awaited."""
        return (await self._client._send(_Ops.hash(self.id))).state_hash

    async def hashes(self) -> HashResponse:
        """`RemoteSession.hashes`, awaited."""
        return await self._client._send(_Ops.hash(self.id))

    async def restore(self, snapshots: Mapping[str, Snapshot]) -> HashResponse:
        """`RemoteSession.restore`, awaited."""
        return await self._client._send(_Ops.restore(self.id, snapshots))

    async def fork(self) -> AsyncRemoteSession:
        """`RemoteSession.fork`, awaited."""
        return AsyncRemoteSession(self._client, await self._client._send(_Ops.fork(self.id)))

    async def log(self) -> list[LogEntry]:
        """`RemoteSession.log`, awaited."""
        return (await self._client._send(_Ops.log(self.id))).calls

    async def reward(self, task: Task | None = None, messages: list[Message] | None = None) -> Reward:
        """`RemoteSession.reward`, awaited."""
        return (await self._client._send(_Ops.reward(self.id, task, messages))).reward

    async def refresh(self) -> SessionInfo:
        """`RemoteSession.refresh`, awaited."""
        self.info = await self._client._send(_Ops.info(self.id))
        return self.info

    async def close(self) -> None:
        """`RemoteSession.close`, awaited."""
        await self._client._send(_Ops.close(self.id))

    async def __aenter__(self) -> AsyncRemoteSession:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()
