"""The spans a run gets beside its ``invoke_workflow`` stretches, written when what they tell
is over: ``cadre.review`` (a review, from the interrupt to its decision or its cancel) and
``cadre.run`` (the whole run, from submission to its end). A cancel writes both for what it
ended, so a run cancelled at a review has its review and its end in its trace."""

from __future__ import annotations

import time
from typing import Any

from orchestrator import telemetry
from orchestrator.runs.store import ReviewRecord, RunRecord, RunStore, edited_by
from orchestrator.telemetry import gen_ai


def review_span(review: ReviewRecord, run: RunRecord) -> None:
    """``cadre.review``: from the interrupt to the decision (or to the cancel that ended it),
    in the run's trace."""
    attributes: dict[str, Any] = {
        gen_ai.CONVERSATION_ID: run.id,
        gen_ai.WORKFLOW_NAME: run.workflow,
        "cadre.node": review.node,
        "cadre.review.id": review.id,
        "cadre.review.decision": review.decision or review.status,
        # A review cancelled with its run waited until the cancel, and nobody decided it.
        "cadre.review.wait_s": (review.decided_at or time.time()) - review.created_at,
    }
    if review.decided_by:
        attributes["cadre.review.reviewer"] = review.decided_by
    if review.reason:
        attributes["cadre.review.reason"] = review.reason
    if review.changes and review.changes.get("set"):
        attributes["cadre.review.changed"] = sorted(review.changes["set"])
    if review.approvals:
        attributes["cadre.review.approvers"] = [
            *(a["by"] for a in review.approvals),
            review.decided_by or "",
        ]
    if editors := edited_by(review):
        attributes["cadre.review.edited_by"] = editors
    span = telemetry.tracer().start_span(
        "cadre.review",
        context=telemetry.extract(run.trace_context),
        attributes=attributes,
        start_time=int(review.created_at * 1e9),
    )
    span.end(end_time=int((review.decided_at or time.time()) * 1e9))


def run_span(run: RunRecord) -> None:
    """``cadre.run``: the whole run, from submission to its end, with its final status: the
    root of the run's trace, whose ids were chosen when the run started, written now that it
    is over. Every stretch of the run (``invoke_workflow``, one per process that drove it)
    and its reviews are its children, so a viewer shows one tree whose root spans it all,
    even when a process died mid-run. (A run started before roots came last has its first
    stretch as its root, and this span under it.)"""
    attributes: dict[str, Any] = {
        gen_ai.CONVERSATION_ID: run.id,
        gen_ai.WORKFLOW_NAME: run.workflow,
        "cadre.run.status": run.status,
        "cadre.run.total_s": (run.finished_at or time.time()) - run.created_at,
        gen_ai.USAGE_INPUT_TOKENS: run.input_tokens,
        gen_ai.USAGE_OUTPUT_TOKENS: run.output_tokens,
    }
    telemetry.late_root(
        "cadre.run",
        run.trace_context,
        attributes,
        run.created_at,
        run.finished_at or time.time(),
        error=None if run.status == "succeeded" else run.error or run.status,
    )


def cancel_traced(store: RunStore, run_id: str) -> RunRecord:
    """Cancel a run (see :meth:`RunStore.cancel`) and write what the cancel ended to its trace:
    a ``cadre.review`` span for each review it cancelled, and the ``cadre.run`` span."""
    waiting = [r.id for r in store.reviews(None, run_id) if r.status in ("pending", "decided")]
    record = store.cancel(run_id)
    if record.trace_context:  # a run that never started has no trace to join
        for review_id in waiting:
            review_span(store.review(review_id), record)
        run_span(record)
    return record
