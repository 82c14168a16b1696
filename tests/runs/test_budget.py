"""Token budgets: a workflow's per run and a tenant's per day stop a run before the call that
would go over, a map's whole fan-out is checked before any branch is sent, and the refusal is in
the run record and the trace. Scripted engines in this process count the calls actually made."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.errors import BudgetExceeded, InputError
from orchestrator.runs.budget import TenantBudgets
from orchestrator.runs.runner import Runner
from orchestrator.runs.store import RunStore
from orchestrator.specialists.local import LocalAsker
from orchestrator.storage.database import Database
from orchestrator.workflow.budget import call_estimate
from orchestrator.workflow.catalog import Catalog, load_catalog
from tests.conftest import TelemetryHarness
from tests.workflow.fixtures import LABEL_SCHEMA, load_flow, scripted_workflow_catalog

ISSUE = "Issue {index}: {item}"
TEXT = "my invoice is wrong"


def flows(budget: int | None) -> list[dict[str, Any]]:
    """A map over issues and two calls in a row, each under ``budget`` (and a free twin)."""
    limit = {"budget": {"tokens": budget}} if budget else {}
    fan = {
        "name": "fan",
        "description": "Label every issue at once.",
        "input_schema": {
            "type": "object",
            "properties": {"issues": {"type": "array", "items": {"type": "string"}}},
            "required": ["issues"],
        },
        "state": {"labels": {"type": "array"}},
        "start": "label",
        "nodes": [
            {
                "kind": "map",
                "id": "label",
                "over": "issues",
                "specialist": "labeller",
                "input": ISSUE,
                "output": "labels",
                "join": "end",
            }
        ],
        **limit,
    }
    pair = {
        "name": "pair",
        "description": "Label the same text twice.",
        "input_schema": {
            "type": "object",
            "properties": {"text": {"type": "string"}},
            "required": ["text"],
        },
        "state": {"first": LABEL_SCHEMA, "second": LABEL_SCHEMA},
        "start": "a",
        "nodes": [
            {
                "kind": "specialist",
                "id": "a",
                "specialist": "labeller",
                "input": "{text}",
                "output": "first",
                "next": "b",
            },
            {
                "kind": "specialist",
                "id": "b",
                "specialist": "labeller",
                "input": "{text}",
                "output": "second",
                "next": "end",
            },
        ],
        **limit,
    }
    plan = {**load_flow("brief"), "name": "plan", **limit}
    return [fan, pair, {**pair, "name": "pair-free", "budget": None}, plan]


def budgeted_catalog(root: Path, budget: int | None) -> Catalog:
    agents = scripted_workflow_catalog(root, call_log=root / "calls.log")
    for flow in flows(budget):
        (root / "graphs" / f"{flow['name']}.yaml").write_text(yaml.safe_dump(flow))
    return load_catalog(agents)


def calls(root: Path) -> list[str]:
    log = root / "calls.log"
    return log.read_text().split() if log.exists() else []


def drive(catalog: Catalog, url: str, workflow: str, data: Any, tenant: str = "acme") -> Any:
    """Start a run; returns its record (the error raised, if any, is in the record)."""

    async def go() -> Any:
        async with Runner(
            catalog, database_url=url, asker=LocalAsker(catalog), tenant=tenant
        ) as runner:
            with contextlib.suppress(BudgetExceeded):
                await runner.start(workflow, data)
            return runner.store.runs(workflow=workflow, tenant=tenant, limit=1)[0]

    return asyncio.run(go())


def estimate(catalog: Catalog, text: str) -> int:
    return call_estimate(catalog.specialist("labeller"), text)


def test_a_map_that_would_go_over_makes_no_call(
    tmp_path: Path, database_url: str, telemetry_session: TelemetryHarness
) -> None:
    probe = budgeted_catalog(tmp_path / "probe", None)
    issues = ["a refund please", "the printer jams", "wrong address"]
    each = max(estimate(probe, ISSUE.format(index=i, item=x)) for i, x in enumerate(issues))
    # Every branch alone fits; the three together do not.
    catalog = budgeted_catalog(tmp_path, int(each * 2.5))

    record = drive(catalog, database_url, "fan", {"issues": issues})

    assert calls(tmp_path) == [], "no branch may call before the whole fan-out is checked"
    assert record.status == "failed"
    assert record.error.startswith("node 'label': token budget: workflow 'fan' allows")
    assert "the 3 calls of map 'label'" in record.error
    refusals = [
        s
        for s in telemetry_session.spans.get_finished_spans()
        if s.name == "cadre.budget"
        and (s.attributes or {}).get("gen_ai.conversation.id") == record.id
    ]
    (span,) = refusals
    assert span.attributes["error.type"] == "BudgetExceeded"
    assert span.attributes["cadre.budget.scope"] == "workflow"
    assert span.attributes["cadre.budget.needed"] > span.attributes["cadre.budget.limit"]
    assert span.status.status_code.name == "ERROR"

    under = drive(catalog, database_url, "fan", {"issues": issues[:2]})
    assert under.status == "succeeded"
    assert under.output["labels"] == [{"label": "billing"}, {"label": "technical"}]
    assert calls(tmp_path) == ["labeller", "labeller"]
    assert 0 < under.input_tokens + under.output_tokens <= int(each * 2.5)


def test_a_plan_whose_tasks_would_go_over_sends_none_of_them(
    tmp_path: Path, database_url: str
) -> None:
    probe = budgeted_catalog(tmp_path / "probe", None)
    planner = call_estimate(probe.specialist("planner"), "Plan research on printers")
    # The planner's call fits (its schema, narrowed to the plan's specialists, is a little
    # longer); its two tasks, each counted with its max_tokens, do not.
    catalog = budgeted_catalog(tmp_path, planner + 100)

    record = drive(catalog, database_url, "plan", {"topic": "printers"})

    assert calls(tmp_path) == ["planner"]
    assert record.status == "failed"
    assert record.error.startswith("node 'plan': token budget: workflow 'plan' allows")
    assert "the 2 tasks of plan 'plan' would need" in record.error


def test_a_call_that_would_go_over_stops_the_run_and_a_resume_still_refuses_it(
    tmp_path: Path, database_url: str, telemetry_session: TelemetryHarness
) -> None:
    probe = budgeted_catalog(tmp_path / "probe", None)
    free = drive(probe, database_url, "pair-free", {"text": TEXT})
    one_call = (free.input_tokens + free.output_tokens) // 2
    # The first call fits; the second, counted with what the first used, does not.
    catalog = budgeted_catalog(tmp_path, one_call + estimate(probe, TEXT) - 1)

    record = drive(catalog, database_url, "pair", {"text": TEXT})

    assert calls(tmp_path) == ["labeller"]
    assert record.status == "failed"
    assert record.error.startswith("node 'b': token budget: workflow 'pair' allows")
    assert f"this run has used {one_call};" in record.error
    assert record.input_tokens + record.output_tokens == one_call
    agent = [
        s
        for s in telemetry_session.spans.get_finished_spans()
        if s.name == "invoke_agent labeller"
        and (s.attributes or {}).get("gen_ai.conversation.id") == record.id
    ]
    assert [s.attributes.get("error.type") for s in agent] == [None, "BudgetExceeded"]
    assert agent[1].attributes["cadre.budget.used"] == one_call

    async def resume() -> Any:  # a fresh runner: its counter starts from what the run used
        async with Runner(catalog, database_url=database_url, asker=LocalAsker(catalog)) as r:
            with pytest.raises(BudgetExceeded, match="this run has used"):
                await r.resume(record.id)
            return r.store.run(record.id)

    again = asyncio.run(resume())
    assert calls(tmp_path) == ["labeller"], "the refused call is not made on resume either"
    assert again.status == "failed" and "token budget" in (again.error or "")


def test_a_tenant_daily_budget_refuses_a_call_once_its_runs_used_it(
    tmp_path: Path, database_url: str
) -> None:
    catalog = budgeted_catalog(tmp_path, None)
    probe = drive(catalog, database_url, "pair-free", {"text": TEXT}, tenant="probe")
    run_tokens = probe.input_tokens + probe.output_tokens
    per_call = estimate(catalog, TEXT)
    # One run fits (its second call is checked with the first call's actual use); two do not.
    TenantBudgets(Database(database_url)).set("acme", run_tokens + per_call - 1)
    log_before = len(calls(tmp_path))

    first = drive(catalog, database_url, "pair-free", {"text": TEXT})
    second = drive(catalog, database_url, "pair-free", {"text": TEXT})
    other = drive(catalog, database_url, "pair-free", {"text": TEXT}, tenant="globex")

    assert first.status == "succeeded"
    assert first.input_tokens + first.output_tokens == run_tokens
    assert second.status == "failed"
    assert second.error.startswith("node 'a': token budget: tenant 'acme' may use")
    assert f"its runs have used {run_tokens} today" in second.error
    assert "cadre tenants budget acme --tokens-per-day N" in second.error
    assert other.status == "succeeded", "another tenant's budget is its own"
    assert len(calls(tmp_path)) - log_before == 2 + 0 + 2
    budgets = TenantBudgets(Database(database_url))
    assert budgets.show("acme").used_today == run_tokens
    assert [(b.tenant, b.tokens_per_day) for b in budgets.list()] == [
        ("acme", run_tokens + per_call - 1)
    ]


def test_tenant_budgets_are_set_listed_and_removed(database_url: str) -> None:
    db = Database(database_url)
    store = RunStore(db)
    budgets = TenantBudgets(db)
    budgets.set("zeta", 500)
    budgets.set("acme", 100)
    budgets.set("acme", 200)  # replaces
    run, _ = store.create_run("pair", {"text": "x"}, tenant="acme")
    store.set_status(
        run.id, "succeeded", usage={"labeller": {"input_tokens": 30, "output_tokens": 4}}
    )
    assert [(b.tenant, b.tokens_per_day, b.used_today) for b in budgets.list()] == [
        ("acme", 200, 34),
        ("zeta", 500, 0),
    ]
    budgets.set("zeta", None)
    assert budgets.get("zeta") is None
    assert [b.tenant for b in budgets.list()] == ["acme"]


def test_a_map_over_more_elements_than_its_max_items_makes_no_call(
    tmp_path: Path, database_url: str
) -> None:
    budgeted_catalog(tmp_path, None)
    fan = tmp_path / "graphs" / "fan.yaml"
    flow = yaml.safe_load(fan.read_text())
    next(n for n in flow["nodes"] if n["kind"] == "map")["max_items"] = 2
    fan.write_text(yaml.safe_dump(flow))
    catalog = load_catalog(tmp_path / "agents")

    async def go() -> Any:
        async with Runner(catalog, database_url=database_url, asker=LocalAsker(catalog)) as runner:
            with pytest.raises(InputError) as info:
                await runner.start("fan", {"issues": ["a", "b", "c"]})
            return info.value, runner.store.runs(workflow="fan", limit=1)[0]

    error, record = asyncio.run(go())
    assert error.message == (
        "node 'label': 'issues' has 3 elements; map 'label' takes at most 2 (its max_items)"
    )
    assert (record.status, record.error) == ("failed", error.message)
    assert calls(tmp_path) == []
