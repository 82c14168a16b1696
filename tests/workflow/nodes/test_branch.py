"""Branch conditions: every operator, a missing value, values that cannot be compared."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.workflow.nodes.branch import holds
from orchestrator.workflow.spec import Condition

STATE: dict[str, Any] = {
    "fields": {"amount": 4800, "kind": "water", "tags": ["roof"], "empty": "", "none": None},
}


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
