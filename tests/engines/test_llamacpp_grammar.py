"""The grammar asked about the chosen token first: the same answers as llama-cpp-python's chain."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

pytest.importorskip("llama_cpp", reason="llama-cpp-python is in .venv (make setup)")

from llama_cpp import Llama

from orchestrator.engines.llamacpp_grammar import GrammarLastLlama, GrammarLastSampler

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
