"""CLI commands for workflows: ``run``, ``runs``, ``review`` and ``graph``.

Kept apart from :mod:`orchestrator.cli` so each module reads in one sitting; the heavy parts
(LangGraph, Ray) are imported inside the commands.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import time
from pathlib import Path
from typing import Annotated, Any, Optional, get_args

import typer
from rich.markup import escape
from rich.table import Table

from orchestrator.cli.batch import DEFAULT_CONCURRENCY
from orchestrator.cli.common import CatalogOption, GraphsOption, err, load, out, visible
from orchestrator.cli.inputs import checked_input
from orchestrator.errors import CadreError, InputError, clip, person_name
from orchestrator.runs.store import RunStatus, RunStore, edited_by

runs_app = typer.Typer(help="List, inspect, resume and cancel runs.", no_args_is_help=True)
review_app = typer.Typer(help="Decide the reviews that runs are waiting for.", no_args_is_help=True)
graph_app = typer.Typer(help="Look at workflows.", no_args_is_help=True)

Reviewer = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option("--as", help="Who decides (default: your OS user name).", show_default=False),
]


STEPS_SHOWN = 40
"""The most steps `cadre runs show` lists on its nodes line."""


def register(app: typer.Typer) -> None:
    """Add the workflow commands to the main app."""
    app.command("run")(run)
    app.command("trace")(trace)
    app.add_typer(runs_app, name="runs")
    app.add_typer(review_app, name="review")
    app.add_typer(graph_app, name="graph")


def _store() -> Any:
    from orchestrator.runs.store import RunStore
    from orchestrator.storage.database import Database

    return RunStore(Database())


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"


def _step(
    node: str,
    keys: list[str] | tuple[str, ...],
    usage: dict[str, Any],
    when: str,
    tool_error: dict[str, Any] | None,
) -> None:
    """One finished node: what it wrote, its tokens, and its tool's error if the tool failed
    (marked ✗: the run goes on, to ``on_error`` if the node names one)."""
    name = node.replace("__", "·")
    tokens = ", ".join(
        f"{who} {u.get('input_tokens', 0)}→{u.get('output_tokens', 0)} tokens"
        for who, u in usage.items()
    )
    wrote = ", ".join(k for k in keys if k != "tool_error")
    detail = " · ".join(x for x in (f"→ {wrote}" if wrote else "", tokens) if x)
    mark = "[red]✗[/red]" if tool_error else "[green]✓[/green]"
    out.print(f"  {mark} {name:<20} [dim]{escape(detail)}  {when}[/dim]")
    if tool_error:
        out.print(
            f"    [red]tool error[/red] ({escape(str(tool_error.get('tool')))}): "
            f"{escape(str(tool_error.get('error')))}"
        )


def _progress(step: Any) -> None:
    _step(step.node, step.keys, step.usage, f"{step.elapsed_s:6.2f} s", step.tool_error)


def _runner(loaded: Any) -> Any:
    from orchestrator.runs.runner import Runner

    return Runner(loaded, on_progress=_progress)


def _report(record: Any, store: Any) -> None:
    """What a person needs after a run stops: its output, or how to decide what it waits for."""
    tokens = f"{record.input_tokens} tokens in, {record.output_tokens} out"
    if record.status == "succeeded":
        out.print(f"[green]run {record.id} succeeded[/green] [dim]({tokens})[/dim]")
        out.print_json(json.dumps(record.output))
    elif record.status == "awaiting_review":
        out.print(f"[yellow]run {record.id} is waiting for review[/yellow] [dim]({tokens})[/dim]")
        for review in store.reviews("pending", record.id):
            out.print(
                f"\n  review [bold]{review.id}[/bold]: "
                f"{escape(review.payload.get('title', review.node))}"
            )
            out.print(f"    cadre review show {review.id}")
            out.print(f"    cadre review approve {review.id}")
            out.print(f'    cadre review reject {review.id} --reason "..."')
            keys = review.payload.get("editable") or []
            if keys:
                out.print(f"    cadre review edit {review.id} --set {keys[0]}=...")
    else:
        out.print(
            f"run {record.id} is {record.status}"
            + (f": {escape(record.error)}" if record.error else "")
        )


def run(
    workflow: Annotated[str, typer.Argument(help="Workflow to run.")],
    input: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--input", "-i", help="Run input: a JSON file or inline JSON.", show_default=False
        ),
    ] = None,
    inputs: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            "--inputs",
            help="A JSON Lines file, one run input per line: run them all, --concurrency at a "
            "time, and write one JSON result line per input (line, run_id, status, then output, "
            "reviews or error), in the order runs stop. Each line is checked against the input "
            "schema as it is read (not all before the first starts): a bad line gets an "
            "`invalid` result and the others go on. Blank lines are skipped; a line may hold "
            "10 MB. Exit code 1 if any input failed or was invalid.",
            show_default=False,
        ),
    ] = None,
    concurrency: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option(
            "--concurrency",
            "-n",
            min=1,
            max=4096,
            help=f"With --inputs: runs driven at once (default {DEFAULT_CONCURRENCY}).",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            "--output",
            "-o",
            help="With --inputs: write the result lines to this file (default: standard output).",
            show_default=False,
        ),
    ] = None,
    catalog: CatalogOption = None,
    graphs: GraphsOption = None,
) -> None:
    """Run a workflow: progress per node as it happens, then the output or the pending review.
    With --inputs, one run per line of a JSON Lines file, many at once."""
    if input is not None and inputs is not None:
        raise InputError("give --input or --inputs, not both (one run, or one run per line)")
    if input is None and inputs is None:
        raise InputError("give the run input with --input, or a file of inputs with --inputs")
    if inputs is None and output is not None:
        raise InputError("--output goes with --inputs (one result line per input)")
    if inputs is None and concurrency is not None:
        raise InputError("--concurrency goes with --inputs (a single run is one run at a time)")
    loaded = load(catalog, graphs)
    if inputs is not None:
        from orchestrator.cli.batch import run_many

        counts = run_many(loaded, workflow, inputs, concurrency or DEFAULT_CONCURRENCY, output)
        if counts["failed"] or counts["invalid"]:
            raise typer.Exit(1)
        return
    assert input is not None
    spec, data = checked_input(loaded, workflow, input)
    out.print(f"run [bold]{spec.name}[/bold]: {escape(spec.description)}")

    started: list[str] = []

    def created(record: Any) -> None:
        started.append(record.id)  # said if the run is interrupted: its report has it otherwise

    async def go() -> Any:
        async with _runner(loaded) as runner:
            record = await runner.start(spec.name, data, on_created=created)
            _report(record, runner.store)

    try:
        asyncio.run(go())
    except KeyboardInterrupt:
        if started:  # the run stays recorded, and any driver may take it on
            err.print(
                f"interrupted: run {started[0]} was left where it was; "
                f"`cadre runs resume {started[0]}` goes on with it"
            )
        raise


@runs_app.command("list")
def runs_list(
    status: Annotated[Optional[str], typer.Option(help="Only runs with this status.")] = None,  # noqa: UP045
    workflow: Annotated[Optional[str], typer.Option(help="Only runs of this workflow.")] = None,  # noqa: UP045
    tenant: Annotated[Optional[str], typer.Option(help="Only this tenant's runs.")] = None,  # noqa: UP045
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="Most runs to show.")] = 20,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print run ids only.")] = False,
) -> None:
    """Recent runs, newest first."""
    if status is not None and status not in get_args(RunStatus):
        raise InputError(f"--status {status!r}: choose one of {', '.join(get_args(RunStatus))}")
    store = _store()
    if quiet:
        for record in store.runs(status, workflow, limit, tenant=tenant):
            out.print(record.id)
        return
    records = store.runs(status, workflow, limit, tenant=tenant)
    if not records:
        err.print("no runs" + (" that match" if status or workflow or tenant else " yet"))
        return
    # Ids, statuses, times and numbers whole at 80 columns; names fold rather than lose their
    # ends. The tenant column only when the runs are of more than one.
    tenants = len({r.tenant for r in records}) > 1
    columns = ["run", "workflow", *(["tenant"] if tenants else []), "status", "started"]
    table = Table(box=None, pad_edge=False, padding=(0, 1, 0, 0))
    for column in (*columns, "tokens", "reviews"):
        table.add_column(
            column,
            no_wrap=column not in ("workflow", "tenant"),
            overflow="fold",
            justify="right" if column in ("tokens", "reviews") else "left",
        )
    for record in records:
        pending = len(store.reviews("pending", record.id))
        table.add_row(
            record.id,
            record.workflow,
            *([record.tenant] if tenants else []),
            record.status,
            time.strftime("%m-%d %H:%M", time.localtime(record.created_at)),
            f"{record.input_tokens}/{record.output_tokens}",
            str(pending or "-"),
        )
    out.print(table)


@runs_app.command("show")
def runs_show(
    run_id: Annotated[str, typer.Argument(help="Run id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """One run: status, tokens per specialist, the nodes it ran, its reviews, output or error."""
    store = _store()
    record = store.run(run_id)
    reviews = store.reviews(None, run_id)
    events = store.events(run_id)
    if as_json:
        from orchestrator.runs.views import run_report

        out.print_json(run_report(store, record).model_dump_json())
        return
    out.print(f"[bold]{record.id}[/bold]  {record.workflow}  [bold]{record.status}[/bold]")
    out.print(f"started {_when(record.created_at)}   finished {_when(record.finished_at)}")
    for who, usage in record.usage.items():
        u = {k: usage.get(k, 0) for k in ("calls", "input_tokens", "output_tokens")}
        out.print(
            f"  {who:<20} {u['calls']:>3} calls  {u['input_tokens']:>6} tokens in  "
            f"{u['output_tokens']:>5} out  model {usage.get('model_time_s', 0):6.2f} s  "
            f"queued {usage.get('queue_time_s', 0):5.2f} s",
            soft_wrap=True,
        )
        for key, calls in usage.items():
            if key.startswith("adapter "):
                out.print(f"  {'':<20} {int(calls):>3} answered by {key.removeprefix('adapter ')}")
    for tool, timing in record.tools.items():
        errors = timing.get("errors", 0)
        out.print(
            f"  tool {tool:<15} {timing.get('calls', 0):>3} calls  {timing.get('time_s', 0):.4f} s"
            + (f"  [red]{errors} failed[/red]" if errors else "")
        )
    waits = [(r.decided_at or time.time()) - r.created_at for r in reviews]
    if waits:
        out.print(f"  review wait          {len(waits):>3} reviews  {sum(waits):.1f} s")
    steps = [e["node"].replace("__", "·") for e in events]
    if len(steps) > STEPS_SHOWN:  # a long loop: its start and end, not a line of 60 KB
        head, tail = steps[: STEPS_SHOWN - 10], steps[-10:]
        steps = [*head, f"… {len(steps) - len(head) - len(tail)} more …", *tail]
    out.print("nodes: " + (" → ".join(steps) or "-"))
    for r in reviews:
        deciders = [*(a["by"] for a in r.approvals), r.decided_by]  # earlier approvers first
        decided = (
            f"{r.decision} by {' and '.join(map(str, deciders))} at {_when(r.decided_at)}"
            if r.decision
            else r.status
        )
        extra = f" — {r.reason}" if r.reason else ""
        if r.changes:
            extra += f" — set {json.dumps(r.changes.get('set'))}"
        out.print(f"review {r.id} ({r.node}): {escape(decided + extra)}")
    for event in events:
        if event.get("tool_error"):
            failed = event["tool_error"]
            out.print(
                f"[red]tool error[/red] in {escape(str(failed.get('node')))} "
                f"({escape(str(failed.get('tool')))}): {escape(str(failed.get('error')))}"
            )
    if record.error:
        out.print(f"[red]error:[/red] {escape(record.error)}")
    if record.output is not None:
        out.print_json(json.dumps(record.output))


def _watched(event: Any) -> None:
    """One line for one event of a run's stream (see :mod:`orchestrator.runs.stream`)."""
    data, when = event.data, time.strftime("%H:%M:%S", time.localtime(event.data.get("at", 0)))
    if event.event == "token":  # a streaming node's text as it is generated
        out.print(f"  [dim]{escape(data['node'])} …[/dim] {escape(data['text'])}", soft_wrap=True)
    elif event.event == "node":
        _step(
            data["node"], data.get("keys", []), data.get("usage", {}), when, data.get("tool_error")
        )
    elif event.event == "status":
        error = f": {data['error']}" if data.get("error") else ""
        out.print(f"  [dim]{when}[/dim] run is [bold]{data['status']}[/bold]{escape(error)}")
    elif event.event == "awaiting_review":
        review = data["review_id"]
        out.print(
            f"  [yellow]review {review}[/yellow] waits at {data['node']}: decide it with "
            f"`cadre review approve {review}` (or reject, edit); still watching",
            soft_wrap=True,
        )
    elif event.event == "approval":
        edit = f", editing {', '.join(data['changes'])}" if data.get("changes") else ""
        out.print(
            f"  review {data['review_id']}: approved by {escape(str(data['by']))}{escape(edit)} "
            f"({data['approvals']} of {data['needed']} approvals)"
        )
    elif event.event in ("claim", "release"):
        held = f"taken by {data['by']} until {_when(data.get('until'))}"
        what = held if event.event == "claim" else f"released by {data['by']}"
        out.print(f"  review {data['review_id']}: {escape(what)}")
    elif event.event == "decision":
        reason = f" — {data['reason']}" if data.get("reason") else ""
        editors = [e for e in data.get("edited_by", ()) if e != data["by"]]
        edits = f" (edits by {', '.join(editors)})" if editors else ""
        out.print(
            f"  review {data['review_id']}: {data['decision']} by {escape(str(data['by']))}"
            f"{escape(edits + reason)}"
        )


class _Stall:
    """Between reads of a watched run's log: notice when nothing drives it (queued or running
    with no live lease) for ``after`` seconds, and say once per such stretch what would."""

    def __init__(self, store: RunStore, run_id: str, after: float) -> None:
        self.store, self.run_id, self.after = store, run_id, after
        self.since: float | None = None
        self.said = False

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)
        now = time.time()
        record = self.store.run(self.run_id)
        driven = record.owner is not None and (record.lease_until or 0) > now
        if record.status not in ("queued", "running") or driven:
            self.since, self.said = None, False
            return
        self.since = self.since or now
        if self.said or now - self.since < self.after:
            return
        self.said = True
        why = (
            "no worker has claimed it"
            if record.owner is None
            else "the lease of its driver ran out (it stopped or died)"
        )
        err.print(
            f"run {self.run_id} is {record.status} and nothing has driven it for "
            f"{now - self.since:.0f} s: {why}. Start a worker with `cadre serve` (it takes "
            f"queued runs), or drive it here with `cadre runs resume {self.run_id}` (with the "
            "--catalog and --graphs it was started with, if not the defaults); still watching",
            soft_wrap=True,
        )


@runs_app.command("watch")
def runs_watch(
    run_id: Annotated[str, typer.Argument(help="Run id.")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object per event and line.")
    ] = False,
    after: Annotated[
        int, typer.Option("--after", min=0, help="Only the events after this event id.")
    ] = 0,
    stalled_after: Annotated[
        float,
        typer.Option(
            "--stalled-after",
            min=0.5,
            max=86400,
            help="Say so (on stderr) when nothing has driven the run for this many seconds.",
        ),
    ] = 10.0,
) -> None:
    """Follow a run as it happens, from the run database: its history first, then each node,
    status change, review and decision as it comes, until it ends. Exit code 0 if it
    succeeded, 1 otherwise. Waiting for review keeps watching; a run that waits for a driver
    (no worker claimed it, or its driver's lease ran out) is named on stderr, and watched on."""
    from orchestrator.runs.stream import watch

    store = _store()
    store.run(run_id)  # a clear error for a run that does not exist
    status = None
    stall = _Stall(store, run_id, stalled_after)
    try:
        for event in watch(store, run_id, after, sleep=stall.sleep):
            if as_json:
                typer.echo(json.dumps(event.as_dict()))
            elif event.event == "end":
                _report(store.run(run_id), store)
            else:
                _watched(event)
            status = event.data["status"] if event.event == "end" else None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    if status != "succeeded":
        raise typer.Exit(1)


@runs_app.command("resume")
def runs_resume(
    run_id: Annotated[str, typer.Argument(help="Run id.")],
    catalog: CatalogOption = None,
    graphs: GraphsOption = None,
) -> None:
    """Continue a run from its last checkpoint (after a crash or a failure)."""
    loaded = load(catalog, graphs)

    async def go() -> None:
        async with _runner(loaded) as runner:
            _report(await runner.resume(run_id), runner.store)

    asyncio.run(go())


@runs_app.command("cancel")
def runs_cancel(run_id: Annotated[str, typer.Argument(help="Run id.")]) -> None:
    """Cancel a run; its pending reviews are cancelled too (and the cancel is in its trace)."""
    from orchestrator import telemetry
    from orchestrator.runs.spans import cancel_traced

    telemetry.setup()
    record = cancel_traced(_store(), run_id)
    out.print(f"run {record.id} is {record.status}")


@review_app.command("list")
def review_list(
    all_: Annotated[bool, typer.Option("--all", help="Decided reviews too.")] = False,
    workflow: Annotated[Optional[str], typer.Option(help="Only this workflow's reviews.")] = None,  # noqa: UP045
    run_id: Annotated[Optional[str], typer.Option("--run", help="Only this run's reviews.")] = None,  # noqa: UP045
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print review ids only.")] = False,
) -> None:
    """Reviews waiting for a decision, oldest first."""
    store = _store()
    reviews = [
        r
        for r in store.reviews(None if all_ else "pending", run_id)
        if not workflow or r.payload.get("workflow") == workflow
    ]
    if quiet:
        for r in reviews:
            out.print(r.id)
        return
    if not reviews:
        what = "reviews" if all_ else "reviews waiting"
        err.print(f"no {what}" + (" that match" if workflow or run_id else ""))
        return
    # One line of ids, time and status (whole at 80 columns), and what the review asks on the
    # line under it, as wide as the terminal: in a table column it was a word a line.
    out.print(f"[bold]{'review':<13}  {'run':<16}  {'since':<11}  {'status':<9}  workflow · node")
    for r in reviews:
        since = time.strftime("%m-%d %H:%M", time.localtime(r.created_at))
        where = f"{r.payload.get('workflow', '-')} · {r.node}"
        out.print(f"{r.id:<13}  {r.run_id:<16}  {since:<11}  {r.status:<9}  {escape(where)}")
        title = r.payload.get("title", "")
        if title:
            out.print(f"  [dim]{escape(visible(title))}[/dim]")


@review_app.command("show")
def review_show(
    review_id: Annotated[str, typer.Argument(help="Review id.")],
    catalog: CatalogOption = None,
    graphs: GraphsOption = None,
) -> None:
    """What the reviewer must see: the proposal, the state around it, and warnings (an empty
    lookup, a value that does not fit its schema, a tool that failed earlier in the run)."""
    from orchestrator.runs.reviews import review_warnings

    store = _store()
    r = store.review(review_id)
    unchecked = ""
    try:
        loaded = load(catalog, graphs)
    except CadreError as error:
        if catalog is not None or graphs is not None:
            raise  # the catalog asked for is broken: say so
        problems = getattr(error, "problems", None)
        first = str(problems[0]) if problems else error.message.splitlines()[0]
        loaded, unchecked = None, first
        if problems and len(problems) > 1:
            unchecked += f" (and {len(problems) - 1} more: `cadre validate`)"
    out.print(f"[bold]{r.id}[/bold]: {escape(r.payload.get('title', r.node))}")
    out.print(f"run {r.run_id} ({r.payload.get('workflow')}), node {r.node}, {r.status}")
    for warning in review_warnings(r, store.events(r.run_id), loaded):
        out.print(f"[yellow]warning:[/yellow] {escape(warning)}")
    if unchecked:
        out.print(f"[dim]values not checked against their schemas: {escape(unchecked)}[/dim]")
    for key, value in r.payload.get("show", {}).items():
        out.print(f"\n[cyan]{key}[/cyan]")
        out.print_json(json.dumps(value)) if not isinstance(value, str) else out.print(
            escape(value)
        )
    out.print(f"\neditable: {', '.join(r.payload.get('editable', [])) or '-'}")
    needed = int(r.payload.get("approvals", 1))
    if needed > 1:
        named = ", ".join(a["by"] for a in r.approvals) or "none yet"
        out.print(f"approvals: {len(r.approvals)} of {needed} ({escape(named)})")
    for a in r.approvals if r.status == "pending" else ():
        if a.get("changes"):  # what a further approval approves too
            out.print(
                f"[yellow]edited by {escape(str(a['by']))}[/yellow] with their approval: set "
                f"{escape(json.dumps(a['changes']))}; approving approves these values",
                soft_wrap=True,
            )
    if r.holder():
        out.print(f"claimed by {escape(str(r.holder()))} until {_when(r.claimed_until)}")
    if r.overdue_at:
        out.print(f"[red]overdue[/red] since {_when(r.overdue_at)}")
    if r.decision:
        out.print(f"decided: {r.decision} by {r.decided_by} at {_when(r.decided_at)}")
        editors = [e for e in edited_by(r) if e != r.decided_by]
        if editors:
            out.print(f"edited by: {escape(', '.join(editors))}")


@review_app.command("claim")
def review_claim(
    review_id: Annotated[str, typer.Argument(help="Review id.")],
    minutes: Annotated[int, typer.Option(min=1, max=480, help="How long the claim holds.")] = 15,
    by: Reviewer = None,
) -> None:
    """Take a review so no other reviewer decides it meanwhile (claim again to renew)."""
    who = _reviewer(by)
    review = _store().claim(review_id, who, minutes * 60.0)
    until = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(review.claimed_until or 0))
    out.print(f"review {review.id} is yours ({who}) until {until}")


@review_app.command("release")
def review_release(
    review_id: Annotated[str, typer.Argument(help="Review id.")],
    by: Reviewer = None,
) -> None:
    """Give up your claim on a review."""
    who = _reviewer(by)
    review = _store().release(review_id, who)
    held = f"still claimed by {review.holder()}" if review.holder() else "unclaimed"
    out.print(f"review {review.id} is {held}")


def _reviewer(by: str | None) -> str:
    """Who signs: ``--as``, else the OS user name."""
    return person_name(by, "--as") if by is not None else getpass.getuser()


def _decide(
    review_id: str,
    decision: str,
    by: str | None,
    catalog: Path | None,
    graphs: Path | None,
    reason: str | None = None,
    changes: dict[str, Any] | None = None,
) -> None:
    loaded = load(catalog, graphs)
    who = _reviewer(by)

    async def go() -> None:
        async with _runner(loaded) as runner:
            review, record = await runner.decide(review_id, decision, who, reason, changes)
            if review.status == "pending":  # one approval of several
                needed = int(review.payload.get("approvals", 1))
                out.print(
                    f"review {review.id}: approved by {who} ({len(review.approvals)} of {needed} "
                    "approvals; another reviewer must approve it too)"
                )
                return
            out.print(f"review {review.id}: {decision} by {who}")
            _report(record, runner.store)

    asyncio.run(go())


@review_app.command("approve")
def review_approve(
    review_id: Annotated[str, typer.Argument(help="Review id.")],
    by: Reviewer = None,
    catalog: CatalogOption = None,
    graphs: GraphsOption = None,
) -> None:
    """Approve: the run goes on as proposed."""
    _decide(review_id, "approve", by, catalog, graphs)


@review_app.command("reject")
def review_reject(
    review_id: Annotated[str, typer.Argument(help="Review id.")],
    reason: Annotated[str, typer.Option("--reason", help="Why; sent back with the rework.")],
    by: Reviewer = None,
    catalog: CatalogOption = None,
    graphs: GraphsOption = None,
) -> None:
    """Reject: the run goes back for rework, with your reason in its state."""
    _decide(review_id, "reject", by, catalog, graphs, reason=reason)


@review_app.command("edit")
def review_edit(
    review_id: Annotated[str, typer.Argument(help="Review id.")],
    set_: Annotated[
        list[str], typer.Option("--set", help="key=value (value as JSON, else text); repeatable.")
    ],
    reason: Annotated[Optional[str], typer.Option("--reason", help="Why, for the record.")] = None,  # noqa: UP045
    by: Reviewer = None,
    catalog: CatalogOption = None,
    graphs: GraphsOption = None,
) -> None:
    """Edit the state (checked against its schema), then approve."""
    changes: dict[str, Any] = {}
    for item in set_:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise InputError(f"--set {item!r}: expected key=value")
        if key.strip() in changes:
            raise InputError(f"--set {clip(key.strip(), 80)!r} is given twice; give it once")
        try:
            changes[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            changes[key.strip()] = raw  # not JSON: the text itself
        except RecursionError:
            raise InputError(
                f"--set {clip(key.strip(), 80)!r}: the value nests deeper than JSON is read here"
            ) from None
    _decide(review_id, "edit", by, catalog, graphs, reason=reason, changes=changes)


def trace(
    run_id: Annotated[str, typer.Argument(help="Run id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the span tree as JSON.")] = False,
    checkpoints: Annotated[
        bool, typer.Option("--checkpoints", help="Show every checkpoint write, not a count.")
    ] = False,
) -> None:
    """The run's trace from the local span file: every step, its time, tokens and errors."""
    from pathlib import Path

    from orchestrator import telemetry
    from orchestrator.telemetry import traces

    record = _store().run(run_id)
    trace_id = traces.trace_id_of(record.trace_context)
    if trace_id is None:
        raise InputError(f"run {run_id} has no trace context (it started before tracing)")
    config = telemetry.config_from_env()
    roots = traces.load_tree(Path(config.trace_file), trace_id)
    if not roots:
        where = config.otel_env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        hint = f"; with OTLP set, spans went to {where}" if where else ""
        raise InputError(
            f"no spans of run {run_id} (trace {trace_id}) in {config.trace_file}{hint}"
        )
    if as_json:
        out.print_json(json.dumps([r.as_dict() for r in roots]))
        return
    out.print(f"trace {trace_id}  run {record.id}  {record.workflow}  {record.status}")
    if all(r.record["parent_id"] for r in roots):  # the root, cadre.run, is not in the file
        out.print(
            "(the run's root span, cadre.run, is written when the run ends; its stretches so "
            "far are shown)"
            if record.status not in ("succeeded", "failed", "cancelled")
            else "(the run's root span, cadre.run, is not in the span file: the process that "
            "ended the run did not export it)"
        )
    for line in traces.render(roots, show_checkpoints=checkpoints):
        out.print(escape(line), soft_wrap=True)


@graph_app.command("show")
def graph_show(
    name: Annotated[str, typer.Argument(help="Workflow name.")],
    catalog: CatalogOption = None,
    graphs: GraphsOption = None,
) -> None:
    """Print the workflow as a Mermaid flowchart."""
    from orchestrator.workflow.graph import mermaid

    loaded = load(catalog, graphs)
    out.print(mermaid(loaded.workflow(name), loaded), markup=False)


@graph_app.command("list")
def graph_list(catalog: CatalogOption = None, graphs: GraphsOption = None) -> None:
    """Every workflow and what it does."""
    loaded = load(catalog, graphs)
    table = Table()
    table.add_column("workflow")
    table.add_column("nodes")
    table.add_column("description")
    for spec in sorted(loaded.workflows.values(), key=lambda w: w.name):
        table.add_row(spec.name, str(len(spec.nodes)), spec.description)
    out.print(table)
