"""Benchmark: what hosting on Ray costs over calling an engine directly.

The scripted engine answers instantly, so every microsecond measured on the hosted path is our
own overhead: request pickling, the actor call, the pool's routing and retry bookkeeping.
Prints per-call latency (sequential) and calls per second under 16 concurrent callers, both ways,
and the ratios.  Run: `make bench` (or `python bench/bench_hosting.py --calls 2000`).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import yaml

from orchestrator.catalog import load_catalog
from orchestrator.engines.base import GenerationRequest, Message
from orchestrator.engines.scripted import ScriptedEngine
from orchestrator.hosting.pool import HostPool
from orchestrator.hosting.runtime import ensure_ray, shutdown_ray

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
    args = parser.parse_args()
    ensure_ray()
    try:
        asyncio.run(main(args.calls))
    finally:
        shutdown_ray()
