"""Adapters that ship inside a catalog: ``agents/adapters/SPECIALIST/``, named by the specialist's
``adapter:`` field, so they serve from the first call of a fresh clone.

Each is a registry version made by `cadre specialize` from a recipe in
``agents/adapters/recipes.json`` (data file, steps, seed and the other settings), copied here by
`make adapters` with its weights in float16 (half the size; the LoRA products are computed in the
engine's own precision either way). Its ``meta.json`` keeps what made it: the data's SHA-256, the
settings, the training losses, and the weights' SHA-256, so a test can tell whether the shipped
files are what the recipe and the shipped data make.

    python -m orchestrator.specialize.shipped REGISTRY_VERSION_DIR agents/adapters/NAME
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

from orchestrator.specialize.data import data_hash

RECIPES = "recipes.json"
WEIGHTS = "adapter_model.safetensors"
KEPT_META = (
    "base_model", "data", "data_hash", "examples", "retrieval", "settings", "specialist",
    "target_modules", "train",
)  # fmt: skip
"""What a shipped meta.json keeps of the registry's: nothing machine-specific (paths, times)."""


def recipes(adapters: Path) -> dict[str, dict[str, Any]]:
    """Every shipped adapter's recipe: specialist -> {data, steps, seed, ...}."""
    return dict(json.loads((adapters / RECIPES).read_text()))


def ship(version: Path, dest: Path) -> Path:
    """Copy a trained registry version to ``dest`` as a shipped adapter (replacing what was
    there): the PEFT config with the base named, not its local path; the weights in float16;
    the meta without machine-specific fields, plus the weights' SHA-256."""
    import torch
    from safetensors.torch import load_file, save_file

    meta = json.loads((version / "meta.json").read_text())
    if "trained_at" not in meta:
        raise SystemExit(f"{version}: training did not finish (no trained_at in meta.json)")
    partial = dest.with_name(dest.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    config = json.loads((version / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = meta["base_model"]
    (partial / "adapter_config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
    tensors = {k: v.to(torch.float16).contiguous() for k, v in load_file(version / WEIGHTS).items()}
    save_file(tensors, partial / WEIGHTS)
    (partial / WEIGHTS).chmod(0o644)  # safetensors writes it private
    kept = {k: meta[k] for k in KEPT_META if k in meta}
    kept["train"] = {k: v for k, v in kept.get("train", {}).items() if k != "resumed_from"}
    kept["weights_sha256"] = data_hash(partial / WEIGHTS)
    kept["weights_dtype"] = "float16"
    (partial / "meta.json").write_text(json.dumps(kept, indent=2, sort_keys=True) + "\n")
    shutil.rmtree(dest, ignore_errors=True)
    partial.rename(dest)
    return dest


def main(argv: list[str]) -> None:
    if len(argv) != 2:
        raise SystemExit(__doc__)
    print(f"shipped {ship(Path(argv[0]), Path(argv[1]))}")


if __name__ == "__main__":
    main(sys.argv[1:])
