"""Ray Train wiring for LoRA fine-tuning: the same job on this laptop's CPU and on GPU workers.

:func:`fit` runs a ``TorchTrainer`` with ``workers`` data-parallel workers (DDP when more than
one; ``use_gpu`` puts each on a GPU), each running the loop it is handed (the one training loop
lives in :mod:`orchestrator.specialize.training`). The loop reports checkpoints (the adapter
weights, the optimizer and the step) to the run's storage; a run stopped for any reason continues
from its latest checkpoint when :func:`fit` is called again with the same storage folder (Ray
Train restores a run by its name and storage path). Progress (step, loss) reaches the caller
through a Ray queue the loop finds in its config as ``progress``. The finished adapter comes back
in the final checkpoint's ``adapter/`` folder, so it works on a cluster whose workers do not
share this machine's disk.
"""

from __future__ import annotations

import functools
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import ray

from orchestrator.hosting.runtime import ensure_ray

ADAPTER = "adapter"
"""The folder of a checkpoint that holds the adapter :func:`fit` writes out at the end."""
T = TypeVar("T")


@dataclass
class TrainSession:
    """What a training loop on one Ray Train worker is given, so that it needs no Ray itself."""

    rank: int
    world: int
    _progress: Any
    """The Ray queue that carries (step, loss) to the caller."""

    def restore(self, read: Callable[[Path], T]) -> T | None:
        """``read(folder)`` of the latest checkpoint this run reported, or None on a fresh run."""
        import ray.train

        checkpoint = ray.train.get_checkpoint()
        if checkpoint is None:
            return None
        with checkpoint.as_directory() as folder:
            return read(Path(folder))

    def prepare_model(self, model: Any) -> Any:
        """The model wrapped for data-parallel training (DDP with more than one worker)."""
        import ray.train.torch

        return ray.train.torch.prepare_model(model)

    def progress(self, step: int, loss: float) -> None:
        """Tell the caller how training goes (the first worker speaks for all)."""
        if self.rank == 0:
            self._progress.put((step, loss))

    def report(self, metrics: dict[str, Any], write: Callable[[Path], None]) -> None:
        """Report metrics, with a checkpoint the first worker writes with ``write(folder)``; the
        folder's ``adapter/`` is what :func:`fit` writes out at the end."""
        import ray.train
        from ray.train import Checkpoint

        with tempfile.TemporaryDirectory() as folder:
            saved = None
            if self.rank == 0:
                write(Path(folder))
                saved = Checkpoint.from_directory(folder)
            ray.train.report(metrics, checkpoint=saved)


def _on_worker(
    loop: Callable[[TrainSession, dict[str, Any]], None], config: dict[str, Any]
) -> None:
    import ray.train

    context = ray.train.get_context()
    session = TrainSession(context.get_world_rank(), context.get_world_size(), config["progress"])
    loop(session, config)


def fit(
    loop: Callable[[TrainSession, dict[str, Any]], None],
    loop_config: dict[str, Any],
    out: Path,
    storage: Path,
    *,
    workers: int = 1,
    use_gpu: bool = False,
    on_step: Callable[[int, float], None] | None = None,
) -> dict[str, Any]:
    """Run ``loop(session, config)`` on each worker and write the adapter of its last checkpoint to
    ``out``; returns the final metrics the loop reported."""
    from ray.train import CheckpointConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer
    from ray.util.queue import Queue

    ensure_ray()
    cpus = ray.cluster_resources().get("CPU", 1)  # type: ignore[no-untyped-call]
    progress: Queue = Queue(actor_options={"num_cpus": 0})
    trainer = TorchTrainer(
        functools.partial(_on_worker, loop),
        train_loop_config={**loop_config, "progress": progress},
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
        shutil.copytree(Path(folder) / ADAPTER, partial)
        for name in partial.iterdir():
            target = Path(out) / name.name
            if target.exists():
                target.unlink()
            name.replace(target)
        partial.rmdir()
    return dict(result.metrics or {})
