"""Memory nodes: who approved the run and where a node reads and writes; and in real runs (driven
in this process), an approved fact written by one run is found by a later one with its
provenance, episodic summaries of finished runs, and nothing crosses tenants."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from orchestrator.runs.runner import Runner
from orchestrator.specialists.local import LocalAsker
from orchestrator.workflow.catalog import load_catalog
from orchestrator.workflow.nodes.memory import approvers, memory_namespace
from tests.workflow.fixtures import scripted_workflow_catalog


def test_approvers_are_everyone_who_approved_once_sorted() -> None:
    approvals = {"adjuster": "rita", "second": ["sam", "rita"], "skipped": None, "blank": ""}
    assert approvers(approvals) == ["rita", "sam"]
    assert approvers({}) == []


def test_every_memory_scope_is_inside_the_tenant() -> None:
    assert memory_namespace("acme", "global", "claim", "run-1", "facts") == (
        "tenant",
        "acme",
        "global",
        "facts",
    )
    assert memory_namespace("acme", "workflow", "claim", "run-1", "facts") == (
        "tenant",
        "acme",
        "workflow",
        "claim",
        "facts",
    )
    assert memory_namespace("globex", "run", "claim", "run-1", "notes") == (
        "tenant",
        "globex",
        "run",
        "run-1",
        "notes",
    )


def test_an_approved_fact_is_found_by_a_later_run_of_the_same_tenant_only(
    tmp_path: Path, database_url: str
) -> None:
    catalog = load_catalog(scripted_workflow_catalog(tmp_path))
    pool = LocalAsker(catalog)

    async def run(tenant: str, fact: str, question: str, approve: bool = True) -> Any:
        async with Runner(catalog, database_url=database_url, asker=pool, tenant=tenant) as runner:
            record = await runner.start("memo", {"fact": fact, "question": question})
            assert record.status == "awaiting_review"
            (review,) = runner.store.reviews("pending", record.id)
            if approve:
                _, record = await runner.decide(review.id, "approve", "ann")
            return record

    first = asyncio.run(run("acme", "Storm damage to roofs is covered up to 10,000 euros.", "-"))
    assert first.status == "succeeded" and first.output["recalled"] == []
    asyncio.run(run("acme", "The claims desk closes at 18:00.", "-"))

    later = asyncio.run(run("acme", "x", "Is my roof insured after a storm?", approve=False))
    state = asyncio.run(_state(catalog, pool, database_url, later.id))
    recalled = state["recalled"]
    assert recalled[0]["text"] == "Storm damage to roofs is covered up to 10,000 euros."
    assert recalled[0]["score"] > recalled[1]["score"]
    assert recalled[0]["provenance"] == {
        "run": first.id,
        "workflow": "memo",
        "node": "remember",
        "approved_by": ["ann"],
    }
    # Episodic memory: summaries of the two finished runs, found by meaning.
    assert first.id in state["episodes"][0]["text"]
    assert state["episodes"][0]["provenance"]["approved_by"] == ["ann"]

    other = asyncio.run(run("globex", "x", "Is my roof insured after a storm?", approve=False))
    assert asyncio.run(_state(catalog, pool, database_url, other.id))["recalled"] == []
    asyncio.run(pool.aclose())


async def _state(catalog: Any, pool: LocalAsker, url: str, run_id: str) -> dict[str, Any]:
    async with Runner(catalog, database_url=url, asker=pool) as runner:
        snapshot = await runner.graph("memo").aget_state({"configurable": {"thread_id": run_id}})
        return dict(snapshot.values)


def test_a_write_in_a_loop_keeps_each_pass_and_a_step_done_again_overwrites_its_own(
    tmp_path: Path, database_url: str
) -> None:
    """Three passes of a loop write three records (only the last was kept); the write's key
    holds the step, so doing the same step again (a resume) still overwrites, not doubles."""
    import yaml

    root = scripted_workflow_catalog(tmp_path)
    loop = {
        "name": "loop",
        "description": "Counts to three, remembering each pass.",
        "input_schema": {"type": "object", "properties": {"n": {"type": "integer"}}},
        "state": {"found": {"type": "array"}},
        "output": ["found"],
        "start": "inc",
        "nodes": [
            {"kind": "tool", "id": "inc", "tool": "calculator",
             "args": {"expression": "{n} + 1"}, "output": "n", "next": "remember"},
            {"kind": "memory", "id": "remember", "op": "write", "scope": "run",
             "text": "pass number {n}", "next": "check"},
            {"kind": "branch", "id": "check", "default": "recall",
             "cases": [{"when": {"key": "n", "op": "lt", "value": 3}, "next": "inc"}]},
            {"kind": "memory", "id": "recall", "op": "read", "scope": "run",
             "query": "pass number", "top_k": 10, "output": "found", "next": "end"},
        ],
    }  # fmt: skip
    (root.parent / "graphs" / "loop.yaml").write_text(yaml.safe_dump(loop))
    catalog = load_catalog(root)

    async def go() -> Any:
        async with Runner(catalog, database_url=database_url, asker=LocalAsker(catalog)) as r:
            record = await r.start("loop", {"n": 0})
            rows = r.db.query("SELECT key FROM cadre_store WHERE key LIKE ?", (f"{record.id}%",))
            return record, sorted(row["key"] for row in rows)

    record, keys = asyncio.run(go())
    assert record.status == "succeeded", record.error
    assert sorted(f["text"] for f in record.output["found"]) == [
        "pass number 1",
        "pass number 2",
        "pass number 3",
    ]
    assert len(keys) == 3 and all(k.startswith(f"{record.id}:remember:") for k in keys)
