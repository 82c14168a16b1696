"""``cadre specialize``: fine-tune a specialist's LoRA adapter as a Ray Train job."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from orchestrator import config
from orchestrator.cli.common import CatalogOption, load_specs, out
from orchestrator.errors import InputError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from rich.table import Table

    from orchestrator.catalog import SpecialistCatalog
    from orchestrator.catalog.specs import SpecialistSpec
    from orchestrator.specialize.evaluate import Condition


def register(app: typer.Typer, specialists_app: typer.Typer) -> None:
    app.command()(specialize)
    app.command("eval")(evaluate)
    specialists_app.command("promote")(promote)
    specialists_app.command("rollback")(rollback)
    specialists_app.command("versions")(versions_list)


def base_directory(catalog: SpecialistCatalog, model_name: str) -> Path:
    """The HF-format directory a specialist's base model trains from (a packaged GGUF is
    prepared once, as `cadre models prepare` does)."""
    from orchestrator.catalog.weights import prepare_hf, prepared_path

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
    steps: Annotated[int, typer.Option(min=1, help="Optimizer steps.")] = 30,
    rank: Annotated[int, typer.Option(min=1, help="LoRA rank.")] = 8,
    learning_rate: Annotated[float, typer.Option("--lr", help="Learning rate.")] = 3e-3,
    batch_size: Annotated[
        int, typer.Option("--batch", min=1, help="Examples per step, per worker.")
    ] = 4,
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

    from orchestrator.specialists.calls import build_request
    from orchestrator.specialize.data import as_served, data_hash, load_examples
    from orchestrator.specialize.registry import Registry
    from orchestrator.specialize.training import (
        Example,
        LoraSettings,
        require_training_stack,
        train_on_ray,
    )

    loaded = load_specs(catalog)
    spec = loaded.specialist(specialist)
    labeled = load_examples(data, spec)  # every bad line reported before anything starts
    require_training_stack(ray_train=True)
    settings = LoraSettings(
        steps=steps, rank=rank, alpha=2 * rank, learning_rate=learning_rate,
        batch_size=batch_size, seed=seed,
    )  # fmt: skip
    registry = Registry()
    settings_meta = {k: v for k, v in vars(settings).items() if k != "target_modules"}
    digest = data_hash(data)
    unfinished = [
        v
        for v in registry.versions(spec.name)
        if not v.complete
        and v.meta.get("data_hash") == digest
        and v.meta.get("settings") == settings_meta
        and v.meta.get("retrieval") == spec.corpus
    ]
    if resume and not unfinished:  # said before the base model is written out (517 MB)
        raise InputError(
            f"{spec.name}: no unfinished training of {data} with these settings to resume"
        )
    base = base_directory(loaded, spec.model)
    # Trained on what it will be asked when it serves: with retrieved passages, if it retrieves.
    inputs = as_served(spec, [e.input for e in labeled], loaded.root / "corpora")
    examples = [
        Example(build_request(spec, text).messages, json.dumps(e.output))
        for text, e in zip(inputs, labeled, strict=True)
    ]
    meta = {
        "specialist": spec.name,
        "base_model": spec.model,
        "base_path": str(base.resolve()),
        "data": str(data),
        "data_hash": digest,
        "examples": len(examples),
        "retrieval": spec.corpus,
        "settings": settings_meta,
        "target_modules": list(settings.target_modules),
        "workers": workers,
        "use_gpu": use_gpu,
    }
    version = None
    if resume:
        version = unfinished[-1]
        out.print(f"{spec.name} {version.name}: resuming from its last checkpoint")
    else:
        version = registry.claim(spec.name, meta)
    started = time.perf_counter()
    losses: list[float] = []
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

        metrics = train_on_ray(
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
            "workers": metrics.get("workers"),
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


def evaluate(
    specialist: Annotated[str, typer.Argument(help="The specialist to evaluate.")],
    data: Annotated[Path, typer.Option("--data", help="Held-out examples (JSONL).")],
    versions: Annotated[
        str | None,
        typer.Option(help="Adapter versions to score, e.g. v1,v3 (default: every trained one)."),
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N examples.")] = None,
    catalog: CatalogOption = None,
) -> None:
    """Score the base model (instructions only), the base with retrieval and few-shot examples
    (those the specialist has), its shipped adapter (if it names one), and each adapter
    version on held-out examples by the
    specialist's metric; print a table, write a plot, and record the scores in the registry
    (what `specialists promote` compares)."""
    from rich.table import Table

    from orchestrator.specialize.data import data_hash, load_examples
    from orchestrator.specialize.evaluate import evaluate as score_all
    from orchestrator.specialize.evaluate import report
    from orchestrator.specialize.metrics import majority
    from orchestrator.specialize.registry import Registry

    loaded = load_specs(catalog)
    spec = loaded.specialist(specialist)
    examples = load_examples(data, spec, minimum=1)[:limit]
    registry = Registry()
    chosen = [v for v in registry.versions(spec.name) if v.complete]
    if versions:
        wanted = [name.strip() for name in versions.split(",") if name.strip()]
        chosen = [registry.version(spec.name, name) for name in wanted]
    model = loaded.model(spec.model)
    weights = loaded.weights_path(model) if model.engine == "llamacpp" else None
    weights = weights or base_directory(loaded, spec.model)
    chosen_paths = [(v.name, str(v.path)) for v in chosen]
    shipped = loaded.declared_adapter(spec)
    rows = score_all(spec, model, weights, examples, chosen_paths, loaded.root / "corpora", shipped)
    digest = data_hash(data)
    metric = spec.evaluation.metric
    label = f"{metric}" + (f" ({spec.evaluation.label})" if spec.evaluation.label else "")
    table = Table(title=f"{spec.name} on {len(examples)} held-out examples from {data}")
    columns = ("condition", label, "schema-valid", "tokens in", "tokens out", "wall ms/example")
    for column in columns:
        table.add_column(column, justify="left" if column == "condition" else "right")
    summaries = [r.summary() for r in rows]
    for s in summaries:
        table.add_row(
            s["condition"],
            f"{s['score']:.3f}",
            f"{s['schema_valid']:.0%}",
            f"{s['input_tokens']:.0f}",
            f"{s['output_tokens']:.1f}",
            f"{s['seconds'] * 1000:.0f}",
        )
    out.print(table)
    by_field = field_table(spec, rows)
    if by_field is not None:
        out.print(by_field)
    expected = [e.output for e in examples]
    floor = majority(spec.evaluation, expected)
    if floor:
        out.print(
            f"Always answering the most common label ({spec.evaluation.label} = {floor[0]}) "
            f"would score {floor[1]:.3f}: a classifier has to beat that to have learned anything."
        )
    # What serves now when no version is live: the specialist as declared (its shipped adapter,
    # or its retrieval and few-shot examples, whichever it has). A first version has to beat
    # that to go live.
    fixed = len(rows) - len(chosen)
    baselines, adapters = summaries[:fixed], summaries[fixed:]
    served = baselines[-1]
    base_score = {metric: {"score": served["score"], "data": digest, "as": served["condition"]}}
    for version, s in zip(chosen, adapters, strict=True):
        scored = {"score": s["score"], "data": digest, "n": s["n"], "at": time.time()}
        evals = {**(version.meta.get("eval") or {}), metric: scored, "base": base_score}
        if floor:
            evals["majority"] = {"label": floor[0], "score": floor[1], "data": digest}
        registry.update_meta(version, eval=evals)
    plot = report(spec, rows, expected, data, digest, config.evals_dir() / spec.name)
    out.print(f"plot: {plot}  (results beside it as JSON)")


def field_table(spec: SpecialistSpec, rows: Sequence[Condition]) -> Table | None:
    """Right answers per expected field and condition, when the examples expect more than one
    field: a metric that scores one label (ticket-triage's team) says nothing of the others."""
    from rich.table import Table

    names = list(dict.fromkeys(k for row in rows for k in row.right))
    if len(names) < 2:
        return None
    scored = spec.evaluation.label if spec.evaluation.metric == "exact_match" else None
    note = f"; the metric scores {scored} only" if scored else ""
    table = Table(title=f"right answers per field{note}")
    table.add_column("condition")
    for name in names:
        table.add_column(name + (" (scored)" if name == scored else ""), justify="right")
    for row in rows:
        counts = row.fields()
        cells = [f"{counts[n][0]}/{counts[n][1]}" if n in counts else "-" for n in names]
        table.add_row(row.name, *cells)
    return table


def promote(
    specialist: Annotated[str, typer.Argument(help="The specialist.")],
    version: Annotated[str, typer.Argument(help="The adapter version to make live, e.g. v2.")],
    force: Annotated[
        bool, typer.Option("--force", help="Go live even without a better score (recorded).")
    ] = False,
    who: Annotated[str | None, typer.Option("--as", help="Who decides (default: OS user).")] = None,
    catalog: CatalogOption = None,
) -> None:
    """Make an adapter version live: only if its eval beats the live one's (or the base
    model's) on the specialist's metric, on the same held-out data."""
    import getpass

    from orchestrator.specialize.registry import Registry

    spec = load_specs(catalog).specialist(specialist)
    made = Registry().promote(
        spec.name, version, spec.evaluation.metric, by=who or getpass.getuser(), force=force
    )
    why = Registry().history(spec.name)[-1]["why"]
    out.print(f"{spec.name}: {made.name} is live ({why})")
    evals = made.meta.get("eval") or {}
    floor = evals.get("majority") or {}
    scored = evals.get(spec.evaluation.metric) or {}
    same_data = bool(floor and scored and scored.get("data") == floor.get("data"))
    if same_data and scored["score"] <= floor["score"]:
        out.print(
            f"[yellow]note: {made.name} scores {scored['score']:.3f}, no better than always "
            f"answering {floor['label']!r} ({floor['score']:.3f}): it has not learned the job"
            "[/yellow]"
        )


def rollback(
    specialist: Annotated[str, typer.Argument(help="The specialist.")],
    who: Annotated[str | None, typer.Option("--as", help="Who decides (default: OS user).")] = None,
    catalog: CatalogOption = None,
) -> None:
    """Return to the adapter version live before the current one (or the bare base)."""
    import getpass

    from orchestrator.specialize.registry import Registry

    spec = load_specs(catalog).specialist(specialist)
    previous = Registry().rollback(spec.name, by=who or getpass.getuser())
    declared = f"its shipped adapter ({spec.adapter})" if spec.adapter else "the bare base model"
    out.print(f"{spec.name}: {previous.name if previous else declared} is live")


def versions_list(
    specialist: Annotated[str, typer.Argument(help="The specialist.")],
    catalog: CatalogOption = None,
) -> None:
    """Adapter versions of a specialist: training, scores, and which one is live."""
    from rich.table import Table

    from orchestrator.specialize.registry import Registry

    spec = load_specs(catalog).specialist(specialist)
    registry = Registry()
    live = registry.live(spec.name)
    metric = spec.evaluation.metric
    table = Table()
    for column in ("version", "live", "trained", "examples", "steps", "loss", metric, "base"):
        table.add_column(column)
    for v in registry.versions(spec.name):
        train = v.meta.get("train") or {}
        scored = (v.meta.get("eval") or {}).get(metric) or {}
        base = ((v.meta.get("eval") or {}).get("base") or {}).get(metric) or {}
        table.add_row(
            v.name,
            "live" if live and live.name == v.name else "",
            "yes" if v.complete else "unfinished",
            str(v.meta.get("examples", "")),
            str(train.get("steps", "")),
            f"{train['final_loss']:.3f}" if train.get("final_loss") is not None else "",
            f"{scored['score']:.3f}" if scored else "",
            f"{base['score']:.3f}" if base else "",
        )
    out.print(table)
