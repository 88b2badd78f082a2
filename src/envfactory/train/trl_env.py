"""The TRL adapter: environment classes for `GRPOTrainer(environment_factory=...)` and reward functions
that read the rollout's environment objects.

TRL 1.x makes one environment object per rollout, calls `reset(**row)` with the dataset row, exposes the
object's public methods as tools (their schemas derived by transformers' `get_json_schema` from type
hints and docstrings) and passes the objects to every reward function as `environments=`.

- `environment_class(tools, sessions)` generates a class per tool set: one method per tool, named by
  its surface (`surface.tool_surface`), with typed scalar parameters and a Google-style docstring; a
  call maps the flat arguments back to the tool's nested arguments and runs it in the rollout's own
  session. The row names its task in the `task` column (Task JSON); `reset` opens a session for it.
- `reward_functions(recorder)` gives TRL's reward functions: `envfactory_reward` (the total of our reward on
  the session's final state and calls; weight 1) and one per component (`reward_<name>`, weight 0, so
  TRL logs every component per step without training on it). A failed rollout returns `None` from
  every function: TRL leaves such a rollout out of the group baseline and gives it no advantage, and
  the recorder keeps the reason.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from envfactory.spec import Message, Reward, Task, ToolSpec
from envfactory.spec.training import RolloutRecord, ToolSurface
from envfactory.train.sessions import RolloutFailedError, RolloutSession, SessionSource
from envfactory.train.surface import arguments_from_flat, docstring, python_type, tool_surfaces
from envfactory.verify import DEFAULT_TERMS

COMPONENTS = tuple(term.name for term in DEFAULT_TERMS)  # the reward's own default list, one source of names
MAX_RESULT_CHARS = 2000


class EnvironmentBase:
    """What every generated environment class shares (its tool methods are added per tool set). TRL
    exposes every public function of the class as a tool, so everything here but `reset` is private or
    a property."""

    _surfaces: dict[str, ToolSurface] = {}  # noqa: RUF012 - set per generated class, never mutated
    _sessions: SessionSource | None = None

    def __init__(self) -> None:
        """No session yet: TRL calls `reset` before the first tool call of each rollout."""
        self._session: RolloutSession | None = None
        self._task: Task | None = None
        self._reward: Reward | None = None
        self._failure: str | None = None

    def reset(self, **row: Any) -> str | None:
        """Open a fresh session for the row's task (closing the previous rollout's)."""
        self._close_session()
        raw = row.get("task")
        if raw is None:
            raise ValueError("a GRPO row needs a `task` column (the Task as JSON); see envfactory.train.data")
        self._task = Task.model_validate_json(raw) if isinstance(raw, str) else Task.model_validate(raw)
        self._reward = None
        self._failure = None
        assert self._sessions is not None, "generated classes carry their session source"
        self._session = self._sessions.open(self._task, int(row.get("seed", self._task.seed)))
        return None

    def _close_session(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def _run(self, function: str, flat: dict[str, Any]) -> str:
        surface = self._surfaces[function]
        if self._session is None:
            raise RuntimeError("the environment was not reset before a tool call")
        arguments, _unknown = arguments_from_flat(surface, flat)
        result = self._session.call(surface.tool, arguments)
        if result.error is not None:
            text = json.dumps({"error": {"kind": result.error.kind, "message": result.error.message}})
        else:
            text = json.dumps(result.output, ensure_ascii=False, sort_keys=True)
        return text if len(text) <= MAX_RESULT_CHARS else text[: MAX_RESULT_CHARS - 3] + "..."

    @property
    def task(self) -> Task | None:
        """The task of the current rollout (None before the first `reset`)."""
        return self._task

    @property
    def failure(self) -> str | None:
        """Why this rollout failed (a framework failure outlasting its retries), or None."""
        if self._failure is None and self._session is not None:
            self._failure = self._session.failure
        return self._failure

    def _episode_reward(self, messages: Sequence[Message] | None = None) -> Reward | None:
        """Our reward on the session's final state and calls, computed once; None when the rollout failed."""
        if self._reward is None and self.failure is None:
            if self._session is None:
                self._failure = "the rollout never opened a session"
                return None
            try:
                self._reward = self._session.reward(messages)
            except RolloutFailedError as exc:
                self._failure = str(exc)
        return self._reward

    def _record(self, step: int) -> RolloutRecord:
        session = self._session
        return RolloutRecord(step=step, task_id=self._task.id if self._task else "",
                             calls=session.calls if session else 0, retries=session.retries if session else 0,
                             reward=self._reward, failure=self.failure)


def _method(surface: ToolSurface) -> Callable[..., str]:
    names = [p.name for p in surface.params]

    def method(self: EnvironmentBase, *args: Any, **kwargs: Any) -> str:
        flat = dict(zip(names, args, strict=False))
        flat.update(kwargs)
        return self._run(surface.function, flat)

    parameters = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    required = [p for p in surface.params if p.required]
    optional = [p for p in surface.params if not p.required]
    for param in [*required, *optional]:
        parameters.append(inspect.Parameter(param.name, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                            default=inspect.Parameter.empty if param.required else None,
                                            annotation=python_type(param)))
    method.__signature__ = inspect.Signature(parameters, return_annotation=str)  # type: ignore[attr-defined]
    method.__annotations__ = {**{p.name: python_type(p) for p in surface.params}, "return": str}
    method.__name__ = surface.function
    method.__qualname__ = surface.function
    method.__doc__ = docstring(surface)
    return method


def environment_class(tools: Sequence[ToolSpec], sessions: SessionSource, name: str = "EnvfactoryEnvironment") -> type:
    """A TRL environment class over `tools` (session-group names), opening sessions from `sessions`."""
    surfaces = tool_surfaces(tools)
    namespace: dict[str, Any] = {"_surfaces": {s.function: s for s in surfaces}, "_sessions": sessions,
                                 "__doc__": f"envfactory tools ({len(surfaces)}) in one live session per rollout."}
    for surface in surfaces:
        if surface.function in ("reset", "get_reward") or surface.function.startswith("_"):
            raise ValueError(f"tool {surface.tool!r} maps to a name TRL reserves ({surface.function})")
        namespace[surface.function] = _method(surface)
    return type(name, (EnvironmentBase,), namespace)


def completion_messages(completion: Any) -> list[Message]:
    """The assistant's texts of one TRL completion (a message list or a string) as our messages."""
    if isinstance(completion, str):
        return [Message(role="assistant", content=completion)]
    out = []
    for message in completion or []:
        if isinstance(message, dict) and message.get("role") == "assistant" and isinstance(message.get("content"), str):
            out.append(Message(role="assistant", content=message["content"]))
    return out


@dataclass
class RolloutRecorder:
    """Collects each scored (or failed) rollout of the current step; the trainer callback drains it."""

    step: int = 0
    records: list[RolloutRecord] = field(default_factory=list)

    def drain(self) -> list[RolloutRecord]:
        """The records collected since the last drain, in order; the recorder is left empty."""
        out, self.records = self.records, []
        return out


def _score(environments: Sequence[EnvironmentBase], completions: Sequence[Any], recorder: RolloutRecorder | None,
           ) -> list[Reward | None]:
    rewards = []
    for env, completion in zip(environments, completions, strict=True):
        fresh = env._reward is None and env._failure is None
        reward = env._episode_reward(completion_messages(completion))
        if fresh and recorder is not None:
            recorder.records.append(env._record(recorder.step))
        rewards.append(reward)
    return rewards


def reward_functions(recorder: RolloutRecorder | None = None, components: Sequence[str] = COMPONENTS,
                     ) -> tuple[list[Callable[..., list[float | None]]], list[float]]:
    """TRL reward functions and their weights: the total (weight 1), then each component (weight 0)."""

    def envfactory_reward(environments: Sequence[EnvironmentBase], completions: Sequence[Any], **_: Any,
                          ) -> list[float | None]:
        return [None if r is None else r.total for r in _score(environments, completions, recorder)]

    funcs: list[Callable[..., list[float | None]]] = [envfactory_reward]
    for name in components:
        funcs.append(_component_function(name, recorder))
    return funcs, [1.0] + [0.0] * len(components)


def _component_function(name: str, recorder: RolloutRecorder | None) -> Callable[..., list[float | None]]:
    def component(environments: Sequence[EnvironmentBase], completions: Sequence[Any], **_: Any) -> list[float | None]:
        out: list[float | None] = []
        for reward in _score(environments, completions, recorder):
            part = reward.component(name) if reward is not None else None
            out.append(None if part is None else part.score)
        return out

    component.__name__ = f"reward_{name}"
    return component
