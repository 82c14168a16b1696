"""ModelHost: the Ray actor that owns one engine and serves every specialist on its model.

One host loads one base model once; specialists on that model (LoRA adapters included) are just
requests to it. A host is an async actor, so it accepts many calls at once; whether they then run
concurrently is the engine's business (llama.cpp serializes behind a lock, vLLM batches).
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Sequence
from pathlib import Path

import ray

from orchestrator.engines import create_engine
from orchestrator.engines.base import GenerationRequest, GenerationResult
from orchestrator.specs import ModelSpec


class ModelHost:
    """Hosts one engine for one model. Created through :func:`host_actor_class`."""

    def __init__(self, model: ModelSpec, weights_path: str | None, replica: int) -> None:
        self.model = model
        self.replica = replica
        self.engine = create_engine(model, Path(weights_path) if weights_path else None)
        self.inflight = 0
        self.served = 0

    async def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """Generate with the hosted engine. Each result's ``extra`` carries ``queue_time_s``
        (time in the host not spent generating) and ``host`` (this replica's name)."""
        arrived = time.perf_counter()
        self.inflight += 1
        try:
            results = await self.engine.generate(requests)
        finally:
            self.inflight -= 1
        self.served += len(requests)
        in_host = time.perf_counter() - arrived
        model_total = sum(r.model_time_s for r in results)
        queue = max(0.0, in_host - model_total) / max(1, len(results))
        name = f"{self.model.name}-{self.replica}"
        return [
            dataclasses.replace(r, extra={**r.extra, "queue_time_s": queue, "host": name})
            for r in results
        ]

    async def stats(self) -> dict[str, int | str]:
        """What this host is doing: its process, calls in flight and served."""
        return {"pid": os.getpid(), "inflight": self.inflight, "served": self.served}

    async def close(self) -> None:
        """Release the engine (the actor itself is ended by the pool)."""
        await self.engine.close()


MAX_RESTARTS = 3
"""How many times Ray restarts a host that died (a crash, a killed process) before giving up."""

RemoteModelHost = ray.remote(max_restarts=MAX_RESTARTS, max_task_retries=0)(ModelHost)
"""The actor class. Ray restarts dead hosts; the pool, not Ray, retries the failed call, so a
call that crashes its host is retried a bounded number of times rather than forever."""
