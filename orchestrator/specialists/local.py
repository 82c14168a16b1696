"""LocalAsker: specialists answered by engines in this process, no Ray.

For the layers above the engine to be tested without actors, and for measuring Cadre's own cost
per step without the Ray hop (``bench/bench_workflow.py``). A user's runs go through the host pool.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from orchestrator.catalog import SpecialistCatalog
from orchestrator.engines import create_engine
from orchestrator.engines.base import GenerationRequest, GenerationResult
from orchestrator.specialists.asking import Asker
from orchestrator.specialists.traced import TracedEngine


class LocalAsker(Asker):
    """Asks specialists through engines it starts in this process, one per model, on first use."""

    def __init__(self, catalog: SpecialistCatalog) -> None:
        self.catalog = catalog
        self.engines: dict[str, TracedEngine] = {}

    def engine(self, model_name: str) -> TracedEngine:
        if model_name not in self.engines:
            model = self.catalog.model(model_name)
            engine = create_engine(model, self.catalog.weights_path(model))
            self.engines[model_name] = TracedEngine(model, engine, f"{model.name}-local")
        return self.engines[model_name]

    async def generate(
        self, model_name: str, request: GenerationRequest
    ) -> tuple[GenerationResult, int]:
        (result,) = await self.engine(model_name).generate([request])
        return result, 1

    async def stream(
        self, model_name: str, request: GenerationRequest
    ) -> AsyncIterator[str | GenerationResult]:
        async for item in self.engine(model_name).stream(request):
            yield item

    async def aclose(self) -> None:
        """Close every engine started."""
        await asyncio.gather(*(e.engine.close() for e in self.engines.values()))
        self.engines.clear()
