"""The engine interface: one narrow async protocol that every model engine implements.

An engine turns a batch of :class:`GenerationRequest` into the same number of
:class:`GenerationResult`, in order. Engines that batch internally (vLLM) see the whole batch;
engines that cannot (llama.cpp) work through it one by one. Requests and results are plain frozen
dataclasses so they cross Ray actor boundaries cheaply.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

Role = Literal["system", "user", "assistant"]
FinishReason = Literal["stop", "length"]


@dataclass(frozen=True)
class Message:
    """One chat turn."""

    role: Role
    content: str


@dataclass(frozen=True)
class GenerationRequest:
    """What to generate: a chat, sampling settings and, optionally, a JSON Schema to fit."""

    messages: tuple[Message, ...]
    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    repetition_penalty: float = 1.0
    json_schema: dict[str, Any] | None = None
    adapter: str | None = None
    """Path of a LoRA adapter to apply on the base model, or None for the bare base."""
    tag: str = ""
    """Who is asking (the specialist's name); the scripted engine matches rules on it."""


@dataclass(frozen=True)
class GenerationResult:
    """What came back: the text, why it stopped, and what it cost."""

    text: str
    input_tokens: int
    output_tokens: int
    finish_reason: FinishReason
    model_time_s: float = 0.0
    """Seconds the engine spent on this request (excluding time queued in the host)."""
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Engine(Protocol):
    """A model engine. Implementations: llamacpp, vllm, scripted."""

    async def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """Generate one result per request, in order. Raises ContextLengthError for a prompt
        that does not fit, EngineError for anything else the engine cannot do."""
        ...

    async def close(self) -> None:
        """Release the model. The engine is unusable afterwards."""
        ...


async def stream_of(
    engine: Engine, request: GenerationRequest
) -> AsyncIterator[str | GenerationResult]:
    """The request's text as the engine produces it, piece by piece, then its whole result. An
    engine with a ``stream`` method of that shape streams (llama.cpp, scripted); any other gives
    its text in one piece once it is done."""
    streaming = getattr(engine, "stream", None)
    if streaming is None:
        (result,) = await engine.generate([request])
        if result.text:
            yield result.text
        yield result
        return
    async for item in streaming(request):
        yield item
