"""The llama.cpp engine: the embedded default on a machine with no GPU.

It runs a GGUF model in-process through llama-cpp-python, with the model's own chat template and
JSON-Schema-constrained decoding: the schema becomes a grammar, so the answer parses. The grammar
is made once per schema and asked about the chosen token first, as llama.cpp's own sampler does
(see ``llamacpp_grammar``).

llama.cpp is not re-entrant: one loaded model must not decode two prompts at once. This engine
serializes its requests with one lock and runs each in a worker thread, so the host's event loop
stays free to accept and queue calls. Parallelism comes from replicas (one engine per ModelHost),
not from concurrent calls into one engine.

LoRA adapters share the one loaded base: each is loaded once (a PEFT adapter is first converted
to a GGUF LoRA, see ``lora_gguf``), kept in an LRU of ``max_adapters``, and set on the one context
for each request, so specialists with and without adapters answer through one host. The prompt
cache (keys and values of the last prompt, whose common prefix the next request reuses) belongs to
the adapter that computed it: on a switch it is saved with the adapter leaving and the one coming
in gets its own back, so a specialist keeps the prefix of its own instructions across switches.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import re
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

from orchestrator.catalog.engine_options import LlamaCppOptions
from orchestrator.engines.base import FinishReason, GenerationRequest, GenerationResult
from orchestrator.engines.lora_gguf import gguf_adapter
from orchestrator.errors import ContextLengthError, EngineError

GRAMMARS_KEPT = 64
"""Output schemas whose grammars are kept made (one per specialist, and per narrowed schema)."""

_OVERFLOW = re.compile(r"Requested tokens \((\d+)\) exceed context window of (\d+)")


class LlamaCppEngine:
    """A GGUF model served by llama.cpp; see the module docstring."""

    def __init__(
        self, model_path: Path, context_length: int, options: LlamaCppOptions | None = None
    ) -> None:
        self.model_path = Path(model_path)
        self.context_length = context_length
        self.options = options or LlamaCppOptions()
        self._adapters: OrderedDict[str, Any] = OrderedDict()
        """Request adapter path -> llama.cpp adapter handle, least recently used first."""
        self._active: str | None = None
        self._states: dict[str | None, Any] = {}
        """Adapter (None: the base) -> its saved prompt cache, for the adapters not active."""
        self._lock = asyncio.Lock()
        self._grammars: OrderedDict[str, Any] = OrderedDict()
        """Output schema (as sorted JSON) -> its grammar, least recently used first."""
        self._base: Any = self._load_base()

    def _load_base(self) -> Any:
        from orchestrator.engines.llamacpp_grammar import GrammarLastLlama

        kwargs: dict[str, Any] = {
            "model_path": str(self.model_path),
            "n_ctx": self.context_length,
            "n_batch": self.options.n_batch,
            "verbose": False,
        }
        if self.options.n_threads is not None:
            kwargs["n_threads"] = self.options.n_threads
        try:
            return GrammarLastLlama(**kwargs)
        except (ValueError, RuntimeError) as err:
            raise EngineError(f"llama.cpp could not load {self.model_path}: {err}") from err

    def _adapter(self, adapter: str) -> Any:
        """The loaded handle of ``adapter``, loading (and converting) it on first use."""
        import llama_cpp

        if adapter in self._adapters:
            self._adapters.move_to_end(adapter)
            return self._adapters[adapter]
        path = gguf_adapter(adapter, self.model_path)
        handle = llama_cpp.llama_adapter_lora_init(self._base._model.model, str(path).encode())
        if not handle:
            raise EngineError(
                f"llama.cpp could not load the LoRA adapter {path} on {self.model_path.name}"
            )
        self._adapters[adapter] = handle
        while len(self._adapters) > self.options.max_adapters:
            evicted, old = self._adapters.popitem(last=False)
            if evicted == self._active:
                self._use(None)
            self._states.pop(evicted, None)
            llama_cpp.llama_adapter_lora_free(old)
        return handle

    def _use(self, adapter: str | None) -> None:
        """Set ``adapter`` (or none) on the context, at scale 1 as PEFT applies it."""
        import llama_cpp

        if adapter == self._active:
            return
        handle = None if adapter is None else self._adapter(adapter)
        ctx = self._base._ctx.ctx
        if handle is None:
            llama_cpp.llama_set_adapters_lora(ctx, None, 0, None)
        else:
            handles = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(handle)
            scales = (ctypes.c_float * 1)(1.0)
            llama_cpp.llama_set_adapters_lora(ctx, handles, 1, scales)
        if self._base.n_tokens:
            self._states[self._active] = self._save_cache()
        state = self._states.pop(adapter, None)
        if state is None:
            self._base.reset()
        else:
            self._restore_cache(*state)
        self._active = adapter

    def _save_cache(self) -> tuple[Any, Any]:
        """The context's keys and values (its used cells only) and the tokens they hold; not
        llama-cpp-python's save_state, which also copies a row of logits per prompt token."""
        import llama_cpp

        ctx = self._base._ctx.ctx
        size = llama_cpp.llama_state_get_size(ctx)
        data = (ctypes.c_uint8 * size)()
        used = llama_cpp.llama_state_get_data(ctx, data, size)
        return bytes(data)[:used], self._base.input_ids[: self._base.n_tokens].copy()

    def _restore_cache(self, data: bytes, tokens: Any) -> None:
        import llama_cpp

        buffer = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
        if llama_cpp.llama_state_set_data(self._base._ctx.ctx, buffer, len(data)) != len(data):
            self._base.reset()  # a cache that does not load is only a cache: start afresh
            return
        self._base.input_ids[: len(tokens)] = tokens
        self._base.n_tokens = len(tokens)

    async def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        results = []
        for request in requests:
            async with self._lock:
                results.append(await asyncio.to_thread(self._generate_one, request))
        return results

    async def stream(self, request: GenerationRequest) -> AsyncIterator[str | GenerationResult]:
        """The text piece by piece as llama.cpp decodes it (from its thread), then the result."""
        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue[str | GenerationResult | BaseException] = asyncio.Queue()

        def produce() -> None:
            def put(item: str | GenerationResult | BaseException) -> None:
                loop.call_soon_threadsafe(pieces.put_nowait, item)

            try:
                put(self._generate_one(request, on_text=put))
            except BaseException as err:  # handed to the consumer, raised there
                put(err)

        async with self._lock:
            producing = asyncio.ensure_future(asyncio.to_thread(produce))
            try:
                while True:
                    item = await pieces.get()
                    if isinstance(item, BaseException):
                        raise item
                    yield item
                    if isinstance(item, GenerationResult):
                        return
            finally:
                await producing  # the context is not touched again before it is done

    def _grammar(self, request: GenerationRequest) -> Any:
        """The grammar for the request's output schema, made once per schema (an LRU)."""
        from orchestrator.engines.llamacpp_grammar import SchemaGrammarError, schema_grammar

        key = json.dumps(request.json_schema, sort_keys=True)
        grammar = self._grammars.get(key)
        if grammar is None:
            try:
                grammar = schema_grammar(request.json_schema or {}, self._base)
            except SchemaGrammarError as err:
                who = f"specialist {request.tag!r}" if request.tag else "the request"
                raise EngineError(
                    f"{who}: llama.cpp cannot hold answers to its output schema: {err}"
                ) from None
            self._grammars[key] = grammar
            while len(self._grammars) > GRAMMARS_KEPT:
                self._grammars.popitem(last=False)
        self._grammars.move_to_end(key)
        return grammar

    def _generate_one(
        self, request: GenerationRequest, on_text: Callable[[str], None] | None = None
    ) -> GenerationResult:
        self._use(request.adapter)
        model = self._base
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
            kwargs["grammar"] = self._grammar(request)
        started = time.perf_counter()
        try:
            if on_text is not None:
                return self._streamed(model, kwargs, on_text, started)
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

    @staticmethod
    def _streamed(
        model: Any, kwargs: dict[str, Any], on_text: Callable[[str], None], started: float
    ) -> GenerationResult:
        """One completion streamed: each decoded piece to ``on_text``. llama-cpp-python's
        stream has no usage: each piece is one token (a character of several tokens comes as
        one piece), and the context then holds the prompt's tokens and the answer's, all but
        the last one when the answer ran out of tokens (it was never evaluated)."""
        pieces, finish = [], "stop"
        for chunk in model.create_chat_completion(**kwargs, stream=True):
            choice = chunk["choices"][0]
            piece = choice["delta"].get("content")
            if piece:
                pieces.append(piece)
                on_text(piece)
            if choice.get("finish_reason") == "length":
                finish = "length"
        return GenerationResult(
            text="".join(pieces),
            input_tokens=max(0, int(model.n_tokens) - len(pieces) + (finish == "length")),
            output_tokens=len(pieces),
            finish_reason="length" if finish == "length" else "stop",
            model_time_s=time.perf_counter() - started,
        )

    async def close(self) -> None:
        async with self._lock:
            import llama_cpp

            if self._base is None:
                return
            self._use(None)
            for handle in self._adapters.values():
                llama_cpp.llama_adapter_lora_free(handle)
            self._adapters.clear()
            self._base.close()
            self._base = None
