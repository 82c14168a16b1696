"""ModelHost: the Ray actor that owns one engine and serves every specialist on its model.

One host loads one base model once; specialists on that model (LoRA adapters included) are just
requests to it. A host is an async actor, so it accepts many calls at once; whether they then run
concurrently is the engine's business (llama.cpp serializes behind a lock, vLLM batches).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ray
from opentelemetry.trace import SpanKind, Status, StatusCode

from orchestrator import telemetry
from orchestrator.calls import model_label
from orchestrator.engines import create_engine
from orchestrator.engines.base import GenerationRequest, GenerationResult
from orchestrator.specs import ModelSpec

PROVIDERS = {"llamacpp": "llama.cpp", "vllm": "vllm", "scripted": "cadre.scripted"}
"""``gen_ai.provider.name`` per engine (none of them has a registered well-known value)."""


def request_model(model: ModelSpec, request: GenerationRequest) -> str:
    """``gen_ai.request.model`` of a request on this host's model."""
    return model_label(model.name, request.adapter)


class ModelHost:
    """Hosts one engine for one model. Created through :data:`RemoteModelHost`."""

    def __init__(
        self,
        model: ModelSpec,
        weights_path: str | None,
        replica: int,
        telemetry_config: telemetry.TelemetryConfig | None = None,
    ) -> None:
        telemetry.setup(telemetry_config, schedule_delay_ms=500)
        self.model = model
        self.replica = replica
        self.name = f"{model.name}-{replica}"
        self.engine = create_engine(model, Path(weights_path) if weights_path else None)
        self.inflight = 0
        self.served = 0

    async def generate(
        self, requests: Sequence[GenerationRequest], carrier: dict[str, str] | None = None
    ) -> list[GenerationResult]:
        """Generate with the hosted engine, one ``chat {model}`` span per request, children of
        the caller's span (``carrier`` holds its W3C traceparent). Each result's ``extra``
        carries ``queue_time_s`` (time in the host not spent generating) and ``host``."""
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
                span.set_attribute("error.type", type(err).__name__)
                span.set_status(Status(StatusCode.ERROR, str(err)[:500]))
                span.end()
            raise
        finally:
            self.inflight -= 1
        self.served += len(requests)
        in_host = time.perf_counter() - arrived
        model_total = sum(r.model_time_s for r in results)
        queue = max(0.0, in_host - model_total) / max(1, len(results))
        for span, result in zip(spans, results, strict=True):
            span.set_attributes(
                {
                    "gen_ai.usage.input_tokens": result.input_tokens,
                    "gen_ai.usage.output_tokens": result.output_tokens,
                    "gen_ai.response.finish_reasons": [result.finish_reason],
                    "cadre.host.queue_time_s": queue,
                    "cadre.engine.model_time_s": result.model_time_s,
                }
            )
            if telemetry.capture_content():
                span.set_attribute(
                    "gen_ai.output.messages",
                    json.dumps([{"role": "assistant", "content": result.text}]),
                )
            span.end()
        return [
            dataclasses.replace(r, extra={**r.extra, "queue_time_s": queue, "host": self.name})
            for r in results
        ]

    def _request_attributes(self, request: GenerationRequest) -> dict[str, Any]:
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": PROVIDERS[self.model.engine],
            "gen_ai.request.model": request_model(self.model, request),
            "gen_ai.request.max_tokens": request.max_tokens,
            "gen_ai.request.temperature": request.temperature,
            "gen_ai.request.top_p": request.top_p,
            "gen_ai.agent.name": request.tag,
            "cadre.model": self.model.name,
            "cadre.host": self.name,
        }
        if request.seed is not None:
            attributes["gen_ai.request.seed"] = request.seed
        if telemetry.capture_content():
            messages = [{"role": m.role, "content": m.content} for m in request.messages]
            attributes["gen_ai.input.messages"] = json.dumps(messages)
        return attributes

    async def stats(self) -> dict[str, int | str]:
        """What this host is doing: its process, calls in flight and served, and the engine's
        own figures where it keeps some (vLLM: calls decoding together, adapters loaded)."""
        engine_stats = getattr(self.engine, "stats", None)
        return {
            "pid": os.getpid(),
            "inflight": self.inflight,
            "served": self.served,
            **(engine_stats() if engine_stats else {}),
        }

    async def flush(self) -> None:
        """Export this host's buffered spans now (bounded)."""
        telemetry.flush()

    async def close(self) -> None:
        """Release the engine and flush telemetry (the actor itself is ended by the pool)."""
        await self.engine.close()
        telemetry.flush()


MAX_RESTARTS = 3
"""How many times Ray restarts a host that died (a crash, a killed process) before giving up."""

RemoteModelHost = ray.remote(max_restarts=MAX_RESTARTS, max_task_retries=0)(ModelHost)
"""The actor class. Ray restarts dead hosts; the pool, not Ray, retries the failed call, so a
call that crashes its host is retried a bounded number of times rather than forever."""
