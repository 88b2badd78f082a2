"""Roles of the HTTP server: what the holder of each bearer token may do (issue #17, docs/rewards.md).

- **trainer** (`ServeConfig.token`): every route. It opens sessions from tasks, reads and restores
  state, forks, reads logs, asks for rewards and closes sessions.
- **policy** (`ServeConfig.policy_token`, optional): only what an agent needs inside an episode it was
  handed: list a session's tools (any format) and call them, over HTTP or MCP (whose tool list holds no
  control operation). Creating sessions, state, snapshots, restore, fork, logs, rewards and closing
  answer 403 `forbidden`, so a policy cannot restore a rewarded state, score itself against another
  task or open sessions to race one task. Health and the API docs stay open to both.

Independently of roles, a restore never earns reward (`EnvService.restore` makes the restored state
the episode's start) and a reward request cannot name another task than the session's own.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Iterable
from typing import Literal

from starlette.types import ASGIApp, Receive, Scope, Send

from envfactory.serve.middleware import BearerAuth, send_error

Role = Literal["trainer", "policy"]

_SESSION = r"/v1/sessions/[^/]+"
POLICY_ROUTES: tuple[tuple[frozenset[str], re.Pattern[str]], ...] = (
    (frozenset({"GET"}), re.compile(rf"^{_SESSION}/tools(/openai|/mcp)?$")),
    (frozenset({"POST"}), re.compile(rf"^{_SESSION}/calls$")),
    (frozenset({"GET", "POST", "DELETE"}), re.compile(r"^/mcp/?$")),
)
"""(methods, path) pairs the policy role may use; everything else is the trainer's."""


def policy_may(method: str, path: str) -> bool:
    """True when the policy role may send `method` to `path`."""
    return any(method in methods and pattern.match(path) for methods, pattern in POLICY_ROUTES)


class RoleAuth(BearerAuth):
    """Bearer auth with two tokens: the trainer's (every route, as `BearerAuth`) and the policy's (only
    the routes of `POLICY_ROUTES`; others answer 403 `forbidden` naming the role)."""

    def __init__(self, app: ASGIApp, token: str, policy_token: str, open_paths: Iterable[str] = ()) -> None:
        """Wrap `app`; `token` is the trainer's, `policy_token` the policy's; `open_paths` need neither."""
        super().__init__(app, token=token, open_paths=open_paths)
        self._policy = f"Bearer {policy_token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass trainer requests to `BearerAuth`; pass policy requests on allowed routes, refuse the rest."""
        given = _authorization(scope) if scope["type"] == "http" else None
        if given is None or not hmac.compare_digest(given, self._policy):
            await super().__call__(scope, receive, send)
            return
        method, path = scope.get("method", ""), scope.get("path", "")
        if not policy_may(method, path):
            await send_error(send, 403, "forbidden",
                             f"the policy role may list a session's tools and call them, not {method} {path}; "
                             "session control (create, state, restore, fork, log, reward, close) needs the "
                             "trainer's token")
            return
        await self.app(scope, receive, send)


def _authorization(scope: Scope) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key == b"authorization":
            return bytes(value)
    return None
