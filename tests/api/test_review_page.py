"""The reviewer page in a real headless Chromium (Debian's chromium, driven by Playwright), against
a real uvicorn server on 127.0.0.1 whose runs are driven by Ray run workers: sign in, work the
queue, see what is proposed, get refused for a bad decision, approve, and the run finishes."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from orchestrator.api.app import Settings, create_app
from orchestrator.api.keys import KeyStore
from orchestrator.catalog import load_catalog
from orchestrator.storage.database import Database
from tests.catalogs import unique
from tests.workflow.fixtures import scripted_workflow_catalog

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_session")]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    """The API with its run workers, served by uvicorn on a loopback port."""

    def __init__(self, tmp_path: Path) -> None:
        from orchestrator.cli.serve import run_driver
        from orchestrator.hosting.workers import RunWorkers
        from orchestrator.runs.worker import serve_in_thread

        root = scripted_workflow_catalog(tmp_path)
        url = f"sqlite:///{tmp_path / 'cadre.db'}"
        self.workers = RunWorkers(
            run_driver(root, tmp_path / "graphs", url), serve_in_thread, 1, prefix=unique("w")
        )
        keys = KeyStore(Database(url))
        self.reviewer = keys.create("acme", "reviewer", "Rita Reviewer")[1]
        self.submitter = keys.create("acme", "submitter")[1]
        app = create_app(
            Settings(catalog=load_catalog(root), database_url=url, wake=self.workers.wake)
        )
        self.base = f"http://127.0.0.1:{_free_port()}"
        port = int(self.base.rsplit(":", 1)[1])
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        while not self.server.started:
            time.sleep(0.05)
        self.http = httpx.Client(
            base_url=self.base, headers={"Authorization": f"Bearer {self.submitter}"}
        )

    def run(self, run_id: str) -> dict[str, Any]:
        return dict(self.http.get(f"/v1/runs/{run_id}").json())

    def wait(self, run_id: str, status: str) -> dict[str, Any]:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            run = self.run(run_id)
            if run["status"] == status:
                return run
            time.sleep(0.1)
        raise AssertionError(f"run {run_id} never reached {status}: {run}")

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.workers.shutdown()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    built = Served(tmp_path)
    yield built
    built.close()


def test_a_reviewer_approves_a_real_run_in_the_browser(served: Served) -> None:
    from playwright.sync_api import expect, sync_playwright

    assert Path(CHROMIUM).exists(), (
        "the browser test needs Debian's chromium: apt-get install chromium"
    )
    submitted = served.http.post(
        "/v1/runs", json={"workflow": "claim", "input": {"claim": "Storm damage, policy P-1"}}
    ).json()
    review_id = served.wait(submitted["id"], "awaiting_review")["pending_reviews"][0]["id"]

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        page = browser.new_page()
        page.goto(f"{served.base}/review")

        page.fill("#key", "cadre_nope_nope")
        page.click("#sign-in-form button")
        expect(page.locator("#sign-in-error")).to_contain_text("wrong or revoked")

        page.fill("#key", served.reviewer)
        page.click("#sign-in-form button")
        link = page.locator(f"a[data-review='{review_id}']")
        expect(link).to_have_text("Large claim: check the extracted fields")

        page.fill("#age", "60")  # waiting at least an hour: none yet
        page.click("#filters button")
        expect(page.locator("#queue-empty")).to_be_visible()
        page.fill("#age", "0")
        page.select_option("#workflow", "claim")
        page.click("#filters button")
        expect(link).to_be_visible()

        link.click()
        expect(page.locator("#proposed")).to_contain_text('"amount": 2500')
        expect(page.locator("#events")).to_contain_text("extract")
        expect(page.locator("#usage")).to_contain_text("extractor")
        expect(page.locator("#usage")).to_contain_text("tool calculator")

        page.click("#reject")  # no reason given
        expect(page.locator("#decision-error")).to_contain_text("needs a reason")
        page.fill("#edits textarea", '{"policy_number": "P-1", "amount": "lots"}')
        page.click("#edit")
        expect(page.locator("#decision-error")).to_contain_text("amount")
        assert served.run(submitted["id"])["status"] == "awaiting_review"

        page.click("#approve")
        expect(page.locator("#outcome")).to_contain_text("approve by Rita Reviewer")
        browser.close()

    done = served.wait(submitted["id"], "succeeded")
    assert done["output"]["decision"] == {"decision": "pay"}
