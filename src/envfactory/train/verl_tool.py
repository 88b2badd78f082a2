"""veRL side of the adapter: a `BaseTool` and a reward function that talk to `envfactory serve --http`.

This module runs inside veRL's own virtual environment (`scripts/consumers verl`), so it imports only
the standard library and, lazily, veRL; put `src/` on `PYTHONPATH` there. Importing it costs nothing in
envfactory's own environment.

- veRL creates and releases a tool object per call, so the rollout's session is keyed by the
  trajectory: the first call of a trajectory opens a server session from the row's episode
  (`tools_kwargs.<tool>.create_kwargs.episode`: environments, initial state, seed, tool naming) and
  stores its id in `agent_data.extra_fields["envfactory_session"]`; later calls of the same trajectory,
  whatever tool object serves them, reuse it. veRL hands `extra_fields` to the reward function.
- Arguments arrive flat (veRL's schema models keep no nested properties); the tool's `config.params`
  (`[name, path...]`, from `ToolSurface`) map them back to nested arguments.
- `compute_score` (veRL's `custom_reward_function`) replays the trajectory's successful calls (from its
  session's log) into a session opened from the task rebuilt from the row (`reward_model.ground_truth`
  and the episode) and scores it with the server's `/reward` endpoint; the components come back as extra
  fields and both sessions are closed. A server that cannot be reached after the
  retries raises `RuntimeError` naming the cause: the step fails loudly instead of training on 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import time
import urllib.error
import urllib.request
from typing import Any

SESSION_KEY = "envfactory_session"
RETRIES = 3


def _request(base_url: str, method: str, path: str, body: Any = None, token: str | None = None,
             timeout: float = 30.0) -> Any:
    """One JSON request with retries on transport failures; HTTP errors raise with the server's message."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"content-type": "application/json", "accept": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    last: Exception | None = None
    for attempt in range(RETRIES):
        request = urllib.request.Request(base_url.rstrip("/") + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"env server {method} {path}: {exc.code} {exc.read()[:300]!r}") from exc
        except (urllib.error.URLError, OSError) as exc:
            last = exc
            time.sleep(0.5 * (attempt + 1))
    raise RuntimeError(f"env server at {base_url} unreachable after {RETRIES} attempts ({last})")


def nest(params: list[list[str]], flat: dict[str, Any]) -> dict[str, Any]:
    """Nested arguments from flat ones; `params` holds `[flat name, *path]` per parameter."""
    paths = {entry[0]: entry[1:] for entry in params}
    out: dict[str, Any] = {}
    for name, value in flat.items():
        path = paths.get(name, [name])
        if value is None and name in paths:
            continue
        node = out
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
    return out


def _episode(create_kwargs: dict[str, Any]) -> dict[str, Any]:
    episode = create_kwargs.get("episode")
    if isinstance(episode, str):
        episode = json.loads(episode)
    if not isinstance(episode, dict):
        raise RuntimeError("the row's tools_kwargs carry no episode; export RL rows with `envfactory dataset export --format verl`")
    return episode


def open_session(base_url: str, episode: dict[str, Any], token: str | None = None) -> str:
    """A server session for an episode (environments, initial state, seed, naming); its id."""
    envs = [ref["name"] if isinstance(ref, dict) else ref for ref in episode["envs"]]
    body = {"envs": envs, "initial_state": episode.get("state") or {}, "seed": episode.get("seed", 0),
            "naming": episode.get("tool_naming", "qualified")}
    return str(_request(base_url, "POST", "/v1/sessions", body, token)["id"])


def run_tool_call(server: str, tool: str, params: list[list[str]], parameters: dict[str, Any],
                  fields: dict[str, Any], create_kwargs: dict[str, Any], token: str | None = None) -> tuple[str, bool]:
    """One tool call of a trajectory: the trajectory's session (opened on its first call, its id kept in
    `fields`, the trajectory's `extra_fields`), flat arguments nested; the result as text and whether the
    tool answered an error."""
    session = fields.get(SESSION_KEY)
    if session is None:
        session = open_session(server, _episode(create_kwargs), token)
        fields[SESSION_KEY] = session
    answer = _request(server, "POST", f"/v1/sessions/{session}/calls",
                      {"tool": tool, "arguments": nest(params, parameters)}, token)
    result = answer["result"]
    failed = bool(result.get("error"))
    return json.dumps({"error": result["error"]} if failed else result.get("output")), failed


def _tool_base() -> type:
    from verl.tools.base_tool import BaseTool  # type: ignore[import-not-found]

    return BaseTool  # type: ignore[no-any-return]


@functools.cache
def _make_tool_class() -> type:
    base = _tool_base()
    from verl.tools.schemas import ToolResponse  # type: ignore[import-not-found]

    class EnvServerTool(base):  # type: ignore[valid-type, misc]
        """One envfactory tool served by an env server; sessions keyed by trajectory (see the module)."""

        def __init__(self, config: dict[str, Any], tool_schema: Any) -> None:
            super().__init__(config, tool_schema)
            self.server = str(config["server_url"])
            self.tool = str(config["tool"])
            self.params = [list(p) for p in config.get("params", [])]
            self.token = os.environ.get(str(config.get("token_env", "")), None) if config.get("token_env") else None
            self._pending: dict[str, dict[str, Any]] = {}

        async def create(self, instance_id: str | None = None, **kwargs: Any) -> tuple[str, Any]:
            key = instance_id or os.urandom(8).hex()
            self._pending[key] = dict(kwargs.get("create_kwargs") or {})
            return key, ToolResponse()

        async def execute(self, instance_id: str, parameters: dict[str, Any], **kwargs: Any,
                          ) -> tuple[Any, float, dict[str, Any]]:
            agent_data = kwargs.get("agent_data")
            fields = agent_data.extra_fields if agent_data is not None else {}
            text, failed = await asyncio.to_thread(run_tool_call, self.server, self.tool, self.params, parameters,
                                                   fields, self._pending.get(instance_id, {}), self.token)
            return ToolResponse(text=text), 0.0, {"error": failed}

        async def release(self, instance_id: str, **kwargs: Any) -> None:
            self._pending.pop(instance_id, None)

    return EnvServerTool


def __getattr__(name: str) -> Any:
    """`EnvServerTool` is built on first access (veRL's registry imports the module, then gets the class)."""
    if name == "EnvServerTool":
        return _make_tool_class()
    raise AttributeError(name)


def rebuilt_task(ground_truth: dict[str, Any], episode: dict[str, Any]) -> dict[str, Any]:
    """A Task document the server can score against, from the row's ground truth and episode."""
    return {
        "schema_version": 2, "envs": episode["envs"], "tool_naming": episode.get("tool_naming", "qualified"),
        "initial_state": episode.get("state") or {}, "seed": episode.get("seed", 0),
        "turns": [{"user": {"kind": "scripted", "text": "(rollout)"}, "gold_calls": ground_truth.get("gold_calls", [])}],
        "expected_final_hash": ground_truth.get("expected_state_hashes") or {},
        "reward": ground_truth.get("reward") or {},
    }


def compute_score(data_source: str, solution_str: str, ground_truth: Any, extra_info: dict[str, Any] | None = None,
                  **kwargs: Any) -> dict[str, Any]:
    """veRL's custom reward: our reward on the trajectory's episode (see the module docstring).

    The server scores a session only against the task it was opened from, and the trajectory's session
    was opened from the episode (the tool sees no ground truth). So a scoring session is opened from the
    task rebuilt from the row, the trajectory's successful calls are replayed into it from its session's
    log (environments are deterministic: the same calls reach the same state), and that session is scored
    by the `/reward` endpoint. Both sessions are closed."""
    info = extra_info or {}
    server = os.environ.get("ENVFACTORY_ENV_SERVER") or str(info.get("envfactory_server", ""))
    if not server:
        raise RuntimeError("set ENVFACTORY_ENV_SERVER to the env server's URL")
    token = os.environ.get("ENVFACTORY_SERVE_TOKEN")
    truth = json.loads(ground_truth) if isinstance(ground_truth, str) else ground_truth
    kwargs_by_tool = info.get("tools_kwargs") or {}
    first: dict[str, Any] = next(iter(kwargs_by_tool.values()), {})
    episode = _episode(first.get("create_kwargs", {}))
    scoring = str(_request(server, "POST", "/v1/sessions", {"task": rebuilt_task(truth, episode),
                                                              "seed": episode.get("seed", 0)}, token)["id"])
    rollout = info.get(SESSION_KEY)
    if rollout:
        calls = _request(server, "GET", f"/v1/sessions/{rollout}/log", None, token)["calls"]
        for entry in calls:
            if entry["result"].get("error") is None:
                _request(server, "POST", f"/v1/sessions/{scoring}/calls",
                         {"tool": entry["call"]["tool"], "arguments": entry["call"]["arguments"]}, token)
    messages = [{"role": "assistant", "content": solution_str}] if solution_str else None
    answer = _request(server, "POST", f"/v1/sessions/{scoring}/reward", {"messages": messages}, token)
    for session in (scoring, rollout):
        if session:
            with contextlib.suppress(RuntimeError):  # already closed (reaped): the score is what matters
                _request(server, "DELETE", f"/v1/sessions/{session}", None, token)
    reward = answer["reward"]
    out: dict[str, Any] = {"score": float(reward["total"])}
    for component in reward["components"]:
        if component.get("score") is not None:
            out[f"envfactory/{component['name']}"] = float(component["score"])
    return out
