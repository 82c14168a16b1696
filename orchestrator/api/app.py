"""The REST API: submit runs, follow them, decide their reviews, hear about them by webhook.

Every request carries an API key (``Authorization: Bearer cadre_...`` or ``X-API-Key``). The key
fixes the tenant: every record read or written is that tenant's, and another tenant's run or
review is answered 404, exactly as one that does not exist. The key's role decides what it may
do (403 otherwise). Runs never execute inside a request: a submission is recorded as queued and
claimed by a run worker from the run database (see :mod:`orchestrator.runs.queue`).

Refusals: 401 no or bad key, 403 wrong role, 404 not found (or not yours), 409 a conflict (review
already decided, run finished, idempotency key reused), 413 body too large, 422 bad input,
429 too many requests (``Retry-After`` says when to come back).

(No ``from __future__ import annotations`` here: FastAPI reads the endpoints' annotations at
definition time, and the dependency aliases are local to :func:`create_app`.)
"""

import asyncio
import contextlib
import math
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Route

from orchestrator.api.keys import ApiKey, KeyStore
from orchestrator.api.long_polls import MOVING, LongPolls
from orchestrator.api.rate_limits import RateLimits
from orchestrator.api.webhooks import Escalator, Webhooks
from orchestrator.catalog import Catalog
from orchestrator.errors import ApiError, CadreError, NotFoundError
from orchestrator.runs.budget import TenantBudgets
from orchestrator.runs.reviews import record_decision, review_warnings
from orchestrator.runs.runner import check_input
from orchestrator.runs.store import ReviewRecord, RunRecord, RunStatus, RunStore
from orchestrator.runs.stream import POLL_S, RunEvent, pending
from orchestrator.runs.views import (
    NodeEvents,
    ReviewDetail,
    ReviewList,
    ReviewView,
    RunPage,
    RunView,
    WebhookEvent,
    review_view,
    run_brief,
    run_view,
)
from orchestrator.storage.database import Database
from orchestrator.workflow.budget import day_start

API_VERSION = "v1"
MAX_WAIT_S = 60.0
"""The longest a long poll (``GET /v1/runs/{id}?wait_s=``) is held."""
WAIT_POLL_S = 0.05
"""How often the held long polls look at their runs again (one read for all of them)."""
KEEP_ALIVE_S = 15.0
"""How long an idle run stream waits before it sends a comment, so proxies keep it open."""


@dataclass
class Settings:
    """How one API process is set up."""

    catalog: Catalog
    database_url: str
    max_body_bytes: int = 1_048_576
    rate_per_s: float = 50.0
    """Sustained requests per second allowed per key."""
    burst: int = 100
    """Requests a key may make at once before the rate applies."""
    wake: Callable[[], Any] | None = None
    """Wakes the run workers after a run or a decision is recorded (they also poll the run
    database, so a lost wake costs only latency); set by `cadre serve`."""
    max_queued_per_tenant: int = 10_000
    """Runs a tenant may have waiting for a worker; more are refused with 429."""
    escalate_poll_s: float | None = 30.0
    """The longest between two looks for overdue reviews (``escalate_after``); None: this
    process does not look (another API process does)."""


class ErrorDetail(BaseModel):
    type: str = Field(description="Machine-readable kind, e.g. not_found or rate_limited.")
    message: str = Field(description="What is wrong and where, for people.")


class ErrorBody(BaseModel):
    """Every error the API answers, whatever its status."""

    error: ErrorDetail


ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": meaning}
    for status, meaning in (
        (400, "The request is malformed."),
        (401, "No API key, or a wrong or revoked one."),
        (403, "The key's role may not do this."),
        (404, "No such run or review for this tenant (another tenant's gets the same answer)."),
        (405, "The path does not take this method (`Allow` lists the ones it takes)."),
        (
            409,
            "A review already decided or claimed by another reviewer, a second approval from "
            "the same reviewer, or an Idempotency-Key reused for another request.",
        ),
        (413, "The body is over the size limit."),
        (422, "The input does not fit its schema, or a parameter is invalid."),
        (
            429,
            "Over the key's rate, the tenant's queued runs or its daily token budget "
            "(`Retry-After` says when to come back).",
        ),
    )
}
"""Documented on every operation: the statuses the API can answer besides success."""


class Submission(BaseModel):
    workflow: str = Field(description="Name of the workflow to run (GET /v1/workflows).")
    input: dict[str, Any] = Field(description="The run's input; must fit the workflow's schema.")


class Decision(BaseModel):
    decision: Literal["approve", "reject", "edit"]
    reason: str | None = Field(default=None, description="Why; required to reject.")
    changes: dict[str, Any] | None = Field(
        default=None, description="For edit: state key (or dotted path) to new value."
    )


class ClaimIn(BaseModel):
    hold_minutes: int = Field(
        default=15,
        ge=1,
        le=480,
        description="How long the claim holds unless renewed (claim again) or released.",
    )


class WebhookIn(BaseModel):
    url: str = Field(
        description="Where to POST run.awaiting_review and run.finished events: an http(s) URL "
        "on a public address (loopback, link-local and private ones are refused with 422 unless "
        "the operator allows them with CADRE_WEBHOOK_ALLOW).",
        pattern=r"^[Hh][Tt][Tt][Pp][Ss]?://[^\s/?#]+",
        max_length=2048,
    )


class WorkflowView(BaseModel):
    name: str
    description: str
    input_schema: dict[str, Any] = Field(description="The JSON Schema a run's input must fit.")
    output: list[str] = Field(description="The state keys a finished run's output holds.")


class WorkflowList(BaseModel):
    workflows: list[WorkflowView]


class KeyView(BaseModel):
    id: str
    tenant: str
    role: Literal["submitter", "reviewer", "admin"]
    name: str
    who: str = Field(description="How decisions and claims made with this key are signed.")


class WebhookView(BaseModel):
    id: str
    tenant: str
    url: str
    created_at: float


class WebhookCreated(WebhookView):
    secret: str = Field(description="The HMAC signing secret: shown only in this answer.")


class WebhookList(BaseModel):
    webhooks: list[WebhookView]


class Delivery(BaseModel):
    id: str
    webhook_id: str
    run_id: str
    event: str
    status: str = Field(description="The run status (or the review id) the event is about.")
    state: Literal["pending", "delivered", "failed"]
    attempts: int
    last_error: str | None
    response_code: int | None
    created_at: float
    next_attempt_at: float | None


class DeliveryList(BaseModel):
    deliveries: list[Delivery]


class _Local(threading.local):
    """Each handler thread's own connection and stores (their tables are set up once)."""

    stores: tuple[RunStore, KeyStore, Webhooks] | None = None
    budgets: TenantBudgets | None = None
    limits: RateLimits | None = None


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


def create_app(settings: Settings) -> FastAPI:
    """The FastAPI application for one API process."""

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        escalator = None
        if settings.escalate_poll_s is not None:
            escalator = Escalator(settings.database_url, settings.escalate_poll_s)
            escalator.start()
        try:
            yield
        finally:
            if escalator is not None:
                escalator.stop()

    app = FastAPI(
        title="Cadre",
        version=API_VERSION,
        description="Submit workflow runs, follow them, and decide their human reviews.",
        responses=ERRORS,
        lifespan=lifespan,
    )
    local = _Local()
    catalog = settings.catalog

    def stores() -> tuple[RunStore, KeyStore, Webhooks]:
        if local.stores is None:
            database = Database(settings.database_url)
            local.stores = (RunStore(database), KeyStore(database), Webhooks(database))
        return local.stores

    stores()  # create the tables once, up front
    long_polls = LongPolls(lambda ids: stores()[0].statuses(ids), WAIT_POLL_S)

    def limits() -> RateLimits:
        if local.limits is None:
            local.limits = RateLimits(stores()[0].db, settings.rate_per_s, settings.burst)
        return local.limits

    def budgets() -> TenantBudgets:
        if local.budgets is None:
            local.budgets = TenantBudgets(stores()[0].db)
        return local.budgets

    # -- refusals ---------------------------------------------------------------------------

    @app.exception_handler(CadreError)
    async def cadre_error(_: Request, err: CadreError) -> JSONResponse:
        """Every typed error answers with its own status and type (see errors.py)."""
        return _error(err.http_status, err.type_name, err.message, dict(err.headers))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        """Unknown paths (404) and methods (405) in the one error format; a 405's ``Allow``
        lists the methods of every route on the path (Starlette names only the first's)."""
        headers = dict(err.headers) if err.headers else {}
        if err.status_code == 405:
            matching = [
                route
                for route in app.router.routes
                if isinstance(route, Route) and route.matches(request.scope)[0] != Match.NONE
            ]
            # The path's own routes, the most literal template: /v1/webhooks/deliveries, not
            # /v1/webhooks/{hook_id} as well.
            best = min(matching, key=lambda r: len(r.param_convertors)) if matching else None
            own = [r for r in matching if best is not None and r.path == best.path]
            headers["Allow"] = ", ".join(sorted({m for r in own for m in r.methods or ()}))
        kinds = {404: "not_found", 405: "method_not_allowed"}
        message = "no such path" if err.status_code == 404 else str(err.detail)
        return _error(err.status_code, kinds.get(err.status_code, "error"), message, headers)

    @app.exception_handler(RequestValidationError)
    async def bad_request(_: Request, err: RequestValidationError) -> JSONResponse:
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()]
        return _error(422, "invalid_request", "; ".join(problems))

    @app.middleware("http")
    async def limit_body(request: Request, call_next: Callable[[Request], Awaitable[Any]]) -> Any:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > settings.max_body_bytes:
            return _error(
                413,
                "too_large",
                f"the request body is {declared} bytes; the limit is {settings.max_body_bytes}",
            )
        if request.method in ("POST", "PUT", "PATCH") and declared is None:
            body = b""
            async for chunk in request.stream():
                body += chunk
                if len(body) > settings.max_body_bytes:
                    return _error(
                        413,
                        "too_large",
                        f"the request body exceeds the limit of {settings.max_body_bytes} bytes",
                    )
            request._body = body  # read once; the endpoint reads it from here
        return await call_next(request)

    # -- who is calling ---------------------------------------------------------------------

    def caller(
        bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)] = None,
        x_api_key: Annotated[str | None, Depends(API_KEY_HEADER)] = None,
    ) -> ApiKey:
        token = bearer.credentials.strip() if bearer is not None else (x_api_key or "")
        if not token:
            raise ApiError(
                401,
                "unauthenticated",
                "no API key: send Authorization: Bearer <key> (create one with "
                "`cadre keys create`)",
                {"WWW-Authenticate": "Bearer"},
            )
        key = stores()[1].authenticate(token)
        if key is None:
            raise ApiError(
                401,
                "unauthenticated",
                "the API key is wrong or revoked",
                {"WWW-Authenticate": "Bearer"},
            )
        wait = limits().take(key.id)
        if wait:
            retry = max(1, math.ceil(wait))
            raise ApiError(
                429,
                "rate_limited",
                f"too many requests for this key; retry in {retry} s",
                {"Retry-After": str(retry)},
            )
        return key

    def role(*allowed: str) -> Callable[[ApiKey], ApiKey]:
        def check(key: Annotated[ApiKey, Depends(caller)]) -> ApiKey:
            if key.role not in allowed:
                raise ApiError(
                    403,
                    "forbidden",
                    f"a {key.role} key cannot do this; it needs a {' or '.join(allowed)} key",
                )
            return key

        return check

    Anyone = Annotated[ApiKey, Depends(caller)]
    Submitter = Annotated[ApiKey, Depends(role("submitter", "admin"))]
    Reviewer = Annotated[ApiKey, Depends(role("reviewer", "admin"))]
    Admin = Annotated[ApiKey, Depends(role("admin"))]

    def own_run(key: ApiKey, run_id: str) -> RunRecord:
        try:
            run = stores()[0].run(run_id)
        except NotFoundError:
            raise NotFoundError(f"no run {run_id!r}") from None
        if run.tenant != key.tenant:
            raise NotFoundError(f"no run {run_id!r}")
        return run

    def own_review(key: ApiKey, review_id: str) -> ReviewRecord:
        store = stores()[0]
        try:
            review = store.review(review_id)
        except NotFoundError:
            raise NotFoundError(f"no review {review_id!r}") from None
        if store.run(review.run_id).tenant != key.tenant:
            raise NotFoundError(f"no review {review_id!r}")
        return review

    def wake() -> None:
        if settings.wake is not None:
            settings.wake()

    # -- workflows --------------------------------------------------------------------------

    @app.get("/v1/workflows", tags=["workflows"])
    def list_workflows(key: Anyone) -> WorkflowList:
        """The workflows a run can be submitted to, with their input schemas."""
        return WorkflowList(
            workflows=[
                WorkflowView(
                    name=w.name,
                    description=w.description,
                    input_schema=w.input_schema,
                    output=list(w.output),
                )
                for w in sorted(catalog.workflows.values(), key=lambda w: w.name)
            ]
        )

    # -- runs -------------------------------------------------------------------------------

    @app.post(
        "/v1/runs",
        status_code=202,
        tags=["runs"],
        response_model=RunView,
        responses={200: {"model": RunView, "description": "A retry: the run it already made."}},
    )
    def submit_run(
        body: Submission,
        key: Submitter,
        request: Request,
        idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    ) -> JSONResponse:
        """Queue a run; a run worker drives it. Retrying with the same ``Idempotency-Key``
        returns the first run (200) instead of starting another."""
        spec = catalog.workflow(body.workflow)
        check_input(spec, body.input)
        store = stores()[0]
        first = store.replay(key.tenant, idempotency_key, spec.name, body.input)
        if first is not None:  # a retry of a run already admitted: never refused for limits
            return _submitted(store, first, created=False)
        if store.queued_count(key.tenant) >= settings.max_queued_per_tenant:
            raise ApiError(
                429,
                "queue_full",
                f"tenant {key.tenant!r} already has {settings.max_queued_per_tenant} runs "
                "waiting for a worker; retry when some have started",
                {"Retry-After": "5"},
            )
        limit = budgets().get(key.tenant)
        if limit is not None and budgets().used_today(key.tenant) >= limit:
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
        )
        if created:
            wake()
        return _submitted(store, run, created)

    @app.get("/v1/runs", tags=["runs"])
    def list_runs(
        key: Anyone,
        status: RunStatus | None = None,
        workflow: str | None = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        cursor: Annotated[str | None, Query(pattern=CURSOR)] = None,
    ) -> RunPage:
        """The tenant's runs, newest first; pass ``next_cursor`` back as ``cursor`` for more."""
        store = stores()[0]
        runs = store.runs(status, workflow, limit, tenant=key.tenant, before=_decode_cursor(cursor))
        next_cursor = _cursor(runs[-1]) if len(runs) == limit else None
        return RunPage(runs=[run_brief(r) for r in runs], next_cursor=next_cursor)

    @app.get("/v1/runs/{run_id}", tags=["runs"])
    async def get_run(
        run_id: str,
        key: Anyone,
        wait_s: Annotated[
            float,
            Query(
                ge=0,
                le=MAX_WAIT_S,
                description="Hold the answer until the run ends or waits for review, for at "
                "most this many seconds (a long poll: one request instead of many).",
            ),
        ] = 0.0,
    ) -> RunView:
        """A run: status, output, usage, and the reviews it waits for."""
        run = await asyncio.to_thread(own_run, key, run_id)
        if wait_s and run.status in MOVING:  # held on the event loop: a waiter holds no thread
            await long_polls.wait(run_id, wait_s)
            run = await asyncio.to_thread(lambda: stores()[0].run(run_id))
        return await asyncio.to_thread(lambda: run_view(stores()[0], run))

    @app.post("/v1/runs/{run_id}/cancel", tags=["runs"])
    def cancel_run(run_id: str, key: Submitter) -> RunView:
        """Cancel a run; a worker driving it stops after its current step."""
        own_run(key, run_id)
        store, _, hooks = stores()
        run = store.cancel(run_id)
        hooks.notify(run, store)
        return run_view(store, run)

    @app.get("/v1/runs/{run_id}/events", tags=["runs"])
    def run_events(run_id: str, key: Anyone) -> NodeEvents:
        """The nodes the run has finished so far, in order."""
        own_run(key, run_id)
        return NodeEvents.model_validate({"events": stores()[0].events(run_id)})

    @app.get(
        "/v1/runs/{run_id}/stream",
        tags=["runs"],
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}}}},
    )
    async def stream_run(
        run_id: str,
        key: Anyone,
        request: Request,
        last_event_id: Annotated[
            int | None,
            Query(ge=0, description="Send only what came after this event id (as the header)."),
        ] = None,
        last_event_id_header: Annotated[
            int | None, Header(alias="Last-Event-ID", ge=0, include_in_schema=False)
        ] = None,
    ) -> StreamingResponse:
        """The run as it happens, as Server-Sent Events (``text/event-stream``).

        Events: ``node`` (a node finished: the keys it wrote, tokens per specialist, ``at``,
        ``tool_error`` if a tool failed), ``status`` (the run's status changed),
        ``awaiting_review`` (a review was queued: ``review_id``, ``node``), ``decision`` (a
        review was decided: ``decision``, ``by``, ``reason``) and, once the run has finished,
        ``end`` (``status``, ``output``, ``error``), after which the stream closes. A finished
        run streams its whole history, then ``end``.

        Each event's ``id`` is its place in the run's event log: it only grows, and never
        changes. To resume, send the last id received as ``Last-Event-ID`` (browsers'
        EventSource do) or ``?last_event_id=``: only what came after it is sent, nothing
        lost and nothing twice. ``end`` carries the id of the event before it. While nothing
        happens a ``: keep-alive`` comment comes every 15 s. The stream reads the run
        database (one indexed query every 0.25 s) and stops when the client goes away."""
        own_run(key, run_id)  # 404 before the stream starts: another tenant's run too
        after = last_event_id_header if last_event_id_header is not None else last_event_id

        def read(seen: int) -> list[RunEvent]:
            return pending(stores()[0], run_id, seen)

        async def events() -> AsyncIterator[str]:
            seen, quiet_since = after or 0, time.monotonic()
            while not await request.is_disconnected():
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

    @app.get("/v1/keys/me", tags=["keys"])
    def whoami(key: Anyone) -> KeyView:
        """The key the request is made with: its tenant, role, holder and how decisions made
        with it are signed (``who``, as reviews show ``decided_by`` and ``claimed_by``)."""
        return KeyView(id=key.id, tenant=key.tenant, role=key.role, name=key.name, who=key.who)

    # -- reviews ----------------------------------------------------------------------------

    @app.get("/v1/reviews", tags=["reviews"])
    def list_reviews(
        key: Reviewer,
        status: Literal["pending", "decided", "applied", "cancelled"] = "pending",
        workflow: str | None = None,
        older_than_s: Annotated[float | None, Query(ge=0)] = None,
    ) -> ReviewList:
        """The tenant's review queue, oldest first."""
        store = stores()[0]
        reviews = store.reviews(
            status, tenant=key.tenant, workflow=workflow, older_than_s=older_than_s
        )
        return ReviewList(reviews=[review_view(r) for r in reviews])

    @app.get("/v1/reviews/{review_id}", tags=["reviews"])
    def get_review(review_id: str, key: Reviewer) -> ReviewDetail:
        """A review: what the specialist proposed, the run's state and progress so far, and
        ``warnings`` (empty lookups, values that do not fit their schema, failed tools)."""
        store = stores()[0]
        review = own_review(key, review_id)
        run = store.run(review.run_id)
        events = store.events(run.id)
        return ReviewDetail.model_validate(
            {
                **review_view(review).model_dump(),
                "run": run_view(store, run),
                "events": events,
                "warnings": review_warnings(review, events, catalog),
            }
        )

    @app.post("/v1/reviews/{review_id}/decision", tags=["reviews"])
    def decide(review_id: str, body: Decision, key: Reviewer) -> ReviewView:
        """Approve, reject (with a reason: the run goes back for rework) or edit (changes
        checked against the state schema); a run worker then drives the run on."""
        own_review(key, review_id)
        store = stores()[0]
        review = record_decision(
            store, catalog, review_id, body.decision, key.who, body.reason, body.changes
        )
        wake()
        return review_view(review)

    @app.post("/v1/reviews/{review_id}/claim", tags=["reviews"])
    def claim_review(review_id: str, key: Reviewer, body: ClaimIn | None = None) -> ReviewView:
        """Take the review for a while, so no other reviewer decides it meanwhile (they see who
        holds it, and get 409 if they try). Claiming again renews the claim; it runs out by
        itself after ``hold_minutes``, or when the holder decides or releases it."""
        own_review(key, review_id)
        store = stores()[0]
        hold = (body or ClaimIn()).hold_minutes * 60.0
        return review_view(store.claim(review_id, key.who, hold))

    @app.delete("/v1/reviews/{review_id}/claim", tags=["reviews"])
    def release_review(review_id: str, key: Reviewer) -> ReviewView:
        """Give up your claim on the review (another reviewer's claim is left alone)."""
        own_review(key, review_id)
        store = stores()[0]
        return review_view(store.release(review_id, key.who))

    # -- webhooks ---------------------------------------------------------------------------

    @app.post("/v1/webhooks", status_code=201, tags=["webhooks"])
    def add_webhook(body: WebhookIn, key: Admin) -> WebhookCreated:
        """Register a URL for the tenant's run events; the signing secret is shown only now."""
        hook, secret = stores()[2].register(key.tenant, body.url)
        return WebhookCreated(**asdict(hook), secret=secret)

    @app.get("/v1/webhooks", tags=["webhooks"])
    def list_webhooks(key: Admin) -> WebhookList:
        return WebhookList(webhooks=[WebhookView(**asdict(h)) for h in stores()[2].all(key.tenant)])

    @app.delete("/v1/webhooks/{hook_id}", status_code=204, tags=["webhooks"])
    def delete_webhook(hook_id: str, key: Admin) -> None:
        stores()[2].delete(key.tenant, hook_id)

    @app.get("/v1/webhooks/deliveries", tags=["webhooks"])
    def deliveries(key: Admin, run_id: str | None = None) -> DeliveryList:
        """What was sent to the tenant's webhooks, and how each delivery went."""
        rows = stores()[2].deliveries(key.tenant, run_id)
        return DeliveryList.model_validate({"deliveries": rows})

    for event, meaning in (
        ("run.awaiting_review", "A run of the tenant stopped at a review."),
        ("run.finished", "A run of the tenant succeeded, failed or was cancelled."),
        ("review.overdue", "A review waited longer than its node's `escalate_after`."),
    ):
        app.webhooks.post(
            event,
            summary=meaning,
            tags=["webhooks"],
            status_code=200,
            responses={
                "4XX": {"description": "Not delivered: tried again after 2 s, 15 s and 60 s."}
            },
        )(_webhook_doc(event))

    page = (Path(__file__).parent / "web" / "review.html").read_text()

    @app.get("/review", include_in_schema=False)
    def review_page() -> HTMLResponse:
        """The reviewer page: sign in with a reviewer key, work the queue, decide."""
        return HTMLResponse(page, headers={"Cache-Control": "no-store"})

    @app.get("/healthz", include_in_schema=False)
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def _webhook_doc(event: str) -> Callable[[WebhookEvent], None]:
    """What the OpenAPI document shows for one webhook event: the body Cadre POSTs."""

    def posted(body: WebhookEvent) -> None:
        """Signed ``X-Cadre-Signature: sha256=HMAC(secret, body)``; answer 2xx, or it is
        retried after 2 s, 15 s and 60 s."""

    posted.__name__ = event.replace(".", "_")
    return posted


CURSOR = r"^[0-9]{1,20}(\.[0-9]{1,20})?_[A-Za-z0-9-]{1,64}$"
"""A page's position: the last run's creation time and id (``1795981821.169801_run-…``). Any
value of this shape is a position, so the document's pattern says exactly what is accepted."""


def _cursor(run: RunRecord) -> str:
    return f"{run.created_at!r}_{run.id}"


def _decode_cursor(cursor: str | None) -> tuple[float, str] | None:
    if not cursor:
        return None
    at, _, run_id = cursor.partition("_")
    return float(at), run_id


BEARER = HTTPBearer(
    auto_error=False, description="An API key from `cadre keys create`, as a bearer token."
)
API_KEY_HEADER = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="The same key, in a header of its own."
)


def _error(
    status: int, kind: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": {"type": kind, "message": message}}, status_code=status, headers=headers
    )
