"""What runs and reviews look like from outside: one set of typed models for the REST API's
answers (and its OpenAPI document), ``cadre runs show --json`` and the webhook bodies, so a
field means the same thing, with the same name and type, wherever a client reads it."""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import BaseModel, Field

from orchestrator.runs.store import (
    FINISHED,
    ReviewRecord,
    RunRecord,
    RunStatus,
    RunStore,
    edited_by,
    pending_changes,
)

ReviewStatus = Literal["pending", "decided", "applied", "cancelled"]


class PendingReview(BaseModel):
    """A review a run waits for."""

    id: str
    node: str = Field(description="The review node of the workflow.")
    created_at: float


class RunBrief(BaseModel):
    """A run as a list shows it."""

    id: str
    workflow: str
    status: RunStatus
    created_at: float = Field(description="Unix time the run was recorded.")
    updated_at: float
    finished_at: float | None = None


class RunView(RunBrief):
    """A run: its input and output, what it used, and the reviews it waits for."""

    input: dict[str, Any]
    output: dict[str, Any] | None = Field(
        default=None, description="The workflow's output keys, once it succeeded."
    )
    error: str | None = Field(default=None, description="Why it failed, naming the node.")
    usage: dict[str, dict[str, int | float]] = Field(
        description="Per specialist: calls, input_tokens, output_tokens, model_time_s, "
        "queue_time_s (and `adapter NAME`: calls answered by that adapter)."
    )
    tools: dict[str, dict[str, int | float]] = Field(description="Per tool: calls, errors, time_s.")
    input_tokens: int
    output_tokens: int
    pending_reviews: list[PendingReview] = Field(
        description="The reviews it waits for (empty unless `awaiting_review`)."
    )


class RunPage(BaseModel):
    runs: list[RunBrief]
    next_cursor: str | None = Field(description="Pass back as `cursor` for the next page.")


class NodeEvent(BaseModel, extra="allow"):
    """A node the run finished."""

    at: float
    node: str
    keys: list[str] = Field(default_factory=list, description="State keys the node wrote.")
    usage: dict[str, dict[str, int | float]] = Field(default_factory=dict)
    tool_error: dict[str, Any] | None = None


class NodeEvents(BaseModel):
    events: list[NodeEvent]


class Approval(BaseModel):
    by: str = Field(description="Who approved, as their key signs (see GET /v1/keys/me).")
    at: float
    changes: dict[str, Any] | None = Field(
        default=None, description="What this reviewer changed with their approval (an edit)."
    )


class ReviewView(BaseModel):
    """A review gate of a run, and its decision once taken."""

    id: str
    run_id: str
    node: str
    status: ReviewStatus
    workflow: str | None
    proposed: dict[str, Any] = Field(
        description="What the reviewer is shown: `title`, `show` (state key to value), "
        "`editable`, `values`, `key_fields`, `approvals` (needed) and `escalate_after_s`."
    )
    decision: Literal["approve", "reject", "edit"] | None = None
    reason: str | None = None
    changes: dict[str, Any] | None = Field(default=None, description="An edit's changes.")
    decided_by: str | None = None
    decided_at: float | None = None
    created_at: float
    key_fields: dict[str, Any] = Field(
        description="The values the review node's `key_fields` name."
    )
    claimed_by: str | None = Field(description="Who has taken it, while the claim holds.")
    claimed_until: float | None = None
    approvals_needed: int = Field(ge=1)
    approvals: list[Approval] = Field(
        description="Approvals so far of a review that needs several (the last is `decided_by`)."
    )
    pending_changes: dict[str, Any] = Field(
        default_factory=dict,
        description="The edits earlier approvals made, merged (a later one wins): what a "
        "further approval approves with the proposal. Empty when none edited.",
    )
    edited_by: list[str] = Field(
        default_factory=list,
        description="Who made the edits of a decided review (or of `pending_changes`).",
    )
    due_at: float | None = Field(description="When it becomes overdue (`escalate_after`).")
    overdue: bool


class ReviewList(BaseModel):
    reviews: list[ReviewView]
    next_cursor: str | None = Field(
        default=None, description="Pass back as `cursor` for the next page."
    )


class ReviewDetail(ReviewView):
    """A review with its run, the nodes the run finished, and what to warn the reviewer of."""

    run: RunView
    events: list[NodeEvent]
    warnings: list[str] = Field(
        description="Empty lookups, values that do not fit their schema, failed tools."
    )


class ReviewSummary(BaseModel):
    """A run's review as ``cadre runs show --json`` lists it."""

    id: str
    node: str
    status: ReviewStatus
    decision: str | None
    decided_by: str | None
    approved_by: list[str] = Field(description="Every approver, the decider last.")
    reason: str | None
    changes: dict[str, Any] | None


class RunReport(RunView):
    """``cadre runs show --json``: the run as the API shows it, with its history."""

    review_wait_s: float = Field(description="Time its reviews waited for a person, in all.")
    nodes: list[str] = Field(description="The nodes it finished, in order.")
    tool_errors: list[dict[str, Any]]
    reviews: list[ReviewSummary]


class RunOutcome(BaseModel):
    """The run in a webhook body."""

    id: str
    workflow: str
    status: RunStatus
    output: dict[str, Any] | None = None
    error: str | None = None


class OverdueReview(BaseModel):
    id: str
    node: str
    title: str | None
    created_at: float
    due_at: float | None
    claimed_by: str | None


class WebhookEvent(BaseModel):
    """The JSON body of every webhook delivery (header ``X-Cadre-Event`` repeats ``event``)."""

    event: Literal["run.awaiting_review", "run.finished", "review.overdue"]
    run: RunOutcome
    reviews: list[PendingReview] = Field(
        default_factory=list, description="The reviews the run waits for."
    )
    review: OverdueReview | None = Field(
        default=None, description="The overdue review (`review.overdue` only)."
    )
    at: float


def run_brief(run: RunRecord) -> RunBrief:
    return RunBrief.model_validate(run, from_attributes=True)


def run_view(store: RunStore, run: RunRecord) -> RunView:
    pending = store.reviews("pending", run.id) if run.status == "awaiting_review" else []
    shown = {name: getattr(run, name) for name in RunView.model_fields if hasattr(run, name)}
    return RunView(
        **shown,
        pending_reviews=[PendingReview.model_validate(r, from_attributes=True) for r in pending],
    )


def review_view(review: ReviewRecord) -> ReviewView:
    holder = review.holder()
    return ReviewView(
        id=review.id,
        run_id=review.run_id,
        node=review.node,
        status=review.status,
        workflow=review.payload.get("workflow"),
        proposed=review.payload,
        decision=review.decision,  # type: ignore[arg-type]  # one of the three, as recorded
        reason=review.reason,
        changes=(review.changes or {}).get("set"),
        decided_by=review.decided_by,
        decided_at=review.decided_at,
        created_at=review.created_at,
        key_fields=review.payload.get("key_fields", {}),
        claimed_by=holder,
        claimed_until=review.claimed_until if holder else None,
        approvals_needed=int(review.payload.get("approvals", 1)),
        approvals=[
            Approval(by=a["by"], at=a["at"], changes=a.get("changes")) for a in review.approvals
        ],
        pending_changes=pending_changes(review) if review.status == "pending" else {},
        edited_by=edited_by(review),
        due_at=review.due_at,
        overdue=review.overdue_at is not None,
    )


def run_report(store: RunStore, run: RunRecord) -> RunReport:
    reviews = store.reviews(None, run.id)
    events = store.events(run.id)
    return RunReport(
        **run_view(store, run).model_dump(),
        review_wait_s=sum((r.decided_at or time.time()) - r.created_at for r in reviews),
        nodes=[e["node"] for e in events],
        tool_errors=[e["tool_error"] for e in events if e.get("tool_error")],
        reviews=[
            ReviewSummary(
                id=r.id,
                node=r.node,
                status=r.status,
                decision=r.decision,
                decided_by=r.decided_by,
                approved_by=[a["by"] for a in r.approvals]
                + ([r.decided_by] if r.decided_by and r.decision != "reject" else []),
                reason=r.reason,
                changes=r.changes,
            )
            for r in reviews
        ],
    )


def webhook_event(
    event: str, run: RunRecord, store: RunStore, review: ReviewRecord | None = None
) -> WebhookEvent:
    """The body of a webhook delivery about ``run`` (and, for ``review.overdue``, ``review``)."""
    finished = run.status in FINISHED
    return WebhookEvent(
        event=event,  # type: ignore[arg-type]  # the callers name one of the three
        run=RunOutcome(
            id=run.id,
            workflow=run.workflow,
            status=run.status,
            output=run.output if finished else None,
            error=run.error if finished else None,
        ),
        reviews=[
            PendingReview(id=r.id, node=r.node, created_at=r.created_at)
            for r in store.reviews("pending", run.id)
        ],
        review=None
        if review is None
        else OverdueReview(
            id=review.id,
            node=review.node,
            title=review.payload.get("title"),
            created_at=review.created_at,
            due_at=review.due_at,
            claimed_by=review.holder(),
        ),
        at=time.time(),
    )
