"""``cadre serve`` (the REST API) and ``cadre keys`` (its API keys)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from orchestrator.cli_common import CatalogOption, GraphsOption, load, out

keys_app = typer.Typer(
    help="API keys for `cadre serve`: create, list, revoke.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.command()(submit)
    app.add_typer(keys_app, name="keys")


def absolute_database_url(url: str | None = None) -> str:
    """The run database URL with a SQLite path made absolute (workers run elsewhere)."""
    from orchestrator.storage.database import database_url

    url = url or database_url()
    if url.startswith("sqlite:///"):
        return "sqlite:///" + str(Path(url.removeprefix("sqlite:///")).resolve())
    return url


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Ray run workers to start or reuse.")] = 2,
    rate: Annotated[float, typer.Option(help="Requests per second allowed per key.")] = 50.0,
    burst: Annotated[int, typer.Option(help="Requests a key may make at once.")] = 100,
    max_body: Annotated[int, typer.Option(help="Largest request body, in bytes.")] = 1_048_576,
    catalog: CatalogOption = None,
    graphs: GraphsOption = None,
) -> None:
    """Serve the REST API (and the reviewer page at /review). Runs go to Ray run workers."""
    import uvicorn

    from orchestrator.api.app import Settings, create_app
    from orchestrator.catalog import default_graphs, default_root
    from orchestrator.hosting.workers import RunWorkers

    loaded = load(catalog, graphs)
    root = (catalog or default_root()).resolve()
    graphs_root = (graphs or default_graphs(root)).resolve()
    url = absolute_database_url()
    pool = RunWorkers(root, graphs_root, url, workers)
    settings = Settings(
        catalog=loaded,
        database_url=url,
        max_body_bytes=max_body,
        rate_per_s=rate,
        burst=burst,
        hand=pool.hand,
    )
    requeued = requeue(url, pool.hand)
    out.print(
        f"cadre API on http://{host}:{port} (docs at /docs, reviewer page at /review); "
        f"{workers} run workers; {requeued} waiting runs handed to them"
    )
    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")


def requeue(url: str, hand: object) -> int:
    """Hand every run still queued, and every run with decisions not yet applied and no one
    driving it, to a worker (after a crash or a restart, nothing waits forever)."""
    from orchestrator.storage.database import Database

    db = Database(url)
    try:
        from orchestrator.runs.store import RunStore

        RunStore(db)  # make sure the tables exist
        queued = db.query("SELECT id FROM cadre_runs WHERE status = 'queued'")
        decided = db.query(
            "SELECT DISTINCT v.run_id AS id FROM cadre_reviews v JOIN cadre_runs r "
            "ON r.id = v.run_id WHERE v.status = 'decided' AND r.owner IS NULL"
        )
    finally:
        db.close()
    for row in queued:
        hand(row["id"], "drive")  # type: ignore[operator]
    for row in decided:
        hand(row["id"], "apply")  # type: ignore[operator]
    return len(queued) + len(decided)


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option(help="The tenant the key acts for.")],
    role: Annotated[str, typer.Option(help="submitter, reviewer or admin.")],
    name: Annotated[str, typer.Option(help="Who holds it (shown in review audits).")] = "",
) -> None:
    """Create an API key. The key is printed once; only its hash is stored."""
    from orchestrator.api.keys import KeyStore
    from orchestrator.storage.database import Database

    key, secret = KeyStore(Database()).create(tenant, role, name)
    out.print(f"{secret}", soft_wrap=True)
    typer.echo(f"key {key.id}: {key.name}, tenant {key.tenant}, role {key.role}", err=True)


@keys_app.command("list")
def keys_list(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's keys.")] = None,
) -> None:
    """API keys (never their secrets)."""
    from orchestrator.api.keys import KeyStore
    from orchestrator.storage.database import Database

    table = Table()
    for column in ("key", "tenant", "role", "name", "revoked"):
        table.add_column(column, no_wrap=True)
    for key in KeyStore(Database()).all(tenant):
        table.add_row(key.id, key.tenant, key.role, key.name, "yes" if key.revoked_at else "-")
    out.print(table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key id (see `keys list`).")],
) -> None:
    """Revoke a key: requests with it get 401 from now on."""
    from orchestrator.api.keys import KeyStore
    from orchestrator.storage.database import Database

    key = KeyStore(Database()).revoke(key_id)
    out.print(f"revoked key {key.id} ({key.name})")


def submit(
    workflow: Annotated[str, typer.Argument(help="Workflow to run.")],
    input: Annotated[
        str, typer.Option("--input", "-i", help="Run input: a JSON file or inline JSON.")
    ],
    address: Annotated[
        str,
        typer.Option(
            "--address",
            envvar="RAY_JOB_ADDRESS",
            help="The Ray cluster's job server (dashboard) address.",
        ),
    ] = "http://127.0.0.1:8265",
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Stream the job's log.")] = False,
    catalog: CatalogOption = None,
    graphs: GraphsOption = None,
) -> None:
    """Submit a run as a Ray job (the working directory travels with it)."""
    from orchestrator.catalog import default_graphs, default_root
    from orchestrator.cli_runs import checked_input
    from orchestrator.hosting import jobs

    loaded = load(catalog, graphs)
    spec, data = checked_input(loaded, workflow, input)  # refused before it reaches the cluster
    root = catalog or default_root()
    submitted = jobs.submit_run(
        address,
        spec.name,
        data,
        Path.cwd(),
        root,
        graphs or default_graphs(root),
        absolute_database_url(),
    )
    out.print(f"submitted job {submitted.job_id} to {address}")
    if not follow:
        out.print(f"follow it: ray job logs --follow --address {address} {submitted.job_id}")
        return
    status = jobs.follow(submitted, lambda text: typer.echo(text, nl=False))
    out.print(f"job {submitted.job_id}: {status}")
    if status != "SUCCEEDED":
        raise typer.Exit(1)
