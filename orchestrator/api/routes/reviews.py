"""``/v1/reviews``: the tenant's review queue, claims and decisions."""

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from orchestrator.api.context import Ctx, Reviewer
from orchestrator.api.schemas import CURSOR, ClaimIn, Decision
from orchestrator.runs.reviews import record_decision, review_warnings
from orchestrator.runs.views import ReviewDetail, ReviewList, ReviewView, review_view, run_view

router = APIRouter(tags=["reviews"])


@router.get("/v1/reviews")
def list_reviews(
    key: Reviewer,
    ctx: Ctx,
    status: Literal["pending", "decided", "applied", "cancelled"] = "pending",
    workflow: str | None = None,
    older_than_s: Annotated[float | None, Query(ge=0, allow_inf_nan=False)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(pattern=CURSOR)] = None,
) -> ReviewList:
    """The tenant's review queue, oldest first; pass ``next_cursor`` back as ``cursor`` for
    more."""
    after = None
    if cursor:
        at, _, review_id = cursor.partition("_")
        after = (float(at), review_id)
    reviews = ctx.runs.reviews(
        status,
        tenant=key.tenant,
        workflow=workflow,
        older_than_s=older_than_s,
        limit=limit,
        after=after,
    )
    last = reviews[-1] if len(reviews) == limit else None
    return ReviewList(
        reviews=[review_view(r) for r in reviews],
        next_cursor=f"{last.created_at!r}_{last.id}" if last else None,
    )


@router.get("/v1/reviews/{review_id}")
def get_review(review_id: str, key: Reviewer, ctx: Ctx) -> ReviewDetail:
    """A review: what the specialist proposed, the run's state and progress so far, and
    ``warnings`` (empty lookups, values that do not fit their schema, failed tools)."""
    review = ctx.own_review(key, review_id)
    run = ctx.runs.run(review.run_id)
    events = ctx.runs.events(run.id)
    return ReviewDetail.model_validate(
        {
            **review_view(review).model_dump(),
            "run": run_view(ctx.runs, run),
            "events": events,
            "warnings": review_warnings(review, events, ctx.catalog),
        }
    )


@router.post("/v1/reviews/{review_id}/decision")
def decide(review_id: str, body: Decision, key: Reviewer, ctx: Ctx) -> ReviewView:
    """Approve, reject (with a reason: the run goes back for rework) or edit (changes
    checked against the state schema); a run worker then drives the run on."""
    ctx.own_review(key, review_id)
    review = record_decision(
        ctx.runs, ctx.catalog, review_id, body.decision, key.who, body.reason, body.changes
    )
    ctx.wake()
    return review_view(review)


@router.post("/v1/reviews/{review_id}/claim")
def claim_review(
    review_id: str, key: Reviewer, ctx: Ctx, body: ClaimIn | None = None
) -> ReviewView:
    """Take the review for a while, so no other reviewer decides it meanwhile (they see who
    holds it, and get 409 if they try). Claiming again renews the claim; it runs out by
    itself after ``hold_minutes``, or when the holder decides or releases it."""
    ctx.own_review(key, review_id)
    hold = (body or ClaimIn()).hold_minutes * 60.0
    return review_view(ctx.runs.claim(review_id, key.who, hold))


@router.delete("/v1/reviews/{review_id}/claim")
def release_review(review_id: str, key: Reviewer, ctx: Ctx) -> ReviewView:
    """Give up your claim on the review; another reviewer's claim is theirs to give up (409)."""
    ctx.own_review(key, review_id)
    return review_view(ctx.runs.release(review_id, key.who))
