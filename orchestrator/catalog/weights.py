"""Preparing model weights for engines that need a Hugging Face model directory (vLLM).

The packaged SmolLM2 is a GGUF file. transformers can read GGUF (it dequantizes the weights as it
loads them) but refuses to ``save_pretrained`` a model it loaded from a quantized file, so the
weights are copied into a fresh model built from the same config, in float32, and saved from there.
The result is cached under ``.cadre/models/NAME``; on a cluster the model is a path on a volume and
needs no preparing.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from orchestrator import config
from orchestrator.catalog.specs import ModelSpec
from orchestrator.errors import InputError, missing_dependency


def prepared_path(name: str) -> Path | None:
    """The prepared HF directory of catalog model ``name``, or None if it is not prepared."""
    path = config.models_dir() / name
    return path if (path / "config.json").is_file() else None


@dataclass(frozen=True)
class Prepared:
    """Where the HF-format model is, and whether this call made it."""

    path: Path
    made: bool
    seconds: float


def prepare_hf(model: ModelSpec, weights: Path | None, out: Path | None = None) -> Prepared:
    """An HF-format directory for ``model`` (a GGUF file), made once and reused."""
    started = time.perf_counter()
    target = Path(out) if out else config.models_dir() / model.name
    if _made(target):
        return Prepared(target, False, time.perf_counter() - started)
    if weights is None or weights.suffix != ".gguf":
        raise InputError(
            f"model {model.name!r}: `cadre models prepare` turns a GGUF file into an HF model "
            f"directory; its weights are {weights}"
        )
    _check_out(target, bool(out))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")  # transformers' progress bars, in this process
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as err:
        raise missing_dependency("preparing models needs torch and transformers", err) from None
    from filelock import FileLock

    # One prepare of a model at a time: another process's waits here, then finds it made.
    lock = target.with_name(target.name + ".lock")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        lock.touch()  # FileLock would wait for good on a lock it cannot make
    except OSError as err:
        raise InputError(f"{target} cannot be written: {err.strerror or err}") from None
    with FileLock(lock):
        if _made(target):
            return Prepared(target, False, time.perf_counter() - started)
        loaded = AutoModelForCausalLM.from_pretrained(
            str(weights.parent), gguf_file=weights.name, dtype=torch.float32
        )
        tokenizer = AutoTokenizer.from_pretrained(str(weights.parent), gguf_file=weights.name)
        hf_config = loaded.config
        if hasattr(hf_config, "quantization_config"):
            delattr(hf_config, "quantization_config")
        plain = AutoModelForCausalLM.from_config(hf_config, dtype=torch.float32)  # type: ignore[no-untyped-call]
        plain.load_state_dict(loaded.state_dict(), strict=True)
        # Written beside the target and moved in whole: an interrupted prepare leaves no half
        # model, and what one left (a partial copy, an incomplete target) goes first.
        partial = target.with_name(target.name + ".partial")
        for stale in (partial, target):
            shutil.rmtree(stale, ignore_errors=True)
        plain.save_pretrained(partial)
        tokenizer.save_pretrained(partial)
        partial.replace(target)
    return Prepared(target, True, time.perf_counter() - started)


def _check_out(target: Path, given: bool) -> None:
    """Refuse, before any work, a target that is not for a model to be written into: a file,
    a folder holding anything but what an earlier prepare left (it is never emptied), or a
    place that cannot be written."""
    where = f"--out {target}" if given else str(target)
    if target.exists() and not target.is_dir():
        raise InputError(f"{where} is a file; give a new or empty folder for the model")
    if target.is_dir() and any(target.iterdir()) and not (target / "config.json").is_file():
        raise InputError(
            f"{where} is a folder that holds other things; give a new or empty folder (a "
            "prepare never empties a folder it did not make)"
        )
    parent = next((p for p in (target, *target.parents) if p.exists()), None)
    if parent is None or not os.access(parent, os.W_OK | os.X_OK) or not parent.is_dir():
        raise InputError(f"{where} cannot be written: {parent} is not a folder this user may write")


def _made(target: Path) -> bool:
    return (target / "config.json").is_file() and (target / "model.safetensors").is_file()
