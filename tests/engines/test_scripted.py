from __future__ import annotations

import asyncio
import json
from pathlib import Path

import jsonschema
import pytest

from orchestrator.catalog.engine_options import ScriptedOptions, ScriptRule
from orchestrator.engines.base import GenerationRequest, Message
from orchestrator.engines.scripted import ScriptedEngine, example_for_schema


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": {"a": {"type": "string", "minLength": 3}}},
        {"type": "object", "properties": {"n": {"type": "integer", "minimum": 5}}},
        {"type": "object", "properties": {"x": {"type": "number", "exclusiveMinimum": 0}}},
        {
            "type": "object",
            "properties": {"l": {"type": "array", "minItems": 2, "items": {"enum": [1, 2]}}},
        },
        {
            "type": "object",
            "properties": {"o": {"anyOf": [{"type": "boolean"}, {"type": "string"}]}},
        },
        {
            "type": "object",
            "properties": {"c": {"const": "fixed"}, "z": {"type": ["null", "string"]}},
        },
    ],
)
def test_example_for_schema_fits_the_schema(schema: dict) -> None:
    jsonschema.validate(example_for_schema(schema), schema)


def test_rules_match_by_tag_then_text_in_order() -> None:
    engine = ScriptedEngine(
        ScriptedOptions(
            rules=(
                ScriptRule(tag="router", contains="refund", reply='{"team": "billing"}'),
                ScriptRule(tag="router", reply='{"team": "technical"}'),
                ScriptRule(reply="fallback"),
            )
        )
    )

    def reply(tag: str, text: str) -> str:
        request = GenerationRequest(messages=(Message("user", text),), tag=tag)
        return asyncio.run(engine.generate([request]))[0].text

    assert json.loads(reply("router", "please refund me")) == {"team": "billing"}
    assert json.loads(reply("router", "it crashed")) == {"team": "technical"}
    assert reply("other", "anything") == "fallback"
    assert engine.calls == 3


def test_a_call_is_held_while_the_hold_file_exists(tmp_path: Path) -> None:
    hold = tmp_path / "hold"
    hold.touch()
    engine = ScriptedEngine(ScriptedOptions(hold_while=str(hold), rules=(ScriptRule(reply="ok"),)))

    async def go() -> list[str]:
        request = GenerationRequest(messages=(Message("user", "go"),))
        call = asyncio.ensure_future(engine.generate([request]))
        await asyncio.sleep(0.3)
        assert not call.done() and engine.calls == 0, "answered while held"
        hold.unlink()
        return [r.text for r in await asyncio.wait_for(call, 5)]

    assert asyncio.run(go()) == ["ok"]
    assert engine.calls == 1
