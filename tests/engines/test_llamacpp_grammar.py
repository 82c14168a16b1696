"""The grammar asked about the chosen token first: the same answers as llama-cpp-python's chain."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

pytest.importorskip("llama_cpp", reason="llama-cpp-python is in .venv (make setup)")

from llama_cpp import Llama

from orchestrator.engines.base import GenerationRequest, Message
from orchestrator.engines.llamacpp import LlamaCppEngine
from orchestrator.engines.llamacpp_grammar import (
    GrammarLastLlama,
    GrammarLastSampler,
    portable_pattern,
)
from orchestrator.errors import EngineError

pytestmark = pytest.mark.model

SCHEMA = {
    "type": "object",
    "properties": {
        "category": {"enum": ["billing", "outage", "account", "other"]},
        "urgency": {"enum": ["low", "medium", "high"]},
        "people_affected": {"type": "integer"},
        "summary": {"type": "string"},
        "refund": {"type": "boolean"},
    },
    "required": ["category", "urgency", "people_affected", "summary", "refund"],
    "additionalProperties": False,
}

TICKETS = [
    "I was charged twice for my March invoice, please refund one of them.",
    "The whole site has been down for an hour and none of our stores can take payments!!",
    "How do I change the email address on my account?",
    "Your app logged me out and now my password reset link says expired. Help",
]


def answer(model: Llama, ticket: str, **sampling: Any) -> str:
    return completion(model, ticket, **sampling)["content"]


def completion(model: Llama, ticket: str, **sampling: Any) -> dict[str, str]:
    """The answer's text (``content``) and why it ended (``finish_reason``)."""
    out = model.create_chat_completion(
        messages=[
            {"role": "system", "content": "Triage the support ticket. Answer in JSON."},
            {"role": "user", "content": ticket},
        ],
        response_format={"type": "json_object", "schema": SCHEMA},
        max_tokens=120,
        **sampling,
    )
    choice = out["choices"][0]
    return {"content": choice["message"]["content"], "finish_reason": choice["finish_reason"]}


@pytest.fixture(scope="module")
def models(smollm2_path: Path) -> tuple[Llama, GrammarLastLlama]:
    options = {"model_path": str(smollm2_path), "n_ctx": 1024, "verbose": False}
    return Llama(**options), GrammarLastLlama(**options)


def test_greedy_answers_are_the_chain_s_own(models: tuple[Llama, GrammarLastLlama]) -> None:
    plain, grammar_last = models
    checked = refused = 0
    for ticket in TICKETS:
        expected = answer(plain, ticket, temperature=0.0, repeat_penalty=1.1)
        assert answer(grammar_last, ticket, temperature=0.0, repeat_penalty=1.1) == expected
        sampler = grammar_last._sampler
        assert isinstance(sampler, GrammarLastSampler)
        checked, refused = checked + sampler.checked, refused + sampler.refused
    # Both ways were taken: tokens the grammar allowed at once, and tokens it refused (JSON
    # punctuation and spacing are often not the model's first choice).
    assert checked > 0 and refused > 0, (checked, refused)


def test_sampled_answers_keep_to_the_schema(models: tuple[Llama, GrammarLastLlama]) -> None:
    _, grammar_last = models
    answers = [completion(grammar_last, TICKETS[0], temperature=1.0, seed=s) for s in range(6)]
    assert len({a["content"] for a in answers}) > 1, "different seeds should give different answers"
    ended = [a["content"] for a in answers if a["finish_reason"] == "stop"]
    assert len(ended) >= 3, answers  # the others ran out of tokens inside a string
    for text in ended:  # llama-cpp-python's string rule lets control characters through
        jsonschema.validate(json.loads(text, strict=False), SCHEMA)
    again = answer(grammar_last, TICKETS[0], temperature=1.0, seed=3)
    assert again == answer(grammar_last, TICKETS[0], temperature=1.0, seed=3)


def test_unconstrained_answers_use_the_plain_chain(
    models: tuple[Llama, GrammarLastLlama],
) -> None:
    plain, grammar_last = models
    request = {"messages": [{"role": "user", "content": "Name a fruit."}], "max_tokens": 12}
    ours = grammar_last.create_chat_completion(**request, temperature=0.0)
    assert not isinstance(grammar_last._sampler, GrammarLastSampler)
    theirs = plain.create_chat_completion(**request, temperature=0.0)
    assert ours["choices"][0]["message"] == theirs["choices"][0]["message"]


PATTERNS = {
    "policy": r"^[A-Z]{2}-\d{5}$",
    "filed": r"^\d{4}-\d{2}-\d{2}$",
    "email": r"^\w+@\w+\.\w+$",
    "kind": r"^(?:auto|home)$",
    "amount": r"^\$[\d.]+$",
}


def test_patterns_with_regex_shorthands_hold_the_answer(smollm2_path: Path) -> None:
    # llama-cpp-python's converter copies \d, \w and \. into the grammar, where llama.cpp cannot
    # parse them: the host crashed on such a schema (a null sampler). They are spelled out now.
    engine = LlamaCppEngine(smollm2_path, 1024)
    schema = {
        "type": "object",
        "properties": {name: {"type": "string", "pattern": p} for name, p in PATTERNS.items()},
        "required": list(PATTERNS),
        "additionalProperties": False,
    }
    request = GenerationRequest(
        messages=(
            Message("system", "Extract the claim's fields. Answer in JSON."),
            Message("user", "Claim HP-12345, filed 2024-03-01 by ann@example.com: $1200.50 home"),
        ),
        max_tokens=120,
        json_schema=schema,
        tag="claims",
    )
    (result,) = asyncio.run(engine.generate([request]))
    answer = json.loads(result.text)
    for name, pattern in PATTERNS.items():
        assert re.fullmatch(pattern, answer[name]), (name, answer[name])
    asyncio.run(engine.close())


@pytest.mark.parametrize("pattern", [r"^\bclaim\b$", r"^(?=HP)\w+$"])
def test_a_pattern_llama_cpp_cannot_express_is_an_error_that_names_it(
    smollm2_path: Path, pattern: str
) -> None:
    engine = LlamaCppEngine(smollm2_path, 512)
    schema = {"type": "object", "properties": {"a": {"type": "string", "pattern": pattern}}}
    bad = GenerationRequest(
        messages=(Message("user", "Hi"),), max_tokens=8, json_schema=schema, tag="claims"
    )
    with pytest.raises(EngineError) as refused:
        asyncio.run(engine.generate([bad]))
    message = str(refused.value)
    assert message.startswith("specialist 'claims': llama.cpp cannot hold answers to its output")
    assert repr(pattern) in message
    good = GenerationRequest(messages=(Message("user", "Hi"),), max_tokens=4)
    assert asyncio.run(engine.generate([good]))[0].output_tokens > 0  # the engine goes on
    asyncio.run(engine.close())


def test_portable_patterns_spell_out_what_llama_cpp_grammars_lack() -> None:
    assert portable_pattern(r"^\d{2}\.\w+$") == r"^[0-9]{2}[\x2e][0-9A-Za-z_]+$"
    assert portable_pattern(r"^[\w.-]+$") == r"^[0-9A-Za-z_.-]+$"
    assert portable_pattern(r"^\S+$") == r"^[^ \t\n\r\x0b\x0c]+$"
    assert portable_pattern(r"^[^\s]$") == r"^[^ \t\n\r\x0b\x0c]$"
    assert portable_pattern(r"^(?:a|b)\(c\)$") == r"^(a|b)[\x28]c[\x29]$"
    assert portable_pattern(r"^a\\d\n$") == r"^a\\d\n$"  # an escaped backslash, a newline


def test_large_and_nested_counts_hold_without_crashing_llama_cpp(smollm2_path: Path) -> None:
    # As nested optional groups, maxItems 100000 crashed llama.cpp's parser and maxLength 2000
    # made a grammar it refused; a minLength of 10**12 was a string of 10**12 rule names. A count
    # llama.cpp refuses even as {m,n} is left open: the answer is checked against the schema.
    engine = LlamaCppEngine(smollm2_path, 1024)
    schemas = [
        {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 100_000},
        {"type": "string", "minLength": 3, "maxLength": 2000},
        {
            "type": "array",
            "items": {"type": "array", "items": {"type": "string"}, "maxItems": 1000},
            "maxItems": 1000,
        },
        {"type": "string", "minLength": 10**12},
    ]
    for field in schemas:
        schema = {"type": "object", "properties": {"a": field}, "required": ["a"]}
        request = GenerationRequest(
            messages=(Message("user", "List three fruits in JSON."),),
            max_tokens=60,
            json_schema=schema,
        )
        (result,) = asyncio.run(engine.generate([request]))
        if result.finish_reason == "stop":
            jsonschema.validate(json.loads(result.text, strict=False), schema)
    asyncio.run(engine.close())


def test_a_schema_the_converter_cannot_handle_is_an_error_not_any_json(
    smollm2_path: Path,
) -> None:
    engine = LlamaCppEngine(smollm2_path, 512)
    schema = {"type": "object", "properties": {"a": {"not": {"type": "string"}}}}
    request = GenerationRequest(
        messages=(Message("user", "Hi"),), max_tokens=8, json_schema=schema, tag="odd"
    )
    with pytest.raises(EngineError, match="specialist 'odd': .*cannot turn it into a grammar"):
        asyncio.run(engine.generate([request]))
    asyncio.run(engine.close())
