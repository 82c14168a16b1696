"""`cadre models prepare`: the packaged GGUF becomes an HF-format model with the same weights."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from orchestrator.catalog.specs import ModelSpec
from orchestrator.catalog.weights import prepare_hf
from orchestrator.errors import InputError
from orchestrator.workflow.catalog import load_catalog
from tests.conftest import ROOT


def test_only_a_gguf_file_can_be_prepared(tmp_path: Path) -> None:
    model = ModelSpec.model_validate(
        {
            "name": "dir-model",
            "engine": "vllm",
            "weights": {"kind": "path", "path": str(tmp_path)},
            "context_length": 2048,
        }
    )
    with pytest.raises(InputError, match="turns a GGUF file into an HF model directory"):
        prepare_hf(model, tmp_path, tmp_path / "out")


@pytest.mark.model
def test_prepare_writes_the_same_weights_once(tmp_path: Path, smollm2_path: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    catalog = load_catalog(ROOT / "agents")
    model = catalog.model("smollm2-135m")
    # What a killed prepare left: a partial copy and an incomplete target.
    (tmp_path / "smollm2.partial").mkdir()
    (tmp_path / "smollm2").mkdir()
    (tmp_path / "smollm2" / "config.json").write_text("{}")
    # Two prepares at once: one makes the model, the other waits for it and finds it made.
    with ThreadPoolExecutor(2) as pool:
        both = list(
            pool.map(lambda _: prepare_hf(model, smollm2_path, tmp_path / "smollm2"), [1, 2])
        )
    assert sorted(p.made for p in both) == [False, True]
    first = next(p for p in both if p.made)
    assert (first.path / "model.safetensors").is_file()
    assert not prepare_hf(model, smollm2_path, tmp_path / "smollm2").made  # cached
    assert not (tmp_path / "smollm2.partial").exists()

    saved = AutoModelForCausalLM.from_pretrained(first.path, dtype=torch.float32)
    source = AutoModelForCausalLM.from_pretrained(
        str(smollm2_path.parent), gguf_file=smollm2_path.name, dtype=torch.float32
    )
    theirs = source.state_dict()
    for name, tensor in saved.state_dict().items():
        assert torch.equal(tensor, theirs[name]), name
    tokenizer = AutoTokenizer.from_pretrained(first.path)
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Say hello."}], add_generation_prompt=True, return_tensors="pt"
    )
    ids = prompt["input_ids"] if hasattr(prompt, "keys") else prompt
    generated = saved.generate(ids, max_new_tokens=4, do_sample=False)
    assert generated.shape[1] == ids.shape[1] + 4


def test_an_out_that_holds_other_things_or_is_a_file_is_refused_before_any_work(
    tmp_path: Path,
) -> None:
    """A prepare never empties a folder it did not make (an --out of ~/models lost everything
    in it), refuses a file, and refuses a place it cannot write (it waited for good)."""
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    model = ModelSpec.model_validate(
        {"name": "m", "engine": "llamacpp", "weights": {"kind": "path", "path": str(gguf)},
         "context_length": 2048}
    )  # fmt: skip
    precious = tmp_path / "mine"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(InputError, match="is a folder that holds other things"):
        prepare_hf(model, gguf, precious)
    assert (precious / "notes.txt").read_text() == "keep me"
    (tmp_path / "afile").write_text("x")
    with pytest.raises(InputError, match="is a file"):
        prepare_hf(model, gguf, tmp_path / "afile")
    with pytest.raises(InputError, match="cannot be written"):
        prepare_hf(model, gguf, Path("/proc/self/x"))
