"""Prompt texts of the graph layer: `.md` files in `envfactory/graph/prompts/` (read-only package data), loaded by name.

- `user_providable`: labels input fields a user can state in a first message.
- `edges`: asks for a verdict on candidate field-to-field edges of one environment and for missing ones.

Placeholders are `str.format` fields; literal braces are doubled. `prompt_hash` goes into manifests.
"""

from __future__ import annotations

from importlib import resources

from envfactory.spec import sha256_hex


def prompt_text(name: str) -> str:
    """The text of `<name>.md`, without its trailing newline."""
    return resources.files("envfactory.graph").joinpath("prompts", f"{name}.md").read_text(encoding="utf-8").rstrip("\n")


def prompt_hash(*names: str) -> str:
    return sha256_hex("\0".join(prompt_text(name) for name in names).encode("utf-8"))
