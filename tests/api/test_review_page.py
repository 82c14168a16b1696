"""The reviewer page in a real headless Chromium (Debian's chromium, driven by Playwright), against
a real uvicorn server on 127.0.0.1 whose runs are driven by Ray run workers: sign in, work the
queue, see what is proposed, get refused for a bad decision, approve, and the run finishes."""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import yaml

from orchestrator.api.app import Settings, create_app
from orchestrator.api.keys import KeyStore
from orchestrator.storage.database import Database
from orchestrator.workflow.catalog import load_catalog
from tests.catalogs import unique
from tests.conftest import Receiver, _free_port
from tests.workflow.fixtures import scripted_workflow_catalog

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_session")]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


class Served:
    """The API with its run workers, served by uvicorn on a loopback port."""

    def __init__(self, tmp_path: Path, workers: bool = True, **gate: Any) -> None:
        from orchestrator.cli.serve import run_driver
        from orchestrator.hosting.workers import RunWorkers
        from orchestrator.runs.worker import serve_in_thread

        root = scripted_workflow_catalog(tmp_path)
        flow_path = tmp_path / "graphs" / "claim.yaml"
        flow = yaml.safe_load(flow_path.read_text())
        next(n for n in flow["nodes"] if n["id"] == "adjuster").update(gate)
        flow_path.write_text(yaml.safe_dump(flow, sort_keys=False))
        url = f"sqlite:///{tmp_path / 'cadre.db'}"
        self.url = url
        self.workers = (
            RunWorkers(
                run_driver(root, tmp_path / "graphs", url), serve_in_thread, 1, prefix=unique("w")
            )
            if workers
            else None
        )
        keys = KeyStore(Database(url))
        self.reviewer = keys.create("acme", "reviewer", "Rita Reviewer")[1]
        self.second = keys.create("acme", "reviewer", "Sam Second")[1]
        self.submitter = keys.create("acme", "submitter")[1]
        app = create_app(
            Settings(
                catalog=load_catalog(root),
                database_url=url,
                wake=self.workers.wake if self.workers else None,
                escalate_poll_s=0.2,
            )
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
        if self.workers:
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
        expect(page.locator("#input")).to_contain_text("Storm damage, policy P-1")
        expect(page.locator("#proposed dl")).to_contain_text("amount")
        expect(page.locator("#proposed dl")).to_contain_text("2500")
        expect(page.locator("#events")).to_contain_text("extract")
        expect(page.locator("#usage")).to_contain_text("extractor")
        expect(page.locator("#usage")).to_contain_text("tool calculator")

        page.click("#reject")  # no reason given
        expect(page.locator("#decision-error")).to_contain_text("needs a reason")
        page.click("#edit")  # nothing edited yet
        expect(page.locator("#decision-error")).to_contain_text("Nothing is changed")
        page.fill("#edits textarea", '{"policy_number": "P-1", "amount": "lots"}')
        page.click("#edit")  # the diff is shown first; nothing is saved yet
        expect(page.locator("#diff")).to_contain_text("2500")
        expect(page.locator("#diff")).to_contain_text("lots")
        assert served.run(submitted["id"])["status"] == "awaiting_review"
        page.click("#confirm-edit")
        expect(page.locator("#decision-error")).to_contain_text("amount")
        assert served.run(submitted["id"])["status"] == "awaiting_review"

        page.click("#approve")
        expect(page.locator("#outcome")).to_contain_text("approve by Rita Reviewer")
        expect(page.locator("#run-status")).to_have_text("succeeded")  # from the run's stream
        browser.close()

    done = served.wait(submitted["id"], "succeeded")
    assert done["output"]["decision"] == {"decision": "pay"}


@pytest.fixture
def served_two(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    monkeypatch.setenv("CADRE_WEBHOOK_ALLOW", "127.0.0.1")  # the receiver below
    built = Served(
        tmp_path,
        approvals=2,
        key_fields=["fields.policy_number", "payout"],
        editable=["fields"],
        escalate_after="2s",
    )
    yield built
    built.close()


def sign_in(page: Any, served: Served, key: str) -> None:
    page.goto(f"{served.base}/review")
    page.fill("#key", key)
    page.click("#sign-in-form button")


def test_two_reviewers_take_turns_on_a_gate_that_needs_both_approvals(
    served_two: Served, receiver: Receiver
) -> None:
    """Claims, the edit diff, two approvals, an overdue review's webhook and the live page; with
    CADRE_SCREENSHOTS=DIR (`make screenshots`) it saves the queue and the review it shows."""
    from playwright.sync_api import expect, sync_playwright

    served = served_two
    shots = os.environ.get("CADRE_SCREENSHOTS")
    admin = KeyStore(Database(served.url)).create("acme", "admin")[1]
    hook = served.http.post(
        "/v1/webhooks", json={"url": receiver.url}, headers={"Authorization": f"Bearer {admin}"}
    )
    assert hook.status_code == 201, hook.text
    submitted = served.http.post(
        "/v1/runs", json={"workflow": "claim", "input": {"claim": "Hail on the roof, policy P-1"}}
    ).json()
    review_id = served.wait(submitted["id"], "awaiting_review")["pending_reviews"][0]["id"]

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        rita = browser.new_context().new_page()
        sam = browser.new_context(viewport={"width": 700, "height": 900}).new_page()
        sign_in(rita, served, served.reviewer)
        row = rita.locator("#queue-rows tr", has=rita.locator(f"a[data-review='{review_id}']"))
        expect(row.locator(".key-fields")).to_have_text("policy number: P-1 · payout: 2400")
        expect(row).to_contain_text("0 of 2 approvals")
        # Waiting past the gate's `escalate_after` (2 s): the webhook hears, the queue shows it.
        deadline = time.monotonic() + 30
        while "review.overdue" not in receiver.events() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "review.overdue" in receiver.events(), receiver.events()
        overdue = json.loads(next(b for _, b in receiver.got if b"review.overdue" in b))
        assert overdue["review"]["id"] == review_id
        rita.click("#filters button")
        expect(row.locator(".badge.overdue")).to_have_text("overdue")
        rita.click(f"a[data-review='{review_id}']")
        expect(rita.locator("#input")).to_contain_text("Hail on the roof, policy P-1")
        rita.click("#claim")
        expect(rita.locator("#holder")).to_contain_text("Taken by Rita Reviewer")

        sign_in(sam, served, served.second)
        expect(sam.locator(f"a[data-review='{review_id}']")).to_be_visible()
        expect(sam.locator("#queue-rows")).to_contain_text("taken by Rita Reviewer")
        if shots:
            sam.screenshot(path=f"{shots}/review-queue.png", full_page=True)
        sam.click(f"a[data-review='{review_id}']")
        expect(sam.locator("#holder")).to_contain_text("Taken by Rita Reviewer")
        expect(sam.locator("#approve")).to_be_disabled()
        expect(sam.locator("#claim")).to_be_disabled()
        # Rita lets go and takes it again: Sam's open page follows, from the run's stream.
        rita.click("#release")
        expect(sam.locator("#holder")).to_contain_text("Nobody has taken this review")
        expect(sam.locator("#approve")).to_be_enabled()
        rita.click("#claim")
        expect(sam.locator("#holder")).to_contain_text("Taken by Rita Reviewer")
        # On a narrow window the claim is still whole: wrapped, not cut off on the right.
        claim = sam.locator("#input .wrapped")
        expect(claim).to_have_text("Hail on the roof, policy P-1")
        box = claim.bounding_box()
        assert box is not None and box["x"] + box["width"] <= 700

        rita.fill("#edits textarea", '{"policy_number": "P-1", "amount": 1800}')
        rita.click("#edit")
        expect(rita.locator("#diff")).to_contain_text("1800")
        rita.click("#release")  # the page redraws: what Rita typed stays
        expect(rita.locator("#holder")).to_contain_text("Nobody has taken this review")
        expect(rita.locator("#edits textarea")).to_have_value(re.compile(r'"amount": 1800'))
        rita.click("#claim")
        if shots:
            rita.screenshot(path=f"{shots}/review-edit.png", full_page=True)
        rita.click("#confirm-edit")
        expect(rita.locator("#outcome")).to_contain_text("Approved so far by Rita Reviewer")
        expect(rita.locator("#approve")).to_be_disabled()  # a second approval is someone else's

        # Sam's page follows the run's stream: Rita's approval arrives without a reload, and
        # with it her edit, which Sam's approval would approve too.
        expect(sam.locator("#outcome")).to_contain_text("Approved so far by Rita Reviewer")
        expect(sam.locator("#pending-edits")).to_be_visible()
        expect(sam.locator("#pending-diff")).to_contain_text("2500")
        expect(sam.locator("#pending-diff")).to_contain_text("1800")
        expect(sam.locator("#pending-diff")).to_contain_text("Rita Reviewer")
        expect(sam.locator("#edits textarea")).to_have_value(re.compile(r'"amount": 1800'))
        expect(sam.locator("#approve")).to_be_enabled()
        sam.click("#approve")
        expect(sam.locator("#outcome")).to_contain_text("edit by Rita Reviewer")
        expect(sam.locator("#outcome")).to_contain_text("and Sam Second")
        expect(sam.locator("#outcome")).to_contain_text("edited by Rita Reviewer")
        expect(sam.locator("#pending-edits")).to_be_hidden()
        expect(sam.locator("#run-status")).to_have_text("succeeded")
        expect(rita.locator("#run-status")).to_have_text("succeeded")
        browser.close()

    done = served.wait(submitted["id"], "succeeded")
    assert done["output"]["fields"] == {"policy_number": "P-1", "amount": 1800}


@pytest.fixture
def served_alone(tmp_path: Path) -> Iterator[Served]:
    built = Served(tmp_path, workers=False)
    yield built
    built.close()


def waiting_review(served: Served, n: int, payload: dict[str, Any]) -> str:
    """A run waiting at a review with ``payload`` (recorded directly: nothing drives it)."""
    from orchestrator.runs.store import RunStore

    store = RunStore(Database(served.url))
    run, _ = store.create_run("tickets", {"issues": [f"issue {n}"]}, tenant="acme")
    store.add_review(run.id, f"i-{n}", "label", {"workflow": "tickets", **payload})
    store.set_status(run.id, "awaiting_review")
    return store.reviews("pending", run.id)[0].id


def test_the_queue_pages_a_map_item_edits_its_answer_and_a_revoked_key_signs_out(
    served_alone: Served,
) -> None:
    """More than a page of reviews is reachable; a map item's edit box holds the answer's field
    (it showed `undefined`); hidden direction controls are shown as codes, with a warning; a key
    revoked while the page is open sends the reviewer back to sign in, saying why."""
    from playwright.sync_api import expect, sync_playwright

    served = served_alone
    item = {
        "kind": "map_item",
        "node": "label",
        "index": 0,
        "specialist": "labeller",
        "show": {"input": "printer \u202egnp.exe\u202c", "answer": {"label": "technical"}},
        "editable": ["label"],
        "values": {"answer": {"label": "technical"}},
    }
    ids = [waiting_review(served, n, {**item, "title": f"label: item {n}"}) for n in range(103)]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        page = browser.new_page()
        sign_in(page, served, served.reviewer)
        expect(page.locator("#queue-rows tr")).to_have_count(100)
        expect(page.locator("#queue-count")).to_have_text("100 shown, more waiting.")
        page.click("#queue-more")
        expect(page.locator("#queue-rows tr")).to_have_count(103)
        expect(page.locator("#queue-more-row")).to_be_hidden()

        page.click(f"a[data-review='{ids[102]}']")
        expect(page.locator("#edits textarea")).to_have_value('"technical"')
        expect(page.locator("#proposed")).to_contain_text("printer ⟨U+202E⟩gnp.exe⟨U+202C⟩")
        expect(page.locator("#warnings")).to_contain_text("text-direction controls")
        page.fill("#edits textarea", '"billing"')
        page.click("#edit")
        expect(page.locator("#diff")).to_contain_text("technical")
        expect(page.locator("#diff")).to_contain_text("billing")

        # Another key with the same name takes a review: the page tells the two Ritas apart.
        other, secret = KeyStore(Database(served.url)).create("acme", "reviewer", "Rita Reviewer")
        took = httpx.post(
            f"{served.base}/v1/reviews/{ids[0]}/claim",
            json={"hold_minutes": 5},
            headers={"Authorization": f"Bearer {secret}"},
        )
        assert took.status_code == 200, took.text
        page.click("#back")
        page.click(f"a[data-review='{ids[0]}']")
        expect(page.locator("#holder")).to_contain_text(f"Taken by Rita Reviewer (key {other.id})")

        revoked = KeyStore(Database(served.url))
        mine = next(k for k in revoked.all("acme") if k.name == "Rita Reviewer")
        revoked.revoke(mine.id)
        page.click("#back")
        expect(page.locator("#sign-in")).to_be_visible()
        expect(page.locator("#sign-in-error")).to_contain_text("Signed out")
        expect(page.locator("#sign-in-error")).to_contain_text("wrong or revoked")
        browser.close()
