"""`viewer.diffs.diff_view`: a recorded call diff grouped by record, fields before and after."""

from __future__ import annotations

from envfactory.spec import CallStateDiff, StateChange
from envfactory.viewer.diffs import VALUE_LIMIT, diff_view


def test_records_added_removed_and_changed_with_fields_before_and_after() -> None:
    view = diff_view(CallStateDiff(call_id="call_0", env="shop", changes=[
        StateChange(op="add", path="/collections/orders/o~11", new={"id": "o/1", "qty": 2}),
        StateChange(op="remove", path="/collections/carts/c1", old={"id": "c1"}),
        StateChange(op="replace", path="/collections/products/p1/stock", old=5, new=3),
        StateChange(op="add", path="/collections/products/p1/tags", new=["sale"]),
        StateChange(op="replace", path="/counters/orders", old=1, new=2)]))
    assert view.summary == "1 added, 1 removed, 1 changed, 1 other"
    added, removed, changed = view.records
    assert (added.collection, added.key, added.kind) == ("orders", "o/1", "added")  # pointer tokens unescaped
    assert [(f.name, f.before, f.after) for f in added.fields] == [("id", "", '"o/1"'), ("qty", "", "2")]
    assert [(f.name, f.before, f.after) for f in removed.fields] == [("id", '"c1"', "")]
    assert (changed.kind, [(f.name, f.before, f.after) for f in changed.fields]) == (
        "changed", [("stock", "5", "3"), ("tags", "", '["sale"]')])
    assert view.other == [("replace", "/counters/orders", "1", "2")]


def test_a_whole_record_replaced_lists_only_the_fields_that_differ() -> None:
    view = diff_view(CallStateDiff(call_id="c", env="e", changes=[
        StateChange(op="replace", path="/collections/t/k", old={"a": 1, "b": 2}, new={"a": 1, "b": 3, "c": None})]))
    (record,) = view.records
    assert record.kind == "changed" and [(f.name, f.before, f.after) for f in record.fields] == [
        ("b", "2", "3"), ("c", "", "null")]


def test_long_values_are_cut() -> None:
    view = diff_view(CallStateDiff(call_id="c", env="e", changes=[
        StateChange(op="replace", path="/collections/t/k/text", old="x" * 5000, new="y")]))
    before = view.records[0].fields[0].before
    assert len(before) == VALUE_LIMIT + 1 and before.endswith("…")
