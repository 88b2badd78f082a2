"""The environments a server serves, loaded once at start and shared by every session.

Clients name environments; they never send paths or code. An `Environment` holds no episode state
(DESIGN §3), so one loaded copy serves every session of it. `in_process` says whether its calls run in
this process (declarative, trusted python) or cross to a sandbox worker, which decides whether the
service runs them on the event loop or in a worker thread.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from envfactory.runtime import Environment, bundled_env_names, load_env
from envfactory.runtime.sandbox import SandboxBackend, SandboxPool
from envfactory.serve.errors import UnknownEnvironmentError
from envfactory.serve.models import EnvSummary


@dataclass(frozen=True, slots=True)
class ServedEnv:
    """An environment the server serves; `in_process` is False when it runs in sandbox workers (its
    sessions then execute in a worker thread, off the event loop)."""
    env: Environment
    in_process: bool = True

    def summary(self) -> EnvSummary:
        """The environment's row of `GET /v1/envs`."""
        spec = self.env.spec
        return EnvSummary(
            name=spec.meta.name, version=spec.meta.version, ref=spec.ref, domain=spec.meta.domain,
            kind=spec.implementation.kind, tools=len(spec.tools), description=spec.meta.description,
        )


class EnvCatalog:
    """Environments by name. Build with `EnvCatalog.load(...)` or from loaded environments."""

    def __init__(self, envs: Iterable[ServedEnv]) -> None:
        """The catalog of `envs`, keyed by environment name; `ValueError` when a name is listed twice."""
        self._envs: dict[str, ServedEnv] = {}
        for served in envs:
            if served.env.name in self._envs:
                raise ValueError(f"environment {served.env.name} is listed twice")
            self._envs[served.env.name] = served

    @classmethod
    def load(cls, refs: Iterable[str | Path] | None = None, *, trusted: bool = False,
             sandbox: SandboxPool | None = None) -> EnvCatalog:
        """Load environments by bundled name, directory or file (default: every bundled environment).

        Python toolkits that are not bundled run in workers of `sandbox` (the pool must outlive the
        catalog), or in this process when `trusted=True`.
        """
        chosen = list(refs) if refs is not None else list(bundled_env_names())
        return cls.of(load_env(ref, trusted=trusted, sandbox=sandbox) for ref in chosen)

    @classmethod
    def of(cls, envs: Mapping[str, Environment] | Iterable[Environment]) -> EnvCatalog:
        """The catalog of already loaded environments (a name → environment mapping or an iterable); sandboxed
        ones are marked as not in process."""
        values = envs.values() if isinstance(envs, Mapping) else envs
        return cls(ServedEnv(env, in_process=not isinstance(env.backend, SandboxBackend)) for env in values)

    def get(self, name: str) -> ServedEnv:
        """The served environment `name`; `UnknownEnvironmentError` (404) naming what is served otherwise."""
        served = self._envs.get(name)
        if served is None:
            known = ", ".join(self._envs) or "none"
            raise UnknownEnvironmentError(f"unknown environment {name!r}; this server serves: {known}")
        return served

    def names(self) -> list[str]:
        """Names in the order the environments were given."""
        return list(self._envs)

    def summaries(self) -> list[EnvSummary]:
        """One summary per environment, in the catalog's order."""
        return [self._envs[name].summary() for name in self.names()]

    def __contains__(self, name: object) -> bool:
        return name in self._envs

    def __len__(self) -> int:
        return len(self._envs)
