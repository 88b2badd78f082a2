"""The one OpenAI-compatible stub endpoint of the test suite (the `openai_stub` fixture of
tests/conftest.py): standard library HTTP on loopback, no model. It answers each POST with the next `(status, body)` of `script`, or, when the
script is empty, with `answer(body)`, and keeps every request body in `bodies`. The model layer's tests
script it (error mapping, the request forms); the synthesis tests give it an `answer` that serves a
scripted `LLMClient` through `llm.http_server`'s request parsing and response rendering
(`openai_answer`), so a stage runs over `--llm openai:URL` exactly as against a real server.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Callable
from typing import Any

Answer = Callable[[dict[str, Any]], tuple[int, dict[str, Any]]]


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        server: Any = self.server
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with server.lock:
            server.bodies.append(body)
            scripted = server.script.pop(0) if server.script else None
        if scripted is None and server.answer is None:
            scripted = (500, {"error": {"message": "the stub has no script left and no answer function"}})
        status, reply = scripted if scripted is not None else server.answer(body)
        data = json.dumps(reply).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


class OpenAIStub(http.server.ThreadingHTTPServer):
    """The stub server (see the module docstring); `base_url` is its `/v1` root."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.script: list[tuple[int, dict[str, Any]]] = []
        self.bodies: list[dict[str, Any]] = []
        self.answer: Answer | None = None
        self.lock = threading.Lock()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


def openai_answer(client: Any) -> Answer:
    """An `answer` for the stub that parses the body into a `ChatRequest`, asks `client` and renders its
    `ChatResponse` in the OpenAI form (`llm.http_server`, what `envfactory llm serve` does)."""
    from envfactory.llm.http_server import completion_body, parse_request

    def answer(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        request = parse_request(body)
        return 200, completion_body(client.chat(request), request, str(body.get("model", "stub")))

    return answer
