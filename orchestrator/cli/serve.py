"""``cadre serve`` (the REST API) and ``cadre keys`` (its API keys)."""

from __future__ import annotations

import errno
import functools
import socket
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from orchestrator import config
from orchestrator.cli.common import CatalogOption, GraphsOption, load, out, visible
from orchestrator.errors import UserError

if TYPE_CHECKING:
    from orchestrator.api.webhooks import Webhooks
    from orchestrator.runs.runner import Runner
    from orchestrator.runs.store import RunRecord
    from orchestrator.runs.worker import RunDriver

keys_app = typer.Typer(
    help="API keys for `cadre serve`: create, list, revoke.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.command()(submit)
    app.add_typer(keys_app, name="keys")


def absolute_database_url(url: str | None = None) -> str:
    """The run database URL with a SQLite path made absolute (workers run elsewhere)."""
    url = url or config.database_url()
    if url.startswith("sqlite:///"):
        return "sqlite:///" + str(Path(url.removeprefix("sqlite:///")).resolve())
    return url


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Ray run workers to start or reuse.")] = 2,
    runs_per_worker: Annotated[
        int, typer.Option(min=1, help="Runs each worker drives at once, on one event loop.")
    ] = config.RUNS_PER_WORKER,
    lease: Annotated[
        float,
        typer.Option(
            min=1.0,
            max=3600.0,
            help="Seconds a worker's claim on a run holds without renewal: how long a dead "
            "worker's runs wait before another worker takes them over.",
        ),
    ] = config.LEASE_S,
    max_queued: Annotated[
        int, typer.Option(min=1, help="Runs a tenant may have queued; more get 429.")
    ] = 10_000,
    rate: Annotated[
        float, typer.Option(min=0.01, max=1e6, help="Requests per second allowed per key.")
    ] = 50.0,
    burst: Annotated[
        int, typer.Option(min=1, max=1_000_000, help="Requests a key may make at once.")
    ] = 100,
    max_body: Annotated[
        int, typer.Option(min=1024, max=1 << 30, help="Largest request body, in bytes.")
    ] = 1_048_576,
    catalog: CatalogOption = None,
    graphs: GraphsOption = None,
) -> None:
    """Serve the REST API (and the reviewer page at /review). Runs are recorded in the run
    database, which Ray run workers claim them from."""
    import uvicorn

    from orchestrator.api.app import Settings, create_app
    from orchestrator.hosting.workers import RunWorkers
    from orchestrator.runs.worker import serve_in_thread

    loaded = load(catalog, graphs)
    listening = _bound(host, port)  # before Ray starts or the banner says it is up
    root = (catalog or config.catalog_root()).resolve()
    graphs_root = (graphs or config.graphs_root(root)).resolve()
    url = absolute_database_url()
    pool = RunWorkers(
        run_driver(root, graphs_root, url, runs_at_once=runs_per_worker, lease_s=lease),
        serve_in_thread,
        workers,
    )
    settings = Settings(
        catalog=loaded,
        database_url=url,
        max_body_bytes=max_body,
        rate_per_s=rate,
        burst=burst,
        wake=pool.wake,
        max_queued_per_tenant=max_queued,
    )
    waiting = waiting_runs(url)
    out.print(
        f"cadre API on http://{host}:{port} (docs at /docs, reviewer page at /review); "
        f"{workers} run workers, {runs_per_worker} runs each at once; "
        f"{waiting} {'run' if waiting == 1 else 'runs'} waiting for them"
    )
    server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning"))
    server.run(sockets=[listening])


def _bound(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port``, or UserError naming --host or --port (uvicorn found a
    port in use only after the banner and the run workers were up)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as err:
        raise UserError(f"--host {host!r}: not an address here ({err.strerror})") from None
    listening = socket.socket(family, kind, proto)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listening.bind(address)
    except OSError as err:
        listening.close()
        why = "is in use" if err.errno == errno.EADDRINUSE else f"cannot be used ({err.strerror})"
        raise UserError(
            f"--port {port}: {host}:{port} {why}; stop what holds it or give another --port"
        ) from None
    return listening


def run_driver(
    catalog_root: Path, graphs_root: Path | None, url: str, **options: Any
) -> Callable[[], RunDriver]:
    """What each run worker builds inside its actor: a driver of this catalog and database that
    tells the tenant's webhooks how each run went."""
    from orchestrator.runs.worker import RunDriver

    return functools.partial(
        RunDriver.from_paths,
        str(catalog_root),
        str(graphs_root) if graphs_root else None,
        url,
        on_settled=NotifyWebhooks(),
        **options,
    )


class NotifyWebhooks:
    """After a worker drove a run: the event its new status calls for, to the tenant's hooks.
    One :class:`~orchestrator.api.webhooks.Webhooks` per run database, made at the first run
    (making one checks the tables and looks for deliveries left pending)."""

    def __init__(self) -> None:
        self._hooks: Webhooks | None = None

    def __call__(self, runner: Runner, record: RunRecord) -> None:
        from orchestrator.api.webhooks import Webhooks

        if self._hooks is None or self._hooks.db is not runner.db:
            self._hooks = Webhooks(runner.db)
        self._hooks.notify(record, runner.store)


def waiting_runs(url: str) -> int:
    """Runs with work waiting and no live lease (the workers claim them as they start)."""
    from orchestrator.runs.queue import RunQueue
    from orchestrator.runs.store import RunStore
    from orchestrator.storage.database import Database

    db = Database(url)
    try:
        RunStore(db)  # make sure the tables exist
        return RunQueue(db).waiting()
    finally:
        db.close()


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

    keys = KeyStore(Database()).all(tenant)
    table = Table()
    # A key id is what `keys revoke` takes: it is printed whole however narrow the terminal.
    table.add_column("key", no_wrap=True, min_width=max((len(k.id) for k in keys), default=3))
    for column in ("tenant", "role", "name", "revoked"):
        table.add_column(column, overflow="fold")
    for key in keys:
        table.add_row(
            key.id, key.tenant, key.role, visible(key.name), "yes" if key.revoked_at else "-"
        )
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
    from orchestrator.cli.inputs import checked_input
    from orchestrator.hosting import jobs

    loaded = load(catalog, graphs)
    spec, data = checked_input(loaded, workflow, input)  # refused before it reaches the cluster
    root = catalog or config.catalog_root()
    submitted = jobs.submit_run(
        address,
        spec.name,
        data,
        Path.cwd(),
        root,
        graphs or config.graphs_root(root),
        absolute_database_url(),
    )
    out.print(f"submitted job {submitted.job_id} to {address}")
    if jobs.has_password(absolute_database_url()):
        out.print(
            "the run database URL has a password, so it was not sent with the job (Ray's "
            "dashboard shows a job's environment): the job uses the cluster's own "
            "CADRE_DATABASE_URL, set on its nodes from a secret"
        )
    if not follow:
        out.print(f"follow it: ray job logs --follow --address {address} {submitted.job_id}")
        return
    status = jobs.follow(submitted, lambda text: typer.echo(text, nl=False))
    out.print(f"job {submitted.job_id}: {status}")
    if status != "SUCCEEDED":
        raise typer.Exit(1)
