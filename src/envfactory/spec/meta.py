"""Environment identity and provenance, shared by `EnvSpec` and the declarative source format.

Env names match `^[a-z][a-z0-9_]{0,47}$` without `__`, so `<env>__<tool>` names stay unambiguous.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from envfactory.spec.base import SpecModel

ENV_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,47}$"
SEMVER_PATTERN = r"^\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?$"

Domain = Literal[
    "commerce", "finance", "travel", "office", "lifestyle", "academia", "utilities", "other"
]


def _first_generation(value: int) -> bool:
    return value == 1


def _none(value: list[str]) -> bool:
    return not value


class Provenance(SpecModel):
    """One authentic resource an environment was derived from."""

    resource: str = Field(description="catalog id, e.g. aws:sqs or openapi:stripe.com")
    provider: str
    service: str = ""
    version: str = ""
    package: str = Field(default="", description="registry package that carried it")
    package_version: str = ""
    file: str = ""
    licence: str = Field(default="", description="SPDX id or licence name as stated by the source")
    operations: list[str] = Field(default_factory=list, description="source operation ids used")
    # left out of the file at 1, so environments compiled before generations were recorded keep their hashes
    generation: int = Field(default=1, ge=1, exclude_if=_first_generation,
                            description="the compiler generation that built it (`LibraryConfig.generation`)")


class EnvMeta(SpecModel):
    """Identity and description shared by every implementation kind."""

    name: str = Field(pattern=ENV_NAME_PATTERN)
    version: str = Field(default="1.0.0", pattern=SEMVER_PATTERN)
    domain: Domain = "other"
    description: str = ""
    policy: str = Field(default="", description="rules an agent must follow, shown in its prompt")
    provenance: list[Provenance] = Field(default_factory=list)
    # left out of the file when empty, so environments written before it existed keep their hashes
    user_tools: list[str] = Field(
        default_factory=list, exclude_if=_none,
        description="tools of this environment that only the person the service acts for may call (a "
                    "confirmation, approval or verification the service requires from the account holder); "
                    "synthesised conversational and RL tasks give them to the user simulator, never to the agent")

    @field_validator("name")
    @classmethod
    def _no_double_underscore(cls, name: str) -> str:
        if "__" in name:
            raise ValueError(f"environment name {name!r} must not contain '__' (reserved as <env>__<tool>)")
        return name
