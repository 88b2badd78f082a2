"""ASGI middleware of the HTTP server: bearer-token auth and the request size limit.

Both answer with an `ApiError` JSON body naming the problem (401 with `WWW-Authenticate: Bearer`, 413)
and never let a refused request reach the application. Pure ASGI, so they wrap the FastAPI routes and
the MCP endpoint alike.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from envfactory.serve.errors import ErrorCode
from envfactory.serve.models import ApiError, ErrorDetail


async def send_error(send: Send, status: int, code: ErrorCode, message: str,
                     headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
    body = ApiError(error=ErrorDetail(code=code, message=message)).model_dump_json().encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                    *headers],
    })
    await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value)
    return None


class BearerAuth:
    """Requests must carry `Authorization: Bearer <token>`, except for the paths in `open_paths`."""

    def __init__(self, app: ASGIApp, token: str, open_paths: Iterable[str] = ()) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode()
        self._open = frozenset(open_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in self._open:
            await self.app(scope, receive, send)
            return
        given = _header(scope, b"authorization")
        if given is None or not hmac.compare_digest(given, self._expected):
            message = ("missing bearer token: send 'Authorization: Bearer <token>'" if given is None
                       else "invalid bearer token")
            await send_error(send, 401, "unauthorized", message, [(b"www-authenticate", b"Bearer")])
            return
        await self.app(scope, receive, send)


class BodyLimit:
    """Refuse request bodies larger than `max_bytes` with 413, whether announced by Content-Length or
    streamed in chunks. Accepted bodies are passed on unchanged."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self, size: str) -> str:
        return f"request body of {size} exceeds the server's limit of {self.max_bytes} bytes"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                await send_error(send, 400, "bad_request", "Content-Length is not a number")
                return
            if length > self.max_bytes:
                await send_error(send, 413, "payload_too_large", self._too_large(f"{length} bytes"))
                return
            await self.app(scope, receive, send)  # the server enforces Content-Length itself
            return
        # No length announced (chunked): read ahead up to the limit, then replay what was read.
        chunks: list[Message] = []
        size = 0
        while True:
            message = await receive()
            chunks.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                await send_error(send, 413, "payload_too_large", self._too_large(f"at least {size} bytes"))
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return chunks.pop(0) if chunks else await receive()

        await self.app(scope, replay, send)
