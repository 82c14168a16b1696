"""LoRA fine-tuning as a Ray Train job: the same code on this laptop's CPU and on GPU workers.

:func:`fit` runs a ``TorchTrainer`` with ``workers`` data-parallel workers (DDP when more than
one; ``use_gpu`` puts each on a GPU). Each worker trains on its shard of the examples. Every
``checkpoint_every`` steps the workers report a checkpoint (the adapter weights, the optimizer
and the step) to the run's storage; a run stopped for any reason continues from its latest
checkpoint when :func:`fit` is called again with the same storage folder (Ray Train restores a
run by its name and storage path). Progress (step, loss) reaches the caller through a Ray queue.
The finished adapter comes back in the final checkpoint, so it works on a cluster whose workers
do not share this machine's disk.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import ray

from orchestrator.hosting.runtime import ensure_ray
from orchestrator.training import Example, LoraSettings


def fit(
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
    """Train and write the adapter to ``out``; returns the final metrics (step, loss,
    resumed_from)."""
    from ray.train import CheckpointConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer
    from ray.util.queue import Queue

    ensure_ray()
    cpus = ray.cluster_resources().get("CPU", 1)  # type: ignore[no-untyped-call]
    progress: Queue = Queue(actor_options={"num_cpus": 0})
    trainer = TorchTrainer(
        _train_loop,
        train_loop_config={
            "base": str(Path(base).resolve()),
            "examples": [([asdict(m) for m in e.messages], e.answer) for e in examples],
            "settings": asdict(settings),
            "checkpoint_every": checkpoint_every,
            "progress": progress,
        },
        scaling_config=ScalingConfig(
            num_workers=workers,
            use_gpu=use_gpu,
            resources_per_worker={"CPU": max(1.0, cpus // workers)} if not use_gpu else None,
        ),
        run_config=RunConfig(
            name="run",
            storage_path=str(Path(storage).resolve()),
            checkpoint_config=CheckpointConfig(num_to_keep=2),
        ),
    )
    done = threading.Event()

    def pump() -> None:
        while not done.is_set() or not progress.empty():
            try:
                step, loss = progress.get(timeout=0.2)
            except Exception:  # queue.Empty, or the queue actor already gone at the end
                continue
            if on_step is not None:
                on_step(step, loss)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        result = trainer.fit()
    finally:
        done.set()
        reader.join(5)
        ray.kill(progress.actor)  # type: ignore[arg-type]
    assert result.checkpoint is not None, "the last step always reports a checkpoint"
    with result.checkpoint.as_directory() as folder:
        partial = Path(out).with_name(Path(out).name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(Path(folder) / "adapter", partial)
        for name in partial.iterdir():
            target = Path(out) / name.name
            if target.exists():
                target.unlink()
            name.replace(target)
        partial.rmdir()
    return dict(result.metrics or {})


def _train_loop(config: dict[str, Any]) -> None:
    """One Ray Train worker: its shard of the examples, LoRA on the base, checkpoints."""
    import os

    import ray.train
    import torch
    from peft import set_peft_model_state_dict
    from peft.utils import get_peft_model_state_dict
    from ray.train import Checkpoint

    from orchestrator.engines.base import Message
    from orchestrator.training import _pad, _tokenize, answer_loss, lora_model

    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    settings = LoraSettings(
        **{**config["settings"], "target_modules": tuple(config["settings"]["target_modules"])}
    )
    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
    torch.manual_seed(settings.seed)
    tokenizer, model = lora_model(config["base"], settings)
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=settings.learning_rate
    )
    start = 0
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            state = torch.load(Path(folder) / "state.pt", weights_only=False)
        set_peft_model_state_dict(model, state["adapter"])
        optimizer.load_state_dict(state["optimizer"])
        start = int(state["step"])
    peft_model = model
    model = ray.train.torch.prepare_model(model)
    examples = [
        Example(tuple(Message(**m) for m in messages), answer)
        for messages, answer in config["examples"]
    ]
    rows = [_tokenize(tokenizer, e) for e in examples][rank::world]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    model.train()
    loss_value = float("nan")
    for step in range(start + 1, settings.steps + 1):
        # Batches depend on (seed, step, rank) only: a resumed run sees the same ones.
        generator = torch.Generator().manual_seed(settings.seed * 100_003 + step * 97 + rank)
        picks = torch.randint(
            len(rows), (min(settings.batch_size, len(rows)),), generator=generator
        )
        loss = answer_loss(torch, model, _pad(torch, [rows[int(i)] for i in picks], pad))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        loss_value = float(loss.detach())
        if rank == 0:
            config["progress"].put((step, loss_value))
        if step % config["checkpoint_every"] == 0 or step == settings.steps:
            metrics = {"step": step, "loss": loss_value, "resumed_from": start, "workers": world}
            with tempfile.TemporaryDirectory() as folder:
                saved = None
                if rank == 0:
                    torch.save(
                        {
                            "adapter": get_peft_model_state_dict(peft_model),
                            "optimizer": optimizer.state_dict(),
                            "step": step,
                        },
                        Path(folder) / "state.pt",
                    )
                    peft_model.save_pretrained(str(Path(folder) / "adapter"))
                    saved = Checkpoint.from_directory(folder)
                ray.train.report(metrics, checkpoint=saved)
