"""Reviews: checking a reviewer's decision (and its edits) and recording it.

Recording and applying are separate: a decision is recorded here (of two racing decisions exactly
one wins), which makes its run claimable; whichever driver then holds the run applies every
decided review of it in one resume (:mod:`orchestrator.runs.runner`).
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from orchestrator.errors import (
    ApprovalsChanged,
    CadreError,
    ConflictError,
    InputError,
    clip,
    kind_of,
    schema_misfit,
    unfit_json,
)
from orchestrator.runs.store import (
    FINISHED,
    ReviewRecord,
    RunStore,
    check_new_approver,
    merge_changes,
    not_pending,
    overlapping,
    pending_changes,
)
from orchestrator.workflow.catalog import Catalog
from orchestrator.workflow.schemas import fields, produced_schemas, sub_schema

DIRECTION_CONTROLS = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
"""Characters that reorder how text displays without being seen themselves."""

PATH_PART = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*|0|[1-9][0-9]{0,5}")
"""One step of an edit path: a field name, or a list index."""


def edit_update(review: ReviewRecord, changes: dict[str, Any], catalog: Catalog) -> dict[str, Any]:
    """Turn ``--set path=value`` changes into the state update a review resumes with. Each path
    is walked against the schema of what it edits (the state key's declared schema, and the
    output schema of the specialist that writes the key), so a path into a number, a field the
    schema lacks, or a value of the wrong type is refused (InputError) and nothing is changed."""
    payload = review.payload
    values = copy.deepcopy(payload.get("values", {}))
    # A copy: a later path inside a whole value set earlier must not change the approval
    # (or the request) that value came from.
    changes = copy.deepcopy(changes)
    editable = [str(key) for key in payload.get("editable", [])]
    if payload["kind"] == "map_item":
        schema = catalog.specialist(payload["specialist"]).output_schema
        answer = values["answer"]
        for path, value in changes.items():
            parts = _parts(review.id, path)
            if not within(path, editable):
                raise InputError(
                    f"review {review.id}: {path!r} is not a field of the answer "
                    f"(editable: {', '.join(editable)})"
                )
            _set_path(review.id, path, answer, schema, parts, value)
        _validate(review.id, "answer", answer, schema)
        return {"answer": answer}
    schemas = state_schemas(catalog, payload["workflow"])
    for path, value in changes.items():
        parts = _parts(review.id, path)
        root = parts[0]
        if not within(path, editable):
            raise InputError(
                f"review {review.id}: {path!r} may not be edited here "
                f"(editable: {', '.join(editable)})"
            )
        if len(parts) == 1:
            values[root] = value
            continue
        if values.get(root) is None:
            values[root] = {}
        _set_path(review.id, path, values[root], schemas.get(root, {}), parts[1:], value)
    edited = {path.split(".")[0] for path in changes}
    for root in edited:
        _validate(review.id, root, values[root], schemas.get(root, {}))
    return {root: values[root] for root in edited}


def within(path: str, editable: list[str]) -> bool:
    """Whether an edit of ``path`` stays inside what the gate lets a reviewer edit: an editable
    path itself or a field under one (``editable: [fields.amount]`` allows neither
    ``fields.policy_number`` nor the whole of ``fields``)."""
    return any(path == e or path.startswith(e + ".") for e in editable)


def state_schemas(catalog: Catalog, workflow_name: str) -> dict[str, dict[str, Any]]:
    """Each state key's schema, as declared and as its specialists produce it."""
    return produced_schemas(catalog.workflow(workflow_name), catalog)


def review_warnings(
    review: ReviewRecord, events: list[dict[str, Any]], catalog: Catalog | None
) -> list[str]:
    """What a reviewer should be warned of before deciding: a shown value that is empty (a
    lookup that found nothing), one that does not fit its state schema, and a tool that failed
    earlier in the run, and text that hides what it says (direction controls: U+202E shows
    "gnp.exe" as "exe.png"). Without a catalog, values are not checked against schemas."""
    warnings = []
    hidden = sorted(
        {
            f"U+{ord(c):04X}"
            for c in DIRECTION_CONTROLS.findall(
                json.dumps(
                    [review.payload.get("show", {}), review.payload.get("values", {})],
                    ensure_ascii=False,
                )
            )
        }
    )
    if hidden:
        warnings.append(
            f"the values shown hold text-direction controls ({', '.join(hidden)}): text may "
            "read in another order than it is written; they are shown as their codes"
        )
    try:
        schemas = state_schemas(catalog, review.payload.get("workflow", "")) if catalog else {}
    except CadreError:  # the workflow is no longer in the catalog: no schemas to check against
        schemas = {}
    for key, value in review.payload.get("show", {}).items():
        if value is None or value == [] or value == {} or value == "":
            warnings.append(f"{key} is empty: the step that fills it found nothing")
            continue
        schema = schemas.get(key) if "." not in key else None
        if schema:
            misfit = schema_misfit(schema, value, root=key)
            if misfit is not None:
                warnings.append(f"{misfit[0]} does not fit its schema: {misfit[1]}")
    for event in events:
        failed = event.get("tool_error")
        if failed:
            warnings.append(
                f"tool {failed.get('tool')} failed in step {failed.get('node')}: "
                f"{failed.get('error')}"
            )
    return warnings


def _parts(review_id: str, path: str) -> list[str]:
    parts = path.split(".")
    bad = next((p for p in parts if not PATH_PART.fullmatch(p)), None)
    if bad is not None or len(path) > 500:
        shown = "an empty step" if bad == "" else f"{(bad or path)[:40]!r}"
        raise InputError(
            f"review {review_id}: the edit path {path[:200]!r} has {shown}; a path is field "
            "names and list indexes joined by dots, e.g. fields.amount or items.0.label"
        )
    return parts


def _set_path(
    review_id: str,
    path: str,
    target: Any,
    schema: dict[str, Any],
    parts: list[str],
    value: Any,
) -> None:
    """Set ``value`` at ``parts`` inside ``target``, walking ``schema`` alongside."""
    walked = path.split(".")[: len(path.split(".")) - len(parts)]
    for i, part in enumerate(parts):
        here = ".".join(walked + parts[:i]) or "the answer"
        last = i == len(parts) - 1
        if isinstance(target, list):
            if not part.isdigit() or int(part) >= len(target):
                raise InputError(
                    f"review {review_id}: {here} is a list of {len(target)} items; "
                    f"{part!r} is not one of its indexes"
                )
            schema = sub_schema(schema, "items")
            if last:
                target[int(part)] = value
            else:
                target = target[int(part)]
            continue
        if not isinstance(target, dict):
            raise InputError(
                f"review {review_id}: {here} is {kind_of(target)}; it has no field {part!r}"
            )
        known = fields(schema)
        if known is not None and part not in known:
            listed = ", ".join(sorted(known)) or "none"
            raise InputError(
                f"review {review_id}: {here} has no field {part!r} (its fields: {listed})"
            )
        schema = sub_schema(schema, "properties", part)
        if last:
            target[part] = value
        else:
            if target.get(part) is None:
                target[part] = {}
            target = target[part]


def _validate(review_id: str, key: str, value: Any, schema: dict[str, Any]) -> None:
    misfit = schema_misfit(schema, value, root=key)
    if misfit is not None:
        raise InputError(
            f"review {review_id}: the edit does not fit the state schema at {misfit[0]}: "
            f"{misfit[1]}"
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
    for name, given in (("reason", reason), ("changes", changes)):
        fault = unfit_json(given, name)
        if fault is not None:
            raise InputError(f"review {review_id}: {clip(fault[0], 200)}: {fault[1]}")
    if decision == "reject" and not (reason or "").strip():
        raise InputError(
            f"review {review_id}: a rejection needs a reason: it is sent back for rework"
        )
    if decision == "edit" and not changes:
        raise InputError(f"review {review_id}: an edit needs at least one change")
    if changes and decision != "edit":
        raise InputError(
            f"review {review_id}: changes go with an edit; to {decision} leave them out"
        )
    if changes and len(changes) > MAX_CHANGES:
        raise InputError(
            f"review {review_id}: {len(changes)} changes in one edit; at most {MAX_CHANGES}"
        )
    if changes and (both := overlapping(changes)) is not None:
        raise InputError(
            f"review {review_id}: the changes {both[0]!r} and {both[1]!r} overlap (one holds "
            "the other); send the whole value, or only the paths inside it"
        )
    needed = int(review.payload.get("approvals", 1))
    if decision == "reject" or needed == 1:
        update = edit_update(review, changes or {}, catalog) if decision == "edit" else None
        edit = {"set": changes, "update": update, "edits": [{"by": by, "set": changes}]}
        return store.decide(review_id, decision, by, reason, edit if update else None)
    # Several approvals: an edit is its reviewer's approval of the edited values; the last
    # approval decides, with every earlier reviewer's edits and its own (later ones win). Each
    # write holds only if no other approval came in since the review was read; if one did,
    # the decision is made again from the review as it now is (this approval may be the last).
    for _ in range(RACED_TRIES):
        try:
            return _approve(store, review, needed, by, reason, changes, catalog)
        except ApprovalsChanged:
            review = store.review(review_id)
            if review.status != "pending":
                raise not_pending(review) from None
    raise ConflictError(
        f"review {review_id}: other approvals kept coming in while {by} approved it; open it again"
    )


MAX_CHANGES = 200
"""Most paths one edit may change."""

RACED_TRIES = 5
"""How often a decision on a review needing several approvals is made again when other
approvals keep landing first."""


def _approve(
    store: RunStore,
    review: ReviewRecord,
    needed: int,
    by: str,
    reason: str | None,
    changes: dict[str, Any] | None,
    catalog: Catalog,
) -> ReviewRecord:
    """Record ``by``'s approval (an edit when ``changes``) of a review needing ``needed``."""
    check_new_approver(review, by)
    merged = merge_changes(pending_changes(review), changes or {})
    # Checked now, not only at the last approval: an edit the gate does not allow, or that
    # does not fit, is refused to whoever makes it (it used to be kept and then refuse every
    # later approval of the review).
    update = edit_update(review, merged, catalog) if merged else None
    if len(review.approvals) + 1 < needed:
        return store.approve_partly(review, by, changes)
    # Who changed what, for the audit: each approval that edited, then this one if it did.
    edits = [{"by": a["by"], "set": a["changes"]} for a in review.approvals if a.get("changes")]
    edits += [{"by": by, "set": changes}] if changes else []
    return store.decide(
        review.id,
        "edit" if merged else "approve",
        by,
        reason,
        {"set": merged, "update": update, "edits": edits} if update else None,
        actor=by,
        seen=review,
    )
