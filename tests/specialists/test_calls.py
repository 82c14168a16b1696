from __future__ import annotations

import pytest

from orchestrator.catalog.specs import SpecialistSpec
from orchestrator.engines.base import GenerationResult
from orchestrator.errors import InputError, OutputSchemaError
from orchestrator.specialists.calls import build_request, parse_answer
from tests.catalogs import specialist

SPEC = SpecialistSpec.model_validate(
    specialist(
        "sentiment",
        "m",
        examples=[{"input": "love it", "output": {"sentiment": "positive"}}],
        generation={"max_tokens": 9, "temperature": 0.3, "stop": ["\n\n"]},
    )
)


def result(text: str, finish: str = "stop") -> GenerationResult:
    return GenerationResult(text=text, input_tokens=1, output_tokens=1, finish_reason=finish)  # type: ignore[arg-type]


def test_request_carries_instructions_examples_schema_and_settings() -> None:
    request = build_request(SPEC, "meh", adapter="/a.gguf")
    roles = [m.role for m in request.messages]
    assert roles == ["system", "user", "assistant", "user"]
    assert "Classify the sentiment." in request.messages[0].content
    assert '"enum":["positive","negative","neutral"]' in request.messages[0].content
    assert request.messages[2].content == '{"sentiment": "positive"}'
    assert request.messages[-1].content == "meh"
    assert (request.max_tokens, request.temperature, request.stop) == (9, 0.3, ("\n\n",))
    assert request.json_schema == SPEC.output_schema
    assert (request.adapter, request.tag) == ("/a.gguf", "sentiment")


def test_empty_text_is_refused() -> None:
    with pytest.raises(InputError, match="input text is empty"):
        build_request(SPEC, "  \n ")


def test_answer_must_be_json_that_fits() -> None:
    assert parse_answer(SPEC, result('{"sentiment": "neutral"}')) == {"sentiment": "neutral"}
    summarizer = SPEC.model_copy(
        update={"output_schema": {"type": "object", "properties": {"note": {"type": "string"}}}}
    )
    raw_newline = '{"note": "two\nlines"}'  # a raw newline inside the string
    assert parse_answer(summarizer, result(raw_newline)) == {"note": "two\nlines"}
    with pytest.raises(OutputSchemaError, match="not JSON") as info:
        parse_answer(SPEC, result("neutral"))
    assert info.value.raw == "neutral"
    with pytest.raises(OutputSchemaError, match="sentiment does not fit the output schema"):
        parse_answer(SPEC, result('{"sentiment": "meh"}'))
    with pytest.raises(OutputSchemaError, match="cut off at max_tokens"):
        parse_answer(SPEC, result('{"sentim', finish="length"))


def test_an_answer_json_cannot_hold_is_refused_not_a_crash() -> None:
    """Nested beyond reading (a RecursionError traceback), or holding a number JSON has not
    (1e999 is infinity: `ask --json` printed Infinity)."""
    free = SpecialistSpec.model_validate(specialist("free", "m", output_schema={"type": "object"}))
    deep = '{"a": ' + "[" * 100_000 + "]" * 100_000 + "}"
    with pytest.raises(OutputSchemaError, match="nested too deep to read"):
        parse_answer(free, result(deep))
    with pytest.raises(OutputSchemaError, match="the answer/n is inf, which is not a JSON number"):
        parse_answer(free, result('{"n": 1e999}'))
    with pytest.raises(OutputSchemaError, match="nests lists and objects more than 64 deep"):
        parse_answer(free, result('{"a": ' + "[" * 70 + "]" * 70 + "}"))
