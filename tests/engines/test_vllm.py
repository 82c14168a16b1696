"""The vLLM engine beyond the shared contract: LoRA adapters on one base, their LRU, cancellation
and batching. Real vLLM (CPU build), real SmolLM2, real PEFT adapters (tests/adapters.py)."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from orchestrator.catalog.specs import SpecialistSpec
from orchestrator.engines.base import GenerationRequest, Message
from orchestrator.errors import EngineError
from orchestrator.specialists.calls import build_request
from tests.adapters import PROBE, fruit_specialist

pytestmark = pytest.mark.vllm
T = TypeVar("T")


class Driver:
    """One vLLM engine on its own event loop, with two adapters allowed loaded at once."""

    def __init__(self, model_dir: Path) -> None:
        from orchestrator.catalog.engine_options import VllmOptions
        from orchestrator.engines.vllm import VllmEngine

        self.runner = asyncio.Runner()
        options = VllmOptions(
            dtype="float32", enforce_eager=True, cpu_kvcache_gb=1, max_adapters=2, max_loras=2
        )

        async def build() -> VllmEngine:
            return VllmEngine(model_dir, 1024, options)

        self.engine = self.runner.run(build())

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        return self.runner.run(work)

    def close(self) -> None:
        self.runner.run(self.engine.close())
        self.runner.close()


@pytest.fixture(scope="module")
def driver(smollm2_hf: Path) -> Iterator[Driver]:
    built = Driver(smollm2_hf)
    yield built
    built.close()


def probe(adapter: Path | None) -> GenerationRequest:
    spec = SpecialistSpec.model_validate(fruit_specialist("fruit", "smollm2"))
    return build_request(spec, PROBE, str(adapter) if adapter else None)


def reply(text: str) -> str:
    return str(json.loads(text)["reply"])


def test_each_adapter_answers_from_its_own_weights_in_one_batch(
    driver: Driver, fruit_adapters: dict[str, Path]
) -> None:
    requests = [probe(None), probe(fruit_adapters["banana"]), probe(fruit_adapters["cherry"])]
    base, banana, cherry = (reply(r.text) for r in driver.run(driver.engine.generate(requests)))
    assert "banana" in banana.lower() and "cherry" not in banana.lower(), banana
    assert "cherry" in cherry.lower() and "banana" not in cherry.lower(), cherry
    assert "banana" not in base.lower() and "cherry" not in base.lower(), base
    assert len({base, banana, cherry}) == 3
    # The three were decoded together, not one after another.
    assert driver.engine.stats()["peak_running"] >= 2


def test_least_recently_used_adapter_is_unloaded(
    driver: Driver, fruit_adapters: dict[str, Path], tmp_path: Path
) -> None:
    engine = driver.engine
    banana, cherry = str(fruit_adapters["banana"]), str(fruit_adapters["cherry"])
    third = tmp_path / "banana-copy"
    shutil.copytree(banana, third)
    driver.run(engine.generate([probe(Path(banana))]))
    driver.run(engine.generate([probe(Path(cherry))]))  # banana is now the least recent
    evictions = engine.stats()["adapter_evictions"]
    (answer,) = driver.run(engine.generate([probe(third)]))
    assert "banana" in reply(answer.text).lower()  # the copy carries the same weights
    assert engine.loaded_adapters() == [cherry, str(third)]
    assert engine.stats()["adapter_evictions"] == evictions + 1
    loads = engine.stats()["adapter_loads"]
    (again,) = driver.run(engine.generate([probe(Path(banana))]))  # loaded again on demand
    assert "banana" in reply(again.text).lower()
    assert engine.stats()["adapter_loads"] == loads + 1
    assert engine.loaded_adapters() == [str(third), banana]


def test_a_missing_adapter_is_a_clear_error_and_the_engine_goes_on(
    driver: Driver, tmp_path: Path
) -> None:
    with pytest.raises(EngineError, match=r"LoRA adapter not found: .*nowhere.*adapter_config"):
        driver.run(driver.engine.generate([probe(tmp_path / "nowhere")]))
    (answer,) = driver.run(driver.engine.generate([probe(None)]))
    assert reply(answer.text)


def test_cancelling_a_call_aborts_it_in_vllm(driver: Driver) -> None:
    engine = driver.engine
    story = GenerationRequest(
        messages=(Message("user", "Write a very long story about the sea."),), max_tokens=900
    )

    async def cancel_midway() -> None:
        task = asyncio.create_task(engine.generate([story]))
        while engine.stats()["running"] == 0:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(100):  # the abort reaches the engine core process asynchronously
            if engine._engine.get_num_unfinished_requests() == 0:
                break
            await asyncio.sleep(0.02)

    driver.run(cancel_midway())
    assert engine.stats()["running"] == 0
    assert engine._engine.get_num_unfinished_requests() == 0
    (answer,) = driver.run(engine.generate([probe(None)]))
    assert answer.finish_reason == "stop"
