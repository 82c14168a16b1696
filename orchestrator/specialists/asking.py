"""The one way to ask a specialist: build the request, generate, record metrics, check the answer.

Where the engine runs is the caller's ``generate`` (a Ray host through the pool, or an engine in
this process); everything else about a call happens here.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from orchestrator import telemetry
from orchestrator.catalog import SpecialistCatalog
from orchestrator.catalog.specs import ModelSpec, SpecialistSpec
from orchestrator.engines.base import GenerationRequest, GenerationResult, Message
from orchestrator.errors import ContextLengthError, EngineError
from orchestrator.specialists.adapters import live_adapter
from orchestrator.specialists.calls import (
    OnText,
    SpecialistAnswer,
    build_request,
    model_label,
    parse_answer,
)
from orchestrator.specialists.traced import PROVIDERS, request_model
from orchestrator.telemetry import gen_ai

Generate = Callable[[str, GenerationRequest], Awaitable[tuple[GenerationResult, int]]]
"""Generate one request on a model (by name); returns the result and the attempts it took."""


Stream = Callable[[str, GenerationRequest], AsyncIterator[str | GenerationResult]]
"""Generate one request on a model (by name): its text piece by piece, then its result."""


async def ask_through(
    generate: Generate,
    catalog: SpecialistCatalog,
    specialist: SpecialistSpec,
    text: str,
    history: Sequence[Message] = (),
    stream: Stream | None = None,
    on_text: OnText | None = None,
) -> SpecialistAnswer:
    """Ask ``specialist`` about ``text`` through ``generate`` (or, with ``on_text``, through
    ``stream``, each piece of text to ``on_text`` as it comes); the answer is checked against
    the specialist's output schema. The registry's live adapter version, if any, answers."""
    adapter = live_adapter(catalog, specialist)
    request = build_request(specialist, text, adapter, history)
    started = time.perf_counter()
    try:
        if on_text is not None and stream is not None:
            result, attempts = await _streamed(stream, specialist.model, request, on_text)
        else:
            result, attempts = await generate(specialist.model, request)
    except ContextLengthError as err:
        raise ContextLengthError(
            f"specialist {specialist.name!r} (model {specialist.model!r}): {err.message}",
            err.prompt_tokens,
            err.context_length,
        ) from None
    latency = time.perf_counter() - started
    _record_metrics(catalog.model(specialist.model), request, result, latency)
    output = parse_answer(specialist, result)
    return SpecialistAnswer(
        specialist=specialist.name,
        model=specialist.model,
        output=output,
        text=result.text,
        input_tokens=result.input_tokens,
        output_tokens=result.output_tokens,
        finish_reason=result.finish_reason,
        latency_s=latency,
        model_time_s=result.model_time_s,
        queue_time_s=float(result.extra.get("queue_time_s", 0.0)),
        host=str(result.extra.get("host", "")),
        attempts=attempts,
        adapter=model_label(specialist.model, adapter) if adapter else None,
    )


class Asker:
    """What asks specialists: the host pool (engines in Ray actors) or
    :class:`~orchestrator.specialists.local.LocalAsker` (engines in this process). A subclass
    says how to ``generate`` and ``stream`` on a model; asking is :func:`ask_through`'s, the
    same for both. A test's stand-in may override ``ask_spec`` alone."""

    catalog: SpecialistCatalog

    async def generate(
        self, model_name: str, request: GenerationRequest
    ) -> tuple[GenerationResult, int]:
        """One request on the model: its result, and the attempts it took."""
        raise NotImplementedError

    def stream(
        self, model_name: str, request: GenerationRequest
    ) -> AsyncIterator[str | GenerationResult]:
        """One request on the model: its text piece by piece, then its result."""
        raise NotImplementedError

    async def ask(self, specialist_name: str, text: str) -> SpecialistAnswer:
        """Ask a specialist, by name, about ``text``."""
        return await self.ask_spec(self.catalog.specialist(specialist_name), text)

    async def ask_spec(
        self,
        specialist: SpecialistSpec,
        text: str,
        history: Sequence[Message] = (),
        on_text: OnText | None = None,
    ) -> SpecialistAnswer:
        """Ask with a specialist spec in hand (a workflow may narrow its output schema); with
        ``on_text``, the answer's text goes to it piece by piece as the engine generates it."""
        return await ask_through(
            self.generate, self.catalog, specialist, text, history, self.stream, on_text
        )


async def _streamed(
    stream: Stream, model: str, request: GenerationRequest, on_text: OnText
) -> tuple[GenerationResult, int]:
    result: GenerationResult | None = None
    async for item in stream(model, request):
        if isinstance(item, GenerationResult):
            result = item
        elif item:
            on_text(item)
    if result is None:
        raise EngineError(f"model {model!r}: the stream ended without a result")
    return result, 1


_instruments: dict[str, Any] = {}


def _record_metrics(
    model: ModelSpec, request: GenerationRequest, result: GenerationResult, seconds: float
) -> None:
    """The GenAI client metrics: token usage and operation duration, per call."""
    if not _instruments:
        meter = telemetry.meter()
        _instruments["tokens"] = meter.create_histogram(
            gen_ai.CLIENT_TOKEN_USAGE, unit="{token}", description="Tokens used per call."
        )
        _instruments["duration"] = meter.create_histogram(
            gen_ai.CLIENT_OPERATION_DURATION, unit="s", description="Duration of a call."
        )
    attributes = {
        gen_ai.OPERATION_NAME: gen_ai.CHAT,
        gen_ai.PROVIDER_NAME: PROVIDERS[model.engine],
        gen_ai.REQUEST_MODEL: request_model(model, request),
    }
    _instruments["duration"].record(seconds, attributes)
    for kind, count in (("input", result.input_tokens), ("output", result.output_tokens)):
        _instruments["tokens"].record(count, {**attributes, gen_ai.TOKEN_TYPE: kind})
