"""Typed engine options (a ModelSpec's ``engine_options``), one model per engine.

They live with the catalog, which checks them when it loads a model, and import no engine: the
engines (``orchestrator/engines/``) take these models, so checking a catalog loads neither
llama.cpp nor vLLM.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from orchestrator.catalog.specs import EngineKind, Spec


class LlamaCppOptions(Spec):
    """Settings for the llama.cpp engine."""

    n_threads: int | None = Field(
        default=None, ge=1, description="CPU threads for decoding; None lets llama.cpp choose."
    )
    n_batch: int = Field(default=512, ge=1, description="Prompt tokens evaluated per batch.")
    max_adapters: int = Field(
        default=4,
        ge=1,
        description="LoRA adapters kept loaded at once beside the one base model (each is a few "
        "MB); the least recently used is unloaded to make room for a new one.",
    )


class VllmOptions(Spec):
    """Settings for the vLLM engine (GPU clusters; vLLM's CPU build runs the same code)."""

    dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        default="auto",
        description="Weight and activation type; auto takes the model's own (float32 for a "
        "prepared GGUF). On a GPU set bfloat16. On a CPU keep float32 unless it has AVX-512 BF16 "
        "or AMX: elsewhere bfloat16 is emulated (4.6x slower measured on a 2-core AVX2 CPU).",
    )
    max_adapters: int = Field(
        default=8,
        ge=1,
        description="LoRA adapters kept loaded at once; the least recently used one that no "
        "call is using is unloaded to make room for a new one.",
    )
    max_loras: int = Field(
        default=4, ge=1, description="Distinct LoRA adapters that can share one batch."
    )
    max_lora_rank: int = Field(
        default=16, ge=1, le=512, description="Largest LoRA rank an adapter may have."
    )
    max_num_seqs: int = Field(
        default=64, ge=1, description="Most calls vLLM decodes together in one batch."
    )
    gpu_memory_utilization: float = Field(
        default=0.9, gt=0, le=1, description="Fraction of GPU memory vLLM may use."
    )
    enforce_eager: bool = Field(
        default=False,
        description="Skip graph capture and compilation: slower decoding, much faster start "
        "(use it on CPU and in tests).",
    )
    cpu_kvcache_gb: int | None = Field(
        default=None,
        ge=1,
        description="On vLLM's CPU build: GiB of memory for the KV cache "
        "(VLLM_CPU_KVCACHE_SPACE); None keeps vLLM's default.",
    )


class ScriptRule(Spec):
    """Reply ``reply`` to requests that match every condition given."""

    tag: str | None = Field(default=None, description="Match only this caller (specialist name).")
    contains: str | None = Field(
        default=None, description="Match only when the last user message contains this text."
    )
    reply: str = Field(description="The text to answer with.")


class ScriptedOptions(Spec):
    """The script and pacing of a scripted engine."""

    rules: tuple[ScriptRule, ...] = Field(default=(), description="Rules tried in order.")
    delay_s: float = Field(
        default=0.0, ge=0.0, description="Seconds each request takes, to stand in for a model."
    )
    call_log: str | None = Field(
        default=None,
        description="Append one line per answered request (its tag) to this file: lets tests "
        "count calls across processes.",
    )
    call_log_format: Literal["tag", "json"] = Field(
        default="tag",
        description="One line per call in ``call_log``: its tag alone, or a JSON object with "
        "the tag and the last user message (lets tests count calls per run).",
    )
    hold_while: str | None = Field(
        default=None,
        description="Hold each request, before its delay, for as long as this file exists "
        "(checked every 50 ms): lets tests keep calls in flight until they have killed "
        "something, however loaded the machine.",
    )
    exit_process_on: str | None = Field(
        default=None,
        description="Kill the whole process (as a segfault would) when a user message "
        "contains this text: lets tests prove that hosts survive a crashing engine.",
    )


def options_model(engine: EngineKind) -> type[BaseModel]:
    """The pydantic model that checks a ModelSpec's ``engine_options`` for this engine."""
    models: dict[str, type[BaseModel]] = {
        "scripted": ScriptedOptions,
        "llamacpp": LlamaCppOptions,
        "vllm": VllmOptions,
    }
    return models[engine]
