"""A scripted `LLMClient` for tests of code that calls an LLM: it answers from a list, in order.

Each script item is a `ChatResponse`, a plain string (an assistant answer with that content), an
exception to raise, or a function of the request. Requests are kept in `requests`, so tests can check
what was asked. Running past the end of the script is an `AssertionError`: a test asked more than it
planned.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from envfactory.llm.types import ChatMessage, ChatRequest, ChatResponse, Usage

ScriptItem = ChatResponse | str | BaseException | Callable[[ChatRequest], ChatResponse]


def text_response(content: str, model: str = "scripted", usage: Usage | None = None) -> ChatResponse:
    """A finished assistant answer with `content` as text (for scripts and tests)."""
    return ChatResponse(
        model=model, message=ChatMessage.assistant(content), finish_reason="stop", usage=usage or Usage()
    )


class ScriptedClient:
    """An `LLMClient` that answers from a script, in order (see the module docstring)."""

    def __init__(self, script: Sequence[ScriptItem], *, model_id: str = "scripted") -> None:
        """Answer from `script` in order, reporting `model_id`; every request is kept in `requests`."""
        self._script = list(script)
        self._model_id = model_id
        self._lock = threading.Lock()
        self.requests: list[ChatRequest] = []

    @property
    def model_id(self) -> str:
        """The id given at construction (`scripted` by default)."""
        return self._model_id

    @property
    def remaining(self) -> int:
        """How many script items are left."""
        return len(self._script) - len(self.requests)

    def chat(self, request: ChatRequest) -> ChatResponse:
        """The next script item's answer: a response as is, a string as an assistant text, an exception raised,
        a function called with the request. An `AssertionError` past the end of the script."""
        with self._lock:
            index = len(self.requests)
            assert index < len(self._script), f"scripted client: unplanned call #{index + 1}: {request.describe()}"
            self.requests.append(request)
            item = self._script[index]
        if isinstance(item, BaseException):
            raise item
        if isinstance(item, str):
            return text_response(item, self._model_id)
        if isinstance(item, ChatResponse):
            return item
        return item(request)
