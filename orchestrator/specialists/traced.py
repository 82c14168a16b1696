"""An engine wrapped with tracing: one ``chat {model}`` span per request (GenAI conventions).

Used by Ray model hosts and by the in-process asker alike, so a call is traced the same wherever
its engine runs.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from opentelemetry.trace import SpanKind, Status, StatusCode

from orchestrator import telemetry
from orchestrator.catalog.specs import ModelSpec
from orchestrator.engines.base import Engine, GenerationRequest, GenerationResult, stream_of
from orchestrator.specialists.calls import model_label
from orchestrator.telemetry import gen_ai

PROVIDERS = {"llamacpp": "llama.cpp", "vllm": "vllm", "scripted": "cadre.scripted"}
"""``gen_ai.provider.name`` per engine (none of them has a registered well-known value)."""


def request_model(model: ModelSpec, request: GenerationRequest) -> str:
    """``gen_ai.request.model`` of a request on this model."""
    return model_label(model.name, request.adapter)


class TracedEngine:
    """One engine of one model, named (``MODEL-N``), with a span per request."""

    def __init__(self, model: ModelSpec, engine: Engine, name: str) -> None:
        self.model = model
        self.engine = engine
        self.name = name
        self.inflight = 0
        self.served = 0

    async def generate(
        self, requests: Sequence[GenerationRequest], carrier: dict[str, str] | None = None
    ) -> list[GenerationResult]:
        """Generate, one ``chat {model}`` span per request, children of the caller's span
        (``carrier`` holds its W3C traceparent; None: the current span). Each result's ``extra``
        carries ``queue_time_s`` (time here not spent generating) and ``host`` (this name)."""
        arrived = time.perf_counter()
        parent = telemetry.extract(carrier)
        spans = [
            telemetry.tracer().start_span(
                f"chat {request_model(self.model, r)}",
                context=parent,
                kind=SpanKind.CLIENT,
                attributes=self._request_attributes(r),
            )
            for r in requests
        ]
        self.inflight += 1
        try:
            results = await self.engine.generate(requests)
        except Exception as err:
            for span in spans:
                _end_failed(span, err)
            raise
        finally:
            self.inflight -= 1
        self.served += len(requests)
        in_host = time.perf_counter() - arrived
        model_total = sum(r.model_time_s for r in results)
        queue = max(0.0, in_host - model_total) / max(1, len(results))
        return [self._finish(span, r, queue) for span, r in zip(spans, results, strict=True)]

    async def stream(
        self, request: GenerationRequest, carrier: dict[str, str] | None = None
    ) -> AsyncIterator[str | GenerationResult]:
        """The request's text as the engine produces it, then its result (as :meth:`generate`
        gives it), in one ``chat {model}`` span; see :func:`stream_of`."""
        arrived = time.perf_counter()
        span = telemetry.tracer().start_span(
            f"chat {request_model(self.model, request)}",
            context=telemetry.extract(carrier),
            kind=SpanKind.CLIENT,
            attributes={**self._request_attributes(request), gen_ai.REQUEST_STREAM: True},
        )
        self.inflight += 1
        try:
            async for item in stream_of(self.engine, request):
                if isinstance(item, GenerationResult):
                    self.served += 1
                    queue = max(0.0, time.perf_counter() - arrived - item.model_time_s)
                    yield self._finish(span, item, queue)
                    return
                yield item
        except BaseException as err:
            _end_failed(span, err)
            raise
        finally:
            self.inflight -= 1

    def _finish(self, span: Any, result: GenerationResult, queue: float) -> GenerationResult:
        """End a request's span with what it cost; the result, with where and how long it
        waited in ``extra``."""
        span.set_attributes(
            {
                gen_ai.USAGE_INPUT_TOKENS: result.input_tokens,
                gen_ai.USAGE_OUTPUT_TOKENS: result.output_tokens,
                gen_ai.RESPONSE_FINISH_REASONS: [result.finish_reason],
                "cadre.host.queue_time_s": queue,
                "cadre.engine.model_time_s": result.model_time_s,
            }
        )
        if telemetry.capture_content():
            span.set_attribute(
                gen_ai.OUTPUT_MESSAGES,
                json.dumps([{"role": "assistant", "content": result.text}]),
            )
        span.end()
        extra = {**result.extra, "queue_time_s": queue, "host": self.name}
        return dataclasses.replace(result, extra=extra)

    def stats(self) -> dict[str, Any]:
        """Calls in flight and served, and the engine's own figures where it keeps some."""
        engine_stats = getattr(self.engine, "stats", None)
        return {
            "inflight": self.inflight,
            "served": self.served,
            **(engine_stats() if engine_stats else {}),
        }

    def _request_attributes(self, request: GenerationRequest) -> dict[str, Any]:
        attributes: dict[str, Any] = {
            gen_ai.OPERATION_NAME: gen_ai.CHAT,
            gen_ai.PROVIDER_NAME: PROVIDERS[self.model.engine],
            gen_ai.REQUEST_MODEL: request_model(self.model, request),
            gen_ai.REQUEST_MAX_TOKENS: request.max_tokens,
            gen_ai.REQUEST_TEMPERATURE: request.temperature,
            gen_ai.REQUEST_TOP_P: request.top_p,
            gen_ai.AGENT_NAME: request.tag,
            "cadre.model": self.model.name,
            "cadre.host": self.name,
        }
        if request.seed is not None:
            attributes[gen_ai.REQUEST_SEED] = request.seed
        if telemetry.capture_content():
            messages = [{"role": m.role, "content": m.content} for m in request.messages]
            attributes[gen_ai.INPUT_MESSAGES] = json.dumps(messages)
        return attributes


def _end_failed(span: Any, err: BaseException) -> None:
    """End a request's span as failed, with the error's type and (bounded) message."""
    span.set_attribute("error.type", type(err).__name__)
    span.set_status(Status(StatusCode.ERROR, str(err)[:500]))
    span.end()
