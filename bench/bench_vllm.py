"""The vLLM engine on SmolLM2: what batching and multi-LoRA buy.

Aggregate output tokens per second for
  1. 8 calls one after another, then the same 8 calls at once (continuous batching);
  2. 8 calls at once on the bare base, on one LoRA adapter, and spread over 3 LoRA adapters.
Each figure is the median of 3 rounds after a warm-up; the ratios are against the baseline
measured in the same run. Run it in .venv-vllm (`make bench-vllm`); it prepares SmolLM2 and trains
three tiny adapters (a few PEFT steps, cached under .cadre/bench/) the first time.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from orchestrator.catalog import load_catalog  # noqa: E402
from orchestrator.engines.base import GenerationRequest, Message  # noqa: E402
from orchestrator.models import prepare_hf  # noqa: E402
from orchestrator.training import Example, LoraSettings, train_lora  # noqa: E402

ROUNDS = 3
TICKETS = [
    "I was charged twice for my subscription this month.",
    "The app crashes every time I open the settings page.",
    "My parcel has not arrived after two weeks.",
    "Please refund the order I cancelled last week.",
    "I cannot log in, it says my password is invalid.",
    "The delivery went to my old address.",
    "My invoice shows the wrong amount.",
    "Sync stopped working after the latest update.",
]


def request(text: str, adapter: str | None = None) -> GenerationRequest:
    return GenerationRequest(
        messages=(
            Message("system", "Explain to the customer what will happen next."),
            Message("user", text),
        ),
        max_tokens=64,
        adapter=adapter,
    )


def adapters(base: Path) -> list[str]:
    """Three small real adapters, each nudged towards a different sign-off."""
    made = []
    for i, closing in enumerate(("Kind regards.", "Best wishes.", "Thank you!"), start=1):
        out = ROOT / ".cadre" / "bench" / "adapters" / f"a{i}"
        if not (out / "adapter_config.json").is_file():
            examples = [
                Example(request(t).messages, f"We will look into it. {closing}") for t in TICKETS
            ]
            train_lora(base, examples, out, LoraSettings(steps=5, seed=i))
        made.append(str(out))
    return made


async def tokens_per_s(
    engine: object, requests: Sequence[GenerationRequest], together: bool
) -> float:
    started = time.perf_counter()
    if together:
        results = await engine.generate(list(requests))  # type: ignore[attr-defined]
    else:
        results = [(await engine.generate([r]))[0] for r in requests]  # type: ignore[attr-defined]
    elapsed = time.perf_counter() - started
    return sum(r.output_tokens for r in results) / elapsed


async def median(engine: object, requests: Sequence[GenerationRequest], together: bool) -> float:
    return statistics.median(
        [await tokens_per_s(engine, requests, together) for _ in range(ROUNDS)]
    )


async def main() -> None:
    from orchestrator.engines.options import VllmOptions
    from orchestrator.engines.vllm import VllmEngine

    catalog = load_catalog(ROOT / "agents")
    model = catalog.model("smollm2-135m")
    base = prepare_hf(
        model, catalog.weights_path(model), ROOT / ".cadre" / "models" / model.name
    ).path
    loras = adapters(base)
    options = VllmOptions(dtype="bfloat16", enforce_eager=True, cpu_kvcache_gb=1, max_adapters=4)
    started = time.perf_counter()
    engine = VllmEngine(base, 2048, options)
    load_s = time.perf_counter() - started
    plain = [request(t) for t in TICKETS]
    mixed = [request(t, loras[i % 3]) for i, t in enumerate(TICKETS)]
    await engine.generate(plain + mixed)  # warm-up: first decode, adapters loaded

    sequential = await median(engine, plain, together=False)
    concurrent = await median(engine, plain, together=True)
    one_adapter = await median(engine, [request(t, loras[0]) for t in TICKETS], together=True)
    mixed_rate = await median(engine, mixed, together=True)
    await engine.close()

    cpus = os.cpu_count()
    print(f"vLLM {_version()} on CPU ({cpus} cores), SmolLM2-135M bf16, 64 tokens max per call")
    print(f"engine start-up: {load_s:.1f} s; median of {ROUNDS} rounds after a warm-up")
    print(f"{'calls':<42}{'tokens/s':>10}")
    print(f"{'8 calls one after another (base)':<42}{sequential:>10.1f}")
    print(f"{'8 calls at once (base)':<42}{concurrent:>10.1f}")
    print(f"{'8 calls at once on 1 LoRA adapter':<42}{one_adapter:>10.1f}")
    print(f"{'8 calls at once over 3 LoRA adapters':<42}{mixed_rate:>10.1f}")
    print(f"ratio concurrent/sequential: x{concurrent / sequential:.2f}")
    print(f"ratio 3 adapters mixed/base only: x{mixed_rate / concurrent:.2f}")
    print(f"ratio 3 adapters mixed/1 adapter: x{mixed_rate / one_adapter:.2f}")


def _version() -> str:
    import vllm

    return str(vllm.__version__)


if __name__ == "__main__":
    asyncio.run(main())
