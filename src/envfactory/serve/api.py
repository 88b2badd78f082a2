"""The HTTP environment API (FastAPI): versioned routes under `/v1` over an `EnvService`.

Contract:
- Bodies are the typed models of `models.py`; every error is an `ApiError` whose message names the
  problem: 400 malformed JSON, 401 missing/invalid token, 403 a route the policy role may not use
  (`roles.py`), 404 unknown session/environment/route, 409 reward for a session opened without a task
  or naming another task, 410 session closed (with the reason), 413 body over the limit, 422 a body
  that does not fit (field problems listed), 503 session cap.
- A tool that fails is not an HTTP error: the call answers 200 with `result.error` set.
- OpenAPI at `/openapi.json`, interactive docs at `/docs`; these and `/v1/health` need no token.
- `create_app(..., mcp=endpoint)` also serves MCP (streamable HTTP) at `/mcp`; MCP sessions then show
  up in `GET /v1/sessions` with origin `mcp`, and this API is their control channel.
- The app's lifespan runs the idle reaper and, on shutdown, closes every session.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from enum import Enum
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Route

import envfactory
from envfactory.serve.config import ServeConfig
from envfactory.serve.errors import ErrorCode, ServeError
from envfactory.serve.mcp_server import McpHttpEndpoint
from envfactory.serve.middleware import BearerAuth, BodyLimit, JsonBodyGuard
from envfactory.serve.models import (
    API_PREFIX,
    ApiError,
    CallRequest,
    CallResponse,
    Closed,
    CreateSessionRequest,
    EnvList,
    ErrorDetail,
    HashResponse,
    Health,
    LogResponse,
    McpToolList,
    OpenAIToolList,
    RestoreRequest,
    RewardRequest,
    RewardResponse,
    SessionInfo,
    SessionList,
    StateResponse,
    ToolSpecList,
)
from envfactory.serve.roles import RoleAuth
from envfactory.serve.service import EnvService

logger = logging.getLogger(__name__)

MCP_PATH = "/mcp"
OPEN_PATHS = (f"{API_PREFIX}/health", "/docs", "/docs/oauth2-redirect", "/openapi.json", "/redoc")

def _error_responses(**extra: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI documentation of the error answers a route can give (a fresh dict per route)."""
    texts = {"401": "missing or invalid bearer token", "404": "unknown session or environment",
             "410": "the session was closed", "422": "the request does not fit", "503": "session cap reached",
             **extra}
    return {int(status): {"model": ApiError, "description": text} for status, text in texts.items()}


DESCRIPTION = """Stateful tool environments over HTTP: open isolated sessions (from environments and
initial states, or from a task), list their tools in OpenAI or MCP format, call tools, read state and
hashes, restore snapshots, fork, score rewards and close. Send `Authorization: Bearer <token>` when the
server has a token."""


def error_response(status: int, code: ErrorCode, message: str) -> JSONResponse:
    """The JSON error answer every failure of the API uses: `ApiError` with `code` and `message`, at `status`."""
    body = ApiError(error=ErrorDetail(code=code, message=message))
    return JSONResponse(body.model_dump(mode="json"), status_code=status)


def _describe_validation(exc: RequestValidationError) -> tuple[int, ErrorCode, str]:
    errors = list(exc.errors())
    for err in errors:
        if err.get("type") == "json_invalid":
            return 400, "bad_request", f"request body is not valid JSON: {err.get('ctx', {}).get('error', err.get('msg'))}"
    problems = []
    for err in errors[:10]:
        loc = ".".join(str(part) for part in err.get("loc", ()) if part != "body") or "body"
        problems.append(f"{loc}: {err.get('msg')}")
    more = f" (and {len(errors) - 10} more)" if len(errors) > 10 else ""
    return 422, "invalid_request", "invalid request body: " + "; ".join(problems) + more


def create_app(service: EnvService, config: ServeConfig | None = None, *,
               mcp: McpHttpEndpoint | None = None) -> FastAPI:
    """The ASGI app: the `/v1` API over `service`, plus MCP at `/mcp` when `mcp` is given. Raises
    `ServeConfigError` for a config `ServeConfig.check` refuses; serves nothing until an ASGI server runs it."""
    cfg = config or ServeConfig()
    cfg.check()
    app = FastAPI(title="envfactory environment API", version=envfactory.__version__, description=DESCRIPTION,
                  lifespan=_lifespan(service, mcp))
    _add_error_handlers(app)
    _add_server_routes(app, service)
    _add_session_routes(app, service)
    _add_episode_routes(app, service)
    if mcp is not None:
        app.router.routes.append(Route(MCP_PATH, endpoint=mcp, include_in_schema=False))

    app.add_middleware(JsonBodyGuard, max_depth=cfg.limits.max_json_depth, api_prefix=API_PREFIX)
    app.add_middleware(BodyLimit, max_bytes=cfg.limits.max_body_bytes)
    if cfg.token is not None and cfg.policy_token is not None:
        app.add_middleware(RoleAuth, token=cfg.token, policy_token=cfg.policy_token, open_paths=OPEN_PATHS)
    elif cfg.token is not None:
        app.add_middleware(BearerAuth, token=cfg.token, open_paths=OPEN_PATHS)
    return app


def _lifespan(service: EnvService, mcp: McpHttpEndpoint | None,
              ) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """The app's lifespan: the idle reaper (and MCP's session manager) while serving, every session closed after."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(service.run_reaper)
            try:
                if mcp is not None:
                    async with mcp.run():
                        yield
                else:
                    yield
            finally:
                with anyio.CancelScope(shield=True):
                    closed = await service.close_all("the server shut down")
                if closed:
                    logger.info("closed %d session(s) at shutdown", closed)
                tasks.cancel_scope.cancel()

    return lifespan


def _add_error_handlers(app: FastAPI) -> None:
    """Every failure answers an `ApiError`: refusals with their status, validation 400/422, unknown routes
    404, wrong methods 405, crashes 500 (logged; the server keeps serving)."""

    @app.exception_handler(ServeError)
    async def _serve_error(_request: Request, exc: ServeError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(*_describe_validation(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return error_response(404, "unknown_route", f"no route {request.url.path}; see /docs")
        if exc.status_code == 405:
            return error_response(405, "method_not_allowed", f"{request.method} is not allowed on {request.url.path}")
        return error_response(exc.status_code, "bad_request", str(exc.detail))

    @app.exception_handler(Exception)
    async def _crash(_request: Request, exc: Exception) -> JSONResponse:
        logger.error("request failed", exc_info=exc)
        return error_response(500, "internal_error", f"internal error: {type(exc).__name__}; the server keeps serving")


def _add_server_routes(app: FastAPI, service: EnvService) -> None:
    v1 = API_PREFIX

    @app.get(f"{v1}/health", tags=["server"])
    async def health() -> Health:
        """Liveness and load; needs no token."""
        limits = service.limits
        return Health(version=envfactory.__version__, sessions=len(service.registry),
                      max_sessions=limits.max_sessions, idle_timeout_s=limits.idle_timeout_s)

    @app.get(f"{v1}/envs", tags=["server"], responses=_error_responses())
    async def list_envs() -> EnvList:
        """The environments this server serves."""
        return EnvList(envs=service.catalog.summaries())

    @app.get(f"{v1}/envs/{{name}}/tools", tags=["server"], responses=_error_responses())
    async def env_tools(name: str) -> ToolSpecList:
        """An environment's tool specs (under their own names)."""
        return ToolSpecList(tools=list(service.catalog.get(name).env.spec.tools))


def _add_session_routes(app: FastAPI, service: EnvService) -> None:
    v1 = API_PREFIX
    tags: list[str | Enum] = ["sessions"]

    @app.post(f"{v1}/sessions", status_code=201, tags=tags, responses=_error_responses())
    async def create_session(request: CreateSessionRequest) -> SessionInfo:
        """Open a session: environments with initial states or snapshots, or a task (and a seed)."""
        return (await service.create(request)).info()

    @app.get(f"{v1}/sessions", tags=tags, responses=_error_responses())
    async def list_sessions() -> SessionList:
        """Every open session, HTTP and MCP."""
        return SessionList(sessions=[entry.info() for entry in service.registry],
                           max_sessions=service.limits.max_sessions)

    @app.get(f"{v1}/sessions/{{session_id}}", tags=tags, responses=_error_responses())
    async def get_session(session_id: str) -> SessionInfo:
        return await service.run(session_id, lambda entry: entry.info())

    @app.delete(f"{v1}/sessions/{{session_id}}", tags=tags, responses=_error_responses())
    async def close_session(session_id: str) -> Closed:
        """Close a session and release its state."""
        return await service.close(session_id)

    @app.get(f"{v1}/sessions/{{session_id}}/tools", tags=tags, responses=_error_responses())
    async def session_tools(session_id: str) -> ToolSpecList:
        """Tool specs under the names the agent uses."""
        return ToolSpecList(tools=service.tool_specs(session_id))

    @app.get(f"{v1}/sessions/{{session_id}}/tools/openai", tags=tags, responses=_error_responses())
    async def session_tools_openai(session_id: str) -> OpenAIToolList:
        """Tools in OpenAI function-calling format."""
        return OpenAIToolList(tools=service.openai_tools(session_id))

    @app.get(f"{v1}/sessions/{{session_id}}/tools/mcp", tags=tags, responses=_error_responses())
    async def session_tools_mcp(session_id: str) -> McpToolList:
        """Tools in MCP `tools/list` format, with annotations derived from each tool's effect."""
        return McpToolList(tools=service.mcp_tools(session_id))


def _add_episode_routes(app: FastAPI, service: EnvService) -> None:
    v1 = API_PREFIX
    tags: list[str | Enum] = ["sessions"]

    @app.post(f"{v1}/sessions/{{session_id}}/calls", tags=tags, responses=_error_responses())
    async def call(session_id: str, request: CallRequest) -> CallResponse:
        """Run one tool call; tool failures come back in `result.error`."""
        return await service.call(session_id, request.tool, request.arguments, with_hash=request.with_hash)

    @app.get(f"{v1}/sessions/{{session_id}}/state", tags=tags, responses=_error_responses())
    async def state(session_id: str) -> StateResponse:
        """Snapshots of every environment and the group hash."""
        return await service.state(session_id)

    @app.get(f"{v1}/sessions/{{session_id}}/hash", tags=tags, responses=_error_responses())
    async def state_hash(session_id: str) -> HashResponse:
        return await service.hash(session_id)

    @app.post(f"{v1}/sessions/{{session_id}}/restore", tags=tags, responses=_error_responses())
    async def restore(session_id: str, request: RestoreRequest) -> HashResponse:
        """Load snapshots into the session (every environment of the group)."""
        return await service.restore(session_id, request.snapshots)

    @app.post(f"{v1}/sessions/{{session_id}}/fork", status_code=201, tags=tags, responses=_error_responses())
    async def fork(session_id: str) -> SessionInfo:
        """A new session continuing from this one (state, clock, RNG, call log)."""
        return (await service.fork(session_id)).info()

    @app.get(f"{v1}/sessions/{{session_id}}/log", tags=tags, responses=_error_responses())
    async def log(session_id: str) -> LogResponse:
        """Every call so far with its result."""
        return await service.log(session_id)

    @app.post(f"{v1}/sessions/{{session_id}}/reward", tags=tags,
              responses=_error_responses(**{"409": "the session has no task, or the request names another"}))
    async def reward(session_id: str, request: RewardRequest) -> RewardResponse:
        """Score the episode so far against the task the session was opened from."""
        return await service.reward(session_id, request)
