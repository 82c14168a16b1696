"""``/v1/runs``: submit a run, page through the tenant's runs, follow one, cancel it.

Runs never execute inside a request: a submission is recorded as queued and claimed by a run
worker from the run database (see :mod:`orchestrator.runs.queue`).
"""

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse

from orchestrator import telemetry
from orchestrator.api.context import Anyone, Ctx, Submitter
from orchestrator.api.long_polls import MOVING
from orchestrator.api.schemas import CURSOR, Submission
from orchestrator.errors import ApiError
from orchestrator.runs.runner import check_input
from orchestrator.runs.spans import cancel_traced
from orchestrator.runs.store import RunRecord, RunStatus, RunStore
from orchestrator.runs.stream import POLL_S, RunEvent, pending
from orchestrator.runs.views import NodeEvents, RunPage, RunView, run_brief, run_view
from orchestrator.workflow.budget import day_start

MAX_WAIT_S = 60.0
"""The longest a long poll (``GET /v1/runs/{id}?wait_s=``) is held."""
MAX_EVENT_ID = 2**63 - 1
"""The largest event id (the database's 64-bit integer)."""
KEEP_ALIVE_S = 15.0
"""How long an idle run stream waits before it sends a comment, so proxies keep it open."""
KEY_RECHECK_S = 5.0
"""How often an open run stream looks again at its key: a revoked key's stream closes."""

router = APIRouter(tags=["runs"])


@router.post(
    "/v1/runs",
    status_code=202,
    response_model=RunView,
    responses={200: {"model": RunView, "description": "A retry: the run it already made."}},
)
def submit_run(
    body: Submission,
    key: Submitter,
    ctx: Ctx,
    request: Request,
    idempotency_key: Annotated[str | None, Header(min_length=1, max_length=200)] = None,
) -> JSONResponse:
    """Queue a run; a run worker drives it. Retrying with the same ``Idempotency-Key``
    returns the first run (200) instead of starting another."""
    spec = ctx.catalog.workflow(body.workflow)
    check_input(spec, body.input)
    store = ctx.runs
    first = store.replay(key.tenant, idempotency_key, spec.name, body.input)
    if first is not None:  # a retry of a run already admitted: never refused for limits
        return _submitted(store, first, created=False)
    most = ctx.settings.max_queued_per_tenant
    full = ApiError(
        429,
        "queue_full",
        f"tenant {key.tenant!r} already has {most} runs waiting for a worker; retry when "
        "some have started",
        {"Retry-After": "5"},
    )
    if store.queued_count(key.tenant) >= most:
        raise full
    limit = ctx.budgets.get(key.tenant)
    if limit is not None and ctx.budgets.used_today(key.tenant) >= limit:
        retry = int(day_start() + 86_400 - time.time()) + 1
        raise ApiError(
            429,
            "budget_exhausted",
            f"tenant {key.tenant!r} has used its {limit} tokens for today (UTC); new runs "
            "are admitted again tomorrow, or raise the budget with `cadre tenants budget`",
            {"Retry-After": str(retry)},
        )
    run, created = store.create_run(
        spec.name,
        body.input,
        tenant=key.tenant,
        idempotency_key=idempotency_key,
        queued=True,
        trace_context=telemetry.submitted_by(),  # the run's trace links to this request
    )
    # Counted again with the run in place: of submissions racing past the first count, those
    # beyond the limit in the queue's order are taken back (unless a worker already took one).
    if created and store.queued_ahead(run) > most and store.withdraw(run.id):
        raise full
    if created:
        ctx.wake()
    return _submitted(store, run, created)


@router.get("/v1/runs")
def list_runs(
    key: Anyone,
    ctx: Ctx,
    status: RunStatus | None = None,
    workflow: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(pattern=CURSOR)] = None,
) -> RunPage:
    """The tenant's runs, newest first; pass ``next_cursor`` back as ``cursor`` for more."""
    runs = ctx.runs.runs(status, workflow, limit, tenant=key.tenant, before=_decode_cursor(cursor))
    next_cursor = _cursor(runs[-1]) if len(runs) == limit else None
    return RunPage(runs=[run_brief(r) for r in runs], next_cursor=next_cursor)


@router.get("/v1/runs/{run_id}")
async def get_run(
    run_id: str,
    key: Anyone,
    ctx: Ctx,
    wait_s: Annotated[
        float,
        Query(
            ge=0,
            le=MAX_WAIT_S,
            allow_inf_nan=False,
            description="Hold the answer until the run ends or waits for review, for at "
            "most this many seconds (a long poll: one request instead of many).",
        ),
    ] = 0.0,
) -> RunView:
    """A run: status, output, usage, and the reviews it waits for."""
    run = await asyncio.to_thread(ctx.own_run, key, run_id)
    moving = run.status in MOVING
    if wait_s and run.status == "awaiting_review":  # decided, not yet applied: it moves on
        moving = (await asyncio.to_thread(ctx.runs.statuses, [run_id])).get(run_id) in MOVING
    if wait_s and moving:  # held on the event loop: a waiter holds no thread
        await ctx.long_polls.wait(run_id, wait_s)
        run = await asyncio.to_thread(lambda: ctx.runs.run(run_id))
    return await asyncio.to_thread(lambda: run_view(ctx.runs, run))


@router.post("/v1/runs/{run_id}/cancel")
def cancel_run(run_id: str, key: Submitter, ctx: Ctx) -> RunView:
    """Cancel a run; a worker driving it stops after its current step."""
    ctx.own_run(key, run_id)
    run = cancel_traced(ctx.runs, run_id)
    ctx.hooks.notify(run, ctx.runs)
    return run_view(ctx.runs, run)


@router.get("/v1/runs/{run_id}/events")
def run_events(run_id: str, key: Anyone, ctx: Ctx) -> NodeEvents:
    """The nodes the run has finished so far, in order."""
    ctx.own_run(key, run_id)
    return NodeEvents.model_validate({"events": ctx.runs.events(run_id)})


@router.get(
    "/v1/runs/{run_id}/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def stream_run(
    run_id: str,
    key: Anyone,
    ctx: Ctx,
    request: Request,
    last_event_id: Annotated[
        int | None,
        Query(
            ge=0,
            le=MAX_EVENT_ID,
            description="Send only what came after this event id (as the header).",
        ),
    ] = None,
    last_event_id_header: Annotated[
        int | None,
        Header(alias="Last-Event-ID", ge=0, le=MAX_EVENT_ID, include_in_schema=False),
    ] = None,
) -> StreamingResponse:
    """The run as it happens, as Server-Sent Events (``text/event-stream``).

    Events: ``node`` (a node finished: the keys it wrote, tokens per specialist, ``at``,
    ``tool_error`` if a tool failed), ``token`` (text a streaming node's specialist wrote so
    far), ``status`` (the run's status changed), ``awaiting_review`` (a review was queued:
    ``review_id``, ``node``), ``approval`` (one of several approvals a review needs),
    ``decision`` (a review was decided: ``decision``, ``by``, ``reason``) and, once the run has
    finished, ``end`` (``status``, ``output``, ``error``), after which the stream closes. A
    finished run streams its whole history, then ``end``.

    Each event's ``id`` is its place in the run's event log: it only grows, and never
    changes. To resume, send the last id received as ``Last-Event-ID`` (browsers'
    EventSource do) or ``?last_event_id=``: only what came after it is sent, nothing
    lost and nothing twice. ``end`` carries the id of the event before it. While nothing
    happens a ``: keep-alive`` comment comes every 15 s. The stream reads the run
    database (one indexed query every 0.25 s) and stops when the client goes away; if its
    key is revoked, it stops within 5 s with an ``error`` event saying so."""
    ctx.own_run(key, run_id)  # 404 before the stream starts: another tenant's run too
    after = last_event_id_header if last_event_id_header is not None else last_event_id

    def read(seen: int) -> list[RunEvent]:
        return pending(ctx.runs, run_id, seen)

    def revoked() -> bool:
        return ctx.keys.get(key.id).revoked_at is not None

    async def events() -> AsyncIterator[str]:
        seen, quiet_since = after or 0, time.monotonic()
        checked = time.monotonic()
        while not await request.is_disconnected():
            if time.monotonic() - checked >= KEY_RECHECK_S:  # a key revoked meanwhile: stop
                checked = time.monotonic()
                if await asyncio.to_thread(revoked):
                    message = {"message": "the API key of this stream was revoked"}
                    yield f"event: error\ndata: {json.dumps(message)}\n\n"
                    return
            batch = await asyncio.to_thread(read, seen)
            for event in batch:
                yield event.sse()
                if event.event == "end":
                    return
                seen = event.id
            if batch:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= KEEP_ALIVE_S:
                yield ": keep-alive\n\n"
                quiet_since = time.monotonic()
            await asyncio.sleep(POLL_S)  # on the event loop: a follower holds no thread

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def _submitted(store: RunStore, run: RunRecord, created: bool) -> JSONResponse:
    """202 for a run just queued; 200 for a retry answered with the run it already made."""
    return JSONResponse(
        run_view(store, run).model_dump(mode="json"),
        status_code=202 if created else 200,
        headers={
            "Location": f"/v1/runs/{run.id}",
            "Idempotent-Replayed": str(not created).lower(),
        },
    )


def _cursor(run: RunRecord) -> str:
    return f"{run.created_at!r}_{run.id}"


def _decode_cursor(cursor: str | None) -> tuple[float, str] | None:
    if not cursor:
        return None
    at, _, run_id = cursor.partition("_")
    return float(at), run_id
