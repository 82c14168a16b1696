"""The API under test: a TestClient over a scripted catalog, with keys for two tenants and three
roles."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from orchestrator.api.app import Settings, create_app
from orchestrator.api.keys import KeyStore
from orchestrator.storage.database import Database
from orchestrator.workflow.catalog import Catalog, load_catalog
from tests.workflow.fixtures import scripted_workflow_catalog

# The webhook receiver the tests use listens on 127.0.0.1, which Cadre refuses as a target unless
# an operator allows it. Set at import, before any test starts Ray: the run workers that deliver
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


def submit(api: Api, body: dict[str, Any], who: str = "acme-submitter", **headers: str) -> Any:
    return api.client.post("/v1/runs", json=body, headers={**api.as_(who), **headers})


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


def wait_for(api: Api, run_id: str, status: str, timeout_s: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        run = api.client.get(f"/v1/runs/{run_id}", headers=api.as_("acme-submitter")).json()
        if run["status"] == status:
            return dict(run)
        assert run["status"] not in ("failed", "cancelled"), run
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} never reached {status}: {run}")
