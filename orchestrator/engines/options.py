"""Typed engine options (a ModelSpec's ``engine_options``), kept free of engine imports so the
catalog can check them without loading llama.cpp or vLLM."""

from __future__ import annotations

from pydantic import Field

from orchestrator.specs import Spec


class LlamaCppOptions(Spec):
    """Settings for the llama.cpp engine."""

    n_threads: int | None = Field(
        default=None, ge=1, description="CPU threads for decoding; None lets llama.cpp choose."
    )
    n_batch: int = Field(default=512, ge=1, description="Prompt tokens evaluated per batch.")
    max_adapters: int = Field(
        default=4,
        ge=1,
        description="LoRA adapters kept loaded at once (llama.cpp binds an adapter to a loaded "
        "model, so each costs one more copy of the small base); least recently used is evicted.",
    )


class VllmOptions(Spec):
    """Settings for the vLLM engine (arrives in a later release)."""

    max_loras: int = Field(default=4, ge=1, description="LoRA adapters resident at once.")
    gpu_memory_utilization: float = Field(
        default=0.9, gt=0, le=1, description="Fraction of GPU memory vLLM may use."
    )
