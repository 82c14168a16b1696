"""The adapters shipped in agents/adapters/ are what their recipes make from the shipped data,
they are the ones the specialists name, and they load on the llama.cpp engine."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from orchestrator.engines import lora_gguf
from orchestrator.specialize.data import data_hash
from orchestrator.specialize.shipped import WEIGHTS, recipes, ship
from orchestrator.workflow.catalog import load_catalog
from tests.conftest import ROOT

ADAPTERS = ROOT / "agents" / "adapters"
RECIPES = recipes(ADAPTERS)


def test_every_recipe_has_its_adapter_and_its_specialist_serves_it() -> None:
    catalog = load_catalog(ROOT / "agents")
    shipped = {p.name for p in ADAPTERS.iterdir() if p.is_dir()}
    assert shipped == set(RECIPES)
    assert {"claim-extractor", "claim-severity", "ticket-triage", "sentiment"} <= shipped
    for name in RECIPES:
        declared = catalog.declared_adapter(catalog.specialist(name))
        assert declared is not None and Path(declared) == ADAPTERS / name, name


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_shipped_adapter_matches_its_recipe_data_and_weights(name: str) -> None:
    recipe = RECIPES[name]
    meta = json.loads((ADAPTERS / name / "meta.json").read_text())
    assert meta["specialist"] == name
    assert meta["data"] == recipe["data"]
    assert meta["data_hash"] == data_hash(ROOT / recipe["data"]), (
        f"{recipe['data']} changed since {name}'s adapter was trained: run `make adapters`"
    )
    settings = {k: v for k, v in recipe.items() if k != "data"}
    assert meta["settings"] == {**settings, "alpha": 2 * recipe["rank"]}
    assert meta["weights_sha256"] == data_hash(ADAPTERS / name / WEIGHTS)
    config = json.loads((ADAPTERS / name / "adapter_config.json").read_text())
    assert config["r"] == recipe["rank"] and config["base_model_name_or_path"] == meta["base_model"]


def test_ship_copies_a_trained_version_without_machine_paths_in_half_precision(
    tmp_path: Path,
) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    version = tmp_path / "registry" / "sentiment" / "v1"
    version.mkdir(parents=True)
    a = torch.randn(8, 576)
    save_file(
        {"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight": a}, version / WEIGHTS
    )
    (version / "adapter_config.json").write_text(
        json.dumps({"r": 8, "base_model_name_or_path": "/home/me/.cadre/models/smollm2-135m"})
    )
    meta = {"specialist": "sentiment", "base_model": "smollm2-135m", "base_path": "/home/me",
            "settings": {"steps": 3}, "train": {"seconds": 1.0, "resumed_from": 0}}  # fmt: skip
    (version / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(SystemExit, match="training did not finish"):
        ship(version, tmp_path / "shipped")
    (version / "meta.json").write_text(json.dumps({**meta, "trained_at": 1.0}))
    out = ship(version, tmp_path / "shipped")
    kept = json.loads((out / "meta.json").read_text())
    assert "base_path" not in kept and "trained_at" not in kept
    assert kept["train"] == {"seconds": 1.0} and kept["weights_sha256"] == data_hash(out / WEIGHTS)
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "smollm2-135m"
    (tensor,) = load_file(out / WEIGHTS).values()
    assert tensor.dtype == torch.float16 and torch.allclose(tensor.float(), a, atol=1e-2)
    assert not (tmp_path / "shipped.partial").exists()


@pytest.mark.model
def test_shipped_adapters_convert_against_the_packaged_base(
    smollm2_path: Path, tmp_path: Path
) -> None:
    for name in sorted(RECIPES):
        copy = shutil.copytree(
            ADAPTERS / name, tmp_path / name, ignore=shutil.ignore_patterns("adapter.gguf*")
        )
        converted = lora_gguf.gguf_adapter(copy, smollm2_path)
        assert converted.stat().st_size > 1_000_000, name


def test_make_adapters_refuses_a_name_without_a_recipe_before_training_anything() -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "make-adapters.py"), "sentiment", "../etc"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "no recipe for ../etc in" in done.stderr
