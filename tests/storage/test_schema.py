"""One schema for every table: each made as declared, and older tables upgraded in place."""

from __future__ import annotations

import re
from pathlib import Path

from orchestrator.api.keys import KeyStore
from orchestrator.api.rate_limits import RateLimits
from orchestrator.api.webhooks import Webhooks
from orchestrator.runs.budget import TenantBudgets
from orchestrator.runs.store import RunStore
from orchestrator.storage import schema
from orchestrator.storage.database import Database
from orchestrator.tools import idempotency

ROOT = Path(__file__).resolve().parents[2]


def declared_columns(table: schema.Table) -> set[str]:
    names = set()
    for part in re.split(r",(?![^(]*\))", table.columns):
        word = part.split()[0]
        if word.upper() not in ("PRIMARY", "UNIQUE"):
            names.add(word)
    return names


def test_each_table_is_made_with_the_columns_it_declares(database_url: str) -> None:
    db = Database(database_url)
    schema.create(db, *schema.TABLES)
    schema.create(db, *schema.TABLES)  # a second time changes nothing
    for table in schema.TABLES:
        assert db.columns(table.name) == declared_columns(table), table.name
        assert {name for name, _ in table.added} <= declared_columns(table), table.name


def test_the_stores_make_their_tables_from_the_schema(database_url: str) -> None:
    db = Database(database_url)
    RunStore(db), KeyStore(db), RateLimits(db, 1.0, 1), TenantBudgets(db)
    Webhooks(db, background=False)
    idempotency.ensure_table(db)
    for table in (schema.RUNS, schema.REVIEWS, schema.RUN_EVENTS, schema.API_KEYS,
                  schema.RATE_BUCKETS, schema.TENANT_BUDGETS, schema.WEBHOOKS,
                  schema.WEBHOOK_DELIVERIES, schema.TOOL_CALLS):  # fmt: skip
        assert db.columns(table.name) == declared_columns(table), table.name


def test_a_runs_table_from_an_earlier_release_gains_its_columns(database_url: str) -> None:
    db = Database(database_url)
    db.execute(
        "CREATE TABLE cadre_runs (id TEXT PRIMARY KEY, workflow TEXT NOT NULL, status TEXT NOT "
        "NULL, input TEXT NOT NULL, output TEXT, error TEXT, usage TEXT, input_tokens INTEGER NOT "
        "NULL DEFAULT 0, output_tokens INTEGER NOT NULL DEFAULT 0, tools TEXT, trace_context "
        "TEXT, owner TEXT, created_at DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT "
        "NULL, finished_at DOUBLE PRECISION)"
    )
    db.execute(
        "INSERT INTO cadre_runs (id, workflow, status, input, created_at, updated_at) "
        "VALUES ('run-old', 'wf', 'succeeded', '{}', 1.0, 1.0)"
    )
    store = RunStore(db)
    assert db.columns("cadre_runs") == declared_columns(schema.RUNS)
    old = store.run("run-old")
    assert old.tenant == "default" and old.status == "succeeded"


def test_no_table_is_created_outside_the_schema() -> None:
    """A CREATE TABLE anywhere but storage/schema.py is a table the schema does not list."""
    strays = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "orchestrator").rglob("*.py"))
        if path.name != "schema.py" and "CREATE TABLE" in path.read_text()
    ]
    assert strays == []
