"""Tool surfaces: flattening, name mapping, and the schema TRL derives (through transformers'
`get_json_schema`) against our ToolSpec — equal, or every loss listed."""

from __future__ import annotations

import pytest

pytest.importorskip("transformers", reason="the train extra is not installed: pip install 'envfactory[train]'")

from transformers.utils.chat_template_utils import get_json_schema

from envfactory.runtime import load_env, qualified_name
from envfactory.spec import ToolSpec
from envfactory.train.sessions import LocalSessions
from envfactory.train.surface import arguments_from_flat, schema_differences, tool_surface
from envfactory.train.trl_env import environment_class

NESTED = ToolSpec(
    name="crm__create-contact", description="Create a contact. Args: are nested.", effect="write",
    output_schema={"type": "object"},
    input_schema={
        "type": "object", "additionalProperties": False, "required": ["first-name", "address", "class"],
        "properties": {
            "first-name": {"type": "string", "description": "Given name.", "minLength": 1},
            "class": {"type": "string", "enum": ["lead", "customer"], "description": "Kind of contact."},
            "2fa": {"type": "boolean", "description": "Two-factor enabled."},
            "address": {"type": "object", "description": "Postal address.", "required": ["city"],
                        "properties": {"city": {"type": "string", "description": "City."},
                                       "geo": {"type": "object", "properties": {
                                           "lat": {"type": "number", "description": "Latitude.", "maximum": 90}}}}},
            "tags": {"type": "array", "items": {"type": "string"}, "description": "Labels.", "maxItems": 5},
            "phones": {"type": "array", "description": "Numbers.",
                       "items": {"type": "object", "properties": {"number": {"type": "string"}}}},
            "note": {"type": ["string", "null"], "description": "Free text."},
        },
    },
)


def test_nested_objects_flatten_and_names_map_back() -> None:
    surface = tool_surface(NESTED)
    names = {p.name: p.path for p in surface.params}
    assert surface.function == "crm__create_contact"
    assert names == {"first_name": ["first-name"], "class_": ["class"], "p_2fa": ["2fa"],
                     "address__city": ["address", "city"], "address__geo__lat": ["address", "geo", "lat"],
                     "tags": ["tags"], "phones": ["phones"], "note": ["note"]}
    required = {p.name for p in surface.params if p.required}
    assert required == {"first_name", "class_", "address__city"}  # geo is optional, so lat is too
    flat = {"first_name": "Ada", "class_": "lead", "address__city": "Paris", "address__geo__lat": 48.8,
            "tags": None, "note": None}
    arguments, unknown = arguments_from_flat(surface, flat)
    assert unknown == []
    assert arguments == {"first-name": "Ada", "class": "lead", "address": {"city": "Paris", "geo": {"lat": 48.8}}}
    joined = "\n".join(surface.losses)
    for expected in ("first-name: minLength=1 dropped", "address.geo.lat: maximum=90 dropped",
                     "tags: maxItems=5 dropped", "phones: item properties dropped", "name mapped to crm__create_contact"):
        assert expected in joined


def _derived_losses(specs: list[ToolSpec]) -> tuple[list[str], list[str]]:
    cls = environment_class(specs, LocalSessions())
    predicted: list[str] = []
    found: list[str] = []
    for surface in cls._surfaces.values():  # type: ignore[attr-defined]
        spec = next(s for s in specs if s.name == surface.tool)
        derived = get_json_schema(getattr(cls, surface.function))
        predicted += surface.losses
        found += schema_differences(spec, surface, derived)
    return predicted, found


def test_trl_derives_exactly_our_schema_up_to_the_listed_losses() -> None:
    predicted, found = _derived_losses([NESTED])
    assert found == predicted  # no difference beyond the predicted losses


@pytest.mark.parametrize("env_name", ["shop", "tracker", "calendar"])
def test_bundled_environments_schema_losses_are_all_listed(env_name: str) -> None:
    env = load_env(env_name)
    specs = [t.model_copy(update={"name": qualified_name(env.name, t.name)}) for t in env.spec.tools]
    predicted, found = _derived_losses(specs)
    assert found == predicted, "\n".join(sorted(set(found) - set(predicted)))
    # every tool survives with its name, its parameters and their descriptions
    cls = environment_class(specs, LocalSessions())
    for spec in specs:
        function = get_json_schema(getattr(cls, spec.name))["function"]
        assert function["name"] == spec.name
        flat_names = set(function["parameters"]["properties"])
        top = set(spec.input_schema.get("properties", {}))
        assert all(any(n == t or n.startswith(t + "__") for n in flat_names) for t in top)


def test_a_tracker_constraint_is_reported_as_a_loss() -> None:
    env = load_env("tracker")
    spec = next(t for t in env.spec.tools if t.name == "create_project")
    assert "create_project:key: pattern='^[A-Z]{2,6}$' dropped" in tool_surface(spec).losses
