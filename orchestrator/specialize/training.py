"""LoRA adapters for a specialist: a few steps of PEFT fine-tuning on chat examples.

An example is a chat (the specialist's system prompt, its few-shot turns and the input, exactly
as :func:`orchestrator.specialists.calls.build_request` renders them at serving time) and the
answer the specialist should give. Only the answer's tokens are trained on. The result is a PEFT
adapter directory (``adapter_config.json`` + ``adapter_model.safetensors``) that the vLLM engine
loads on the shared base model.

:func:`step_loop` is the one training loop: :func:`train_lora` runs it in this process, and
:func:`train_on_ray` hands it to Ray Train (:mod:`orchestrator.hosting.train`), one per worker.

torch, transformers and peft are imported inside the functions: importing this module is cheap.
"""

from __future__ import annotations

import importlib
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.engines.base import Message
from orchestrator.errors import InputError, missing_dependency
from orchestrator.hosting.train import ADAPTER, TrainSession, fit

ATTENTION_AND_MLP = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class Example:
    """One training example: the chat so far and the answer to learn."""

    messages: tuple[Message, ...]
    answer: str


@dataclass(frozen=True)
class LoraSettings:
    """How to train: LoRA shape and the optimizer's few knobs."""

    steps: int = 30
    rank: int = 8
    alpha: int = 16
    learning_rate: float = 2e-3
    batch_size: int = 4
    seed: int = 0
    target_modules: tuple[str, ...] = ATTENTION_AND_MLP


@dataclass
class Trained:
    """Where the adapter went and how training went."""

    path: Path
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0


def train_lora(
    base: Path,
    examples: Sequence[Example],
    out: Path,
    settings: LoraSettings | None = None,
    on_step: Callable[[int, float], None] | None = None,
) -> Trained:
    """Fine-tune a LoRA adapter for the HF-format model at ``base`` and save it at ``out``.

    The adapter is written beside ``out`` and moved into place whole, so an interrupted run
    leaves no half adapter. ``on_step(step, loss)`` is called after every optimizer step.
    """
    settings = settings or LoraSettings()
    if not examples:
        raise InputError("training a LoRA adapter needs at least one example")
    if not (Path(base) / "config.json").is_file():
        raise InputError(
            f"{base} is not an HF-format model directory (no config.json); "
            "run `cadre models prepare MODEL` first"
        )
    require_training_stack()
    import torch

    started = time.perf_counter()
    torch.manual_seed(settings.seed)
    tokenizer, model = lora_model(base, settings)
    rows = [_tokenize(tokenizer, example) for example in examples]
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=settings.learning_rate
    )
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    generator = torch.Generator().manual_seed(settings.seed)
    trained = Trained(path=Path(out))

    def after_step(step: int, loss: float) -> None:
        trained.losses.append(loss)
        if on_step is not None:
            on_step(step, loss)

    step_loop(torch, model, optimizer, rows, pad, settings, lambda _: generator, after_step)
    partial = Path(out).with_name(Path(out).name + ".partial")
    for stale in (partial, Path(out)):
        shutil.rmtree(stale, ignore_errors=True)
    partial.parent.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(partial))
    partial.replace(out)
    trained.seconds = time.perf_counter() - started
    return trained


def step_loop(
    torch: Any,
    model: Any,
    optimizer: Any,
    rows: Sequence[tuple[list[int], list[int]]],
    pad: int,
    settings: LoraSettings,
    generator_for: Callable[[int], Any],
    after_step: Callable[[int, float], None],
    start: int = 0,
) -> float:
    """The one training loop, in this process and on each Ray Train worker: steps
    ``start + 1`` to ``settings.steps``, each on a batch drawn with ``generator_for(step)``, the
    loss on the answer tokens only. ``after_step(step, loss)`` follows every optimizer step
    (progress, checkpoints). Returns the last loss."""
    model.train()
    loss_value = float("nan")
    for step in range(start + 1, settings.steps + 1):
        picks = torch.randint(
            len(rows), (min(settings.batch_size, len(rows)),), generator=generator_for(step)
        )
        loss = answer_loss(torch, model, _pad(torch, [rows[int(i)] for i in picks], pad))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        loss_value = float(loss.detach())
        after_step(step, loss_value)
    return loss_value


def require_training_stack(ray_train: bool = False) -> None:
    """A clear error, before anything is written, when the training libraries are missing (they
    are Cadre's own dependencies: ``make setup`` installs them)."""
    modules = ["torch", "transformers", "peft"] + ["ray.train"] * ray_train
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as err:
            err.name = err.name or module  # ray.train raises its own ImportError, with no name
            raise missing_dependency(f"training adapters needs {', '.join(modules)}", err) from None


def lora_model(base: Path | str, settings: LoraSettings) -> tuple[Any, Any]:
    """The base model's tokenizer, and the base in float32 wrapped with fresh LoRA layers."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(base))
    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    config = LoraConfig(
        r=settings.rank,
        lora_alpha=settings.alpha,
        lora_dropout=0.0,
        target_modules=list(settings.target_modules),
        task_type="CAUSAL_LM",
    )
    return tokenizer, get_peft_model(model, config)


def _tokenize(tokenizer: Any, example: Example) -> tuple[list[int], list[int]]:
    """Token ids of the whole chat and labels that train on the answer turn only."""
    chat = [{"role": m.role, "content": m.content} for m in example.messages]
    prompt = _ids(tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=True))
    full = _ids(
        tokenizer.apply_chat_template(
            [*chat, {"role": "assistant", "content": example.answer}], tokenize=True
        )
    )
    if full[: len(prompt)] != prompt:  # a template that renders the answer turn differently
        full = (
            prompt
            + _ids(tokenizer(example.answer, add_special_tokens=False))
            + [tokenizer.eos_token_id]
        )
    labels = [-100] * len(prompt) + full[len(prompt) :]
    return full, labels


def _ids(encoded: Any) -> list[int]:
    if hasattr(encoded, "keys"):  # transformers returns a BatchEncoding from some calls
        encoded = encoded["input_ids"]
    return [int(i) for i in encoded]


def answer_loss(torch: Any, model: Any, padded: tuple[Any, Any, Any]) -> Any:
    """The mean cross-entropy over the answer tokens, with logits computed only at the positions
    that predict one: the vocabulary projection over a whole prompt (most of each row) was about
    a quarter of a step's time on CPU. Equal to the model's own loss with ``labels``."""
    input_ids, labels, mask = padded
    targets = labels[:, 1:]  # the logits at position t predict token t + 1
    keep = (targets != -100).any(dim=0).nonzero().flatten()
    logits = model(input_ids=input_ids, attention_mask=mask, logits_to_keep=keep).logits
    return torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]).float(),
        targets[:, keep].reshape(-1),
        ignore_index=-100,
    )


def _pad(torch: Any, batch: list[tuple[list[int], list[int]]], pad: int) -> tuple[Any, Any, Any]:
    width = max(len(ids) for ids, _ in batch)
    input_ids = [ids + [pad] * (width - len(ids)) for ids, _ in batch]
    labels = [lab + [-100] * (width - len(lab)) for _, lab in batch]
    mask = [[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in batch]
    return torch.tensor(input_ids), torch.tensor(labels), torch.tensor(mask)


def train_on_ray(
    base: Path,
    examples: Sequence[Example],
    out: Path,
    settings: LoraSettings,
    storage: Path,
    *,
    workers: int = 1,
    use_gpu: bool = False,
    checkpoint_every: int = 10,
    on_step: Callable[[int, float], None] | None = None,
) -> dict[str, Any]:
    """Train as a Ray Train job (:func:`orchestrator.hosting.train.fit`) and write the adapter to
    ``out``; returns the final metrics (step, loss, resumed_from, workers). Called again with
    the same ``storage``, it continues from the latest checkpoint."""
    config = {
        "base": str(Path(base).resolve()),
        "examples": [([asdict(m) for m in e.messages], e.answer) for e in examples],
        "settings": asdict(settings),
        "checkpoint_every": checkpoint_every,
    }
    return fit(_ray_worker, config, out, storage, workers=workers, use_gpu=use_gpu, on_step=on_step)


def _ray_worker(session: TrainSession, config: dict[str, Any]) -> None:
    """One Ray Train worker: its shard of the examples, LoRA on the base, the one step loop,
    a checkpoint every ``checkpoint_every`` steps and at the end."""
    import os

    import torch
    from peft import set_peft_model_state_dict
    from peft.utils import get_peft_model_state_dict

    rank, world = session.rank, session.world
    settings = LoraSettings(
        **{**config["settings"], "target_modules": tuple(config["settings"]["target_modules"])}
    )
    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
    torch.manual_seed(settings.seed)
    tokenizer, model = lora_model(config["base"], settings)
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=settings.learning_rate
    )
    state = session.restore(lambda folder: torch.load(folder / "state.pt", weights_only=False))
    start = 0
    if state is not None:
        set_peft_model_state_dict(model, state["adapter"])
        optimizer.load_state_dict(state["optimizer"])
        start = int(state["step"])
    peft_model = model
    model = session.prepare_model(model)
    examples = [
        Example(tuple(Message(**m) for m in messages), answer)
        for messages, answer in config["examples"]
    ]
    rows = [_tokenize(tokenizer, e) for e in examples][rank::world]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def generator_for(step: int) -> Any:
        # Batches depend on (seed, step, rank) only: a resumed run sees the same ones.
        return torch.Generator().manual_seed(settings.seed * 100_003 + step * 97 + rank)

    def save(step: int, folder: Path) -> None:
        torch.save(
            {
                "adapter": get_peft_model_state_dict(peft_model),
                "optimizer": optimizer.state_dict(),
                "step": step,
            },
            folder / "state.pt",
        )
        peft_model.save_pretrained(str(folder / ADAPTER))

    def after_step(step: int, loss: float) -> None:
        session.progress(step, loss)
        if step % config["checkpoint_every"] == 0 or step == settings.steps:
            metrics = {"step": step, "loss": loss, "resumed_from": start, "workers": world}
            session.report(metrics, lambda folder: save(step, folder))

    step_loop(torch, model, optimizer, rows, pad, settings, generator_for, after_step, start)
