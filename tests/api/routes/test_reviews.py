"""`/v1/reviews`: claims, and the whole flow on Ray workers with a reviewer's decision and its
webhooks."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from pathlib import Path

import pytest

from tests.api.helpers import (
    BIG_CLAIM,
    Api,
    make_api,
    review_waiting,
    submit,
    wait_for,
)
from tests.catalogs import unique
from tests.conftest import Receiver
from tests.workflow.fixtures import scripted_workflow_catalog


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
    # Releasing someone else's claim is refused and leaves it; the holder's release frees it.
    kept = api.client.delete(f"/v1/reviews/{review}/claim", headers=api.as_("acme-admin"))
    assert kept.status_code == 409 and "is claimed by reviewer at acme" in kept.text
    shown = api.client.get(f"/v1/reviews/{review}", headers=api.as_("acme-admin")).json()
    assert shown["claimed_by"] == held["claimed_by"]
    freed = api.client.delete(f"/v1/reviews/{review}/claim", headers=api.as_("acme-reviewer"))
    assert freed.status_code == 200 and freed.json()["claimed_by"] is None
    bad = api.client.post(
        f"/v1/reviews/{review}/claim", json={"hold_minutes": 0}, headers=api.as_("acme-reviewer")
    )
    assert bad.status_code == 422
    other = api.client.post(f"/v1/reviews/{review}/claim", headers=api.as_("globex-reviewer"))
    assert other.status_code == 404


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


def test_the_review_list_comes_in_pages_oldest_first(api: Api) -> None:
    made = [review_waiting(api) for _ in range(3)]
    headers = api.as_("acme-reviewer")
    first = api.client.get("/v1/reviews", params={"limit": 2}, headers=headers).json()
    assert [r["id"] for r in first["reviews"]] == made[:2] and first["next_cursor"]
    rest = api.client.get(
        "/v1/reviews", params={"limit": 2, "cursor": first["next_cursor"]}, headers=headers
    ).json()
    assert [r["id"] for r in rest["reviews"]] == made[2:] and rest["next_cursor"] is None
    everything = api.client.get("/v1/reviews", headers=headers).json()
    assert [r["id"] for r in everything["reviews"]] == made
    for bad in ({"limit": 0}, {"limit": 501}, {"cursor": "nope"}, {"older_than_s": "nan"}):
        assert api.client.get("/v1/reviews", params=bad, headers=headers).status_code == 422
