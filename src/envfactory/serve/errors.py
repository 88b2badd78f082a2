"""Failures of the serving layer, each with the HTTP status and the error code the wire carries.

Server side, `ServeError`s are raised by the transport-agnostic service (`service.py`) and turned into
`ApiError` bodies by the HTTP app and into JSON-RPC errors by the MCP server. Client side,
`RemoteError` carries the server's code and message back to the caller. Tool failures are not here:
they are `ToolResult` errors the agent sees (DESIGN §3), whose kinds are `envfactory.spec.ErrorKind`,
the one vocabulary of error kinds both servers carry unchanged.
"""

from __future__ import annotations

from typing import Literal

from envfactory.errors import EnvFactoryError

ErrorCode = Literal[
    "bad_request",
    "invalid_request",
    "unauthorized",
    "forbidden",
    "unknown_session",
    "session_closed",
    "unknown_environment",
    "unknown_route",
    "method_not_allowed",
    "conflict",
    "payload_too_large",
    "invalid_encoding",
    "nesting_too_deep",
    "unsupported_media_type",
    "session_cap",
    "internal_error",
]


class ServeError(EnvFactoryError):
    """A request the server refuses; `message` names the problem."""

    status: int = 400
    code: ErrorCode = "bad_request"

    def __init__(self, message: str) -> None:
        """`message`: the problem in words; it is what the client sees as the answer's message."""
        super().__init__(message)
        self.message = message


class InvalidRequestError(ServeError):
    """The request is well-formed JSON but does not fit (a state the environment refuses, a task made
    for another version of an environment, ...)."""

    status = 422
    code = "invalid_request"


class UnknownSessionError(ServeError):
    """No session with this id was ever opened on this server: HTTP 404, `unknown_session`."""
    status = 404
    code = "unknown_session"


class SessionGoneError(ServeError):
    """The session existed and was closed (by its client, by the idle reaper or at shutdown): HTTP 410
    with the wire code `session_closed`. Named apart from `envfactory.errors.SessionClosedError` (a
    runtime session used after close), which it must not shadow."""

    status = 410
    code = "session_closed"


class UnknownEnvironmentError(ServeError):
    """The server does not serve an environment of this name: HTTP 404, `unknown_environment`."""
    status = 404
    code = "unknown_environment"


class ConflictError(ServeError):
    """The request is valid but not in this session's situation (e.g. a reward without a task)."""

    status = 409
    code = "conflict"


class SessionCapError(ServeError):
    """The server holds its maximum number of sessions; close one or retry later."""

    status = 503
    code = "session_cap"


class ServeConfigError(EnvFactoryError):
    """A server configuration that must not start (e.g. bound beyond loopback without a token)."""


class RemoteError(EnvFactoryError):
    """An error answer from an envfactory server, seen by the typed client."""

    def __init__(self, status: int, code: str, message: str) -> None:
        """The answer's HTTP `status`, wire error `code` and `message`, kept as attributes."""
        super().__init__(f"{message} (HTTP {status}, {code})")
        self.status = status
        self.code = code
        self.message = message
