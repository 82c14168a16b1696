"""The graph's pure parts: the state reducers, branch conditions (every operator) and the list of
approvers."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.workflow.graph import add_usage, approvers, holds, merge, merge_parts
from orchestrator.workflow.spec import Condition

STATE: dict[str, Any] = {
    "fields": {"amount": 4800, "kind": "water", "tags": ["roof"], "empty": "", "none": None},
}


def test_usage_is_summed_per_specialist_and_field_without_touching_the_inputs() -> None:
    left = {"extractor": {"calls": 1, "input_tokens": 10}}
    right = {"extractor": {"calls": 1, "output_tokens": 4}, "decider": {"calls": 1}}
    assert add_usage(left, right) == {
        "extractor": {"calls": 2, "input_tokens": 10, "output_tokens": 4},
        "decider": {"calls": 1},
    }
    assert left == {"extractor": {"calls": 1, "input_tokens": 10}}
    assert add_usage(None, None) == {} and add_usage(None, right) == right


def test_map_parts_merge_by_node_and_index_and_none_resets_a_node() -> None:
    parts = merge_parts({"m": {0: "a"}}, {"m": {1: "b"}, "p": {0: "x"}})
    assert parts == {"m": {0: "a", 1: "b"}, "p": {0: "x"}}
    assert merge_parts(parts, {"m": None}) == {"p": {0: "x"}}
    assert merge_parts(None, {"gone": None}) == {}


def test_merge_updates_key_by_key() -> None:
    assert merge({"a": 1, "b": 2}, {"b": 3}) == {"a": 1, "b": 3}
    assert merge(None, None) == {}


@pytest.mark.parametrize(
    ("key", "op", "value", "expected"),
    [
        ("fields.kind", "eq", "water", True),
        ("fields.kind", "eq", "fire", False),
        ("fields.kind", "ne", "fire", True),
        ("fields.kind", "ne", "water", False),
        ("fields.amount", "gt", 4799, True),
        ("fields.amount", "gt", 4800, False),
        ("fields.amount", "ge", 4800, True),
        ("fields.amount", "ge", 4801, False),
        ("fields.amount", "lt", 4801, True),
        ("fields.amount", "lt", 4800, False),
        ("fields.amount", "le", 4800, True),
        ("fields.amount", "le", 4799, False),
        ("fields.kind", "in", ["water", "storm"], True),
        ("fields.kind", "in", ["fire"], False),
        ("fields.kind", "not_in", ["fire"], True),
        ("fields.kind", "not_in", ["water"], False),
        ("fields.tags.0", "exists", None, True),
        ("fields.none", "exists", None, False),
        ("fields.missing", "exists", None, False),
        ("fields.tags", "truthy", None, True),
        ("fields.empty", "truthy", None, False),
    ],
)
def test_every_branch_operator(key: str, op: Any, value: Any, expected: bool) -> None:
    assert holds(Condition(key=key, op=op, value=value), STATE) is expected


@pytest.mark.parametrize("op", ["eq", "ne", "gt", "ge", "lt", "le", "in", "not_in", "truthy"])
def test_a_missing_value_is_false_for_every_operator(op: Any) -> None:
    assert holds(Condition(key="fields.missing", op=op, value=[1]), STATE) is False


@pytest.mark.parametrize(("op", "value"), [("gt", "4000"), ("lt", None), ("in", 5)])
def test_values_that_cannot_be_compared_are_false_not_an_error(op: Any, value: Any) -> None:
    assert holds(Condition(key="fields.amount", op=op, value=value), STATE) is False


def test_approvers_are_everyone_who_approved_once_sorted() -> None:
    approvals = {"adjuster": "rita", "second": ["sam", "rita"], "skipped": None, "blank": ""}
    assert approvers(approvals) == ["rita", "sam"]
    assert approvers({}) == []
