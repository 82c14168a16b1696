"""``cadre specialize``: fine-tune a specialist's LoRA adapter as a Ray Train job."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from orchestrator.cli_common import CatalogOption, load, out
from orchestrator.errors import InputError


def register(app: typer.Typer) -> None:
    app.command()(specialize)


def base_directory(catalog: Any, model_name: str) -> Path:
    """The HF-format directory a specialist's base model trains from (a packaged GGUF is
    prepared once, as `cadre models prepare` does)."""
    from orchestrator.models import prepare_hf, prepared_path

    model = catalog.model(model_name)
    weights = catalog.weights_path(model)
    if weights is not None and weights.is_dir():
        return Path(weights)
    if weights is not None and weights.suffix == ".gguf":
        return prepared_path(model.name) or prepare_hf(model, weights).path
    raise InputError(f"model {model.name!r} has no weights to train an adapter on")


def specialize(
    specialist: Annotated[str, typer.Argument(help="The specialist to fine-tune.")],
    data: Annotated[Path, typer.Option("--data", help="Training examples (JSONL).")],
    steps: Annotated[int, typer.Option(min=1, help="Optimizer steps.")] = 60,
    rank: Annotated[int, typer.Option(min=1, help="LoRA rank.")] = 8,
    learning_rate: Annotated[float, typer.Option("--lr", help="Learning rate.")] = 1e-3,
    batch_size: Annotated[int, typer.Option("--batch", min=1, help="Examples per step.")] = 4,
    seed: Annotated[int, typer.Option(help="Seed for the adapter and the batches.")] = 0,
    workers: Annotated[int, typer.Option(min=1, help="Ray Train workers (data parallel).")] = 1,
    use_gpu: Annotated[bool, typer.Option("--use-gpu", help="One GPU per worker.")] = False,
    checkpoint_every: Annotated[int, typer.Option(min=1, help="Steps between checkpoints.")] = 10,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the last unfinished training of this data.")
    ] = False,
    catalog: CatalogOption = None,
) -> None:
    """Fine-tune a LoRA adapter for SPECIALIST on its base model; the result is a new version
    in the adapter registry (.cadre/adapters/SPECIALIST/vN), never overwriting an earlier one."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from orchestrator.calls import build_request
    from orchestrator.specialize.data import data_hash, load_examples
    from orchestrator.specialize.registry import Registry
    from orchestrator.training import Example, LoraSettings

    loaded = load(catalog)
    spec = loaded.specialist(specialist)
    labeled = load_examples(data, spec)  # every bad line reported before anything starts
    settings = LoraSettings(
        steps=steps, rank=rank, alpha=2 * rank, learning_rate=learning_rate,
        batch_size=batch_size, seed=seed,
    )  # fmt: skip
    base = base_directory(loaded, spec.model)
    examples = [
        Example(build_request(spec, e.input).messages, json.dumps(e.output)) for e in labeled
    ]
    registry = Registry()
    meta = {
        "specialist": spec.name,
        "base_model": spec.model,
        "base_path": str(base.resolve()),
        "data": str(data),
        "data_hash": data_hash(data),
        "examples": len(examples),
        "settings": {k: v for k, v in vars(settings).items() if k != "target_modules"},
        "target_modules": list(settings.target_modules),
        "workers": workers,
        "use_gpu": use_gpu,
    }
    version = None
    if resume:
        unfinished = [
            v
            for v in registry.versions(spec.name)
            if not v.complete
            and v.meta.get("data_hash") == meta["data_hash"]
            and v.meta.get("settings") == meta["settings"]
        ]
        if not unfinished:
            raise InputError(
                f"{spec.name}: no unfinished training of {data} with these settings to resume"
            )
        version = unfinished[-1]
        out.print(f"{spec.name} {version.name}: resuming from its last checkpoint")
    else:
        version = registry.claim(spec.name, meta)
    started = time.perf_counter()
    losses: list[float] = []
    from orchestrator.hosting.train import fit

    with Progress(
        TextColumn(f"[bold]{spec.name} {version.name}[/bold]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TimeElapsedColumn(),
        console=out,
    ) as bar:
        task = bar.add_task("train", total=steps, loss="-")

        def on_step(step: int, loss: float) -> None:
            losses.append(loss)
            bar.update(task, completed=step, loss=f"{loss:.3f}")

        metrics = fit(
            base,
            examples,
            version.path,
            settings,
            version.path / "train",
            workers=workers,
            use_gpu=use_gpu,
            checkpoint_every=checkpoint_every,
            on_step=on_step,
        )
    seconds = time.perf_counter() - started
    registry.update_meta(
        version,
        trained_at=time.time(),
        train={
            "final_loss": metrics.get("loss"),
            "steps": metrics.get("step"),
            "resumed_from": metrics.get("resumed_from", 0),
            "seconds": round(seconds, 1),
            "first_loss": losses[0] if losses else None,
        },
    )
    first = f"{losses[0]:.3f} -> " if losses else ""
    out.print(
        f"{spec.name} {version.name}: {metrics.get('step')} steps on {len(examples)} examples, "
        f"loss {first}{metrics.get('loss', float('nan')):.3f}, {seconds:.0f} s; adapter at "
        f"{version.path}. Next: cadre eval {spec.name} --data HELDOUT.jsonl"
    )
