"""Model engines behind one interface (:class:`~orchestrator.engines.base.Engine`).

Engines are created from a :class:`~orchestrator.catalog.specs.ModelSpec` by
:func:`create_engine`. Heavy engines import their libraries lazily, inside their own module, so
importing this package is cheap.
"""

from __future__ import annotations

from pathlib import Path

from orchestrator.catalog.engine_options import options_model
from orchestrator.catalog.specs import ModelSpec
from orchestrator.engines.base import Engine, GenerationRequest, GenerationResult, Message

__all__ = [
    "Engine",
    "GenerationRequest",
    "GenerationResult",
    "Message",
    "create_engine",
    "options_model",
]


def create_engine(model: ModelSpec, weights_path: Path | None) -> Engine:
    """Build the engine a model spec names. ``weights_path`` is the resolved weights location."""
    options = options_model(model.engine).model_validate(model.engine_options)
    if model.engine == "scripted":
        from orchestrator.engines.scripted import ScriptedEngine

        return ScriptedEngine(options, context_length=model.context_length)  # type: ignore[arg-type]
    if model.engine == "llamacpp":
        from orchestrator.engines.llamacpp import LlamaCppEngine

        assert weights_path is not None, "the catalog guarantees llamacpp models have weights"
        return LlamaCppEngine(weights_path, model.context_length, options)  # type: ignore[arg-type]
    from orchestrator.engines.vllm import VllmEngine

    assert weights_path is not None, "the catalog guarantees vllm models have weights"
    return VllmEngine(weights_path, model.context_length, options)  # type: ignore[arg-type]
