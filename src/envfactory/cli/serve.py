"""`envfactory serve`: serve environments over MCP (stdio or streamable HTTP) and the HTTP env API.

- `envfactory serve --env NAME [--env NAME2] [--state FILE] --mcp stdio`: one MCP client on stdin/stdout
  (one session group; `<env>__<tool>` names). Nothing but JSON-RPC is written to stdout; logs go to
  stderr.
- `envfactory serve --env NAME [--state FILE] --mcp http [--host --port --token-file]`: MCP at `/mcp`
  (one session group per MCP session) and the HTTP env API at `/v1` on the same port; the API is the
  control channel of the MCP sessions (state, hashes, snapshots, rewards).
- `envfactory serve --http [--env NAME ...]`: the HTTP env API alone, over the named environments
  (default: every bundled one).

`--state FILE` gives the initial state of every new session: with one `--env`, that environment's
state JSON or a `Snapshot`; with several, an object mapping environment names to states. It must be a
regular file of at most 64 MiB (`MAX_STATE_BYTES`); directories, devices and FIFOs are refused. A token is
read from `--token-file` or `$ENVFACTORY_SERVE_TOKEN`; beyond loopback the server refuses to start
without one.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer

from envfactory.cli._output import configure_logging, echo, read_regular_file
from envfactory.errors import EnvFactoryError, SpecError
from envfactory.spec import Snapshot

MAX_STATE_BYTES = 64 * 1024 * 1024

if TYPE_CHECKING:
    from envfactory.serve.service import SessionTemplate


class McpTransport(StrEnum):
    """`--mcp`: MCP over stdin/stdout (one client) or streamable HTTP (many)."""

    stdio = "stdio"
    http = "http"


class Naming(StrEnum):
    """`--naming`: tool names as `<env>__<tool>` (qualified; needed when several environments are served) or plain."""

    qualified = "qualified"
    plain = "plain"


def _read_token(token_file: Path | None, token: str | None) -> str | None:
    if token_file is not None:
        try:
            text = token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SpecError(f"{token_file}: cannot read the token file ({exc.strerror})") from exc
        if not text:
            raise SpecError(f"{token_file}: the token file is empty")
        return text
    return token or None


def _initial_states(path: Path | None, envs: list[str]) -> tuple[dict[str, Any], dict[str, Snapshot]]:
    if path is None:
        return {}, {}
    try:
        data = orjson.loads(read_regular_file(path, MAX_STATE_BYTES, "the --state file"))
    except orjson.JSONDecodeError as exc:
        raise SpecError(f"{path}: not valid JSON ({exc})") from exc
    if len(envs) == 1:
        if isinstance(data, dict) and {"state", "state_hash", "env"} <= set(data):
            try:
                return {}, {envs[0]: Snapshot.model_validate(data)}
            except ValueError as exc:
                raise SpecError(f"{path}: looks like a snapshot but is not one: {exc}") from exc
        return {envs[0]: data}, {}
    if not isinstance(data, dict) or not set(data) <= set(envs):
        raise SpecError(f"{path}: with several environments the state file must map environment names "
                        f"({', '.join(envs)}) to states")
    return dict(data), {}


def _template(envs: list[str], state: Path | None, seed: int, naming: Naming) -> SessionTemplate:
    from envfactory.serve.service import SessionTemplate

    states, snapshots = _initial_states(state, envs)
    return SessionTemplate(envs=tuple(envs), initial_state=states, snapshots=snapshots, seed=seed,
                           naming=naming.value)


def serve(
    env: Annotated[list[str] | None, typer.Option("--env", help="Environment to serve (bundled name, directory or file); repeatable.")] = None,
    state: Annotated[Path | None, typer.Option("--state", help="Initial state of every MCP session: a state or Snapshot JSON (one --env), or {env: state} (several).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of every MCP session.")] = 0,
    naming: Annotated[Naming, typer.Option("--naming", help="Tool names: <env>__<tool> (qualified) or plain.")] = Naming.qualified,
    mcp: Annotated[McpTransport | None, typer.Option("--mcp", help="Serve MCP over stdio or streamable HTTP.")] = None,
    http: Annotated[bool, typer.Option("--http", help="Serve the HTTP env API.")] = False,
    host: Annotated[str, typer.Option("--host", help="Address to bind (HTTP).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to bind (HTTP).")] = 8000,
    token: Annotated[str | None, typer.Option("--token", envvar="ENVFACTORY_SERVE_TOKEN", show_envvar=True,
                                              help="Bearer token clients must send (prefer --token-file or the variable).")] = None,
    token_file: Annotated[Path | None, typer.Option("--token-file", help="File holding the bearer token.")] = None,
    policy_token_file: Annotated[Path | None, typer.Option(
        "--policy-token-file", help="File holding the policy role's token: it may only list and call a session's tools "
        "(needs a bearer token; docs/rewards.md).")] = None,
    max_sessions: Annotated[int, typer.Option("--max-sessions", help="Most sessions open at once.")] = 1024,
    idle_timeout: Annotated[float, typer.Option("--idle-timeout", help="Seconds without a request before a session is closed.")] = 900.0,
    max_body_bytes: Annotated[int, typer.Option("--max-body-bytes", help="Largest request body accepted.")] = 8 * 1024 * 1024,
    header_timeout: Annotated[float, typer.Option("--header-timeout", help="Seconds a request head may take to arrive.")] = 10.0,
    body_timeout: Annotated[float, typer.Option("--body-timeout", help="Seconds a request body may take to arrive.")] = 30.0,
    unauthenticated_idle: Annotated[float, typer.Option("--unauthenticated-idle", help="Seconds a connection may idle before its first authenticated request.")] = 10.0,
    max_connections: Annotated[int | None, typer.Option("--max-connections", help="Most open connections (default: from the file-descriptor limit).")] = None,
    trust: Annotated[bool, typer.Option("--trust", help="Run python toolkits that are not bundled in this process (code you trust only).")] = False,
    sandbox_workers: Annotated[int, typer.Option("--sandbox-workers", help="Most sandbox worker processes (one per untrusted python environment).")] = 4,
    log_level: Annotated[str, typer.Option("--log-level", help="debug, info, warning or error (logs go to stderr).")] = "info",
) -> None:
    """Serve environments over MCP (stdio or streamable HTTP) and the HTTP env API.

    --mcp stdio: one MCP client on stdin/stdout (one session group).

    --mcp http: MCP at /mcp (a session group per MCP session) and the HTTP env API at /v1, their control channel.

    --http: the HTTP env API alone. Beyond loopback a bearer token is required (--token-file or ENVFACTORY_SERVE_TOKEN).
    """
    if mcp is None and not http:
        raise SpecError("choose what to serve: --mcp stdio, --mcp http, or --http")
    if mcp is McpTransport.stdio and http:
        raise SpecError("--mcp stdio talks over stdin/stdout and cannot be combined with --http; use --mcp http")
    envs = list(env or [])
    if mcp is not None and not envs:
        raise SpecError("--mcp needs at least one --env: the environments every MCP session opens")
    if state is not None and mcp is None:
        raise SpecError("--state sets the initial state of MCP sessions; HTTP clients send theirs when they open a session")
    try:
        from envfactory.runtime.sandbox import SandboxPool
        from envfactory.serve.catalog import EnvCatalog
        from envfactory.serve.config import ServeConfig, ServeLimits
        from envfactory.serve.runner import build_http, run_http, run_stdio
    except ImportError as exc:
        raise EnvFactoryError(f"serving needs the [serve] extra (pip install 'envfactory[serve]'): {exc}") from exc

    configure_logging(log_level)
    limits = ServeLimits(max_sessions=max_sessions, idle_timeout_s=idle_timeout, max_body_bytes=max_body_bytes,
                         header_timeout_s=header_timeout, body_timeout_s=body_timeout,
                         unauthenticated_idle_s=unauthenticated_idle, max_connections=max_connections)
    config = ServeConfig(host=host, port=port, token=_read_token(token_file, token),
                         policy_token=_read_token(policy_token_file, None), limits=limits)
    config.check()
    # Untrusted python toolkits run in this pool's workers; it starts none until such an environment loads.
    with SandboxPool(max_workers=sandbox_workers) as pool:
        catalog = EnvCatalog.load(envs or None, trusted=trust, sandbox=pool)
        template = _template(catalog.names(), state, seed, naming) if mcp is not None else None
        if mcp is McpTransport.stdio:
            assert template is not None
            run_stdio(catalog, template, config)
            return
        served = build_http(catalog, config, mcp=template)

        def announce(url: str) -> None:
            parts = [f"API {url}/v1 (docs {url}/docs)"]
            if served.mcp_path is not None:
                parts.append(f"MCP {url}{served.mcp_path}")
            echo(f"envfactory serve: listening on {url}: {', '.join(parts)}; environments: "
                       f"{', '.join(catalog.names())}", err=True)

        run_http(served, config, log_level=log_level, announce=announce)
