"""Benchmark: what hosting on Ray costs over calling an engine directly, and what choosing a
LoRA adapter per request costs on one llama.cpp host.

1. The scripted engine answers instantly, so every microsecond measured on the hosted path is our
   own overhead: request pickling, the actor call, the pool's routing and retry bookkeeping.
   Prints per-call latency (sequential) and calls per second under 16 concurrent callers, both
   ways, and the ratios.
2. One llama.cpp host (SmolLM2) serving an adapter specialist and a base specialist at once: two
   callers, one with a LoRA adapter and one without, so the host switches adapters between
   requests. The same calls with no switching (both callers on the base, then both on the
   adapter) are the baseline; the difference per call is the switch's cost (setting the adapter
   on the context, and the prompt cache it drops).

Run: `make bench` (or `python bench/bench_hosting.py --calls 2000 --switch-calls 16`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np
import yaml

from orchestrator.engines.base import GenerationRequest, Message
from orchestrator.engines.scripted import ScriptedEngine
from orchestrator.hosting.pool import HostPool
from orchestrator.hosting.runtime import ensure_ray, shutdown_ray
from orchestrator.workflow.catalog import load_catalog

REQUEST = GenerationRequest(
    messages=(Message("system", "Classify the sentiment."), Message("user", "the parcel was late")),
    max_tokens=16,
    json_schema={"type": "object", "properties": {"sentiment": {"enum": ["pos", "neg"]}}},
)
CONCURRENCY = 16

Call = Callable[[], Awaitable[object]]


async def sequential(call: Call, n: int) -> list[float]:
    latencies = []
    for _ in range(n):
        started = time.perf_counter()
        await call()
        latencies.append(time.perf_counter() - started)
    return latencies


async def concurrent(call: Call, n: int) -> float:
    """Calls per second with CONCURRENCY callers sharing n calls."""
    remaining = n

    async def caller() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await call()

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(CONCURRENCY)))
    return n / (time.perf_counter() - started)


def catalog_dir() -> Path:
    root = Path(tempfile.mkdtemp(prefix="cadre-bench-"))
    (root / "models").mkdir()
    model = {
        "name": "bench-echo",
        "engine": "scripted",
        "weights": {"kind": "none"},
        "context_length": 4096,
    }
    (root / "models" / "bench-echo.yaml").write_text(yaml.safe_dump(model))
    return root


ROOT = Path(__file__).resolve().parents[1]
PEFT_NAMES = {
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}


def random_adapter(base: Path, out: Path, rank: int = 8) -> Path:
    """A PEFT LoRA adapter with small random weights on every projection of ``base`` (a GGUF):
    the shape of what `cadre specialize` trains, which is all a cost measurement needs."""
    from gguf import GGUFReader
    from safetensors.numpy import save_file

    rng = np.random.default_rng(3)
    state = {}
    for tensor in GGUFReader(base, "r").tensors:
        parts = tensor.name.split(".")  # blk.N.attn_q.weight
        if parts[0] != "blk" or parts[2] not in PEFT_NAMES:
            continue
        n_in, n_out = int(tensor.shape[0]), int(tensor.shape[1])
        key = f"base_model.model.model.layers.{parts[1]}.{PEFT_NAMES[parts[2]]}"
        state[f"{key}.lora_A.weight"] = rng.normal(0, 0.02, (rank, n_in)).astype(np.float32)
        state[f"{key}.lora_B.weight"] = rng.normal(0, 0.02, (n_out, rank)).astype(np.float32)
    out.mkdir(parents=True)
    save_file(state, str(out / "adapter_model.safetensors"))
    config = {"peft_type": "LORA", "r": rank, "lora_alpha": 2 * rank, "target_modules": []}
    (out / "adapter_config.json").write_text(json.dumps(config))
    return out


async def switching(calls: int) -> None:
    """Part 2: an adapter caller and a base caller on one llama.cpp host."""
    root = Path(tempfile.mkdtemp(prefix="cadre-bench-"))
    (root / "models").mkdir()
    shutil.copy(ROOT / "agents" / "models" / "smollm2-135m.yaml", root / "models")
    catalog = load_catalog(root)
    model = catalog.model("smollm2-135m")
    weights = catalog.weights_path(model)
    assert weights is not None
    adapter = str(random_adapter(weights, root / "adapter"))
    pool = HostPool(catalog)
    await pool.warm(model.name)
    questions = [
        "the parcel was late",
        "great support, thanks",
        "the invoice is wrong again",
        "I love the new app",
        "nobody answers the phone",
        "the refund arrived quickly",
        "my password reset never came",
    ]

    def request(i: int, lora: str | None) -> GenerationRequest:
        return GenerationRequest(
            messages=(
                Message("system", "Say in a few words what the customer feels."),
                Message("user", questions[i % len(questions)]),
            ),
            max_tokens=12,
            adapter=lora,
        )

    async def caller(lora: str | None, k: int) -> None:
        # Each call asks a different question than the one before it on the host, whichever
        # caller sent that: every condition reuses only the shared instructions' prefix.
        for i in range(calls):
            await pool.generate(model.name, request(2 * i + k, lora))

    async def timed(*callers: str | None) -> float:
        started = time.perf_counter()
        await asyncio.gather(*(caller(lora, k) for k, lora in enumerate(callers)))
        return time.perf_counter() - started

    await timed(adapter, None)  # warm-up: the adapter is converted and loaded once
    rounds: dict[str, list[float]] = {"base only": [], "adapter only": [], "mixed": []}
    for _ in range(3):
        rounds["base only"].append(await timed(None, None))
        rounds["adapter only"].append(await timed(adapter, adapter))
        rounds["mixed"].append(await timed(adapter, None))
    pool.shutdown()
    shutil.rmtree(root)
    per_call = {name: statistics.median(times) / (2 * calls) for name, times in rounds.items()}
    unswitched = (per_call["base only"] + per_call["adapter only"]) / 2
    switch = per_call["mixed"] - unswitched
    print()
    print(
        f"one llama.cpp host (SmolLM2-135M), 2 callers x {calls} calls, 12 tokens max, "
        "median of 3 rounds"
    )
    print(f"{'callers':<34} {'ms/call':>8}")
    labels = {
        "base only": "base + base (no adapter)",
        "adapter only": "adapter + adapter (no switching)",
        "mixed": "adapter + base (switching)",
    }
    for name, label in labels.items():
        print(f"{label:<34} {per_call[name] * 1000:>8.1f}")
    print(
        f"ratio switching cost/call: {switch / unswitched:+.3f} "
        f"({switch * 1000:+.1f} ms per call over the unswitched mean)"
    )


async def main(calls: int) -> None:
    engine = ScriptedEngine()
    pool = HostPool(load_catalog(catalog_dir()))
    await pool.warm("bench-echo")

    async def direct() -> object:
        return await engine.generate([REQUEST])

    async def hosted() -> object:
        return await pool.generate("bench-echo", REQUEST)

    for call in (direct, hosted):  # warm-up
        await sequential(call, 50)
    figures = {}
    for name, call in (("direct engine", direct), ("pool + Ray actor", hosted)):
        latencies = await sequential(call, calls)
        figures[name] = (
            statistics.median(latencies) * 1e6,
            statistics.quantiles(latencies, n=100)[94] * 1e6,
            await concurrent(call, calls),
        )
    pool.shutdown()

    print(f"{calls} calls each, scripted engine, {CONCURRENCY} concurrent callers for throughput")
    print(f"{'path':<18} {'p50 µs/call':>12} {'p95 µs/call':>12} {'calls/s @16':>12}")
    for name, (p50, p95, rate) in figures.items():
        print(f"{name:<18} {p50:>12.1f} {p95:>12.1f} {rate:>12.0f}")
    (d50, _, drate), (h50, _, hrate) = figures.values()
    print(
        f"ratio hosted/direct: latency x{h50 / d50:.0f} (+{h50 - d50:.0f} µs per call), "
        f"throughput x{hrate / drate:.4f}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--switch-calls", type=int, default=8)
    args = parser.parse_args()
    ensure_ray()
    try:
        asyncio.run(main(args.calls))
        asyncio.run(switching(args.switch_calls))
    finally:
        shutdown_ray()
