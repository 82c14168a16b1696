"""The ``cadre`` app: its root commands (ask, validate, models, specialists) and ``main``.

Heavy imports (ray, engines) happen inside the commands that need them, so ``cadre --help`` and
``cadre validate`` stay fast. Every CadreError is shown as its message, never as a traceback, with
exit code 2 for the user's mistakes and 1 for failed work.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from orchestrator import __version__, config
from orchestrator.catalog.specs import ModelSpec
from orchestrator.cli.common import (
    CatalogOption,
    GraphsOption,
    err,
    load,
    load_specs,
    out,
    visible,
)
from orchestrator.errors import CadreError, InputError, UserError, clip, unfit_json

if TYPE_CHECKING:
    from orchestrator.catalog import SpecialistCatalog

app = typer.Typer(
    name="cadre",
    help="Run teams of small specialist language models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",  # a docstring's lines run on as one paragraph (rich kept them)
)
specialists_app = typer.Typer(help="Look at the specialist catalog.", no_args_is_help=True)
app.add_typer(specialists_app, name="specialists")


def _version(value: bool) -> None:
    if value:
        out.print(f"cadre {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """Run teams of small specialist language models."""
    wrong = config.problems()
    if wrong:
        raise UserError("; ".join(wrong))


@app.command()
def validate(catalog: CatalogOption = None, graphs: GraphsOption = None) -> None:
    """Check the whole catalog and every workflow; report every problem (exit 2 if any)."""
    loaded = load(catalog, graphs)
    out.print(
        f"[green]ok[/green]: {len(loaded.models)} models, {len(loaded.specialists)} specialists, "
        f"{len(loaded.workflows)} workflows"
    )
    if not loaded.workflows:
        folder = graphs or config.graphs_root(catalog or config.catalog_root())
        why = "has no *.yaml files" if Path(folder).is_dir() else "does not exist"
        err.print(f"warning: no workflows checked: {folder} {why} (--graphs names the folder)")


@specialists_app.command("list")
def specialists_list(catalog: CatalogOption = None) -> None:
    """Every specialist: its engine, adapter, the host that serves it (named after its model),
    and its job.

    Specialists on one model share that model's hosts; with the vllm engine, adapter
    specialists are LoRA requests on the one shared base."""
    loaded = load_specs(catalog)
    # Names whole; the rest folds to fit 80 columns rather than be cut off at the edge.
    table = Table(box=None, pad_edge=False, padding=(0, 2, 0, 0))
    for column in ("specialist", "engine", "adapter", "host", "tools"):
        table.add_column(column, no_wrap=column == "specialist", overflow="fold")
    table.add_column("description", ratio=1, overflow="fold")
    for spec in sorted(loaded.specialists.values(), key=lambda s: s.name):
        model = loaded.model(spec.model)
        table.add_row(
            spec.name,
            model.engine,
            Path(spec.adapter).name if spec.adapter else "-",
            host_label(model),
            ", ".join(spec.tools) or "-",
            visible(spec.description),
        )
    out.print(table)


def host_label(model: ModelSpec) -> str:
    """The model's host actors and what Ray places them by, e.g. ``m-0..1 (gpu 0.5)``."""
    replicas = model.hosting.replicas
    names = f"{model.name}-0" + (f"..{replicas - 1}" if replicas > 1 else "")
    return f"{names} ({placement(model)})" if placement(model) else names


def placement(model: ModelSpec) -> str:
    """The Ray resources one host of ``model`` asks for, e.g. ``gpu 0.5, node_a 1``."""
    hosting = model.hosting
    asks = {"cpu": hosting.num_cpus, "gpu": hosting.num_gpus, **hosting.resources}
    return ", ".join(f"{k} {v:g}" for k, v in asks.items() if v)


@specialists_app.command("show")
def specialists_show(
    name: Annotated[str, typer.Argument(help="Specialist name.")],
    catalog: CatalogOption = None,
) -> None:
    """One specialist in full, each field with what it means."""
    from orchestrator.catalog.specs import SpecialistSpec

    loaded = load_specs(catalog)
    spec = loaded.specialist(name)
    out.print(f"[bold]{spec.name}[/bold]  ({loaded.sources[('specialist', spec.name)]})")
    data = spec.model_dump(mode="json")
    for field_name, info in SpecialistSpec.model_fields.items():
        value = data[field_name]
        shown = value if isinstance(value, str) else json.dumps(value, indent=2)
        out.print(f"\n[cyan]{field_name}[/cyan] [dim]- {info.description}[/dim]")
        if shown in ("", "null", "[]", "{}"):
            out.print("[dim](none)[/dim]")
        else:
            out.print(shown, markup=False)


models_app = typer.Typer(help="Look at models and prepare their weights.", no_args_is_help=True)
app.add_typer(models_app, name="models")


@models_app.command("list")
def models_list(catalog: CatalogOption = None) -> None:
    """Every model: engine, where its weights are, context length, hosting."""
    loaded = load_specs(catalog)
    table = Table()
    for column in ("model", "engine", "weights", "context", "replicas", "resources"):
        table.add_column(column, no_wrap=column == "model")
    for model in sorted(loaded.models.values(), key=lambda m: m.name):
        table.add_row(
            model.name,
            model.engine,
            str(loaded.weights_path(model) or "-"),
            str(model.context_length),
            str(model.hosting.replicas),
            placement(model),
        )
    out.print(table)


@models_app.command("prepare")
def models_prepare(
    name: Annotated[str, typer.Argument(help="Model to prepare.")],
    to: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--out", help="Directory to write (default: .cadre/models/NAME)."),
    ] = None,
    catalog: CatalogOption = None,
) -> None:
    """Turn a model's packaged GGUF file into an HF-format directory (what vLLM loads)."""
    from orchestrator.catalog.weights import prepare_hf

    loaded = load_specs(catalog)
    model = loaded.model(name)
    prepared = prepare_hf(model, loaded.weights_path(model), to)
    verb = "prepared" if prepared.made else "already prepared"
    out.print(f"{model.name}: {verb} at {prepared.path} ({prepared.seconds:.1f} s)")


def _stdin_text() -> str:
    """Standard input as text: at most MAX_INPUT_BYTES, and UTF-8 (refused before anything
    starts, where it used to reach the engine and fail there)."""
    from orchestrator.cli.inputs import MAX_INPUT_BYTES

    data = sys.stdin.buffer.read(MAX_INPUT_BYTES + 1)
    if len(data) > MAX_INPUT_BYTES:
        raise InputError(
            f"standard input holds more than {MAX_INPUT_BYTES // (1024 * 1024)} MB; give a "
            "shorter text (it has to fit the model's context)"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InputError(
            f"standard input is not UTF-8 text (byte {err.start + 1} is not)"
        ) from None


@app.command()
def ask(
    name: Annotated[str, typer.Argument(help="Specialist to ask.")],
    text: Annotated[str, typer.Argument(help="The input text; - reads it from standard input.")],
    catalog: CatalogOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead.")] = False,
) -> None:
    """Ask one specialist: one call through its Ray-hosted model, answer checked by its schema."""
    if text == "-":
        text = _stdin_text()
    elif (fault := unfit_json(text, "the input text")) is not None:
        raise InputError(f"{fault[0]} {fault[1]}")  # half a character from the shell
    loaded = load_specs(catalog)
    specialist = loaded.specialist(name)
    if not text.strip():
        raise InputError(
            f"specialist {name!r}: the input text is empty; give it something to work on"
        )
    answer, startup = asyncio.run(_ask(loaded, specialist.name, text))
    if as_json:
        record = {
            "specialist": answer.specialist,
            "output": answer.output,
            "usage": {"input_tokens": answer.input_tokens, "output_tokens": answer.output_tokens},
            "latency_s": round(answer.latency_s, 4),
            "model_time_s": round(answer.model_time_s, 4),
            "host": answer.host,
            "startup_s": round(startup, 3),
            "tool_calls": list(answer.tool_calls),
        }
        out.print_json(json.dumps(record))
        return
    for call in answer.tool_calls:  # what the specialist did on the way: side effects included
        args = json.dumps(call.get("args"), ensure_ascii=False)
        result = clip(json.dumps(call.get("result"), ensure_ascii=False), 200)
        out.print(f"[dim]called {call.get('tool')} {args} → {result}[/dim]", soft_wrap=True)
    out.print_json(json.dumps(answer.output))
    out.print(
        f"[dim]{answer.specialist} on {answer.model} ({answer.host}): "
        f"{answer.input_tokens} tokens in, {answer.output_tokens} out, "
        f"call {answer.latency_s * 1000:.0f} ms (model {answer.model_time_s * 1000:.0f} ms), "
        f"after {startup:.1f} s start-up (Ray, host, model load)[/dim]"
    )


async def _ask(catalog: SpecialistCatalog, name: str, text: str) -> Any:
    from orchestrator.hosting.pool import HostPool

    pool = HostPool(catalog)
    specialist = catalog.specialist(name)
    started = time.perf_counter()
    try:
        await pool.warm(specialist.model)
        if specialist.corpus:
            from orchestrator.memory.corpus import Corpora, retrieve_into
            from orchestrator.storage.database import Database

            corpora = Corpora(catalog.root / "corpora", Database())
            text = await retrieve_into(corpora, specialist.corpus, text)
        startup = time.perf_counter() - started
        if specialist.tools:
            from orchestrator.specialists.tool_loop import ask_with_tools
            from orchestrator.tools import ToolContext

            context = ToolContext(catalog_root=catalog.root)
            return await ask_with_tools(pool, specialist, text, context), startup
        return await pool.ask(name, text), startup
    finally:
        pool.shutdown()


from orchestrator.cli import (  # noqa: E402  (register their commands)
    memory,
    runs,
    serve,
    specialize,
    tenants,
)

runs.register(app)
memory.register(app)
serve.register(app)
specialize.register(app, specialists_app)
tenants.register(app)


def _flush_telemetry() -> None:
    """Export the spans this process made (bounded), if it made any."""
    if "orchestrator.telemetry" in sys.modules:
        sys.modules["orchestrator.telemetry"].shutdown()


def main() -> None:
    """Entry point: run the app, turning Cadre's errors into messages and exit codes."""
    try:
        app()
    except CadreError as error:
        err.print(f"[red]error:[/red] {escape(error.message)}", soft_wrap=True)
        raise SystemExit(error.exit_code) from None
    except KeyboardInterrupt:
        err.print("interrupted")
        raise SystemExit(130) from None
    finally:
        _flush_telemetry()
