"""ASGI middleware of the HTTP server: bearer-token auth, the request size limit and the JSON body guard.

Each answers with an `ApiError` JSON body naming the problem (401 with `WWW-Authenticate: Bearer`,
413, 400/415 from `JsonBodyGuard`) and never lets a refused request reach the application. Pure ASGI,
so they wrap the FastAPI routes and the MCP endpoint alike.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from envfactory.serve.errors import ErrorCode
from envfactory.serve.models import ApiError, ErrorDetail


async def send_error(send: Send, status: int, code: ErrorCode, message: str,
                     headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
    """Send a complete JSON error answer (`ApiError`) on an ASGI `send`, with any extra `headers`."""
    body = ApiError(error=ErrorDetail(code=code, message=message)).model_dump_json().encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                    *headers],
    })
    await send({"type": "http.response.body", "body": body})


_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value)
    return None


class BearerAuth:
    """Requests must carry `Authorization: Bearer <token>`, except for the paths in `open_paths`."""

    def __init__(self, app: ASGIApp, token: str, open_paths: Iterable[str] = ()) -> None:
        """Guard `app` with `token`; requests for `open_paths` (exact paths) pass without one."""
        self.app = app
        self._expected = f"Bearer {token}".encode()
        self._open = frozenset(open_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass non-HTTP scopes and open paths through; otherwise answer 401 (`unauthorized`, with a
        `WWW-Authenticate: Bearer` header) unless the request carries the token (compared in constant time)."""
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
        """Guard `app`: bodies over `max_bytes` (declared or streamed) are answered with 413."""
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self, size: str) -> str:
        return f"request body of {size} exceeds the server's limit of {self.max_bytes} bytes"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer 413 (`payload_too_large`) for a declared or streamed body over `max_bytes` and 400 for a
        Content-Length that is not a number; pass the rest on (a streamed body is replayed as it was read)."""
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


def nesting_exceeds(value: object, limit: int) -> bool:
    """True when arrays/objects in `value` nest deeper than `limit` (iterative: no recursion limit)."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def _is_json(content_type: bytes | None) -> bool:
    if content_type is None:
        return False
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or (media.startswith(b"application/") and media.endswith(b"+json"))


class JsonBodyGuard:
    """Refuse request bodies the application must never see, before any route parses them:

    - on `api_prefix` routes, a body whose Content-Type is not JSON: 415 `unsupported_media_type`;
    - a body that is not UTF-8, or a JSON string holding a lone surrogate (`"\\ud800"`, which cannot
      be encoded back into any answer or log): 400 `invalid_encoding`;
    - JSON nested deeper than `max_depth`: 400 `nesting_too_deep`;
    - on `api_prefix` routes, JSON that does not parse: 400 `bad_request` (elsewhere, e.g. MCP, the
      endpoint answers malformed JSON in its own protocol).

    Bodies that pass are replayed to the application unchanged. Place it inside `BodyLimit`, which
    bounds what is read here.
    """

    def __init__(self, app: ASGIApp, max_depth: int, api_prefix: str) -> None:
        """Guard `app` as the class says: JSON nested deeper than `max_depth` is refused everywhere, and
        non-JSON or unparseable bodies on `api_prefix` routes."""
        self.app = app
        self.max_depth = max_depth
        self.api_prefix = api_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Read a body-carrying request's body, refuse it as the class says, or replay it to the app unchanged."""
        if scope["type"] != "http" or scope.get("method") not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        messages: list[Message] = []
        parts: list[bytes] = []
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            parts.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(parts)
        problem = self._problem(scope, body) if body else None
        if problem is not None:
            await send_error(send, *problem)
            return

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    def _problem(self, scope: Scope, body: bytes) -> tuple[int, ErrorCode, str] | None:
        api = str(scope.get("path", "")).startswith(self.api_prefix)
        if api and not _is_json(_header(scope, b"content-type")):
            given = (_header(scope, b"content-type") or b"none").decode("latin-1")[:100]
            return 415, "unsupported_media_type", f"request bodies must be JSON (Content-Type: application/json), got {given!r}"
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as exc:
            return 400, "invalid_encoding", f"request body is not valid UTF-8: byte 0x{body[exc.start]:02x} at offset {exc.start}"
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            text = str(exc)
            if "surrogate" in text:
                return 400, "invalid_encoding", ("request body holds a lone UTF-16 surrogate escape (e.g. \\ud800), "
                                                 "which is not a character; send valid Unicode")
            if "recursion" in text or "depth limit" in text:
                return 400, "nesting_too_deep", f"request JSON nests deeper than {self.max_depth} levels"
            return (400, "bad_request", f"request body is not valid JSON: {text}") if api else None
        if nesting_exceeds(data, self.max_depth):
            return 400, "nesting_too_deep", f"request JSON nests deeper than {self.max_depth} levels"
        return None
