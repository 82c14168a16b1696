"""What only the llama.cpp engine does: sampling with temperature, loading failures."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from orchestrator.engines.base import GenerationRequest, Message
from orchestrator.engines.llamacpp import LlamaCppEngine
from orchestrator.errors import EngineError

pytestmark = pytest.mark.model


def test_temperature_and_seed_are_honoured(smollm2_path: Path) -> None:
    engine = LlamaCppEngine(smollm2_path, 512)

    def sample(seed: int) -> str:
        request = GenerationRequest(
            messages=(Message("user", "Invent a name for a new bakery."),),
            max_tokens=12,
            temperature=1.5,
            seed=seed,
        )
        return asyncio.run(engine.generate([request]))[0].text

    texts = {sample(seed) for seed in range(4)}
    assert len(texts) > 1, "high temperature with different seeds should vary"
    assert sample(7) == sample(7), "the same seed should repeat"
    asyncio.run(engine.close())


def test_missing_adapter_file_is_an_engine_error(smollm2_path: Path, tmp_path: Path) -> None:
    engine = LlamaCppEngine(smollm2_path, 512)
    request = GenerationRequest(
        messages=(Message("user", "Hi"),), max_tokens=4, adapter=str(tmp_path / "nope.gguf")
    )
    with pytest.raises(EngineError, match="LoRA adapter not found"):
        asyncio.run(engine.generate([request]))
    asyncio.run(engine.close())


def test_not_a_model_file_is_an_engine_error(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"not a gguf file")
    with pytest.raises(EngineError, match="could not load"):
        LlamaCppEngine(bogus, 512)


def test_repetition_penalty_reaches_the_sampler(smollm2_path: Path) -> None:
    engine = LlamaCppEngine(smollm2_path, 512)

    def answer(penalty: float) -> str:
        request = GenerationRequest(
            messages=(Message("user", "Write the word apple twenty times."),),
            max_tokens=30,
            repetition_penalty=penalty,
        )
        return asyncio.run(engine.generate([request]))[0].text

    # Greedy decoding is repeatable, so a different answer means the penalty changed sampling.
    assert answer(1.0) == answer(1.0)
    assert answer(2.0) != answer(1.0)
    asyncio.run(engine.close())
