"""Prompt texts of the model layer: `.md` files in `envfactory/llm/prompts/` (read-only package data),
loaded by name. Placeholders are `str.format` fields; literal braces are doubled.

- `tools_system`: describes tools to a model whose chat template knows none (SmolLM2), in the Qwen style.
- `schema_hint`: tells the local model the schema its grammar enforces (names and descriptions help).
- `forced_call`: tells the local model which functions a forced call may name, with their schemas.
- `repair`: the feedback appended to a conversation when an answer broke its schema.
"""

from __future__ import annotations

from importlib import resources

from envfactory.spec import sha256_hex


def prompt_text(name: str) -> str:
    """The text of `prompts/<name>.md`, without its trailing newline."""
    return resources.files("envfactory.llm").joinpath("prompts", f"{name}.md").read_text(encoding="utf-8").rstrip("\n")


def prompt_hash(*names: str) -> str:
    """sha256 over the named prompt texts (for cache keys and run manifests)."""
    return sha256_hex("\0".join(prompt_text(name) for name in names).encode("utf-8"))
