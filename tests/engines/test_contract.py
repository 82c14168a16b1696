"""The engine contract: every engine passes the same suite (STYLE.md 3).

Each engine is built by a factory; everything else is the same requests, the same expectations.
An engine lives on one event loop for its whole life, as it does inside a host actor (vLLM's
async engine is bound to the loop it first ran on), so the suite drives each engine through one
:class:`asyncio.Runner`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import jsonschema
import pytest

from orchestrator.engines.base import (
    Engine,
    GenerationRequest,
    GenerationResult,
    Message,
    stream_of,
)
from orchestrator.errors import ContextLengthError

CONTEXT = 1024
SCHEMA = {
    "type": "object",
    "properties": {
        "team": {"type": "string", "enum": ["billing", "technical", "shipping"]},
        "urgent": {"type": "boolean"},
    },
    "required": ["team", "urgent"],
    "additionalProperties": False,
}
T = TypeVar("T")
STORY = "Write a long story about a lighthouse keeper who finds a message in a bottle on the shore."


def _scripted(_: pytest.FixtureRequest) -> Engine:
    from orchestrator.engines.scripted import ScriptedEngine

    return ScriptedEngine(context_length=CONTEXT)


def _llamacpp(request: pytest.FixtureRequest) -> Engine:
    from orchestrator.engines.llamacpp import LlamaCppEngine

    return LlamaCppEngine(request.getfixturevalue("smollm2_path"), CONTEXT)


def _vllm(request: pytest.FixtureRequest) -> Engine:
    from orchestrator.catalog.engine_options import VllmOptions
    from orchestrator.engines.vllm import VllmEngine

    # float32: batched and lone decoding give the same greedy tokens, which the suite checks.
    options = VllmOptions(dtype="float32", enforce_eager=True, cpu_kvcache_gb=1)
    return VllmEngine(request.getfixturevalue("smollm2_hf"), CONTEXT, options)


_loops: dict[int, asyncio.Runner] = {}


@pytest.fixture(
    scope="module",
    params=[
        pytest.param(_scripted, id="scripted"),
        pytest.param(_llamacpp, id="llamacpp", marks=pytest.mark.model),
        pytest.param(_vllm, id="vllm", marks=pytest.mark.vllm),
    ],
)
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    factory: Callable[[pytest.FixtureRequest], Engine] = request.param
    with asyncio.Runner() as runner:
        built = runner.run(_build(factory, request))
        _loops[id(built)] = runner
        yield built
        runner.run(built.close())
        del _loops[id(built)]


async def _build(
    factory: Callable[[pytest.FixtureRequest], Engine], request: pytest.FixtureRequest
) -> Engine:
    return factory(request)


def ask(text: str, **settings: object) -> GenerationRequest:
    return GenerationRequest(messages=(Message("user", text),), **settings)  # type: ignore[arg-type]


def on_loop(engine: Engine, work: Coroutine[Any, Any, T]) -> T:
    """Run ``work`` on the engine's own event loop."""
    return _loops[id(engine)].run(work)


def run(engine: Engine, *requests: GenerationRequest) -> list[GenerationResult]:
    return on_loop(engine, engine.generate(list(requests)))


def test_is_an_engine(engine: Engine) -> None:
    assert isinstance(engine, Engine)


def test_one_result_per_request_in_order(engine: Engine) -> None:
    prompts = [ask(f"Name a colour that starts with the letter {c}.", max_tokens=12) for c in "BRG"]
    alone = [run(engine, p)[0].text for p in prompts]
    batched = [r.text for r in run(engine, *prompts)]
    assert batched == alone


def test_json_schema_output_parses_and_fits(engine: Engine) -> None:
    request = GenerationRequest(
        messages=(
            Message("system", "Route the ticket. Answer in JSON."),
            Message("user", "I was charged twice for my invoice, please refund me."),
        ),
        json_schema=SCHEMA,
        max_tokens=48,
    )
    (result,) = run(engine, request)
    jsonschema.validate(json.loads(result.text), SCHEMA)
    assert result.finish_reason == "stop"


def test_token_counts(engine: Engine) -> None:
    (short,) = run(engine, ask("Hi", max_tokens=8))
    (long,) = run(engine, ask("Hi " + "please tell me about the weather " * 20, max_tokens=8))
    assert 0 < short.input_tokens < long.input_tokens
    assert 0 < short.output_tokens <= 8
    assert short.model_time_s >= 0


def test_max_tokens_cuts_the_answer(engine: Engine) -> None:
    (result,) = run(engine, ask(STORY, max_tokens=3))
    assert result.output_tokens <= 3
    assert result.finish_reason == "length"


def test_stop_ends_the_answer_before_the_stop_string(engine: Engine) -> None:
    (free,) = run(engine, ask(STORY, max_tokens=40))
    words = free.text.split()
    assert len(words) >= 4, free.text
    stop = " " + words[3]
    cut = free.text[: free.text.index(stop)]
    (stopped,) = run(engine, ask(STORY, max_tokens=40, stop=(stop,)))
    assert stopped.text == cut
    assert stopped.finish_reason == "stop"


def test_temperature_zero_repeats(engine: Engine) -> None:
    request = ask(STORY, max_tokens=24, temperature=0.0)
    assert run(engine, request)[0].text == run(engine, request)[0].text


def test_concurrent_calls_do_not_corrupt_each_other(engine: Engine) -> None:
    prompts = [ask(f"Say something about the number {n}.", max_tokens=16) for n in range(4)]
    expected = [run(engine, p)[0].text for p in prompts]

    async def together() -> list[str]:
        results = await asyncio.gather(*(engine.generate([p]) for p in prompts))
        return [r[0].text for r in results]

    assert on_loop(engine, together()) == expected


def test_prompt_longer_than_context_is_a_typed_error(engine: Engine) -> None:
    with pytest.raises(ContextLengthError) as info:
        run(engine, ask("word " * (CONTEXT * 2), max_tokens=8))
    assert info.value.context_length == CONTEXT
    assert info.value.prompt_tokens > CONTEXT
    assert "Shorten the input" in str(info.value)


def test_a_stream_is_the_answer_piece_by_piece(engine: Engine) -> None:
    """Every engine streams: several pieces, in order, that make up the text a plain call gives,
    then the same result."""
    request = ask(STORY, max_tokens=24)
    (whole,) = run(engine, request)

    async def streamed() -> list[str | GenerationResult]:
        return [item async for item in stream_of(engine, request)]

    *pieces, result = on_loop(engine, streamed())
    assert len(pieces) > 3 and all(isinstance(p, str) for p in pieces), pieces
    assert isinstance(result, GenerationResult)
    assert "".join(pieces) == result.text == whole.text  # type: ignore[arg-type]
    assert (result.input_tokens, result.output_tokens, result.finish_reason) == (
        whole.input_tokens,
        whole.output_tokens,
        whole.finish_reason,
    )
