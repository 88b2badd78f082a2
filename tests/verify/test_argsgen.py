"""Schema-guided argument generation (`envfactory.verify.argsgen`, `envfactory.spec.schema_sample`)."""

from __future__ import annotations

import random
import re
from typing import Any

import jsonschema_rs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from envfactory.runtime import bundled_env_names, load_env
from envfactory.spec import ARTIFACT_MODELS
from envfactory.spec.schema_sample import generate_value
from envfactory.verify.argsgen import generate_arguments, harvest_values

ORDER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "customer_id": {"type": "string"},
        "items": {
            "type": "array",
            "minItems": 1,
            "maxItems": 5,
            "items": {
                "type": "object",
                "properties": {
                    "product_id": {"type": "string", "pattern": "^[A-Z]{2}-[0-9]{3}$"},
                    "quantity": {"type": "integer", "minimum": 1, "maximum": 100},
                },
                "required": ["product_id", "quantity"],
                "additionalProperties": False,
            },
        },
        "shipping": {"$ref": "#/$defs/Address"},
        "priority": {"enum": ["low", "normal", "high"]},
        "note": {"type": ["string", "null"], "maxLength": 40},
        "amount": {"type": "number", "exclusiveMinimum": 0, "maximum": 500},
        "when": {"type": "string", "format": "date-time"},
        "contact": {"type": "string", "format": "email"},
        "tags": {"type": "array", "items": {"type": "string", "minLength": 2, "maxLength": 8}, "uniqueItems": True},
    },
    "required": ["customer_id", "items", "shipping"],
    "additionalProperties": False,
    "$defs": {
        "Address": {
            "type": "object",
            "properties": {
                "line1": {"type": "string", "minLength": 1},
                "country": {"type": "string", "pattern": "^[A-Z]{2}$"},
                "kind": {"anyOf": [{"const": "home"}, {"const": "office"}, {"type": "null"}]},
            },
            "required": ["line1", "country"],
            "additionalProperties": False,
        }
    },
}

UNION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "target": {
            "oneOf": [
                {"$ref": "#/$defs/ByEmail"},
                {"$ref": "#/$defs/ById"},
            ],
            "discriminator": {"propertyName": "by"},
        },
        "limits": {
            "allOf": [
                {"type": "object", "properties": {"low": {"type": "integer", "minimum": -10, "maximum": 0}}, "required": ["low"]},
                {"properties": {"high": {"type": "integer", "exclusiveMinimum": 0, "multipleOf": 5, "maximum": 50}}, "required": ["high"]},
            ]
        },
        "pair": {"type": "array", "prefixItems": [{"type": "boolean"}, {"type": "integer"}], "minItems": 2, "maxItems": 2},
        "id": {"type": "string", "format": "uuid"},
        "day": {"type": "string", "format": "date"},
        "labels": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}},
    },
    "required": ["target", "limits", "pair"],
    "$defs": {
        "ByEmail": {
            "type": "object",
            "properties": {"by": {"const": "email", "default": "email"}, "email": {"type": "string", "format": "email"}},
            "required": ["email"],
            "additionalProperties": False,
        },
        "ById": {
            "type": "object",
            "properties": {"by": {"const": "id", "default": "id"}, "id": {"type": "string", "minLength": 3}},
            "required": ["id"],
            "additionalProperties": False,
        },
    },
}

RECURSIVE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"value": {"$ref": "#/$defs/JSON"}},
    "required": ["value"],
    "$defs": {
        "JSON": {
            "anyOf": [
                {"type": "object", "additionalProperties": {"$ref": "#/$defs/JSON"}},
                {"type": "array", "items": {"$ref": "#/$defs/JSON"}},
                {"type": "string"},
                {"type": "integer"},
                {"type": "boolean"},
                {"type": "null"},
            ]
        }
    },
}

SCHEMAS = {"order": ORDER_SCHEMA, "union": UNION_SCHEMA, "recursive": RECURSIVE_SCHEMA}


def strict_validator(schema: dict[str, Any]) -> Any:
    return jsonschema_rs.validator_for(schema, validate_formats=True)


def errors(validator: Any, value: Any) -> list[str]:
    return [e.message for e in validator.iter_errors(value)]


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_generated_arguments_validate(name: str) -> None:
    schema = SCHEMAS[name]
    validator = strict_validator(schema)
    pool = {"customer_id": ["cus_0001", "cus_0002"]}
    for seed in range(300):
        args = generate_arguments(schema, random.Random(seed), pool)
        assert validator.is_valid(args), (seed, args, errors(validator, args))


def test_optional_properties_are_sometimes_present_and_sometimes_absent() -> None:
    present = [
        "note" in generate_arguments(ORDER_SCHEMA, random.Random(seed), {}) for seed in range(100)
    ]
    assert any(present) and not all(present)


def test_same_seed_same_arguments_and_seeds_differ() -> None:
    for schema in SCHEMAS.values():
        a = [generate_arguments(schema, random.Random(seed), {"customer_id": ["x"]}) for seed in range(20)]
        b = [generate_arguments(schema, random.Random(seed), {"customer_id": ["x"]}) for seed in range(20)]
        assert a == b
        assert len({repr(args) for args in a}) > 10


def test_strings_are_drawn_from_the_pool_by_property_name() -> None:
    pool = {"customer_id": ["cus_0001", "cus_0002"], "product_id": ["AB-123"]}
    drawn = [generate_arguments(ORDER_SCHEMA, random.Random(seed), pool) for seed in range(200)]
    customers = [args["customer_id"] for args in drawn]
    from_pool = sum(c in pool["customer_id"] for c in customers)
    assert 0.7 * len(customers) < from_pool < len(customers)  # mostly live ids, sometimes invented
    products = [item["product_id"] for args in drawn for item in args["items"]]
    assert "AB-123" in products
    assert all(re.fullmatch(r"[A-Z]{2}-[0-9]{3}", p) for p in products)


def test_pool_values_violating_length_limits_are_not_used() -> None:
    schema = {"type": "object", "properties": {"code": {"type": "string", "maxLength": 3}}, "required": ["code"]}
    for seed in range(50):
        assert len(generate_arguments(schema, random.Random(seed), {"code": ["far-too-long"]})["code"]) <= 3


def test_integer_and_number_bounds() -> None:
    schema = {
        "type": "object",
        "properties": {
            "a": {"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 3},
            "b": {"type": "number", "minimum": 2.5, "maximum": 2.5},
            "c": {"type": "integer", "minimum": 10, "multipleOf": 7},
            "d": {"type": "number", "exclusiveMinimum": 0, "maximum": 0.05},
        },
        "required": ["a", "b", "c", "d"],
    }
    validator = strict_validator(schema)
    seen_a = set()
    for seed in range(200):
        args = generate_arguments(schema, random.Random(seed), {})
        assert validator.is_valid(args), (args, errors(validator, args))
        seen_a.add(args["a"])
    assert seen_a == {1, 2}


def test_recursive_schemas_terminate_and_nest() -> None:
    depths = []

    def depth(value: Any) -> int:
        if isinstance(value, dict):
            return 1 + max((depth(v) for v in value.values()), default=0)
        if isinstance(value, list):
            return 1 + max((depth(v) for v in value), default=0)
        return 0

    for seed in range(200):
        depths.append(depth(generate_arguments(RECURSIVE_SCHEMA, random.Random(seed), {})["value"]))
    assert max(depths) >= 2
    assert max(depths) <= 8


def test_non_object_schema_and_bad_refs_are_rejected() -> None:
    with pytest.raises(ValueError, match="not an object"):
        generate_arguments({"type": "string"}, random.Random(0), {})
    with pytest.raises(ValueError, match=r"cannot resolve \$ref"):
        generate_arguments({"type": "object", "properties": {"x": {"$ref": "#/$defs/Missing"}}, "required": ["x"]},
                           random.Random(0), {})
    with pytest.raises(ValueError, match="only local"):
        generate_arguments({"$ref": "https://example.com/schema.json"}, random.Random(0), {})


def test_the_global_rng_is_not_used() -> None:
    random.seed(1234)
    expected = random.random()
    random.seed(1234)
    generate_arguments(ORDER_SCHEMA, random.Random(0), {})
    assert random.random() == expected


def test_harvest_values_keeps_first_seen_order_without_duplicates() -> None:
    pool: dict[str, list[str]] = {"id": ["old"]}
    harvest_values(
        {"items": [{"id": "a", "owner": {"id": "b"}}, {"id": "a", "tags": ["x", "y"]}], "count": 2, "id": "c"},
        pool,
    )
    assert pool == {"id": ["old", "a", "b", "c"], "tags": ["x", "y"]}


def test_harvest_values_limit() -> None:
    pool: dict[str, list[str]] = {}
    harvest_values([{"id": str(i)} for i in range(10)], pool, limit=3)
    assert pool == {"id": ["0", "1", "2"]}


def test_generate_value_for_scalars() -> None:
    rng = random.Random(0)
    assert generate_value({"const": 7}, rng) == 7
    assert isinstance(generate_value({"type": "boolean"}, rng), bool)
    assert generate_value({"type": "null"}, rng) is None
    drawn = [generate_value({"type": "string"}, random.Random(s), {"sku": ["A1"]}, name="sku") for s in range(100)]
    assert 70 < drawn.count("A1") < 100
    assert all(isinstance(v, str) for v in drawn)


@pytest.mark.parametrize("name", sorted(ARTIFACT_MODELS))
@settings(max_examples=25, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**32 - 1))
def test_artifact_model_schemas(name: str, seed: int) -> None:
    """Generated instances of every artifact schema validate: $refs, discriminated unions, recursion."""
    schema = ARTIFACT_MODELS[name].model_json_schema()
    value = generate_value(schema, random.Random(seed))
    validator = jsonschema_rs.validator_for(schema)
    assert validator.is_valid(value), errors(validator, value)


@pytest.mark.parametrize("env_name", bundled_env_names())
def test_every_bundled_tool_gets_valid_arguments(env_name: str) -> None:
    env = load_env(env_name)
    rng = random.Random(env_name)
    for tool in env.spec.tools:
        validator = jsonschema_rs.validator_for(tool.input_schema)
        for _ in range(50):
            args = generate_arguments(tool.input_schema, rng, {})
            assert validator.is_valid(args), (tool.name, args, errors(validator, args))
