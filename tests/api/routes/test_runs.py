"""`/v1/runs`: submissions queued and admitted, idempotency, listing, the long poll."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from orchestrator.runs.store import RunStore
from orchestrator.storage.database import Database
from tests.api.helpers import (
    BIG_CLAIM,
    SMALL_CLAIM,
    Api,
    make_api,
    submit,
)


def test_a_submission_is_queued_not_run_in_the_request(api: Api) -> None:
    response = submit(api, {"workflow": "claim", "input": SMALL_CLAIM})
    assert response.status_code == 202
    run = response.json()
    assert run["status"] == "queued" and run["workflow"] == "claim"
    assert response.headers["location"] == f"/v1/runs/{run['id']}"
    shown = api.client.get(f"/v1/runs/{run['id']}", headers=api.as_("acme-reviewer")).json()
    assert shown["input"] == SMALL_CLAIM and shown["pending_reviews"] == []


def test_a_request_is_one_span_not_four(api: Api, telemetry_session: Any) -> None:
    """FastAPI's own spans for dependencies, endpoint and serialization came with every
    request, each a trace of its own: a poller made three or four a second."""
    telemetry_session.spans.clear()
    run = submit(api, {"workflow": "claim", "input": SMALL_CLAIM}).json()
    api.client.get(f"/v1/runs/{run['id']}", headers=api.as_("acme-reviewer"))
    names = [s.name for s in telemetry_session.spans.get_finished_spans()]
    assert names == ["POST /v1/runs", "GET /v1/runs/{run_id}"], names


def test_a_run_s_trace_links_to_the_request_that_submitted_it(
    api: Api, telemetry_session: Any
) -> None:
    """The run's trace had no link to the request, even when the client sent a traceparent:
    a client could not get from its call to the run's trace."""
    import asyncio

    from orchestrator.runs.runner import Runner
    from orchestrator.specialists.local import LocalAsker

    caller = "0af7651916cd43dd8448eb211c80319c"
    sent = {"traceparent": f"00-{caller}-b7ad6b7169203331-01"}
    telemetry_session.spans.clear()
    run = submit(api, {"workflow": "claim", "input": SMALL_CLAIM}, **sent).json()

    async def drive() -> Any:
        async with Runner(api.catalog, database_url=api.db_url, asker=LocalAsker(api.catalog)) as r:
            return await r.drive(run["id"])

    record = asyncio.run(drive())
    assert record.status == "succeeded", record
    spans = telemetry_session.spans.get_finished_spans()
    (request,) = [s for s in spans if s.name == "POST /v1/runs"]
    assert format(request.context.trace_id, "032x") == caller  # it joined the caller's trace
    (root,) = [
        s
        for s in spans
        if s.name == "cadre.run" and s.attributes.get("gen_ai.conversation.id") == run["id"]
    ]
    own = format(root.context.trace_id, "032x")
    assert root.parent is None and own != caller
    assert record.trace_context["traceparent"].split("-")[1] == own
    (link,) = root.links
    assert (link.context.trace_id, link.context.span_id) == (
        request.context.trace_id,
        request.context.span_id,
    )


def test_the_same_idempotency_key_returns_the_same_run(api: Api) -> None:
    body = {"workflow": "claim", "input": SMALL_CLAIM}
    first = submit(api, body, **{"Idempotency-Key": "order-77"})
    again = submit(api, body, **{"Idempotency-Key": "order-77"})
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    other = submit(
        api, {"workflow": "claim", "input": BIG_CLAIM}, **{"Idempotency-Key": "order-77"}
    )
    assert other.status_code == 409
    assert "already used for run" in other.json()["error"]["message"]
    # Keys are per tenant: another tenant's same key is a new run.
    theirs = submit(api, body, "globex-submitter", **{"Idempotency-Key": "order-77"})
    assert theirs.status_code == 202 and theirs.json()["id"] != first.json()["id"]
    listed = api.client.get("/v1/runs", headers=api.as_("acme-submitter")).json()["runs"]
    assert [r["id"] for r in listed] == [first.json()["id"]]


def test_an_idempotency_key_compares_json_not_python_values(api: Api) -> None:
    """1, 1.0 and true are one value to Python and three to JSON: a retry must send the same."""
    body = {"workflow": "claim", "input": {**SMALL_CLAIM, "n": 1}}
    assert submit(api, body, **{"Idempotency-Key": "ord-1"}).status_code == 202
    for other in (True, 1.0):
        changed = {"workflow": "claim", "input": {**SMALL_CLAIM, "n": other}}
        assert submit(api, changed, **{"Idempotency-Key": "ord-1"}).status_code == 409, other
    reordered = {"workflow": "claim", "input": {"n": 1, **SMALL_CLAIM}}  # key order is not JSON's
    assert submit(api, reordered, **{"Idempotency-Key": "ord-1"}).status_code == 200
    empty = submit(api, body, **{"Idempotency-Key": ""})
    assert empty.status_code == 422 and "idempotency-key" in empty.text.lower()


def test_input_is_checked_against_the_workflow_schema(api: Api) -> None:
    bad = submit(api, {"workflow": "claim", "input": {"claim": ""}})
    assert bad.status_code == 422
    assert "claim" in bad.json()["error"]["message"]
    unknown = submit(api, {"workflow": "clam", "input": SMALL_CLAIM})
    assert unknown.status_code == 404 and "claim" in unknown.json()["error"]["message"]
    shapeless = api.client.post("/v1/runs", json={"input": {}}, headers=api.as_("acme-submitter"))
    assert shapeless.status_code == 422 and "workflow" in shapeless.json()["error"]["message"]
    assert api.client.get("/v1/runs", headers=api.as_("acme-admin")).json()["runs"] == []


def test_runs_are_listed_newest_first_a_page_at_a_time(api: Api) -> None:
    made = [submit(api, {"workflow": "claim", "input": SMALL_CLAIM}).json()["id"] for _ in range(5)]
    seen, cursor = [], None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = api.client.get("/v1/runs", params=params, headers=api.as_("acme-submitter")).json()
        seen += [r["id"] for r in page["runs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == made[::-1]
    bad = api.client.get("/v1/runs", params={"cursor": "nope"}, headers=api.as_("acme-admin"))
    assert bad.status_code == 422


def test_a_tenant_over_its_queued_limit_is_429_and_others_are_not(tmp_path: Path) -> None:
    api = make_api(tmp_path, max_queued_per_tenant=2)
    codes = [submit(api, {"workflow": "claim", "input": SMALL_CLAIM}).status_code for _ in range(3)]
    assert codes == [202, 202, 429]
    refused = submit(api, {"workflow": "claim", "input": SMALL_CLAIM})
    assert refused.json()["error"]["type"] == "queue_full"
    assert int(refused.headers["retry-after"]) >= 1
    assert (
        submit(api, {"workflow": "claim", "input": SMALL_CLAIM}, "globex-submitter").status_code
        == 202
    )
    RunStore(Database(api.db_url)).db.execute("UPDATE cadre_runs SET status = 'running'")
    assert submit(api, {"workflow": "claim", "input": SMALL_CLAIM}).status_code == 202


def test_submissions_racing_past_the_first_count_still_keep_the_queued_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As if every submission had passed the count before any was recorded (ten at once got
    four runs queued past a limit of two): each is counted again in place, and those beyond
    the limit are taken back, leaving nothing of them."""
    api = make_api(tmp_path, max_queued_per_tenant=2)
    monkeypatch.setattr(RunStore, "queued_count", lambda self, tenant: 0)
    codes = [
        submit(api, {"workflow": "claim", "input": SMALL_CLAIM}, **{"Idempotency-Key": f"k{i}"})
        for i in range(5)
    ]
    assert [c.status_code for c in codes] == [202, 202, 429, 429, 429]
    store = RunStore(Database(api.db_url))
    assert len(store.runs("queued")) == 2
    again = submit(api, {"workflow": "claim", "input": SMALL_CLAIM}, **{"Idempotency-Key": "k4"})
    assert again.status_code == 429  # the key of a run taken back is free, not a replay


def test_a_retry_of_an_admitted_run_is_answered_even_when_the_tenant_is_at_its_limit(
    tmp_path: Path,
) -> None:
    api = make_api(tmp_path, max_queued_per_tenant=1)
    body = {"workflow": "claim", "input": SMALL_CLAIM}
    first = submit(api, body, **{"Idempotency-Key": "claim-7"})
    assert first.status_code == 202
    assert submit(api, body).status_code == 429  # a new run is refused: the queue is full
    retried = submit(api, body, **{"Idempotency-Key": "claim-7"})
    assert retried.status_code == 200, retried.json()
    assert retried.json()["id"] == first.json()["id"]
    assert retried.headers["idempotent-replayed"] == "true"
    other = dict(body, input={**SMALL_CLAIM, "claim": "another claim"})
    assert submit(api, other, **{"Idempotency-Key": "claim-7"}).status_code == 409


def test_a_tenant_that_spent_its_daily_budget_gets_429_at_submission(api: Api) -> None:
    from orchestrator.runs.budget import TenantBudgets

    store = RunStore(Database(api.db_url))
    TenantBudgets(store.db).set("acme", 100)
    first = submit(api, {"workflow": "claim", "input": SMALL_CLAIM}).json()
    assert store.run(first["id"]).status == "queued"
    store.db.execute(
        "UPDATE cadre_runs SET input_tokens = 80, output_tokens = 20 WHERE id = ?", (first["id"],)
    )
    refused = submit(api, {"workflow": "claim", "input": SMALL_CLAIM})
    assert refused.status_code == 429 and refused.json()["error"]["type"] == "budget_exhausted"
    assert "100 tokens" in refused.json()["error"]["message"]
    assert 0 < int(refused.headers["retry-after"]) <= 86_400
    assert (
        submit(api, {"workflow": "claim", "input": SMALL_CLAIM}, "globex-submitter").status_code
        == 202
    )


def test_a_long_poll_answers_when_the_run_ends_or_when_it_times_out(api: Api) -> None:
    run_id = submit(api, {"workflow": "claim", "input": SMALL_CLAIM}).json()["id"]
    url, who = f"/v1/runs/{run_id}", api.as_("acme-submitter")
    started = time.monotonic()
    held = api.client.get(url, params={"wait_s": 0.4}, headers=who)
    assert held.json()["status"] == "queued"
    assert 0.4 <= time.monotonic() - started < 3
    store = RunStore(Database(api.db_url))

    def finish() -> None:
        time.sleep(0.3)
        store.set_status(run_id, "succeeded", output={"done": True})

    threading.Thread(target=finish).start()
    started = time.monotonic()
    ended = api.client.get(url, params={"wait_s": 30}, headers=who).json()
    assert ended["status"] == "succeeded" and ended["output"] == {"done": True}
    assert time.monotonic() - started < 5, "answered when the run ended, not at the timeout"
    too_long = api.client.get(url, params={"wait_s": 3600}, headers=who)
    assert too_long.status_code == 422 and "wait_s" in too_long.json()["error"]["message"]


def test_a_long_poll_waits_through_a_decided_review_until_the_run_moves_on(api: Api) -> None:
    """Right after a decision, the run still reads awaiting_review (a worker has yet to apply
    the decision) with no review pending: a long poll must wait, not answer at once."""
    run_id = submit(api, {"workflow": "claim", "input": SMALL_CLAIM}).json()["id"]
    store = RunStore(Database(api.db_url))
    store.add_review(run_id, "i-1", "adjuster", {"title": "check", "workflow": "claim"})
    store.set_status(run_id, "awaiting_review")
    url, who = f"/v1/runs/{run_id}", api.as_("acme-submitter")
    pending = api.client.get(url, params={"wait_s": 5}, headers=who).json()  # a person's turn
    assert pending["status"] == "awaiting_review" and len(pending["pending_reviews"]) == 1
    store.decide(pending["pending_reviews"][0]["id"], "approve", "rita")

    def apply() -> None:
        time.sleep(0.5)
        store.set_status(run_id, "succeeded", output={"done": True})

    threading.Thread(target=apply).start()
    started = time.monotonic()
    ended = api.client.get(url, params={"wait_s": 30}, headers=who).json()
    assert ended["status"] == "succeeded", ended
    assert 0.4 <= time.monotonic() - started < 5


def test_an_input_that_is_not_text_is_422_and_creates_nothing(api: Api) -> None:
    # "\ud800" parses as JSON but is half of a UTF-16 pair: no UTF-8 text holds it. It was
    # recorded as a run, and the answer then failed to render (500).
    headers = {**api.as_("acme-submitter"), "content-type": "application/json"}
    for body, where in (
        (
            '{"workflow": "claim", "input": {"claim": "a broken \\ud800 window"}}',
            "claim",
        ),
        ('{"workflow": "claim", "input": {"claim": "x", "\\udc00": 1}}', "\\udc00"),
    ):
        refused = api.client.post("/v1/runs", content=body, headers=headers)
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"]["message"].startswith(
            f"workflow 'claim': {where}: holds an unpaired UTF-16 surrogate"
        )
    assert api.client.get("/v1/runs", headers=api.as_("acme-admin")).json()["runs"] == []
    paired = '{"workflow": "claim", "input": {"claim": "a broken \\ud83e\\ude9f window"}}'
    accepted = api.client.post("/v1/runs", content=paired, headers=headers)
    assert accepted.status_code == 202 and accepted.json()["input"]["claim"] == "a broken 🪟 window"
