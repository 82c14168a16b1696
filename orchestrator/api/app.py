"""The REST API: submit runs, follow them, decide their reviews, hear about them by webhook.

Every request carries an API key (``Authorization: Bearer cadre_...`` or ``X-API-Key``). The key
fixes the tenant: every record read or written is that tenant's, and another tenant's run or
review is answered 404, exactly as one that does not exist. The key's role decides what it may
do (403 otherwise). The operations live in :mod:`orchestrator.api.routes`, one module per
resource; what they share (settings, stores, the calling key) in :mod:`orchestrator.api.context`.

Refusals: 401 no or bad key, 403 wrong role, 404 not found (or not yours), 409 a conflict (review
already decided, run finished, idempotency key reused), 413 body too large, 422 bad input,
429 too many requests (``Retry-After`` says when to come back).
"""

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from orchestrator.api.context import Context, Settings
from orchestrator.api.refusals import install_refusals
from orchestrator.api.routes import reviews, runs, webhooks, workflows
from orchestrator.api.schemas import ERRORS
from orchestrator.api.webhooks import Escalator
from orchestrator.runs.views import WebhookEvent

__all__ = ["API_VERSION", "Settings", "create_app"]

API_VERSION = "v1"
WEBHOOK_EVENTS = (
    ("run.awaiting_review", "A run of the tenant stopped at a review."),
    ("run.finished", "A run of the tenant succeeded, failed or was cancelled."),
    ("review.overdue", "A review waited longer than its node's `escalate_after`."),
)
"""The events a webhook receives, as the OpenAPI document's ``webhooks`` section lists them."""
PAGE = Path(__file__).parent / "web" / "review.html"


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
        redirect_slashes=False,  # a redirect would be built from the request's Host header
        # One span per request (FastAPI's own); not three more for its dependencies, endpoint
        # and serialization, each a trace of its own: noise beside the runs' traces.
        telemetry={"operation_spans": False},
    )
    app.state.cadre = Context(settings)
    install_refusals(app, settings.max_body_bytes)
    app.include_router(workflows.router)
    app.include_router(runs.router)
    app.include_router(workflows.keys)
    app.include_router(reviews.router)
    app.include_router(webhooks.router)
    for event, meaning in WEBHOOK_EVENTS:
        app.webhooks.post(
            event,
            summary=meaning,
            tags=["webhooks"],
            status_code=200,
            responses={
                "4XX": {"description": "Not delivered: tried again after 2 s, 15 s and 60 s."}
            },
        )(_webhook_doc(event))

    page = PAGE.read_text()

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
