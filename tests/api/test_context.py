"""Who is calling: keys (401), roles (403), another tenant's records (404), and each key's rate
(429)."""

from __future__ import annotations

from pathlib import Path

from orchestrator.api.keys import KeyStore
from orchestrator.storage.database import Database
from tests.api.helpers import (
    BIG_CLAIM,
    SMALL_CLAIM,
    Api,
    make_api,
    submit,
)


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
