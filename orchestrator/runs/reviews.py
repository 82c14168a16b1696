"""Reviews: checking a reviewer's decision (and its edits) and recording it.

Recording and applying are separate: a decision is recorded here (of two racing decisions exactly
one wins), which makes its run claimable; whichever driver then holds the run applies every
decided review of it in one resume (:mod:`orchestrator.runs.runner`).
"""

from __future__ import annotations

import copy
from typing import Any

import jsonschema

from orchestrator.catalog import Catalog
from orchestrator.errors import ConflictError, InputError
from orchestrator.runs.store import FINISHED, ReviewRecord, RunStore, not_pending


def edit_update(review: ReviewRecord, changes: dict[str, Any], catalog: Catalog) -> dict[str, Any]:
    """Turn ``--set path=value`` changes into the state update a review resumes with, checked
    against the state schema (review gates) or the specialist's schema (map items)."""
    payload = review.payload
    values = copy.deepcopy(payload.get("values", {}))
    if payload["kind"] == "map_item":
        answer = values["answer"]
        for path, value in changes.items():
            if path.split(".")[0] not in payload["editable"]:
                raise InputError(
                    f"review {review.id}: {path!r} is not a field of the answer "
                    f"(editable: {', '.join(payload['editable'])})"
                )
            _set_path(answer, path, value)
        schema = catalog.specialist(payload["specialist"]).output_schema
        _validate(review.id, "answer", answer, schema)
        return {"answer": answer}
    workflow = catalog.workflow(payload["workflow"])
    schemas = workflow.state_schemas()
    for path, value in changes.items():
        root = path.split(".")[0]
        if root not in {key.split(".")[0] for key in payload["editable"]}:
            raise InputError(
                f"review {review.id}: {path!r} may not be edited here "
                f"(editable: {', '.join(payload['editable'])})"
            )
        if "." in path:
            _set_path(values.setdefault(root, {}), path.split(".", 1)[1], value)
        else:
            values[root] = value
    for root, value in values.items():
        _validate(review.id, root, value, schemas.get(root, {}))
    return {root: values[root] for root in {p.split(".")[0] for p in changes}}


def _set_path(target: Any, path: str, value: Any) -> None:
    parts = path.split(".")
    for part in parts[:-1]:
        target = target[int(part)] if isinstance(target, list) else target.setdefault(part, {})
    if isinstance(target, list):
        target[int(parts[-1])] = value
    else:
        target[parts[-1]] = value


def _validate(review_id: str, key: str, value: Any, schema: dict[str, Any]) -> None:
    error = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(schema).iter_errors(value)
    )
    if error is not None:
        where = "/".join([key, *(str(p) for p in error.absolute_path)])
        raise InputError(
            f"review {review_id}: the edit does not fit the state schema at {where}: "
            f"{error.message}"
        )


def record_decision(
    store: RunStore,
    catalog: Catalog,
    review_id: str,
    decision: str,
    by: str,
    reason: str | None = None,
    changes: dict[str, Any] | None = None,
) -> ReviewRecord:
    """Check and record a reviewer's decision (applying it is the run driver's job). Of two
    racing decisions exactly one is recorded; the other gets ConflictError."""
    review = store.review(review_id)
    if review.status != "pending":
        raise not_pending(review)
    run = store.run(review.run_id)
    if run.status in FINISHED:
        raise ConflictError(f"review {review_id}: its run {run.id} is already {run.status}")
    if decision not in ("approve", "reject", "edit"):
        raise InputError(f"decision {decision!r}: choose approve, reject or edit")
    if decision == "reject" and not (reason or "").strip():
        raise InputError("a rejection needs a reason (--reason): it is sent back for rework")
    if decision == "edit" and not changes:
        raise InputError("an edit needs at least one --set key=value")
    update = edit_update(review, changes or {}, catalog) if decision == "edit" else None
    return store.decide(
        review_id, decision, by, reason, {"set": changes, "update": update} if update else None
    )
