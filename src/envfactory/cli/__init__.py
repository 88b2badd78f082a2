"""`cli`: the `envfactory` command line (Typer + Rich), one module per verb.

The only layer that reads environment variables or config files, and the only place that prints.
Every verb is a thin wrapper over library functions of the layers below it.
"""
