"""A PEFT LoRA adapter as a GGUF LoRA that llama.cpp can apply to a GGUF base model.

`cadre specialize` trains PEFT adapters (``adapter_config.json`` and
``adapter_model.safetensors``) on the Hugging Face form of a model. llama.cpp applies LoRA
adapters in its own GGUF form, so the llamacpp engine converts an adapter once and keeps the
result beside it, as ``adapter.gguf``; a newer adapter file makes it again.

What the conversion does, and checks against the base GGUF's header:
- the base must be a Llama-architecture model (SmolLM2 is), the only one this maps names for;
- each PEFT module (``model.layers.N.self_attn.q_proj``) maps to a base tensor
  (``blk.N.attn_q.weight``) that exists, and ``lora_A``/``lora_B`` fit its shape;
- the q and k projections' ``lora_B`` rows are permuted the way llama.cpp's converter permutes
  those weights (rotary halves interleaved per head), or the adapter would rotate the wrong
  dimensions;
- the scale is kept: llama.cpp applies ``alpha / r``, so an rsLoRA adapter (``alpha / sqrt(r)``)
  is written with ``alpha * sqrt(r)``.

Adapters that change what a LoRA cannot express in GGUF are refused with the reason: DoRA,
per-module alpha or rank patterns, trained embeddings or output head (``modules_to_save``).
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import uuid
from pathlib import Path
from typing import Any

from orchestrator.errors import EngineError

GGUF_NAME = "adapter.gguf"

_PEFT_KEY = re.compile(r"^(?:base_model\.model\.)?(.+)\.lora_([AB])(?:\.[^.]+)?\.weight$")
_LAYER = re.compile(r"^model\.layers\.(\d+)\.(self_attn|mlp)\.(\w+)$")
_LLAMA_NAMES = {
    "q_proj": "attn_q",
    "k_proj": "attn_k",
    "v_proj": "attn_v",
    "o_proj": "attn_output",
    "gate_proj": "ffn_gate",
    "up_proj": "ffn_up",
    "down_proj": "ffn_down",
}


def gguf_adapter(adapter: Path | str, base_model: Path | str) -> Path:
    """The GGUF LoRA for ``adapter`` (a PEFT adapter folder, or a GGUF LoRA file as is),
    converted against ``base_model`` and cached beside the adapter; EngineError names what
    does not fit."""
    adapter = Path(adapter)
    if adapter.is_file():
        return adapter
    config_path = adapter / "adapter_config.json"
    weights = adapter / "adapter_model.safetensors"
    if not config_path.is_file() or not weights.is_file():
        raise EngineError(
            f"LoRA adapter not found: {adapter} (a GGUF LoRA file, or a PEFT adapter folder with "
            "adapter_config.json and adapter_model.safetensors)"
        )
    out = adapter / GGUF_NAME
    newest = max(config_path.stat().st_mtime, weights.stat().st_mtime)
    if out.is_file() and out.stat().st_mtime >= newest:
        return out
    config = _read_config(config_path)
    base = _base_header(Path(base_model))
    tensors = _convert(adapter, config, base)
    _write(out, base["arch"], _alpha(config), tensors)
    return out


def _read_config(path: Path) -> dict[str, Any]:
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise EngineError(f"{path}: not a readable adapter config: {err}") from None
    if not isinstance(config, dict):
        raise EngineError(f"{path}: not a PEFT adapter config (a JSON object)")
    kind = config.get("peft_type", "LORA")
    if kind != "LORA":
        raise EngineError(f"{path}: peft_type {kind!r}; only LORA adapters convert to GGUF")
    if config.get("use_dora"):
        raise EngineError(f"{path}: a DoRA adapter; llama.cpp applies plain LoRA only")
    for key in ("alpha_pattern", "rank_pattern"):
        if config.get(key):
            raise EngineError(
                f"{path}: {key} gives modules their own scale; GGUF LoRA has one alpha"
            )
    if config.get("modules_to_save"):
        raise EngineError(
            f"{path}: modules_to_save {config['modules_to_save']} trains whole modules, "
            "which a GGUF LoRA cannot carry"
        )
    rank = config.get("r")
    if not isinstance(rank, int) or isinstance(rank, bool) or rank < 1:
        raise EngineError(f"{path}: field r must be a positive integer, not {rank!r}")
    return config


def _alpha(config: dict[str, Any]) -> float:
    """The alpha llama.cpp needs for PEFT's scale: it applies alpha / r."""
    rank = int(config["r"])
    alpha = float(config.get("lora_alpha", rank))
    return alpha * math.sqrt(rank) if config.get("use_rslora") else alpha


def _base_header(path: Path) -> dict[str, Any]:
    """The base model's architecture, head counts and tensor shapes (ggml order: ne0 first);
    read once per file version in a process (reading a header takes seconds)."""
    try:
        stat = path.stat()
    except OSError as err:
        raise EngineError(f"cannot read the base model {path}: {err}") from None
    return _read_header(path, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=4)
def _read_header(path: Path, mtime_ns: int, size: int) -> dict[str, Any]:
    from gguf import GGUFReader

    try:
        reader = GGUFReader(path, "r")
    except (OSError, ValueError) as err:
        raise EngineError(f"cannot read the base model {path}: {err}") from None

    def value(key: str) -> Any:
        field = reader.fields.get(key)
        return None if field is None else field.contents()

    arch = value("general.architecture")
    if arch != "llama":
        raise EngineError(
            f"the base model {path.name} is a {arch!r} model; converting PEFT adapters to GGUF "
            "is supported for llama-architecture models only"
        )
    heads = int(value("llama.attention.head_count"))
    return {
        "arch": arch,
        "heads": heads,
        "kv_heads": int(value("llama.attention.head_count_kv") or heads),
        "shapes": {t.name: [int(n) for n in t.shape] for t in reader.tensors},
    }


def _convert(adapter: Path, config: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """GGUF tensor name -> array: lora_a (r, in) and lora_b (out, r) for each module."""
    from safetensors.numpy import load_file

    weights = adapter / "adapter_model.safetensors"
    try:
        state = load_file(str(weights))
    except Exception as err:  # safetensors raises its own error types for a bad file
        raise EngineError(f"{weights}: not a readable safetensors file: {err}") from None
    pairs: dict[str, dict[str, Any]] = {}
    for key, array in state.items():
        match = _PEFT_KEY.match(key)
        if match is None:
            raise EngineError(f"{weights}: tensor {key!r} is not a LoRA A/B weight")
        pairs.setdefault(match.group(1), {})[match.group(2)] = array
    if not pairs:
        raise EngineError(f"{weights}: holds no LoRA weights")
    out: dict[str, Any] = {}
    for module, pair in sorted(pairs.items()):
        if set(pair) != {"A", "B"}:
            raise EngineError(f"{weights}: module {module} has lora_{next(iter(pair))} only")
        name = _gguf_name(module, weights)
        shape = base["shapes"].get(name)
        if shape is None:
            raise EngineError(
                f"{weights}: module {module} maps to {name}, which the base model does not have "
                "(an adapter trained for another model?)"
            )
        lora_a, lora_b = pair["A"].astype("float32"), pair["B"].astype("float32")
        n_in, n_out = shape[0], shape[1]
        if lora_a.ndim != 2 or lora_b.ndim != 2 or lora_a.shape[0] != lora_b.shape[1]:
            raise EngineError(
                f"{weights}: module {module}: lora_A {list(lora_a.shape)} and lora_B "
                f"{list(lora_b.shape)} are not a rank-r pair"
            )
        if lora_a.shape[1] != n_in or lora_b.shape[0] != n_out:
            raise EngineError(
                f"{weights}: module {module}: the adapter is {lora_a.shape[1]} -> "
                f"{lora_b.shape[0]}, the base model's {name} is {n_in} -> {n_out} "
                "(an adapter trained for another model?)"
            )
        if name.endswith("attn_q.weight"):
            lora_b = _permute(lora_b, base["heads"])
        elif name.endswith("attn_k.weight"):
            lora_b = _permute(lora_b, base["kv_heads"])
        out[name + ".lora_a"] = lora_a
        out[name + ".lora_b"] = lora_b
    return out


def _gguf_name(module: str, weights: Path) -> str:
    match = _LAYER.match(module)
    if match is None or match.group(3) not in _LLAMA_NAMES:
        raise EngineError(
            f"{weights}: module {module} has no llama.cpp counterpart a LoRA can target "
            f"(supported: the attention and MLP projections {sorted(_LLAMA_NAMES)})"
        )
    return f"blk.{match.group(1)}.{_LLAMA_NAMES[match.group(3)]}.weight"


def _permute(rows: Any, heads: int) -> Any:
    """Reorder output rows as llama.cpp's converter reorders q/k weights: within each head,
    the two rotary halves are interleaved."""
    n_out = rows.shape[0]
    if n_out % (2 * heads):
        raise EngineError(f"{n_out} projection rows do not split into {heads} rotary heads")
    return (
        rows.reshape(heads, 2, n_out // heads // 2, *rows.shape[1:])
        .swapaxes(1, 2)
        .reshape(rows.shape)
    )


def _write(out: Path, arch: str, alpha: float, tensors: dict[str, Any]) -> None:
    """Write the GGUF LoRA next to its adapter, whole or not at all."""
    import gguf

    # A name of its own: two processes converting the same adapter at once each write their
    # own file, and the last rename wins with a whole file either way.
    partial = out.with_name(f"{out.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.partial")
    try:
        writer = gguf.GGUFWriter(str(partial), arch)
        writer.add_type(gguf.GGUFType.ADAPTER)
        writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
        writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
        for name, array in tensors.items():
            writer.add_tensor(name, array)
        try:
            writer.write_header_to_file()
            writer.write_kv_data_to_file()
            writer.write_tensors_to_file()
        finally:
            writer.close()
        os.replace(partial, out)
    except OSError as err:
        partial.unlink(missing_ok=True)
        raise EngineError(f"cannot write the converted adapter {out}: {err}") from None
