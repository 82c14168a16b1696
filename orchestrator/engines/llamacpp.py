"""The llama.cpp engine: the embedded default on a machine with no GPU.

It runs a GGUF model in-process through llama-cpp-python, with the model's own chat template and
JSON-Schema-constrained decoding (llama.cpp turns the schema into a grammar, so the answer parses).

llama.cpp is not re-entrant: one loaded model must not decode two prompts at once. This engine
serializes its requests with one lock and runs each in a worker thread, so the host's event loop
stays free to accept and queue calls. Parallelism comes from replicas (one engine per ModelHost),
not from concurrent calls into one engine.

A LoRA adapter (GGUF) is bound to a loaded model in llama.cpp, so each adapter gets its own loaded
copy of the (small) base, kept in an LRU of ``max_adapters``.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from orchestrator.engines.base import FinishReason, GenerationRequest, GenerationResult
from orchestrator.engines.options import LlamaCppOptions
from orchestrator.errors import ContextLengthError, EngineError

_OVERFLOW = re.compile(r"Requested tokens \((\d+)\) exceed context window of (\d+)")


class LlamaCppEngine:
    """A GGUF model served by llama.cpp; see the module docstring."""

    def __init__(
        self, model_path: Path, context_length: int, options: LlamaCppOptions | None = None
    ) -> None:
        self.model_path = Path(model_path)
        self.context_length = context_length
        self.options = options or LlamaCppOptions()
        self._models: OrderedDict[str | None, Any] = OrderedDict()
        self._lock = asyncio.Lock()
        self._base = self._load(None)

    def _load(self, adapter: str | None) -> Any:
        from llama_cpp import Llama

        if adapter in self._models:
            self._models.move_to_end(adapter)
            return self._models[adapter]
        kwargs: dict[str, Any] = {
            "model_path": str(self.model_path),
            "n_ctx": self.context_length,
            "n_batch": self.options.n_batch,
            "verbose": False,
        }
        if self.options.n_threads is not None:
            kwargs["n_threads"] = self.options.n_threads
        if adapter is not None:
            if (Path(adapter) / "adapter_config.json").is_file():
                raise EngineError(
                    f"{adapter} is a PEFT LoRA adapter (what `cadre specialize` trains and vLLM "
                    "serves); llama.cpp needs a GGUF LoRA file. Serve this specialist on a model "
                    "with engine: vllm"
                )
            if not Path(adapter).is_file():
                raise EngineError(f"LoRA adapter file not found: {adapter}")
            kwargs["lora_path"] = adapter
        try:
            model = Llama(**kwargs)
        except (ValueError, RuntimeError) as err:
            raise EngineError(f"llama.cpp could not load {self.model_path}: {err}") from err
        self._models[adapter] = model
        # The bare base (key None) is never evicted; adapters beyond the limit are.
        adapters = [k for k in self._models if k is not None]
        while len(adapters) > self.options.max_adapters:
            evicted = adapters.pop(0)
            self._models.pop(evicted).close()
        return model

    async def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        results = []
        for request in requests:
            async with self._lock:
                results.append(await asyncio.to_thread(self._generate_one, request))
        return results

    def _generate_one(self, request: GenerationRequest) -> GenerationResult:
        model = self._base if request.adapter is None else self._load(request.adapter)
        kwargs: dict[str, Any] = {
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "repeat_penalty": request.repetition_penalty,
            "stop": list(request.stop) or None,
        }
        if request.seed is not None:
            kwargs["seed"] = request.seed
        if request.json_schema is not None:
            kwargs["response_format"] = {"type": "json_object", "schema": request.json_schema}
        started = time.perf_counter()
        try:
            out = model.create_chat_completion(**kwargs)
        except ValueError as err:
            match = _OVERFLOW.search(str(err))
            if match:
                prompt, window = int(match.group(1)), int(match.group(2))
                raise ContextLengthError(
                    f"the prompt is {prompt} tokens; the model's context holds {window}. "
                    "Shorten the input.",
                    prompt,
                    window,
                ) from None
            raise EngineError(f"llama.cpp failed: {err}") from err
        elapsed = time.perf_counter() - started
        choice = out["choices"][0]
        usage = out["usage"]
        finish: FinishReason = "length" if choice.get("finish_reason") == "length" else "stop"
        return GenerationResult(
            text=choice["message"]["content"] or "",
            input_tokens=int(usage["prompt_tokens"]),
            output_tokens=int(usage["completion_tokens"]),
            finish_reason=finish,
            model_time_s=elapsed,
        )

    async def close(self) -> None:
        async with self._lock:
            for model in self._models.values():
                model.close()
            self._models.clear()
