"""The review desk's rules, on both databases, with runs driven in this process (LocalAsker,
scripted engine): a reviewer claims a review and others cannot decide it until the claim is
released or runs out; a gate that needs two approvals needs two different reviewers, and their
edits are applied together; a review past its node's ``escalate_after`` is marked overdue once
and its webhooks get ``review.overdue``; the queue shows each review's key fields."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.api.webhooks import Escalator, Webhooks
from orchestrator.errors import ApprovalsChanged, ConflictError, InputError
from orchestrator.runs.reviews import review_warnings
from orchestrator.runs.runner import Runner
from orchestrator.runs.views import WebhookEvent, review_view
from orchestrator.specialists.local import LocalAsker
from orchestrator.workflow.catalog import Catalog, load_catalog
from tests.workflow.fixtures import scripted_workflow_catalog


def claim_catalog(tmp_path: Path, **gate: Any) -> Catalog:
    """The claim flow, its adjuster gate given ``gate``'s fields."""
    root = scripted_workflow_catalog(tmp_path / "c")
    path = root.parent / "graphs" / "claim.yaml"
    flow = yaml.safe_load(path.read_text())
    adjuster = next(n for n in flow["nodes"] if n["id"] == "adjuster")
    adjuster.update(gate)
    path.write_text(yaml.safe_dump(flow, sort_keys=False))
    return load_catalog(root)


def nested(depth: int) -> list[Any]:
    """A list ``depth`` lists deep."""
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


def drive(catalog: Catalog, url: str, body: Any) -> Any:
    async def go() -> Any:
        async with Runner(catalog, database_url=url, asker=LocalAsker(catalog)) as runner:
            return await body(runner)

    return asyncio.run(go())


def test_a_claimed_review_is_decided_only_by_its_holder_until_released(
    tmp_path: Path, database_url: str
) -> None:
    catalog = claim_catalog(tmp_path)

    async def body(runner: Runner) -> Any:
        record = await runner.start("claim", {"claim": "a flood"})
        (review,) = runner.store.reviews("pending", record.id)
        held = runner.store.claim(review.id, "rita", 600)
        assert held.holder() == "rita"
        assert held.claimed_until is not None and held.claimed_until > time.time() + 590
        with pytest.raises(
            ConflictError, match=r"claimed by rita until \d\d:\d\d:\d\d UTC; sam may decide it once"
        ):
            await runner.decide(review.id, "approve", "sam")
        with pytest.raises(ConflictError, match="claimed by rita"):
            runner.store.claim(review.id, "sam", 600)
        assert runner.store.claim(review.id, "rita", 60).holder() == "rita"  # a renewal
        with pytest.raises(ConflictError, match="claimed by rita until"):  # not sam's to release
            runner.store.release(review.id, "sam")
        assert runner.store.review(review.id).holder() == "rita"
        assert runner.store.release(review.id, "rita").holder() is None
        runner.store.release(review.id, "rita")  # nothing held: nothing logged
        decided, record = await runner.decide(review.id, "approve", "sam")
        held = [e for e in runner.store.log(record.id).entries if e.kind in ("claim", "release")]
        return decided, record, held

    decided, record, held = drive(catalog, database_url, body)
    assert (decided.decided_by, decided.claimed_by, record.status) == ("sam", None, "succeeded")
    # Claims are in the run's log, so an open page or a watcher learns who holds the review.
    assert [(e.kind, e.detail["by"]) for e in held] == [
        ("claim", "rita"),
        ("claim", "rita"),
        ("release", "rita"),
    ]
    assert held[0].detail["review_id"] == decided.id and held[0].detail["until"] > time.time()


def test_a_claim_that_ran_out_holds_nothing(tmp_path: Path, database_url: str) -> None:
    catalog = claim_catalog(tmp_path)

    async def body(runner: Runner) -> Any:
        record = await runner.start("claim", {"claim": "a flood"})
        (review,) = runner.store.reviews("pending", record.id)
        runner.store.claim(review.id, "rita", 0.2)
        await asyncio.sleep(0.3)
        assert runner.store.review(review.id).holder() is None
        assert runner.store.claim(review.id, "sam", 600).holder() == "sam"
        return await runner.decide(review.id, "approve", "sam")

    decided, record = drive(catalog, database_url, body)
    assert decided.decided_by == "sam" and record.status == "succeeded"


def test_two_approvals_need_two_reviewers_and_apply_both_edits(
    tmp_path: Path, database_url: str
) -> None:
    catalog = claim_catalog(tmp_path, approvals=2, editable=["fields", "payout"])

    async def body(runner: Runner) -> Any:
        record = await runner.start("claim", {"claim": "a flood"})
        (review,) = runner.store.reviews("pending", record.id)
        first, record = await runner.decide(
            review.id, "edit", "rita", changes={"fields.amount": 1800}
        )
        assert (first.status, record.status) == ("pending", "awaiting_review")
        assert [a["by"] for a in first.approvals] == ["rita"]
        # What sam is shown before approving: rita's edit, which his approval approves too.
        seen = review_view(first)
        assert seen.pending_changes == {"fields.amount": 1800} and seen.edited_by == ["rita"]
        assert seen.approvals[0].changes == {"fields.amount": 1800}
        with pytest.raises(ConflictError, match="rita has already approved it"):
            await runner.decide(review.id, "approve", "rita")
        with pytest.raises(ConflictError, match="rita has already approved it"):
            runner.store.claim(review.id, "rita", 600)  # it would keep the next approver out
        decided, record = await runner.decide(review.id, "edit", "sam", changes={"payout": 1700})
        stream = [e for e in runner.store.log(record.id).entries if e.kind != "node"]
        return decided, record, stream

    decided, record, stream = drive(catalog, database_url, body)
    assert review_view(decided).edited_by == ["rita", "sam"]
    assert review_view(decided).pending_changes == {}
    assert record.status == "succeeded"
    assert record.output["fields"]["amount"] == 1800  # rita's edit
    assert record.output["payout"] == 1700  # sam's edit
    assert decided.decision == "edit" and decided.decided_by == "sam"
    assert decided.changes is not None
    assert decided.changes["set"] == {"fields.amount": 1800, "payout": 1700}
    decision = next(e for e in stream if e.kind == "decision")  # the audit trail has the edit
    assert decision.detail["changes"] == {"fields.amount": 1800, "payout": 1700}
    assert decision.detail["by"] == "sam"
    assert decision.detail["edited_by"] == ["rita", "sam"]
    approval = next(e for e in stream if e.kind == "approval")
    assert approval.detail == {
        "review_id": decided.id,
        "by": "rita",
        "approvals": 1,
        "needed": 2,
        "changes": {"fields.amount": 1800},
    }


def test_an_approval_of_an_earlier_reviewer_s_edit_credits_the_edit_to_them(
    tmp_path: Path, database_url: str
) -> None:
    """Rita edits with her approval; Sam only approves. The decision applies Rita's values and
    the audit says that Rita made the edit and Sam approved it."""
    catalog = claim_catalog(tmp_path, approvals=2, editable=["fields"])

    async def body(runner: Runner) -> Any:
        record = await runner.start("claim", {"claim": "a flood"})
        (review,) = runner.store.reviews("pending", record.id)
        await runner.decide(review.id, "edit", "rita", changes={"fields.amount": 999})
        decided, record = await runner.decide(review.id, "approve", "sam")
        decision = next(e for e in runner.store.log(record.id).entries if e.kind == "decision")
        return decided, record, decision

    decided, record, decision = drive(catalog, database_url, body)
    assert record.output["fields"]["amount"] == 999
    assert (decided.decision, decided.decided_by) == ("edit", "sam")
    assert review_view(decided).edited_by == ["rita"]
    assert decision.detail["edited_by"] == ["rita"]


def test_an_approval_made_from_a_review_read_before_another_approval_is_made_again(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two reviewers approve a two-approval gate at the same moment: both read the review with
    no approvals. The second write must not record a second partial approval (the review would
    wait for good with all it needs); it is made again and decides the review."""
    catalog = claim_catalog(tmp_path, approvals=2)

    async def body(runner: Runner) -> Any:
        record = await runner.start("claim", {"claim": "a flood"})
        (review,) = runner.store.reviews("pending", record.id)
        stale = runner.store.review(review.id)  # sam's read, before rita's approval lands
        await runner.decide(review.id, "approve", "rita")
        with pytest.raises(ApprovalsChanged, match="gained another approval while sam"):
            runner.store.approve_partly(stale, "sam")
        with pytest.raises(ApprovalsChanged):
            runner.store.decide(review.id, "approve", "sam", actor="sam", seen=stale)
        assert [a["by"] for a in runner.store.review(review.id).approvals] == ["rita"]
        reads = iter([stale])
        read = runner.store.review
        monkeypatch.setattr(runner.store, "review", lambda rid: next(reads, None) or read(rid))
        return await runner.decide(review.id, "approve", "sam")

    decided, record = drive(catalog, database_url, body)
    assert (decided.status, decided.decision, decided.decided_by) == ("applied", "approve", "sam")
    assert [a["by"] for a in decided.approvals] == ["rita"]
    assert record.status == "succeeded"


def test_a_decision_landing_after_its_run_was_cancelled_is_refused(
    tmp_path: Path, database_url: str
) -> None:
    """A cancel marks the run, then its reviews. A decision written between the two must not
    be recorded (both would answer 200, leaving a cancelled review that reads approved): the
    decision's write holds only while the run has not ended."""
    catalog = claim_catalog(tmp_path, approvals=2)

    async def body(runner: Runner) -> Any:
        record = await runner.start("claim", {"claim": "a flood"})
        (review,) = runner.store.reviews("pending", record.id)
        seen = runner.store.review(review.id)
        # The cancel's first write only, as a racing decision would find it.
        runner.store.db.execute(
            "UPDATE cadre_runs SET status = 'cancelled' WHERE id = ?", (record.id,)
        )
        with pytest.raises(ConflictError, match=f"its run {record.id} is already cancelled"):
            runner.store.approve_partly(seen, "rita")
        with pytest.raises(ConflictError, match=f"its run {record.id} is already cancelled"):
            runner.store.decide(review.id, "reject", "sam", "no", seen=seen)
        return runner.store.review(review.id)

    left = drive(catalog, database_url, body)
    assert (left.status, left.decision, left.approvals) == ("pending", None, ())


def test_changes_go_only_with_an_edit(tmp_path: Path, database_url: str) -> None:
    catalog = claim_catalog(tmp_path, editable=["fields"])

    async def body(runner: Runner) -> Any:
        record = await runner.start("claim", {"claim": "a flood"})
        (review,) = runner.store.reviews("pending", record.id)
        for decision in ("approve", "reject"):
            with pytest.raises(InputError, match=f"changes go with an edit; to {decision}"):
                await runner.decide(
                    review.id, decision, "sam", reason="x", changes={"fields.amount": 9}
                )
        with pytest.raises(InputError, match="an edit needs at least one change"):
            await runner.decide(review.id, "edit", "sam")
        assert runner.store.review(review.id).status == "pending"
        return await runner.decide(review.id, "approve", "sam")

    _, finished = drive(catalog, database_url, body)
    assert finished.status == "succeeded" and finished.output["fields"]["amount"] == 2500


def test_one_rejection_sends_back_a_gate_that_needs_two_approvals(
    tmp_path: Path, database_url: str
) -> None:
    catalog = claim_catalog(tmp_path, approvals=2)

    async def body(runner: Runner) -> Any:
        record = await runner.start("claim", {"claim": "a flood"})
        (review,) = runner.store.reviews("pending", record.id)
        await runner.decide(review.id, "approve", "rita")
        return await runner.decide(review.id, "reject", "sam", reason="rework: amount wrong")

    decided, record = drive(catalog, database_url, body)
    assert decided.decision == "reject"
    # The rework path's answer is below the review threshold: the run finishes.
    assert record.status == "succeeded" and record.output["fields"]["amount"] == 500


def test_an_overdue_review_is_escalated_once_to_the_tenants_webhooks(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CADRE_WEBHOOK_ALLOW", "127.0.0.1/32")
    catalog = claim_catalog(
        tmp_path, escalate_after="1s", key_fields=["fields.policy_number", "payout"]
    )

    async def body(runner: Runner) -> Any:
        hooks = Webhooks(runner.db, background=False)
        hooks.register("default", "http://127.0.0.1:9/hook")
        record = await runner.start("claim", {"claim": "a flood"})
        (review,) = runner.store.reviews("pending", record.id)
        escalator = Escalator(database_url)
        assert escalator.sweep(runner.store, hooks) == pytest.approx(review.created_at + 1, 0.01)
        assert hooks.deliveries("default") == []  # not due yet
        await asyncio.sleep(1.1)
        escalator.sweep(runner.store, hooks)
        escalator.sweep(runner.store, hooks)  # a second look sends nothing more
        rows = runner.db.query("SELECT event, status, body FROM cadre_webhook_deliveries")
        return review, runner.store.review(review.id), rows

    review, after, rows = drive(catalog, database_url, body)
    assert review.payload["key_fields"] == {"fields.policy_number": "P-1", "payout": 2400}
    assert after.overdue_at is not None
    assert [(r["event"], r["status"]) for r in rows] == [("review.overdue", review.id)]
    sent = json.loads(rows[0]["body"])
    assert WebhookEvent.model_validate(sent).review is not None  # the documented body
    assert sent["review"]["id"] == review.id
    assert sent["review"]["title"] == "Large claim: check the extracted fields"
    assert sent["run"]["status"] == "awaiting_review"


def test_a_reviewer_is_warned_of_empty_lookups_misfits_and_failed_tools(
    tmp_path: Path, database_url: str
) -> None:
    catalog = claim_catalog(tmp_path)

    async def body(runner: Runner) -> Any:
        record = await runner.start("claim", {"claim": "a flood"})
        (review,) = runner.store.reviews("pending", record.id)
        return review

    review = drive(catalog, database_url, body)
    assert review_warnings(review, [], catalog) == []
    shown = {"fields": {"policy_number": "P-1", "amount": "lots"}, "payout": None}
    odd = dataclasses.replace(review, payload={**review.payload, "show": shown})
    failed = {"tool_error": {"node": "payout", "tool": "calculator", "error": "division by zero"}}
    assert review_warnings(odd, [{"node": "payout"}, failed], catalog) == [
        "fields/amount does not fit its schema: 'lots' is not of type 'number'",
        "payout is empty: the step that fills it found nothing",
        "tool calculator failed in step payout: division by zero",
    ]
    spoofed = {"fields": {"policy_number": "P-\u202e1-X\u202c", "amount": 5}, "payout": 5}
    hidden = dataclasses.replace(review, payload={**review.payload, "show": spoofed})
    assert review_warnings(hidden, [], catalog) == [
        "the values shown hold text-direction controls (U+202C, U+202E): text may read in "
        "another order than it is written; they are shown as their codes"
    ]


def test_a_decision_that_is_not_text_is_refused_and_the_review_waits(
    tmp_path: Path, database_url: str
) -> None:
    catalog = claim_catalog(tmp_path)

    async def body(runner: Runner) -> Any:
        record = await runner.start("claim", {"claim": "a flood"})
        (review,) = runner.store.reviews("pending", record.id)
        with pytest.raises(InputError, match=r": reason: holds an unpaired UTF-16 surrogate"):
            await runner.decide(review.id, "reject", "sam", reason="late \ud800")
        with pytest.raises(InputError, match=r": changes/fields.amount: holds an unpaired"):
            await runner.decide(review.id, "edit", "sam", changes={"fields.amount": "\udc00"})
        for value, why in (
            (float("nan"), "is nan, which is not a JSON number"),
            (2**64, "is an integer outside 64 bits"),
            (nested(80), "nests lists and objects more than 64 deep"),
        ):
            with pytest.raises(InputError, match=f"changes/fields.amount(/0)*: {why}"):
                await runner.decide(review.id, "edit", "sam", changes={"fields.amount": value})
        assert runner.store.review(review.id).status == "pending"
        return await runner.decide(review.id, "approve", "sam")

    _, finished = drive(catalog, database_url, body)
    assert finished.status == "succeeded"


def test_an_editable_path_lets_a_reviewer_edit_that_field_and_nothing_beside_it(
    tmp_path: Path, database_url: str
) -> None:
    catalog = claim_catalog(tmp_path, editable=["fields.amount"])

    async def body(runner: Runner) -> Any:
        record = await runner.start("claim", {"claim": "a flood"})
        (review,) = runner.store.reviews("pending", record.id)
        for change in (
            {"fields.policy_number": "P-EVIL"},  # beside the editable field
            {"fields": {"policy_number": "P-EVIL", "amount": 1}},  # the whole key around it
            {"fields.amountx": 1},  # a name that only starts like it
        ):
            with pytest.raises(InputError, match=r"may not be edited here \(editable: fields\.amo"):
                await runner.decide(review.id, "edit", "sam", changes=change)
        return await runner.decide(review.id, "edit", "sam", changes={"fields.amount": 1800})

    decided, record = drive(catalog, database_url, body)
    assert record.output["fields"] == {"policy_number": "P-1", "amount": 1800}


def test_a_decision_whose_driver_died_before_the_resume_was_saved_is_applied_by_the_next(
    tmp_path: Path, database_url: str
) -> None:
    """The applying driver marks the decision applied, sets the run running, and dies before
    the resume reaches a checkpoint. The next driver finds the run at the same interrupt: the
    decision is applied again there, not lost (the run used to wait for good with no review)."""
    catalog = claim_catalog(tmp_path)

    async def body(runner: Runner) -> Any:
        record = await runner.start("claim", {"claim": "a flood"})
        (review,) = runner.store.reviews("pending", record.id)
        runner.store.decide(review.id, "approve", "rita")
        runner.store.mark_applied([review.id])  # what the dead driver got to
        runner.store.set_status(record.id, "running")
        return review.id, await runner.resume(record.id)

    review_id, record = drive(catalog, database_url, body)
    assert record.status == "succeeded"
    assert record.output["decision"] == {"decision": "pay"}
    store_review = drive(catalog, database_url, lambda r: _read(r, review_id))
    assert (store_review.status, store_review.decided_by) == ("applied", "rita")


async def _read(runner: Runner, review_id: str) -> Any:
    return runner.store.review(review_id)


def test_an_edit_of_a_map_s_answers_is_checked_against_its_specialist_s_schema(
    tmp_path: Path, database_url: str
) -> None:
    """A review after a map may edit the list of answers; each is the map's specialist's
    answer, so a label outside its enum is refused as it is at a per-item review."""
    root = scripted_workflow_catalog(tmp_path / "c")
    path = root.parent / "graphs" / "tickets.yaml"
    flow = yaml.safe_load(path.read_text())
    flow["nodes"][0].update(review=False, join="check")
    flow["nodes"].insert(
        1,
        {"kind": "review", "id": "check", "show": ["labels"], "editable": ["labels"],
         "next": "route", "on_reject": "label"},
    )  # fmt: skip
    path.write_text(yaml.safe_dump(flow, sort_keys=False))
    catalog = load_catalog(root)

    async def body(runner: Runner) -> Any:
        record = await runner.start("tickets", {"issues": ["printer jams", "refund me"]})
        (review,) = runner.store.reviews("pending", record.id)
        with pytest.raises(InputError, match=r"labels/0/label: 'shipping' is not one of"):
            await runner.decide(review.id, "edit", "sam", changes={"labels.0.label": "shipping"})
        with pytest.raises(InputError, match=r"labels/1: 'label' is a required property"):
            await runner.decide(review.id, "edit", "sam", changes={"labels.1": {"x": 1}})
        return await runner.decide(review.id, "edit", "sam", changes={"labels.0.label": "billing"})

    decided, record = drive(catalog, database_url, body)
    assert record.output["labels"][0] == {"label": "billing"}


def test_an_earlier_approval_s_edit_is_checked_when_it_is_made(
    tmp_path: Path, database_url: str
) -> None:
    """On a gate needing two approvals, the first approver's edit is checked as the last one's
    is: a path the gate does not allow, a value that does not fit, too many changes. It used to
    be kept unchecked, and then every later approval of the review failed on it."""
    catalog = claim_catalog(tmp_path, approvals=2, editable=["fields.amount"])

    async def body(runner: Runner) -> Any:
        record = await runner.start("claim", {"claim": "a flood"})
        (review,) = runner.store.reviews("pending", record.id)
        for change, why in (
            ({"fields.policy_number": "HACK"}, "may not be edited here"),
            ({"fields.amount": "lots"}, "is not of type 'number'"),
            ({f"fields.amount.z{i}": 1 for i in range(201)}, "201 changes in one edit"),
        ):
            with pytest.raises(InputError, match=why):
                await runner.decide(review.id, "edit", "rita", changes=change)
        assert runner.store.review(review.id).approvals == ()
        await runner.decide(review.id, "edit", "rita", changes={"fields.amount": 1800})
        return await runner.decide(review.id, "approve", "sam")

    decided, record = drive(catalog, database_url, body)
    assert record.output["fields"]["amount"] == 1800


def test_a_later_approval_s_edit_wins_whatever_the_order_of_the_paths(
    tmp_path: Path, database_url: str
) -> None:
    """Rita sets fields.amount, Sam replaces fields whole, Ann sets fields.amount: Ann's amount
    and Sam's policy number stand (the order of keys in JSON decided it, and the last edit was
    lost while the record said it was applied). One edit with overlapping paths is refused."""
    catalog = claim_catalog(tmp_path, approvals=3, editable=["fields"])

    async def body(runner: Runner) -> Any:
        record = await runner.start("claim", {"claim": "a flood"})
        (review,) = runner.store.reviews("pending", record.id)
        with pytest.raises(InputError, match="'fields' and 'fields.amount' overlap"):
            await runner.decide(
                review.id,
                "edit",
                "rita",
                changes={"fields.amount": 9, "fields": {"policy_number": "B", "amount": 7}},
            )
        await runner.decide(review.id, "edit", "rita", changes={"fields.amount": 9})
        whole = {"policy_number": "B", "amount": 7}
        await runner.decide(review.id, "edit", "sam", changes={"fields": whole})
        assert review_view(runner.store.review(review.id)).pending_changes == {"fields": whole}
        return await runner.decide(review.id, "edit", "ann", changes={"fields.amount": 5})

    decided, record = drive(catalog, database_url, body)
    assert record.output["fields"] == {"policy_number": "B", "amount": 5}
    assert decided.changes is not None
    assert decided.changes["set"] == {
        "fields": {"policy_number": "B", "amount": 7},
        "fields.amount": 5,
    }


def test_a_runner_without_the_run_s_workflow_records_nothing(
    tmp_path: Path, database_url: str
) -> None:
    """`cadre review approve` (or `runs resume`) without the `--graphs` a run was started with
    used to record the decision and mark the run running, then fail: the run was left running
    with nothing driving it, and the decision could not be made again."""
    from orchestrator.errors import NotFoundError

    catalog = claim_catalog(tmp_path, approvals=2)
    other = dataclasses.replace(catalog, workflows={})

    async def start(runner: Runner) -> Any:
        record = await runner.start("claim", {"claim": "a flood"})
        (review,) = runner.store.reviews("pending", record.id)
        await runner.decide(review.id, "approve", "rita")
        return record, review

    record, review = drive(catalog, database_url, start)

    async def elsewhere(runner: Runner) -> Any:
        for attempt in (
            runner.decide(review.id, "approve", "sam"),
            runner.resume(record.id),
        ):
            with pytest.raises(NotFoundError, match="workflow 'claim', which is not among"):
                await attempt
        return runner.store.review(review.id), runner.store.run(record.id)

    left, run = drive(other, database_url, elsewhere)
    assert (left.status, [a["by"] for a in left.approvals]) == ("pending", ["rita"])
    assert run.status == "awaiting_review"
    decided, finished = drive(
        catalog, database_url, lambda r: r.decide(review.id, "approve", "sam")
    )
    assert (decided.decided_by, finished.status) == ("sam", "succeeded")
