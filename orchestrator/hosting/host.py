"""ModelHost: the Ray actor that owns one engine and serves every specialist on its model.

One host loads one base model once; specialists on that model (LoRA adapters included) are just
requests to it. A host is an async actor, so it accepts many calls at once; whether they then run
concurrently is the engine's business (llama.cpp serializes behind a lock, vLLM batches).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import ray

from orchestrator import telemetry
from orchestrator.catalog.specs import ModelSpec
from orchestrator.engines import create_engine
from orchestrator.engines.base import GenerationRequest, GenerationResult
from orchestrator.specialists.traced import TracedEngine


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
        engine = create_engine(model, Path(weights_path) if weights_path else None)
        self.traced = TracedEngine(model, engine, self.name)

    async def generate(
        self, requests: Sequence[GenerationRequest], carrier: dict[str, str] | None = None
    ) -> list[GenerationResult]:
        """Generate with the hosted engine, traced as children of the caller's span
        (``carrier`` holds its W3C traceparent); see :class:`TracedEngine`."""
        return await self.traced.generate(requests, carrier)

    async def generate_stream(
        self, request: GenerationRequest, carrier: dict[str, str] | None = None
    ) -> AsyncIterator[str | GenerationResult]:
        """One request's text as it is generated, then its result (a Ray streaming generator:
        the caller gets each piece as soon as it is yielded)."""
        async for item in self.traced.stream(request, carrier):
            yield item

    async def stats(self) -> dict[str, int | str]:
        """What this host is doing: its process, calls in flight and served, and the engine's
        own figures where it keeps some (vLLM: calls decoding together, adapters loaded)."""
        return {"pid": os.getpid(), **self.traced.stats()}

    async def flush(self) -> None:
        """Export this host's buffered spans now (bounded)."""
        telemetry.flush()

    async def close(self) -> None:
        """Release the engine and flush telemetry (the actor itself is ended by the pool)."""
        await self.traced.engine.close()
        telemetry.flush()


MAX_RESTARTS = 3
"""How many times Ray restarts a host that died (a crash, a killed process) before giving up."""

RemoteModelHost = ray.remote(max_restarts=MAX_RESTARTS, max_task_retries=0)(ModelHost)
"""The actor class. Ray restarts dead hosts; the pool, not Ray, retries the failed call, so a
call that crashes its host is retried a bounded number of times rather than forever."""
