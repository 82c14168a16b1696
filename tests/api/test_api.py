"""The REST API: a real FastAPI app over a real SQLite run database, runs driven by real Ray run
workers, webhooks to a real HTTP receiver on 127.0.0.1. Every refusal has its test."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from orchestrator.api.app import Settings, create_app
from orchestrator.api.keys import KeyStore
from orchestrator.runs.store import RunStore
from orchestrator.storage.database import Database
from orchestrator.workflow.catalog import Catalog, load_catalog
from tests.catalogs import unique
from tests.conftest import Receiver
from tests.workflow.fixtures import scripted_workflow_catalog

# The webhook receiver below listens on 127.0.0.1, which Cadre refuses as a target unless an
# operator allows it. Set at import, before any test starts Ray: the run workers that deliver
# the webhooks inherit their environment from the Ray instance this process starts.
os.environ.setdefault("CADRE_WEBHOOK_ALLOW", "127.0.0.1")

BIG_CLAIM = {"claim": "Storm damage to the roof, policy P-1"}  # 2500: needs the adjuster
SMALL_CLAIM = {"claim": "rework: a broken window"}  # 500: straight to the decision


@dataclass
class Api:
    client: TestClient
    keys: dict[str, str]
    db_url: str
    catalog: Catalog

    def as_(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who]}"}


def make_api(tmp_path: Path, wake: Any = None, root: Path | None = None, **settings: Any) -> Api:
    root = root or scripted_workflow_catalog(tmp_path)
    db_url = f"sqlite:///{tmp_path / 'cadre.db'}"
    store = KeyStore(Database(db_url))
    keys = {
        f"{tenant}-{role}": store.create(tenant, role, f"{role} at {tenant}")[1]
        for tenant in ("acme", "globex")
        for role in ("submitter", "reviewer", "admin")
    }
    catalog = load_catalog(root)
    app = create_app(Settings(catalog=catalog, database_url=db_url, wake=wake, **settings))
    return Api(TestClient(app), keys, db_url, catalog)


@pytest.fixture
def api(tmp_path: Path) -> Api:
    """The API with no run workers: submissions stay queued (the API alone under test)."""
    return make_api(tmp_path)


def submit(api: Api, body: dict[str, Any], who: str = "acme-submitter", **headers: str) -> Any:
    return api.client.post("/v1/runs", json=body, headers={**api.as_(who), **headers})


# -- submissions ----------------------------------------------------------------------------


def test_a_submission_is_queued_not_run_in_the_request(api: Api) -> None:
    response = submit(api, {"workflow": "claim", "input": SMALL_CLAIM})
    assert response.status_code == 202
    run = response.json()
    assert run["status"] == "queued" and run["workflow"] == "claim"
    assert response.headers["location"] == f"/v1/runs/{run['id']}"
    shown = api.client.get(f"/v1/runs/{run['id']}", headers=api.as_("acme-reviewer")).json()
    assert shown["input"] == SMALL_CLAIM and shown["pending_reviews"] == []


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


def test_workflows_and_the_openapi_schema_are_served(api: Api) -> None:
    names = [
        w["name"]
        for w in api.client.get("/v1/workflows", headers=api.as_("acme-reviewer")).json()[
            "workflows"
        ]
    ]
    assert "claim" in names
    schema = api.client.get("/openapi.json").json()
    for path in ("/v1/runs", "/v1/runs/{run_id}", "/v1/reviews/{review_id}/decision"):
        assert path in schema["paths"]


# -- refusals -------------------------------------------------------------------------------


def test_a_missing_wrong_or_revoked_key_is_401(api: Api) -> None:
    assert api.client.get("/v1/runs").status_code == 401
    wrong = api.client.get("/v1/runs", headers={"Authorization": "Bearer cadre_abc_def"})
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
    token = api.keys["acme-submitter"]
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert api.client.get("/v1/runs", headers={"X-API-Key": tampered}).status_code == 401
    assert api.client.get("/v1/runs", headers={"X-API-Key": token}).status_code == 200
    key_id = token.removeprefix("cadre_").split("_")[0]
    KeyStore(Database(api.db_url)).revoke(key_id)
    assert api.client.get("/v1/runs", headers={"X-API-Key": token}).status_code == 401


def test_roles_are_enforced_403(api: Api) -> None:
    run = submit(api, {"workflow": "claim", "input": BIG_CLAIM}).json()
    assert (
        submit(api, {"workflow": "claim", "input": BIG_CLAIM}, "acme-reviewer").status_code == 403
    )
    refused = api.client.get("/v1/reviews", headers=api.as_("acme-submitter"))
    assert refused.status_code == 403 and "reviewer or admin" in refused.json()["error"]["message"]
    decide = api.client.post(
        "/v1/reviews/rv-anything/decision",
        json={"decision": "approve"},
        headers=api.as_("acme-submitter"),
    )
    assert decide.status_code == 403
    hook = api.client.post(
        "/v1/webhooks", json={"url": "http://127.0.0.1:9/x"}, headers=api.as_("acme-reviewer")
    )
    assert hook.status_code == 403
    cancel = api.client.post(f"/v1/runs/{run['id']}/cancel", headers=api.as_("acme-reviewer"))
    assert cancel.status_code == 403


def test_another_tenants_records_are_404(api: Api) -> None:
    run = submit(api, {"workflow": "claim", "input": SMALL_CLAIM}).json()
    for method, path in (
        ("get", f"/v1/runs/{run['id']}"),
        ("get", f"/v1/runs/{run['id']}/events"),
        ("post", f"/v1/runs/{run['id']}/cancel"),
    ):
        response = getattr(api.client, method)(path, headers=api.as_("globex-admin"))
        assert response.status_code == 404, path
        assert response.json()["error"]["message"] == f"no run {run['id']!r}"
    missing = api.client.get("/v1/runs/run-000000000000", headers=api.as_("globex-admin"))
    assert missing.json() == response.json() | {
        "error": {"type": "not_found", "message": "no run 'run-000000000000'"}
    }
    assert api.client.get("/v1/runs", headers=api.as_("globex-admin")).json()["runs"] == []
    still = api.client.get(f"/v1/runs/{run['id']}", headers=api.as_("acme-submitter")).json()
    assert still["status"] == "queued"  # globex's cancel did nothing


def test_a_body_over_the_limit_is_413(tmp_path: Path) -> None:
    api = make_api(tmp_path, max_body_bytes=2048)
    huge = {"workflow": "claim", "input": {"claim": "x" * 5000}}
    response = submit(api, huge)
    assert response.status_code == 413 and "limit is 2048" in response.json()["error"]["message"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams
        yield json.dumps(huge).encode()

    streamed = api.client.post(
        "/v1/runs",
        content=chunks(),
        headers={**api.as_("acme-submitter"), "content-type": "application/json"},
    )
    assert streamed.status_code == 413
    assert api.client.get("/v1/runs", headers=api.as_("acme-admin")).json()["runs"] == []

    small = {"workflow": "claim", "input": {"claim": "hail dented my car"}}

    def small_chunks() -> Iterator[bytes]:  # under the limit: read ahead, then handed on whole
        body = json.dumps(small).encode()
        yield body[:10]
        yield body[10:]

    accepted = api.client.post(
        "/v1/runs",
        content=small_chunks(),
        headers={**api.as_("acme-submitter"), "content-type": "application/json"},
    )
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["input"] == small["input"]


def test_too_many_requests_from_one_key_is_429(tmp_path: Path) -> None:
    api = make_api(tmp_path, burst=3, rate_per_s=0.5)
    codes = [
        api.client.get("/v1/workflows", headers=api.as_("acme-reviewer")).status_code
        for _ in range(5)
    ]
    assert codes == [200, 200, 200, 429, 429]
    limited = api.client.get("/v1/workflows", headers=api.as_("acme-reviewer"))
    assert int(limited.headers["retry-after"]) >= 1
    # Another key has its own bucket.
    assert api.client.get("/v1/workflows", headers=api.as_("acme-admin")).status_code == 200


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


def review_waiting(api: Api, tenant: str = "acme") -> str:
    """A claim run of ``tenant`` driven in this process (LocalAsker) to its adjuster review."""
    import asyncio

    from orchestrator.runs.runner import Runner
    from orchestrator.specialists.local import LocalAsker

    catalog = api.catalog

    async def go() -> str:
        async with Runner(
            catalog, database_url=api.db_url, asker=LocalAsker(catalog), tenant=tenant
        ) as runner:
            record = await runner.start("claim", BIG_CLAIM)
            return runner.store.reviews("pending", record.id)[0].id

    return asyncio.run(go())


def test_a_reviewer_claims_a_review_and_another_is_refused_409(api: Api) -> None:
    review = review_waiting(api)
    claim = api.client.post(
        f"/v1/reviews/{review}/claim", json={"hold_minutes": 5}, headers=api.as_("acme-reviewer")
    )
    assert claim.status_code == 200
    held = claim.json()
    assert held["claimed_by"].startswith("reviewer at acme")
    assert 290 < held["claimed_until"] - time.time() <= 300
    queue = api.client.get("/v1/reviews", headers=api.as_("acme-admin")).json()["reviews"]
    assert [r["claimed_by"] for r in queue] == [held["claimed_by"]]
    assert queue[0]["key_fields"] == {}
    for call in (
        lambda: api.client.post(f"/v1/reviews/{review}/claim", headers=api.as_("acme-admin")),
        lambda: api.client.post(
            f"/v1/reviews/{review}/decision",
            json={"decision": "approve"},
            headers=api.as_("acme-admin"),
        ),
    ):
        refused = call()
        assert refused.status_code == 409
        assert "is claimed by reviewer at acme" in refused.json()["error"]["message"]
    # Releasing someone else's claim leaves it; the holder's release frees the review.
    kept = api.client.delete(f"/v1/reviews/{review}/claim", headers=api.as_("acme-admin"))
    assert kept.json()["claimed_by"] == held["claimed_by"]
    freed = api.client.delete(f"/v1/reviews/{review}/claim", headers=api.as_("acme-reviewer"))
    assert freed.status_code == 200 and freed.json()["claimed_by"] is None
    bad = api.client.post(
        f"/v1/reviews/{review}/claim", json={"hold_minutes": 0}, headers=api.as_("acme-reviewer")
    )
    assert bad.status_code == 422
    other = api.client.post(f"/v1/reviews/{review}/claim", headers=api.as_("globex-reviewer"))
    assert other.status_code == 404


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


# -- the whole flow on Ray ------------------------------------------------------------------


def wait_for(api: Api, run_id: str, status: str, timeout_s: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        run = api.client.get(f"/v1/runs/{run_id}", headers=api.as_("acme-submitter")).json()
        if run["status"] == status:
            return dict(run)
        assert run["status"] not in ("failed", "cancelled"), run
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} never reached {status}: {run}")


@pytest.mark.ray
@pytest.mark.usefixtures("ray_session")
def test_runs_go_to_ray_workers_and_a_reviewer_decides(tmp_path: Path, receiver: Receiver) -> None:
    from orchestrator.cli.serve import run_driver
    from orchestrator.hosting.workers import RunWorkers
    from orchestrator.runs.worker import serve_in_thread

    root = scripted_workflow_catalog(tmp_path)
    db_url = f"sqlite:///{tmp_path / 'cadre.db'}"
    workers = RunWorkers(
        run_driver(root, tmp_path / "graphs", db_url), serve_in_thread, 2, prefix=unique("w")
    )
    try:
        api = make_api(tmp_path, wake=workers.wake, root=root)
        hook = api.client.post(
            "/v1/webhooks", json={"url": receiver.url}, headers=api.as_("acme-admin")
        )
        assert hook.status_code == 201
        secret = hook.json()["secret"]

        run = submit(api, {"workflow": "claim", "input": BIG_CLAIM}).json()
        waiting = wait_for(api, run["id"], "awaiting_review")
        (pending,) = waiting["pending_reviews"]
        queue = api.client.get(
            "/v1/reviews", params={"workflow": "claim"}, headers=api.as_("acme-reviewer")
        ).json()
        assert [r["id"] for r in queue["reviews"]] == [pending["id"]]
        review = api.client.get(
            f"/v1/reviews/{pending['id']}", headers=api.as_("acme-reviewer")
        ).json()
        assert review["proposed"]["show"]["fields"]["amount"] == 2500
        assert [e["node"] for e in review["events"]][:3] == ["extract", "payout", "size"]

        bad_edit = api.client.post(
            f"/v1/reviews/{pending['id']}/decision",
            json={"decision": "edit", "changes": {"fields.amount": "lots"}},
            headers=api.as_("acme-reviewer"),
        )
        assert bad_edit.status_code == 422 and "amount" in bad_edit.json()["error"]["message"]
        decided = api.client.post(
            f"/v1/reviews/{pending['id']}/decision",
            json={"decision": "approve"},
            headers=api.as_("acme-reviewer"),
        )
        assert decided.status_code == 200
        assert decided.json()["decided_by"].startswith("reviewer at acme (acme/reviewer")
        again = api.client.post(
            f"/v1/reviews/{pending['id']}/decision",
            json={"decision": "reject", "reason": "late"},
            headers=api.as_("acme-reviewer"),
        )
        assert again.status_code == 409 and "already decided" in again.json()["error"]["message"]

        done = wait_for(api, run["id"], "succeeded")
        assert done["output"]["decision"] == {"decision": "pay"}
        assert done["output"]["payout"] == 2400

        deadline = time.monotonic() + 20
        while len(receiver.got) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert receiver.events() == ["run.awaiting_review", "run.finished"]
        for headers, body in receiver.got:
            expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
            assert headers["x-cadre-signature"] == f"sha256={expected}"
        finished = json.loads(receiver.got[1][1])
        assert finished["run"]["id"] == run["id"] and finished["run"]["status"] == "succeeded"
        deliveries = api.client.get(
            "/v1/webhooks/deliveries", params={"run_id": run["id"]}, headers=api.as_("acme-admin")
        ).json()["deliveries"]
        assert [d["state"] for d in deliveries] == ["delivered", "delivered"]
        assert sum(s["driven"] for s in workers.stats()) == 2  # drive, then apply
    finally:
        workers.shutdown()
