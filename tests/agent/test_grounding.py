"""agent.grounding: which optional arguments a synthesis solver's call keeps (no model involved)."""

from __future__ import annotations

from envfactory.agent.grounding import ground_arguments

SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "nextToken": {"type": "string"}, "limit": {"type": "integer"},
                   "includeAll": {"type": "boolean"}, "fields": {"type": "array"}, "filter": {"type": "object"}},
    "required": ["name"],
}


def test_placeholders_the_conversation_never_mentions_are_dropped() -> None:
    transcript = "List the rooms named atlas, please."
    kept, dropped = ground_arguments(
        {"name": "atlas", "nextToken": "your_next_token", "limit": 50, "includeAll": True}, SCHEMA, transcript)
    assert kept == {"name": "atlas"}
    assert dropped == ["nextToken", "limit", "includeAll"]


def test_required_arguments_stay_even_when_ungrounded() -> None:
    kept, dropped = ground_arguments({"name": "made-up"}, SCHEMA, "hello")
    assert kept == {"name": "made-up"}
    assert dropped == []


def test_values_from_the_user_or_a_tool_result_are_kept_as_whole_tokens() -> None:
    transcript = 'Show 20 of them, include all please.\n{"next": "tok_77", "items": []}'
    kept, dropped = ground_arguments(
        {"name": "x", "nextToken": "tok_77", "limit": 20, "includeAll": False, "fields": ["items"]}, SCHEMA,
        transcript)
    assert kept == {"name": "x", "nextToken": "tok_77", "limit": 20, "includeAll": False, "fields": ["items"]}
    assert dropped == []
    # a number inside a longer token is not a mention of it
    _, dropped = ground_arguments({"limit": 7}, SCHEMA, "order ord_0007 and 17 apples")
    assert dropped == ["limit"]


def test_containers_need_every_scalar_grounded_and_null_or_empty_never_is() -> None:
    transcript = "only the login and email fields, status active"
    kept, dropped = ground_arguments(
        {"fields": ["login", "email"], "filter": {"status": "active", "team": "core"}, "nextToken": None,
         "limit": [], "includeAll": 1.0}, SCHEMA, transcript + " 1")
    assert kept == {"fields": ["login", "email"], "includeAll": 1.0}
    assert dropped == ["filter", "nextToken", "limit"]
