"""Specialists that call tools: the call is constrained to the allowed tools' schemas, the result
goes back to the model, and the loop is bounded by the specialist's tool_steps."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import jsonschema
import pytest

from orchestrator.errors import OutputSchemaError
from orchestrator.specialists.local import LocalAsker
from orchestrator.specialists.tool_loop import ask_with_tools, call_schema
from orchestrator.tools import ToolContext
from orchestrator.workflow.catalog import load_catalog
from tests.catalogs import scripted_model, specialist, unique, write_catalog

ANSWER = {
    "type": "object",
    "properties": {"payout": {"type": "number"}},
    "required": ["payout"],
    "additionalProperties": False,
}


def call(expression: str) -> str:
    return json.dumps({"tool": "calculator", "args": {"expression": expression}})


@pytest.fixture
def pool(tmp_path: Path):  # type: ignore[no-untyped-def]
    model = unique("agent")
    rules = [
        {"tag": "payer", "contains": "Result of calculator: 4550", "reply": '{"payout": 4550}'},
        {"tag": "payer", "reply": call("4800 - 250")},
        {"tag": "careful", "contains": "division by zero", "reply": '{"payout": 0}'},
        {"tag": "careful", "reply": call("4800 / 0")},
        {"tag": "looper", "reply": call("1 + 1")},
    ]
    write_catalog(
        tmp_path,
        [scripted_model(model, context_length=4096, rules=rules)],
        [
            specialist(name, model, output_schema=ANSWER, tools=["calculator"], tool_steps=2)
            for name in ("payer", "careful", "looper")
        ],
    )
    pool = LocalAsker(load_catalog(tmp_path))
    yield pool
    asyncio.run(pool.aclose())


def ask(pool: LocalAsker, name: str):  # type: ignore[no-untyped-def]
    spec = pool.catalog.specialist(name)
    return asyncio.run(ask_with_tools(pool, spec, "Claimed 4800 euros.", ToolContext()))


def test_the_offered_schema_is_a_tool_call_or_the_final_answer(pool: LocalAsker) -> None:
    schema = call_schema(pool.catalog.specialist("payer"))
    jsonschema.validate(json.loads(call("1+1")), schema)
    jsonschema.validate({"payout": 3}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"tool": "sql_query", "args": {}}, schema)  # not an allowed tool
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"tool": "calculator", "args": {}}, schema)  # arguments must fit


def test_the_tool_result_goes_back_and_the_final_answer_comes_out(pool: LocalAsker) -> None:
    answer = ask(pool, "payer")
    assert answer.output == {"payout": 4550}
    assert answer.tool_calls == (
        {"tool": "calculator", "args": {"expression": "4800 - 250"}, "result": 4550},
    )
    assert answer.input_tokens > 0 and answer.output_tokens > 2  # both calls counted


def test_a_tool_error_goes_back_to_the_model(pool: LocalAsker) -> None:
    answer = ask(pool, "careful")
    assert answer.output == {"payout": 0}
    (only,) = answer.tool_calls
    assert "division by zero" in only["result"]["error"]


def test_the_loop_is_bounded_by_tool_steps(pool: LocalAsker) -> None:
    with pytest.raises(
        OutputSchemaError, match="no final answer .* after 2 tool calls \\(limit 2\\)"
    ):
        ask(pool, "looper")
