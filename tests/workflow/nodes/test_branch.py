"""Branch conditions: every operator, a missing value, values that cannot be compared."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from orchestrator.errors import RunError
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
    value = [1] if op in ("in", "not_in") else 1
    assert holds(Condition(key="fields.missing", op=op, value=value), STATE) is False


@pytest.mark.parametrize(
    ("op", "value", "kinds"),
    [
        ("gt", "4000", "is a number (4800), which does not compare by order with a string"),
        ("lt", "z", "is a number (4800), which does not compare by order with a string"),
        ("ge", 0, "is a boolean (True), which does not compare by order with a number"),
    ],
)
def test_values_that_cannot_be_compared_by_order_are_an_error_not_false(
    op: Any, value: Any, kinds: str
) -> None:
    """Before, 4800 gt "4000" was quietly false, and the run took the default past its rule."""
    state = {"fields": {"amount": 4800, "ok": True}}
    key = "fields.ok" if value == 0 else "fields.amount"  # true is no number: not >= 0
    with pytest.raises(RunError, match=re.escape(f"{key} {kinds}")):
        holds(Condition(key=key, op=op, value=value), state)


def test_a_null_value_compares_by_order_as_false() -> None:
    assert holds(Condition(key="v", op="gt", value=1), {"v": None}) is False


@pytest.mark.parametrize(
    ("got", "op", "value", "expected"),
    [
        (True, "eq", 1, False),
        (1, "eq", True, False),
        (0, "eq", False, False),
        (False, "eq", False, True),
        (1, "eq", 1.0, True),
        (True, "in", [1, 2], False),
        (False, "not_in", [0], True),
        (True, "ne", 1, True),
        ({"a": True}, "eq", {"a": 1}, False),
        ([1, True], "eq", [1, True], True),
        ("b", "in", ["abc"], False),
    ],
)
def test_values_compare_as_json_does_true_is_not_one(
    got: Any, op: Any, value: Any, expected: bool
) -> None:
    assert holds(Condition(key="v", op=op, value=value), {"v": got}) is expected


@pytest.mark.parametrize(
    ("op", "value", "message"),
    [
        ("in", "abc", "op in compares with a list of values"),
        ("not_in", 5, "op not_in compares with a list of values"),
        ("gt", None, "op gt compares with a number or a text"),
        ("le", True, "op le compares with a number or a text"),
        ("lt", [1], "op lt compares with a number or a text"),
    ],
)
def test_a_value_that_does_not_fit_its_operator_is_refused_in_the_spec(
    op: Any, value: Any, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Condition(key="v", op=op, value=value)


def test_a_router_routes_on_a_boolean_field(tmp_path: Path) -> None:
    """`equals: true` selects the case when the router's boolean field is true (`equals` was
    text only, so a boolean or number field could never match and the run took the default)."""
    import asyncio
    import json

    import yaml

    from orchestrator.runs.runner import Runner
    from orchestrator.specialists.local import LocalAsker
    from orchestrator.workflow.catalog import load_catalog
    from tests.catalogs import scripted_model, specialist, write_catalog

    flag = {
        "type": "object",
        "properties": {"ok": {"type": "boolean"}, "n": {"type": "integer"}},
        "required": ["ok", "n"],
    }
    rules = [
        {"contains": "yes", "reply": json.dumps({"ok": True, "n": 1})},
        {"reply": json.dumps({"ok": False, "n": 0})},
    ]
    agents = write_catalog(
        tmp_path / "agents",
        [scripted_model("flags", rules=rules)],
        [specialist("flagger", "flags", output_schema=flag)],
    )
    flow = {
        "name": "route",
        "description": "Routes on a boolean.",
        "input_schema": {"type": "object", "properties": {"text": {"type": "string"}}},
        "state": {"r": {"type": "object"}, "way": {"type": "string"}},
        "output": ["way"],
        "start": "route",
        "nodes": [
            {
                "kind": "branch",
                "id": "route",
                "router": "flagger",
                "input": "{text}",
                "route_on": "ok",
                "output": "r",
                "cases": [{"equals": True, "next": "yes"}],
                "default": "no",
            },
            {"kind": "tool", "id": "yes", "tool": "calculator", "args": {"expression": "1"},
             "output": "way", "next": "end"},
            {"kind": "tool", "id": "no", "tool": "calculator", "args": {"expression": "0"},
             "output": "way", "next": "end"},
        ],
    }  # fmt: skip
    flow["state"]["way"] = {"type": "number"}
    (tmp_path / "graphs").mkdir()
    (tmp_path / "graphs" / "route.yaml").write_text(yaml.safe_dump(flow))
    catalog = load_catalog(agents, tmp_path / "graphs")
    url = f"sqlite:///{tmp_path / 'runs.db'}"

    async def go(text: str) -> Any:
        async with Runner(catalog, database_url=url, asker=LocalAsker(catalog)) as runner:
            return (await runner.start("route", {"text": text})).output

    assert asyncio.run(go("yes please")) == {"way": 1}
    assert asyncio.run(go("no")) == {"way": 0}


def test_a_run_whose_rule_cannot_compare_fails_naming_the_branch(tmp_path: Path) -> None:
    """A state key with no declared type passes validate; at run time the rule fails the run,
    where it used to take the default without a word."""
    import asyncio

    import yaml

    from orchestrator.runs.runner import Runner
    from orchestrator.specialists.local import LocalAsker
    from orchestrator.workflow.catalog import load_catalog
    from tests.catalogs import scripted_model, write_catalog

    agents = write_catalog(tmp_path / "agents", [scripted_model("m", rules=[])], [])
    flow = {
        "name": "limit",
        "description": "Sends large counts to a person.",
        "input_schema": {"type": "object", "properties": {"n": {"type": "integer"}}},
        "state": {"count": {}, "way": {"type": "number"}},
        "output": ["way"],
        "start": "count",
        "nodes": [
            {"kind": "tool", "id": "count", "tool": "calculator",
             "args": {"expression": "{n} + 1"}, "output": "count", "next": "limit"},
            {"kind": "branch", "id": "limit",
             "cases": [{"when": {"key": "count", "op": "gt", "value": "1000"}, "next": "big"}],
             "default": "small"},
            {"kind": "tool", "id": "big", "tool": "calculator", "args": {"expression": "1"},
             "output": "way", "next": "end"},
            {"kind": "tool", "id": "small", "tool": "calculator", "args": {"expression": "0"},
             "output": "way", "next": "end"},
        ],
    }  # fmt: skip
    (tmp_path / "graphs").mkdir()
    (tmp_path / "graphs" / "limit.yaml").write_text(yaml.safe_dump(flow))
    catalog = load_catalog(agents, tmp_path / "graphs")
    url = f"sqlite:///{tmp_path / 'runs.db'}"

    async def go() -> tuple[BaseException, Any]:
        async with Runner(catalog, database_url=url, asker=LocalAsker(catalog)) as runner:
            with pytest.raises(RunError) as info:
                await runner.start("limit", {"n": 5000})
            return info.value, runner.store.runs(workflow="limit", limit=1)[0]

    error, record = asyncio.run(go())
    assert "branch 'limit': branch condition count gt '1000': count is a number (5001" in str(error)
    assert (record.status, record.error) == ("failed", str(error))
