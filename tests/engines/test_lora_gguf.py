"""LoRA adapters on the llama.cpp engine: PEFT adapters converted to GGUF, checked against the
base model, and chosen per request on one loaded model.

The adapters are the fruit adapters (tests/adapters.py): real PEFT weights trained in a few
steps, one that answers everything with bananas and one with cherries, so an answer shows which
adapter produced it."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from orchestrator.catalog.engine_options import LlamaCppOptions
from orchestrator.catalog.specs import SpecialistSpec
from orchestrator.engines import lora_gguf
from orchestrator.engines.base import GenerationRequest, GenerationResult
from orchestrator.engines.llamacpp import LlamaCppEngine
from orchestrator.errors import EngineError
from orchestrator.specialists.adapters import live_adapter
from orchestrator.specialists.asking import ask_through
from orchestrator.specialize.registry import Registry
from orchestrator.workflow.catalog import load_catalog
from tests.adapters import PROBE, fruit_specialist

pytestmark = pytest.mark.model

ROOT = Path(__file__).resolve().parents[2]
SPEC = SpecialistSpec.model_validate(fruit_specialist("fruit", "smollm2-135m"))


def ask(engine: LlamaCppEngine, adapter: Path | None, question: str = PROBE) -> str:
    from orchestrator.specialists.calls import build_request

    request = build_request(SPEC, question, str(adapter) if adapter else None)
    return asyncio.run(engine.generate([request]))[0].text.lower()


def copy_adapter(source: Path, to: Path) -> Path:
    shutil.copytree(source, to, ignore=shutil.ignore_patterns(lora_gguf.GGUF_NAME + "*"))
    return to


def test_adapter_and_base_specialists_answer_through_one_engine(
    smollm2_path: Path, fruit_adapters: dict[str, Path]
) -> None:
    engine = LlamaCppEngine(smollm2_path, 1024)
    banana, cherry = fruit_adapters["banana"], fruit_adapters["cherry"]
    adapters = {"banana": banana, "base": None, "cherry": cherry}
    alone = {name: ask(engine, adapter) for name, adapter in adapters.items()}
    assert "banana" in alone["banana"] and "cherry" not in alone["banana"]
    assert "cherry" in alone["cherry"] and "banana" not in alone["cherry"]
    assert "banana" not in alone["base"] and "cherry" not in alone["base"]
    # Interleaved on the one loaded model, each answer is the one it gives alone (greedy):
    # nothing of one adapter, nor of its cached prompt, leaks into the next request.
    again = [("cherry", cherry), ("banana", banana), ("base", None), ("banana", banana)]
    for name, adapter in again:
        assert ask(engine, adapter) == alone[name], name
    assert len(engine._adapters) == 2
    asyncio.run(engine.close())


def test_least_recently_used_adapter_is_unloaded_and_reloaded(
    smollm2_path: Path, fruit_adapters: dict[str, Path]
) -> None:
    engine = LlamaCppEngine(smollm2_path, 1024, LlamaCppOptions(max_adapters=1))
    banana, cherry = fruit_adapters["banana"], fruit_adapters["cherry"]
    first = ask(engine, banana)
    assert "cherry" in ask(engine, cherry)
    assert list(engine._adapters) == [str(cherry)]
    assert ask(engine, banana) == first
    assert list(engine._adapters) == [str(banana)]
    asyncio.run(engine.close())


def _last_logits_llamacpp(engine: LlamaCppEngine, adapter: Path | None, ids: list[int]) -> Any:
    import llama_cpp

    engine._use(str(adapter) if adapter else None)
    engine._base.reset()
    engine._base.eval(ids)
    logits = llama_cpp.llama_get_logits_ith(engine._base._ctx.ctx, -1)
    return np.ctypeslib.as_array(logits, shape=(engine._base.n_vocab(),)).astype(np.float64)


def _qk_only(adapter: Path, to: Path) -> Path:
    """A copy of ``adapter`` with only its q and k projections: the ones llama.cpp permutes."""
    from safetensors.numpy import load_file, save_file

    copy_adapter(adapter, to)
    weights = to / "adapter_model.safetensors"
    state = load_file(str(weights))
    save_file({k: v for k, v in state.items() if ".q_proj." in k or ".k_proj." in k}, str(weights))
    config = json.loads((to / "adapter_config.json").read_text())
    config["target_modules"] = ["q_proj", "k_proj"]
    (to / "adapter_config.json").write_text(json.dumps(config))
    return to


def test_converted_adapter_changes_logits_as_peft_does(
    smollm2_path: Path,
    smollm2_hf: Path,
    fruit_adapters: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What an adapter changes in the next-token logits on llama.cpp follows what it changes
    under PEFT on the same (dequantized) weights; without the q/k row permutation it does not."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(smollm2_hf))
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": PROBE}], tokenize=False, add_generation_prompt=True
    )
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    full = fruit_adapters["banana"]
    qk = _qk_only(full, tmp_path / "qk")

    def hf_delta(adapter: Path) -> Any:
        hf = AutoModelForCausalLM.from_pretrained(str(smollm2_hf), dtype=torch.float32)
        with torch.no_grad():
            base = hf(torch.tensor([ids])).logits[0, -1].double().numpy()
            adapted = PeftModel.from_pretrained(hf, str(adapter))(torch.tensor([ids]))
            return adapted.logits[0, -1].double().numpy() - base

    expected = {"full": hf_delta(full), "qk": hf_delta(qk)}
    engine = LlamaCppEngine(smollm2_path, 1024)
    base = _last_logits_llamacpp(engine, None, ids)

    def correlation(adapter: Path, against: Any) -> float:
        delta = _last_logits_llamacpp(engine, adapter, ids) - base
        return float(np.corrcoef(delta, against)[0, 1])

    converted = {"full": correlation(full, expected["full"]), "qk": correlation(qk, expected["qk"])}
    monkeypatch.setattr(lora_gguf, "_permute", lambda rows, heads: rows)
    unpermuted = correlation(_qk_only(full, tmp_path / "unpermuted"), expected["qk"])
    asyncio.run(engine.close())
    print(f"logit-change correlation with PEFT: {converted}; q/k unpermuted: {unpermuted:.3f}")
    assert converted["full"] > 0.95 and converted["qk"] > 0.9
    assert unpermuted < converted["qk"] - 0.3


def test_conversion_is_cached_beside_the_adapter_and_remade_when_it_changes(
    smollm2_path: Path, fruit_adapters: dict[str, Path], tmp_path: Path
) -> None:
    adapter = copy_adapter(fruit_adapters["cherry"], tmp_path / "cherry")
    made = lora_gguf.gguf_adapter(adapter, smollm2_path)
    assert made == adapter / "adapter.gguf" and made.stat().st_size > 100_000
    assert not list(adapter.glob("*.partial"))
    stamp = made.stat().st_mtime_ns
    assert lora_gguf.gguf_adapter(adapter, smollm2_path).stat().st_mtime_ns == stamp
    weights = adapter / "adapter_model.safetensors"
    later = made.stat().st_mtime + 5
    import os

    os.utime(weights, (later, later))
    assert lora_gguf.gguf_adapter(adapter, smollm2_path).stat().st_mtime_ns != stamp
    # A GGUF LoRA file is used as it is.
    assert lora_gguf.gguf_adapter(made, smollm2_path) == made


def _rewrite(adapter: Path, change: Any) -> None:
    from safetensors.numpy import load_file, save_file

    weights = adapter / "adapter_model.safetensors"
    state = load_file(str(weights))
    change(state)
    save_file(state, str(weights))


def _first(state: dict[str, Any], suffix: str) -> str:
    return sorted(k for k in state if k.endswith(suffix))[0]


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("wider input", r"the adapter is 600 -> \d+, the base model's blk\.\d+\.\w+\.weight is "),
        ("missing layer", r"maps to blk\.99\.attn_q\.weight, which the base model does not have"),
        ("half a pair", r"has lora_A only"),
        ("dora", r"a DoRA adapter"),
        ("embeddings", r"modules_to_save"),
        ("not lora", r"peft_type 'IA3'"),
    ],
)
def test_mismatched_adapters_are_refused_with_the_reason(
    smollm2_path: Path, fruit_adapters: dict[str, Path], tmp_path: Path, case: str, message: str
) -> None:
    adapter = copy_adapter(fruit_adapters["banana"], tmp_path / "bad")
    config_path = adapter / "adapter_config.json"
    config = json.loads(config_path.read_text())
    if case == "wider input":

        def widen(state: dict[str, Any]) -> None:
            key = _first(state, "q_proj.lora_A.weight")
            state[key] = np.zeros((state[key].shape[0], 600), dtype=state[key].dtype)

        _rewrite(adapter, widen)
    elif case == "missing layer":

        def add_layer(state: dict[str, Any]) -> None:
            for half in ("A", "B"):
                key = _first(state, f"q_proj.lora_{half}.weight")
                state[key.replace("layers.0.", "layers.99.")] = state[key]

        _rewrite(adapter, add_layer)
    elif case == "half a pair":
        _rewrite(adapter, lambda state: state.pop(_first(state, "v_proj.lora_B.weight")))
    else:
        config.update(
            {"dora": {"use_dora": True}, "embeddings": {"modules_to_save": ["lm_head"]}}.get(
                case, {"peft_type": "IA3"}
            )
        )
        config_path.write_text(json.dumps(config))
    with pytest.raises(EngineError, match=message):
        lora_gguf.gguf_adapter(adapter, smollm2_path)
    assert not (adapter / "adapter.gguf").exists() and not list(adapter.glob("*.partial"))
    # Served, the same adapter fails its request with the reason; the engine keeps serving.
    engine = LlamaCppEngine(smollm2_path, 512)
    with pytest.raises(EngineError, match=message):
        ask(engine, adapter)
    assert "banana" not in ask(engine, None)
    asyncio.run(engine.close())


def test_a_base_model_of_another_architecture_is_refused(
    fruit_adapters: dict[str, Path], tmp_path: Path
) -> None:
    import gguf

    other = tmp_path / "other.gguf"
    writer = gguf.GGUFWriter(str(other), "gpt2")
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    adapter = copy_adapter(fruit_adapters["banana"], tmp_path / "a")
    with pytest.raises(EngineError, match="is a 'gpt2' model"):
        lora_gguf.gguf_adapter(adapter, other)


def test_promote_and_rollback_take_effect_on_a_running_engine(
    smollm2_path: Path,
    fruit_adapters: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The registry's live version answers on llama.cpp from the next call, with no restart."""
    monkeypatch.setenv("CADRE_ADAPTERS_DIR", str(tmp_path / "registry"))
    catalog = load_catalog(ROOT / "agents")
    catalog.specialists["fruit"] = SPEC
    registry = Registry()
    version = registry.claim("fruit", {"base_model": "smollm2-135m"})
    for part in ("adapter_config.json", "adapter_model.safetensors"):
        shutil.copy(fruit_adapters["banana"] / part, version.path / part)
    registry.write_meta(version.path, {**version.meta, "trained_at": 1.0})
    engine = LlamaCppEngine(smollm2_path, 1024)

    async def generate(model: str, request: GenerationRequest) -> tuple[GenerationResult, int]:
        assert model == "smollm2-135m"
        return (await engine.generate([request]))[0], 1

    def reply() -> str:
        return str(asyncio.run(ask_through(generate, catalog, SPEC, PROBE)).output["reply"])

    assert "banana" not in reply().lower()
    registry.promote("fruit", "v1", "exact_match", by="test", force=True)
    assert live_adapter(catalog, SPEC) == str(version.path.resolve())
    assert "banana" in reply().lower()
    registry.rollback("fruit", by="test")
    assert "banana" not in reply().lower()
    asyncio.run(engine.close())
