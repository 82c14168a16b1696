"""What the REST API takes and answers, besides the run views (:mod:`orchestrator.runs.views`).

Each model is one request body or one answer, so the OpenAPI document names every shape.
"""

from typing import Any, Literal

from pydantic import BaseModel, Field


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
        (408, "The request body did not arrive in full within 30 s."),
        (413, "The body is over the size limit."),
        (415, "The body is compressed (`Content-Encoding`); send it as it is."),
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


CURSOR = r"^[0-9]{1,20}(\.[0-9]{1,20})?_[A-Za-z0-9-]{1,64}$"
"""A page's position: the last run's creation time and id (``1795981821.169801_run-…``). Any
value of this shape is a position, so the document's pattern says exactly what is accepted."""
