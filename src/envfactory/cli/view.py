"""`envfactory view`: a read-only web UI over a workspace (and the shipped library), `envfactory.viewer`.

`envfactory view [--workspace DIR] [--host H] [--port N] [--token-file F]` serves on loopback by
default; beyond loopback it refuses to start without a token (`--token-file`, `--token` or
`$ENVFACTORY_VIEW_TOKEN`), which the browser then sends once as `?token=` (kept in a cookie).
The viewer reads the run layout only (`runs/<id>/<stage>/`): a workspace an older version laid out
(`graph/`, `builds/<name>/`) is migrated first (`cli._migrate.migrate_workspace`, said on stderr), or refused
with the reason when a folder's new place is taken.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from envfactory.cli._output import echo
from envfactory.cli.serve import _read_token  # one token-file reader for serve and view
from envfactory.errors import SpecError
from envfactory.store import Workspace


def view(
    workspace: Annotated[Path, typer.Option("--workspace", "-w", envvar="ENVFACTORY_WORKSPACE", file_okay=False,
                                            help="Workspace directory to show.")] = Path("workspace"),
    host: Annotated[str, typer.Option("--host", help="Address to bind; beyond loopback a token is required.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to bind (0: any free port).")] = 8765,
    token: Annotated[str | None, typer.Option("--token", envvar="ENVFACTORY_VIEW_TOKEN", show_envvar=True,
                                              help="Token browsers must present (prefer --token-file or the variable).")] = None,
    token_file: Annotated[Path | None, typer.Option("--token-file", help="File holding the token.")] = None,
    log_level: Annotated[str, typer.Option("--log-level", help="debug, info, warning or error (logs go to stderr).")] = "warning",
) -> None:
    """Serve a read-only web UI over a workspace: environments, funnels, tool graph, chains, tasks,
    trajectories and evaluation runs."""
    try:
        from envfactory.viewer.server import ViewerConfig, ViewerServer, configure_logging
    except ImportError as exc:  # jinja2 is an optional dependency
        raise SpecError(f"the viewer needs jinja2 (pip install 'envfactory[view]'): {exc}") from None
    if not workspace.is_dir():
        raise SpecError(f"{workspace}: no such workspace directory (pass --workspace DIR)")
    from envfactory.cli._migrate import migrate_workspace  # the stages' migrations: imported when used

    for line in migrate_workspace(Workspace(workspace)):  # the viewer reads the run layout only
        echo(f"moved an earlier version's folder: {line}", err=True)
    config = ViewerConfig(workspace=workspace, host=host, port=port, token=_read_token(token_file, token))
    configure_logging(log_level)
    try:
        server = ViewerServer(config)
    except OSError as exc:
        raise SpecError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    suffix = "?token=<your token>" if config.token else ""
    echo(f"envfactory view: {server.url}/{suffix} (workspace {workspace.resolve()}); Ctrl-C stops it", err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
