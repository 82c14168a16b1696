"""One vLLM host on a real local Ray instance serving three specialists at once: two on their own
LoRA adapters and one on the bare base, all on the one shared SmolLM2 engine."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from orchestrator.hosting.pool import HostPool
from orchestrator.specialists.calls import SpecialistAnswer
from orchestrator.workflow.catalog import load_catalog
from tests.adapters import PROBE, fruit_specialist
from tests.catalogs import unique, write_catalog

pytestmark = [pytest.mark.ray, pytest.mark.vllm, pytest.mark.usefixtures("ray_session")]


def vllm_model(name: str, weights: Path) -> dict[str, object]:
    return {
        "name": name,
        "engine": "vllm",
        "weights": {"kind": "path", "path": str(weights)},
        "context_length": 1024,
        "engine_options": {"dtype": "float32", "enforce_eager": True, "cpu_kvcache_gb": 1},
        "hosting": {"replicas": 1, "num_cpus": 0},
    }


def test_three_specialists_answer_concurrently_from_one_host(
    tmp_path: Path, smollm2_hf: Path, fruit_adapters: dict[str, Path]
) -> None:
    model = unique("smollm2-vllm")
    specialists = [
        fruit_specialist("banana", model, str(fruit_adapters["banana"])),
        fruit_specialist("cherry", model, str(fruit_adapters["cherry"])),
        fruit_specialist("plain", model),
    ]
    catalog = load_catalog(write_catalog(tmp_path, [vllm_model(model, smollm2_hf)], specialists))
    pool = HostPool(catalog)

    async def scenario() -> tuple[list[SpecialistAnswer], dict[str, int | str]]:
        await pool.warm(model)
        (replica,) = pool.replicas(model)
        answers = await asyncio.gather(
            *(pool.ask(name, PROBE) for name in ("banana", "cherry", "plain"))
        )
        return list(answers), await replica.handle.stats.remote()

    try:
        (banana, cherry, plain), stats = asyncio.run(scenario())
    finally:
        pool.shutdown()
    replies = [str(a.output["reply"]).lower() for a in (banana, cherry, plain)]
    assert "banana" in replies[0] and "cherry" not in replies[0], replies
    assert "cherry" in replies[1] and "banana" not in replies[1], replies
    assert "banana" not in replies[2] and "cherry" not in replies[2], replies
    assert {a.host for a in (banana, cherry, plain)} == {f"{model}-0"}
    # One engine took all three at once: vLLM batched them, no lock serialized them.
    assert stats["served"] == 3
    assert int(stats["peak_running"]) >= 2
    assert stats["adapters_loaded"] == 2
