"""Run workers on a real local Ray: many runs at once per worker, and recovery with no command
typed when a worker dies or the API that recorded a run dies before any worker claimed it."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.cli.serve import run_driver
from orchestrator.runs.runner import Runner
from orchestrator.runs.store import FINISHED, RunStore
from orchestrator.runs.worker import serve_in_thread
from orchestrator.storage.database import Database
from orchestrator.workflow.catalog import load_catalog
from tests.catalogs import scripted_model, unique, write_catalog
from tests.workflow.fixtures import LABEL_SCHEMA

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_session")]
NODES = ("a", "b", "c")


def steps_catalog(root: Path, delay_s: float, hold_while: Path | None = None) -> Path:
    """A three-step workflow whose every call names its run's input (the call log counts calls
    per run and node) on a scripted model that takes ``delay_s`` a call (held, first, while the
    file ``hold_while`` exists)."""
    model = unique("steps")
    write_catalog(
        root / "agents",
        [
            scripted_model(
                model,
                rules=[{"reply": json.dumps({"label": "billing"})}],
                delay_s=delay_s,
                call_log=str(root / "calls.log"),
                call_log_format="json",
                **({"hold_while": str(hold_while)} if hold_while else {}),
            )
        ],
        [
            {
                "name": "labeller",
                "description": "labels",
                "model": model,
                "instructions": "Label it.",
                "output_schema": LABEL_SCHEMA,
            }
        ],
    )
    flow = {
        "name": "steps",
        "description": "Three calls in a row.",
        "input_schema": {"type": "object", "properties": {"text": {"type": "string"}}},
        "state": {f"out_{n}": LABEL_SCHEMA for n in NODES},
        "start": "a",
        "nodes": [
            {
                "kind": "specialist",
                "id": n,
                "specialist": "labeller",
                "input": f"step {n} of {{text}}",
                "output": f"out_{n}",
                "next": NODES[i + 1] if i + 1 < len(NODES) else "end",
            }
            for i, n in enumerate(NODES)
        ],
    }
    (root / "graphs").mkdir()
    (root / "graphs" / "steps.yaml").write_text(yaml.safe_dump(flow, sort_keys=False))
    return root / "agents"


def calls_per_step(root: Path) -> Counter[str]:
    """How many engine calls each (run input, step) got, keyed by the call's user message."""
    log = root / "calls.log"
    lines = log.read_text().splitlines() if log.exists() else []
    return Counter(json.loads(line)["user"] for line in lines)


def wait_until(check: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def workers(root: Path, url: str, count: int, **options: Any) -> Any:
    from orchestrator.hosting.workers import RunWorkers

    driver = run_driver(root / "agents", root / "graphs", url, **options)
    return RunWorkers(driver, serve_in_thread, count, prefix=unique("w"))


def completed_steps(root: Path, url: str, run_ids: list[str]) -> dict[str, set[str]]:
    """The steps of each run whose checkpoint is written (what a new driver must not redo)."""
    catalog = load_catalog(root / "agents", root / "graphs")

    async def read() -> dict[str, set[str]]:
        async with Runner(catalog, database_url=url) as runner:
            graph = runner.graph("steps")
            done = {}
            for run_id in run_ids:
                state = await graph.aget_state({"configurable": {"thread_id": run_id}})
                done[run_id] = {n for n in NODES if f"out_{n}" in state.values}
            return done

    return asyncio.run(read())


def test_a_killed_worker_s_runs_finish_on_another_with_no_node_done_twice(
    tmp_path: Path, database_url: str
) -> None:
    import ray

    root = tmp_path
    steps_catalog(root, delay_s=1.0)
    store = RunStore(Database(database_url))
    texts = [f"ticket {i}" for i in range(10)]
    run_ids = [store.create_run("steps", {"text": t}, queued=True)[0].id for t in texts]

    first = workers(root, database_url, 1, lease_s=3.0)
    first.wake()
    # All ten are driven at once by the one worker: each run's first call lands together.
    wait_until(lambda: sum(calls_per_step(root).values()) >= 10, 60, "the first calls")
    wait_until(lambda: any(store.run(r).status == "running" for r in run_ids), 10, "runs started")
    time.sleep(0.5)
    (stats,) = first.stats()
    assert stats["most_at_once"] == 10
    ray.kill(first.handles[0], no_restart=True)
    killed_at = time.monotonic()
    done_before = completed_steps(root, database_url, run_ids)
    assert any(done_before.values()), "some steps had finished before the kill"

    second = workers(root, database_url, 1, lease_s=3.0)
    try:
        wait_until(
            lambda: all(store.run(r).status in FINISHED for r in run_ids), 90, "every run to end"
        )
    finally:
        second.shutdown()
    assert time.monotonic() - killed_at < 60
    calls = calls_per_step(root)
    for run_id, text in zip(run_ids, texts, strict=True):
        record = store.run(run_id)
        assert record.status == "succeeded", record.error
        assert record.output == {"text": text, **{f"out_{n}": {"label": "billing"} for n in NODES}}
        for n in NODES:
            asked = calls[f"step {n} of {text}"]
            if n in done_before[run_id]:
                assert asked == 1, f"{run_id} step {n} finished before the kill but ran again"
            else:  # at most the call in flight at the kill is asked again
                assert 1 <= asked <= 2


def test_a_run_recorded_by_an_api_that_died_is_driven_with_no_wake(
    tmp_path: Path, database_url: str
) -> None:
    from fastapi.testclient import TestClient

    from orchestrator.api.app import Settings, create_app
    from orchestrator.api.keys import KeyStore

    root = tmp_path
    steps_catalog(root, delay_s=0.0)
    token = KeyStore(Database(database_url)).create("acme", "submitter")[1]
    api = TestClient(
        create_app(
            Settings(
                catalog=load_catalog(root / "agents", root / "graphs"),
                database_url=database_url,
            )
        )
    )
    run = api.post(
        "/v1/runs",
        json={"workflow": "steps", "input": {"text": "orphan"}},
        headers={"Authorization": f"Bearer {token}"},
    ).json()
    api.close()  # the API is gone before any worker heard of the run
    del api

    store = RunStore(Database(database_url))
    assert store.run(run["id"]).status == "queued"
    pool = workers(root, database_url, 1)  # never woken: it finds the run by polling
    try:
        wait_until(lambda: store.run(run["id"]).status in FINISHED, 60, "the orphaned run")
    finally:
        pool.shutdown()
    assert store.run(run["id"]).status == "succeeded"
