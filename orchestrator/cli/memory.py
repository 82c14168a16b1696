"""CLI commands for retrieval and memory: ``corpus index|search`` and ``memory search``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, cast, get_args

import typer
from rich.markup import escape
from rich.table import Table

from orchestrator.cli.common import CatalogOption, err, load, out

if TYPE_CHECKING:
    from orchestrator.memory.corpus import Corpora

corpus_app = typer.Typer(
    help="Index and search the document corpora specialists retrieve from.", no_args_is_help=True
)
memory_app = typer.Typer(help="Look into shared memory.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(corpus_app, name="corpus")
    app.add_typer(memory_app, name="memory")


def _corpora(catalog: Path | None) -> Corpora:
    from orchestrator.memory.corpus import Corpora
    from orchestrator.storage.database import Database

    return Corpora(load(catalog).root / "corpora", Database())


@corpus_app.command("index")
def corpus_index(
    name: Annotated[str, typer.Argument(help="Corpus (a folder under agents/corpora/).")],
    catalog: CatalogOption = None,
) -> None:
    """Chunk, embed and index a corpus; only files that changed since the last run."""
    report = _corpora(catalog).index(name)
    out.print(
        f"{name}: {report.added} added, {report.updated} updated, {report.removed} removed, "
        f"{report.unchanged} unchanged files; {report.chunks} chunks embedded "
        f"in {report.seconds:.1f} s"
    )
    for why in report.skipped:
        err.print(f"[yellow]skipped[/yellow] {escape(why)}")


@corpus_app.command("search")
def corpus_search(
    name: Annotated[str, typer.Argument(help="Corpus to search.")],
    query: Annotated[str, typer.Argument(help="What to look for.")],
    k: Annotated[int, typer.Option("--k", min=1, max=50, help="How many passages.")] = 3,
    mode: Annotated[
        str, typer.Option(help="dense (by meaning), bm25 (by words) or hybrid.")
    ] = "dense",
    catalog: CatalogOption = None,
) -> None:
    """The passages of a corpus that best match a query, with their sources."""
    from orchestrator.errors import InputError
    from orchestrator.memory.corpus import Mode

    if mode not in get_args(Mode):
        raise InputError(f"--mode {mode!r}: use dense, bm25 or hybrid")
    found = _corpora(catalog).search(name, query, k, cast(Mode, mode))
    for i, passage in enumerate(found, 1):
        out.print(f"[bold][{i}] {passage.source}[/bold]  [dim]score {passage.score}[/dim]")
        out.print(escape(passage.text) + "\n")


@memory_app.command("search")
def memory_search(
    query: Annotated[str, typer.Argument(help="What to look for, by meaning.")],
    tenant: Annotated[str, typer.Option(help="Whose memory.")] = "default",
    limit: Annotated[int, typer.Option(min=1, max=100, help="How many records.")] = 5,
) -> None:
    """Search a tenant's shared memory (facts and run summaries) by meaning."""
    from orchestrator.errors import InputError
    from orchestrator.memory.store import SqlStore
    from orchestrator.runs.budget import check_tenant
    from orchestrator.storage.database import Database

    check_tenant(tenant)
    if not query.strip():
        raise InputError("memory search: the query is empty")
    found = SqlStore(Database()).search(("tenant", tenant), query=query, limit=limit)
    table = Table()
    for column in ("score", "namespace", "text", "provenance"):
        table.add_column(column)
    for item in found:
        table.add_row(
            f"{item.score:.3f}",
            "/".join(item.namespace[2:]),
            str(item.value.get("text", "")),
            ", ".join(f"{k}={v}" for k, v in item.value.get("provenance", {}).items()),
        )
    out.print(table)
