"""The `envfactory` command: a Typer app with one module per verb.

Errors that envfactory raises on purpose (`EnvFactoryError`: a bad file, an unknown environment, ...)
print as one red line on stderr, followed by the problem list if there is one, and exit with code 1
without a traceback. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from typer.core import TyperGroup

import envfactory
from envfactory.cli import (
    build,
    dataset,
    demo,
    envs,
    eval,
    graph,
    library,
    llm,
    resources,
    run,
    schema,
    serve,
    synth,
    train,
    view,
)
from envfactory.cli._output import echo, report_error
from envfactory.errors import EnvFactoryError


class _Group(TyperGroup):
    """The root command group; turns `EnvFactoryError`s from any verb into a message and exit code 1."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except EnvFactoryError as exc:
            report_error(str(exc))
            raise typer.Exit(1) from None


app = typer.Typer(
    cls=_Group,
    name="envfactory",
    help="Manufacture stateful, executable, verified tool environments for training tool-using agents.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


def _print_version(value: bool) -> None:
    if value:
        echo(f"envfactory {envfactory.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """envfactory: environments, sessions and (soon) tasks and trajectories for tool-using agents."""


app.command("schema")(schema.schema)
app.add_typer(envs.app, name="envs")
app.add_typer(resources.app, name="resources")
app.add_typer(llm.app, name="llm")
app.add_typer(graph.app, name="graph")
app.add_typer(eval.app, name="eval")
app.add_typer(library.app, name="library")
app.add_typer(build.app, name="build")
app.add_typer(synth.app, name="synth")
app.add_typer(dataset.app, name="dataset")
app.add_typer(train.app, name="train")
app.command("demo")(demo.demo)
app.command("run")(run.run)
app.command("serve")(serve.serve)
app.command("view")(view.view)


def main() -> None:
    """Console-script entry point (`envfactory`, `python -m envfactory`)."""
    app()
