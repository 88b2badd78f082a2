"""Environment specifications (`spec.json`) and their provenance.

Contract:
- An `EnvSpec` is complete: tool specs with input/output schemas, the state JSON Schema and the
  implementation (declarative model, a python toolkit reference, or a *hybrid*: a declarative model
  plus authored python tools carried as source text, which run only in sandbox workers). `content_hash` is the sha256 of
  the canonical JSON of every other field; `EnvSpec.seal()` fills it and loading checks it.
- Version 2 (the current one) is version 1 written with shared schemas: `spec.json` holds each schema the
  environment repeats once, under `$defs` (`spec.spec_file`), and `to_json_bytes()` writes that form. The
  model in memory is always the full form (no references), so what is served and validated is unchanged.
  A version-1 document is read as it is (its content is the same); the content hash is computed over the
  version-1 form, so an environment keeps its hash (and its `name@version#hash`) across the migration.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import ConfigDict, Field, model_validator

from envfactory.spec.base import JSONObject, SpecModel, canonical_json, content_hash
from envfactory.spec.declarative import DeclarativeModel
from envfactory.spec.meta import EnvMeta
from envfactory.spec.spec_file import expand_spec, pack_spec
from envfactory.spec.tool import ToolSpec


class DeclarativeImplementation(SpecModel):
    """A declarative implementation: the model the generic engine runs."""
    kind: Literal["declarative"] = "declarative"
    model: DeclarativeModel


class PythonImplementation(SpecModel):
    """A python toolkit: `module` (file relative to the environment directory) defines `class_name`.

    `trusted` toolkits (curated, shipped) may run in-process; all others run only in the sandbox.
    """

    kind: Literal["python"] = "python"
    module: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_./-]*\.py$")
    class_name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    trusted: bool = False


AUTHORED_SOURCE_LIMIT = 200_000


class AuthoredCode(SpecModel):
    """Tools written as python (by an LLM, for operations that are not CRUD) over a declarative state.

    `source` is a whole module: a fixed preamble written by envfactory (the state model and helpers)
    and the authored class `class_name`. It is untrusted text: only sandbox workers ever run it. The
    authored tools see the same state JSON as the declarative ones (`{"collections", "counters"}`);
    every state they leave is revalidated against the declarative model (record schemas, references,
    unique fields) before it replaces the session's state. `unsupported_arguments` lists, per tool,
    the optional API arguments the authored method does not take: a call that passes one is refused
    with `invalid_arguments` naming it (never silently ignored).
    """

    module: str = Field(default="authored.py", pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*\.py$")
    class_name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    source: str = Field(max_length=AUTHORED_SOURCE_LIMIT)
    tools: list[str] = Field(min_length=1)
    unsupported_arguments: dict[str, list[str]] = Field(default_factory=dict)
    generated_outputs: dict[str, list[str]] = Field(
        default_factory=dict,
        description="per tool, output paths holding ids the code generates (`Messages[].ReceiptHandle`)",
    )
    author: str = Field(default="", description="model id of the author")


class HybridImplementation(SpecModel):
    """A declarative model (the state and the CRUD tools) plus authored tools over the same state."""

    kind: Literal["hybrid"] = "hybrid"
    model: DeclarativeModel
    authored: AuthoredCode


def declarative_model(spec: EnvSpec) -> DeclarativeModel | None:
    """The declarative model of a declarative or hybrid environment (None for python toolkits)."""
    impl = spec.implementation
    if isinstance(impl, (DeclarativeImplementation, HybridImplementation)):
        return impl.model
    return None


Implementation = Annotated[
    Union[DeclarativeImplementation, PythonImplementation, HybridImplementation],  # noqa: UP007
    Field(discriminator="kind"),
]


def _file_form_schema(schema: dict[str, Any]) -> None:
    """The exported JSON Schema describes `spec.json` as it is read: version 1 or 2, with `$defs`."""
    properties = schema.setdefault("properties", {})
    properties["schema_version"] = {"enum": [1, 2], "default": 2, "title": "Schema Version", "type": "integer"}
    properties["$defs"] = {
        "type": "object", "additionalProperties": {"type": "object"},
        "description": "version 2 only: the schemas the environment repeats, each written once; "
                       '`{"$ref": "#/$defs/NAME"}` in a tool, state or record schema stands for NAME',
    }


class EnvSpec(SpecModel):
    """A complete, hashable description of one environment (DESIGN §3); version 2 is written with shared
    schemas (see the module docstring)."""

    model_config = ConfigDict(json_schema_extra=_file_form_schema)

    schema_version: Literal[2] = 2
    meta: EnvMeta
    state_schema: JSONObject
    tools: list[ToolSpec]
    implementation: Implementation
    content_hash: str = ""

    @property
    def name(self) -> str:
        """The environment's name (`meta.name`)."""
        return self.meta.name

    @property
    def version(self) -> str:
        """The environment's semver (`meta.version`)."""
        return self.meta.version

    @property
    def ref(self) -> str:
        """`name@version#hash12`, the short reference used by tasks and logs."""
        return f"{self.meta.name}@{self.meta.version}#{self.content_hash[:12]}"

    def compute_hash(self) -> str:
        """The sha256 of the spec's canonical JSON without `content_hash`, in its version-1 form (the
        full form, `schema_version` 1): what `seal` stores. Stable across the version-2 migration."""
        payload = self.model_dump(mode="json", exclude={"content_hash"})
        return content_hash({**payload, "schema_version": 1})

    def to_json_bytes(self) -> bytes:
        """The bytes of `spec.json`: canonical JSON of the version-2 file form, each repeated schema
        written once under `$defs` (`spec_file.pack_spec`). `model_dump` gives the full form."""
        return canonical_json(pack_spec(self.model_dump(mode="json", by_alias=True)))

    def seal(self) -> EnvSpec:
        """A copy whose `content_hash` is filled in."""
        return self.model_copy(update={"content_hash": self.compute_hash()})

    def tool(self, name: str) -> ToolSpec | None:
        """The tool named `name`, or None when the environment has none."""
        for spec in self.tools:
            if spec.name == name:
                return spec
        return None

    @model_validator(mode="before")
    @classmethod
    def _read_file_form(cls, data: Any) -> Any:
        """Version 1 (the same content) becomes version 2; a version-2 file form is expanded."""
        if not isinstance(data, dict):
            return data
        if data.get("schema_version") == 1:
            if "$defs" in data:
                raise ValueError("a version-1 spec has no $defs: shared schemas came with version 2")
            return {**data, "schema_version": 2}
        return expand_spec(data)

    @model_validator(mode="after")
    def _check(self) -> EnvSpec:
        names = [t.name for t in self.tools]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate tool names: {', '.join(duplicates)}")
        unknown = sorted(set(self.meta.user_tools) - set(names))
        if unknown:
            raise ValueError(f"meta.user_tools names tools the environment does not have: {', '.join(unknown)}")
        impl = self.implementation
        if isinstance(impl, HybridImplementation):
            authored = set(impl.authored.tools)
            overlap = sorted(authored & set(impl.model.operations))
            if overlap:
                raise ValueError(f"tools both authored and declarative: {', '.join(overlap)}")
            missing = sorted(authored - set(names))
            if missing:
                raise ValueError(f"authored tools without a tool spec: {', '.join(missing)}")
        if self.content_hash and self.content_hash != self.compute_hash():
            raise ValueError(
                f"content_hash {self.content_hash[:12]}… does not match the content "
                f"({self.compute_hash()[:12]}…): the spec was edited after sealing"
            )
        return self

