"""Request rate limits live in the run database: API replicas that share it share each key's
limit, and a refusal's body and Retry-After agree."""

from __future__ import annotations

import time
from pathlib import Path

from fastapi.testclient import TestClient

from orchestrator.api.app import Settings, create_app
from orchestrator.api.keys import KeyStore
from orchestrator.api.rate_limits import RateLimits
from orchestrator.storage.database import Database
from orchestrator.workflow.catalog import load_catalog
from tests.workflow.fixtures import scripted_workflow_catalog


def test_a_bucket_gives_its_burst_then_refills_at_its_rate(database_url: str) -> None:
    limits = RateLimits(Database(database_url), rate=20.0, burst=3)
    assert [limits.take("k1") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limits.take("k1")
    assert 0 < wait <= 1 / 20 + 0.01
    assert limits.take("k2") == 0.0  # another key, another bucket
    time.sleep(wait + 0.02)
    assert limits.take("k1") == 0.0
    assert limits.take("k1") > 0


def test_two_limiters_on_one_database_share_the_limit(database_url: str) -> None:
    """Two API processes: each has its own connection; together they get one burst."""
    one = RateLimits(Database(database_url), rate=0.1, burst=4)
    two = RateLimits(Database(database_url), rate=0.1, burst=4)
    granted = [limiter.take("key") == 0.0 for limiter in (one, two) * 4]
    assert granted == [True] * 4 + [False] * 4


def test_two_api_replicas_share_a_key_s_limit_and_the_429_says_one_wait(tmp_path: Path) -> None:
    root = scripted_workflow_catalog(tmp_path)
    url = f"sqlite:///{tmp_path / 'cadre.db'}"
    token = KeyStore(Database(url)).create("acme", "reviewer", "r")[1]
    replicas = [
        TestClient(
            create_app(Settings(load_catalog(root), database_url=url, rate_per_s=0.2, burst=3))
        )
        for _ in range(2)
    ]
    headers = {"Authorization": f"Bearer {token}"}
    codes = [replicas[i % 2].get("/v1/workflows", headers=headers).status_code for i in range(5)]
    assert codes == [200, 200, 200, 429, 429]
    refused = replicas[0].get("/v1/workflows", headers=headers)
    retry = int(refused.headers["retry-after"])
    assert retry >= 1
    assert refused.json()["error"]["message"].endswith(f"retry in {retry} s")
