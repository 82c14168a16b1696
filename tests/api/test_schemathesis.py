"""Schemathesis (an API fuzzer nobody here wrote) against a live server on 127.0.0.1: about a
thousand generated requests across every operation, with all of its checks (server errors,
status codes and bodies the OpenAPI document does not state, valid data refused, invalid data
accepted, `Allow` headers, auth ignored), the run and review routes with the ids of a real run
waiting at a real review. Zero failures. The one exception it is told about is in
schemathesis.toml beside this file."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn

from orchestrator.api.app import Settings, create_app
from orchestrator.api.keys import KeyStore
from orchestrator.config import DEFAULT_TENANT
from orchestrator.runs.runner import Runner
from orchestrator.specialists.local import LocalAsker
from orchestrator.storage.database import Database
from orchestrator.workflow.catalog import load_catalog
from tests.conftest import _free_port
from tests.workflow.fixtures import scripted_workflow_catalog

CONFIG = Path(__file__).with_name("schemathesis.toml")
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


@dataclass
class Live:
    base: str
    key: str
    run_id: str
    review_id: str


@pytest.fixture
def live_api(tmp_path: Path) -> Iterator[Live]:
    """The API served by uvicorn on 127.0.0.1 (rate limits out of the fuzzer's way), an admin
    key, and a real run waiting at a real review (driven in this process to the adjuster's
    gate), so that the run and review routes are fuzzed with ids that exist."""
    url = f"sqlite:///{tmp_path / 'cadre.db'}"
    _, key = KeyStore(Database(url)).create(DEFAULT_TENANT, "admin", "schemathesis")
    catalog = load_catalog(scripted_workflow_catalog(tmp_path / "catalog"))

    async def waiting_run() -> tuple[str, str]:
        async with Runner(catalog, database_url=url, asker=LocalAsker(catalog)) as runner:
            run = await runner.start("claim", {"claim": "Storm damage to the roof, policy P-1"})
            (review,) = runner.store.reviews("pending", run.id)
            return run.id, review.id

    run_id, review_id = asyncio.run(waiting_run())
    app = create_app(Settings(catalog=catalog, database_url=url, rate_per_s=1e6, burst=10**6))
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the API did not start"
        time.sleep(0.05)
    try:
        yield Live(f"http://127.0.0.1:{port}", key, run_id, review_id)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.mark.timeout(600)
def test_schemathesis_finds_no_failure(live_api: Live, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "CADRE_FUZZ_RUN_ID": live_api.run_id,
        "CADRE_FUZZ_REVIEW_ID": live_api.review_id,
    }
    done = subprocess.run(
        [
            str(SCHEMATHESIS),
            "--config-file",
            str(CONFIG),
            "run",
            f"{live_api.base}/openapi.json",
            "--header",
            f"Authorization: Bearer {live_api.key}",
            "--max-examples",
            "30",
            "--seed",
            "1",
            "--no-color",
        ],
        cwd=tmp_path,  # its .schemathesis/ cache goes here
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
    )
    summary = done.stdout[-6000:]
    assert done.returncode == 0, summary
    # "967 generated, 15 skipped" or similar: the bound is real cases, not a skipped run
    generated = re.search(r"^\s*(\d+) generated", done.stdout, flags=re.M)
    assert generated is not None and int(generated.group(1)) >= 500, summary
