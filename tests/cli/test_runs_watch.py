"""`cadre runs watch` as a user runs it (the real console script, a real SQLite run database):
on a run that already finished, and on one driven to its end by a real run driver (the
scripted engine in this process) while it watches, through a review decided meanwhile."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.runs.store import RunStore
from orchestrator.runs.worker import RunDriver, serve_in_thread
from orchestrator.specialists.local import LocalAsker
from orchestrator.storage.database import Database
from orchestrator.workflow.catalog import load_catalog
from tests.conftest import CADRE, ROOT
from tests.workflow.fixtures import scripted_workflow_catalog

BIG_CLAIM = {"claim": "Storm damage to the roof, policy P-1"}  # 2500: needs the adjuster


class Setup:
    def __init__(self, tmp_path: Path) -> None:
        self.root = scripted_workflow_catalog(tmp_path)
        self.url = f"sqlite:///{tmp_path / 'runs.db'}"
        self.env = {**os.environ, "CADRE_DATABASE_URL": self.url}
        self.store = RunStore(Database(self.url))
        self.driver: RunDriver | None = None

    def watch(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [CADRE, "runs", "watch", *args],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def drive(self) -> None:
        catalog = load_catalog(self.root)
        self.driver = RunDriver(catalog, self.url, asker=LocalAsker(catalog), poll_s=0.1)
        self.thread = serve_in_thread(self.driver)

    def wait(self, run_id: str, status: str) -> None:
        deadline = time.monotonic() + 60
        while self.store.run(run_id).status != status:
            assert time.monotonic() < deadline, f"{run_id} never {status}"
            time.sleep(0.05)


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    setup = Setup(tmp_path)
    yield setup
    if setup.driver is not None:
        setup.driver.stop()
        setup.thread.join(10)


def test_watching_a_run_that_finishes_while_watched_then_its_history(setup: Setup) -> None:
    run, _ = setup.store.create_run("claim", BIG_CLAIM, tenant="acme", queued=True)
    live = setup.watch(run.id)
    time.sleep(1.0)  # the watcher is following a queued run
    setup.drive()
    setup.wait(run.id, "awaiting_review")
    (review,) = setup.store.reviews("pending", run.id)
    setup.store.decide(review.id, "approve", "rita")
    assert setup.driver is not None
    setup.driver.wake()
    stdout, stderr = live.communicate(timeout=60)
    assert live.returncode == 0, stderr
    assert "Traceback" not in stdout + stderr
    lines = stdout.splitlines()
    order = [
        "run is queued",
        "run is running",
        "✓ extract",
        "✓ size",
        f"review {review.id} waits at adjuster",
        "run is awaiting_review",
        f"review {review.id}: approve by rita",
        "✓ decide",
        "run is succeeded",
        f"run {run.id} succeeded",
    ]
    at = [next(i for i, line in enumerate(lines) if want in line) for want in order]
    assert at == sorted(at), stdout
    assert f"cadre review approve {review.id}" in stdout
    assert '"payout": 2400' in stdout

    # The finished run: its whole history, one JSON object per line, then end.
    history = setup.watch(run.id, "--json")
    out, err = history.communicate(timeout=60)
    assert history.returncode == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    assert [e["event"] for e in events][:3] == ["status", "status", "node"]
    assert events[-1]["event"] == "end" and events[-1]["status"] == "succeeded"
    assert events[-1]["output"]["payout"] == 2400
    assert len([e for e in events if e["event"] == "node"]) == 5
    # --after resumes: only what came after that id.
    rest = setup.watch(run.id, "--json", "--after", str(events[5]["id"]))
    tail, _ = rest.communicate(timeout=60)
    assert [json.loads(line) for line in tail.splitlines()] == events[6:]


def test_a_failed_or_cancelled_run_exits_non_zero_and_an_unknown_one_says_so(
    setup: Setup,
) -> None:
    run, _ = setup.store.create_run("claim", BIG_CLAIM, tenant="acme", queued=True)
    setup.store.cancel(run.id)
    cancelled = setup.watch(run.id)
    out, err = cancelled.communicate(timeout=60)
    assert cancelled.returncode == 1, err
    assert "run is cancelled" in out and f"run {run.id} is cancelled" in out
    missing = setup.watch("run-000000000000")
    out, err = missing.communicate(timeout=60)
    assert missing.returncode != 0 and "no run 'run-000000000000'" in err
    assert "Traceback" not in out + err


def test_a_run_nothing_drives_is_named_once_and_still_watched(setup: Setup) -> None:
    """A queued run no worker claims, and a running one whose driver's lease ran out: the
    watcher says so on stderr once, names what would drive it, and keeps watching."""
    queued, _ = setup.store.create_run("claim", BIG_CLAIM, tenant="acme", queued=True)
    orphan, _ = setup.store.create_run("claim", BIG_CLAIM, tenant="acme", queued=True)
    setup.store.db.execute(
        "UPDATE cadre_runs SET status = 'running', owner = 'gone:1:x', lease_until = ? "
        "WHERE id = ?",
        (time.time() - 60, orphan.id),
    )
    first = setup.watch(queued.id, "--stalled-after", "1")
    second = setup.watch(orphan.id, "--stalled-after", "1")
    time.sleep(4.0)  # several stall checks: each watcher says it once
    setup.drive()
    setup.wait(queued.id, "awaiting_review")
    for run in (queued, orphan):
        setup.store.cancel(run.id)
    out1, err1 = first.communicate(timeout=60)
    out2, err2 = second.communicate(timeout=60)
    assert (first.returncode, second.returncode) == (1, 1)
    said = " ".join(err1.split())
    assert said.count("nothing has driven it") == 1, err1
    assert f"run {queued.id} is queued" in said and "no worker has claimed it" in said
    assert f"cadre runs resume {queued.id}" in said and "still watching" in said
    assert "run is awaiting_review" in out1  # it watched on once a worker took the run
    said = " ".join(err2.split())
    assert said.count("nothing has driven it") == 1, err2
    assert f"run {orphan.id} is running" in said and "lease of its driver ran out" in said
    assert "Traceback" not in out1 + err1 + out2 + err2
