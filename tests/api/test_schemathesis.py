"""Schemathesis (an API fuzzer nobody here wrote) against a live server on 127.0.0.1: about a
thousand generated requests across every operation, with all of its checks (server errors,
status codes and bodies the OpenAPI document does not state, valid data refused, invalid data
accepted, `Allow` headers, auth ignored). Zero failures. The one exception it is told about is in
schemathesis.toml beside this file."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from orchestrator.api.app import Settings, create_app
from orchestrator.api.keys import KeyStore
from orchestrator.catalog import load_catalog
from orchestrator.storage.database import Database
from tests.workflow.fixtures import scripted_workflow_catalog

CONFIG = Path(__file__).with_name("schemathesis.toml")
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def live_api(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """The API served by uvicorn on 127.0.0.1 (rate limits out of the fuzzer's way); its base
    URL and an admin key."""
    url = f"sqlite:///{tmp_path / 'cadre.db'}"
    _, key = KeyStore(Database(url)).create("acme", "admin", "schemathesis")
    catalog = load_catalog(scripted_workflow_catalog(tmp_path / "catalog"))
    app = create_app(Settings(catalog=catalog, database_url=url, rate_per_s=1e6, burst=10**6))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the API did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", key
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.mark.timeout(600)
def test_schemathesis_finds_no_failure(live_api: tuple[str, str], tmp_path: Path) -> None:
    base, key = live_api
    done = subprocess.run(
        [
            str(SCHEMATHESIS),
            "--config-file",
            str(CONFIG),
            "run",
            f"{base}/openapi.json",
            "--header",
            f"Authorization: Bearer {key}",
            "--max-examples",
            "30",
            "--seed",
            "1",
            "--no-color",
        ],
        cwd=tmp_path,  # its .schemathesis/ cache goes here
        capture_output=True,
        text=True,
        timeout=540,
    )
    summary = done.stdout[-6000:]
    assert done.returncode == 0, summary
    # "967 generated, 15 skipped" or similar: the bound is real cases, not a skipped run
    generated = re.search(r"^\s*(\d+) generated", done.stdout, flags=re.M)
    assert generated is not None and int(generated.group(1)) >= 500, summary
