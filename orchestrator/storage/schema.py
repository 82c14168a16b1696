"""Every table Cadre keeps in its database, in one place.

Each store creates the tables it uses with :func:`create` when it opens (once per database and
process, through :meth:`Database.set_up` where the store is opened often). Creating is idempotent
and upgrades a database made by an earlier release: a table that lacks a column listed in
``added`` gets it, whichever process gets there first, and the indexes come last. ``{blob}`` and
``{seq}`` in a table's columns are the backend's binary type and its log sequence.

The LangGraph checkpointer keeps its own tables (``checkpoints``, ``writes``, ...), made by its
own ``setup``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # importing the database loads LangGraph; the tables need only its type
    from orchestrator.storage.database import Database

TYPES = {
    "sqlite": {"blob": "BLOB", "seq": "INTEGER PRIMARY KEY AUTOINCREMENT"},
    "postgres": {"blob": "BYTEA", "seq": "BIGSERIAL PRIMARY KEY"},
}
"""Per backend: ``blob``, a binary column; ``seq``, a log's sequence, assigned at insert and never
reused (SQLite's AUTOINCREMENT, not a bare rowid, which a VACUUM may renumber)."""


@dataclass(frozen=True)
class Table:
    name: str
    columns: str
    """The column and constraint list, as in ``CREATE TABLE name (columns)``."""
    added: tuple[tuple[str, str], ...] = ()
    """(column, definition): columns added after the table's first release."""
    indexes: tuple[str, ...] = ()

    def ddl(self, db: Database) -> str:
        kinds = TYPES["postgres" if db.postgres else "sqlite"]
        return f"CREATE TABLE IF NOT EXISTS {self.name} ({self.columns.format(**kinds)})"


# -- runs: records, reviews, the event log (orchestrator.runs.store) ----------------------------

RUNS = Table(
    "cadre_runs",
    """id TEXT PRIMARY KEY, workflow TEXT NOT NULL, status TEXT NOT NULL,
    input TEXT NOT NULL, output TEXT, error TEXT, usage TEXT,
    input_tokens INTEGER NOT NULL DEFAULT 0, output_tokens INTEGER NOT NULL DEFAULT 0,
    tools TEXT, trace_context TEXT,
    owner TEXT, created_at DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL,
    finished_at DOUBLE PRECISION,
    tenant TEXT NOT NULL DEFAULT 'default', idempotency_key TEXT,
    lease_until DOUBLE PRECISION""",
    added=(
        ("tenant", "TEXT NOT NULL DEFAULT 'default'"),
        ("idempotency_key", "TEXT"),
        ("lease_until", "DOUBLE PRECISION"),
    ),
    indexes=(
        "CREATE INDEX IF NOT EXISTS cadre_runs_tenant ON cadre_runs (tenant, created_at)",
        # A retried submission with the same key finds the first run (NULL keys never collide).
        "CREATE UNIQUE INDEX IF NOT EXISTS cadre_runs_idempotency "
        "ON cadre_runs (tenant, idempotency_key)",
        # The queue: what is claimable is found by status (and by decided reviews), then owner.
        "CREATE INDEX IF NOT EXISTS cadre_runs_status ON cadre_runs (status, created_at)",
        "CREATE INDEX IF NOT EXISTS cadre_runs_owner ON cadre_runs (owner)",
        "CREATE INDEX IF NOT EXISTS cadre_runs_tenant_status ON cadre_runs (tenant, status)",
    ),
)
REVIEWS = Table(
    "cadre_reviews",
    """id TEXT PRIMARY KEY, run_id TEXT NOT NULL, interrupt_id TEXT NOT NULL, node TEXT NOT NULL,
    payload TEXT NOT NULL, status TEXT NOT NULL, decision TEXT, reason TEXT, changes TEXT,
    decided_by TEXT, decided_at DOUBLE PRECISION, applied_at DOUBLE PRECISION,
    created_at DOUBLE PRECISION NOT NULL,
    claimed_by TEXT, claimed_until DOUBLE PRECISION, approvals TEXT,
    due_at DOUBLE PRECISION, overdue_at DOUBLE PRECISION, UNIQUE (run_id, interrupt_id)""",
    added=(
        ("claimed_by", "TEXT"),
        ("claimed_until", "DOUBLE PRECISION"),
        ("approvals", "TEXT"),
        ("due_at", "DOUBLE PRECISION"),
        ("overdue_at", "DOUBLE PRECISION"),
    ),
    indexes=(
        "CREATE INDEX IF NOT EXISTS cadre_reviews_run ON cadre_reviews (run_id)",
        "CREATE INDEX IF NOT EXISTS cadre_reviews_status ON cadre_reviews (status)",
    ),
)
RUN_EVENTS = Table(
    "cadre_run_events",
    """seq {seq}, run_id TEXT NOT NULL, at DOUBLE PRECISION NOT NULL, node TEXT NOT NULL,
    kind TEXT NOT NULL DEFAULT 'node', detail TEXT""",
    added=(("kind", "TEXT NOT NULL DEFAULT 'node'"),),
    indexes=(
        "CREATE INDEX IF NOT EXISTS cadre_events_run ON cadre_run_events (run_id)",
        # A stream reads a run's log after the last id it sent: one range scan a poll.
        "CREATE INDEX IF NOT EXISTS cadre_events_run_seq ON cadre_run_events (run_id, seq)",
    ),
)
TENANT_BUDGETS = Table(
    "cadre_tenant_budgets",
    """tenant TEXT PRIMARY KEY, tokens_per_day BIGINT NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL""",
)

# -- the API: keys, rate limits, webhooks (orchestrator.api) ------------------------------------

API_KEYS = Table(
    "cadre_api_keys",
    """id TEXT PRIMARY KEY, tenant TEXT NOT NULL, role TEXT NOT NULL, name TEXT NOT NULL,
    secret_hash TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL,
    revoked_at DOUBLE PRECISION""",
)
RATE_BUCKETS = Table(
    "api_rate_buckets",
    "key_id TEXT PRIMARY KEY, tokens DOUBLE PRECISION NOT NULL, at DOUBLE PRECISION NOT NULL",
)
WEBHOOKS = Table(
    "cadre_webhooks",
    """id TEXT PRIMARY KEY, tenant TEXT NOT NULL, url TEXT NOT NULL, secret TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL""",
)
WEBHOOK_DELIVERIES = Table(
    "cadre_webhook_deliveries",
    """id TEXT PRIMARY KEY, webhook_id TEXT NOT NULL, run_id TEXT NOT NULL,
    event TEXT NOT NULL, status TEXT NOT NULL, body TEXT NOT NULL,
    state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT,
    response_code INTEGER, created_at DOUBLE PRECISION NOT NULL,
    next_attempt_at DOUBLE PRECISION, claimed_until DOUBLE PRECISION,
    UNIQUE (webhook_id, run_id, event, status)""",
    added=(("next_attempt_at", "DOUBLE PRECISION"), ("claimed_until", "DOUBLE PRECISION")),
)

# -- tools: side effects and their idempotency keys (orchestrator.tools) ------------------------

TOOL_CALLS = Table(
    "cadre_tool_calls",
    """key TEXT PRIMARY KEY, result TEXT NOT NULL, at DOUBLE PRECISION NOT NULL,
    state TEXT NOT NULL DEFAULT 'done'""",
    added=(("state", "TEXT NOT NULL DEFAULT 'done'"),),
)
OUTBOX = Table(
    "cadre_outbox",
    """id TEXT PRIMARY KEY, run_id TEXT, node TEXT, channel TEXT NOT NULL, message TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL""",
)

# -- memory: the shared store and corpora (orchestrator.memory) ---------------------------------

STORE = Table(
    "cadre_store",
    """prefix TEXT NOT NULL, key TEXT NOT NULL, namespace TEXT NOT NULL, value TEXT NOT NULL,
    embedding {blob}, created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL, expires_at DOUBLE PRECISION,
    ttl DOUBLE PRECISION, PRIMARY KEY (prefix, key)""",
    added=(("ttl", "DOUBLE PRECISION"),),
)
CORPUS_FILES = Table(
    "cadre_corpus_files",
    """corpus TEXT NOT NULL, path TEXT NOT NULL, sha TEXT NOT NULL,
    indexed_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (corpus, path)""",
)
CORPUS_CHUNKS = Table(
    "cadre_corpus_chunks",
    """corpus TEXT NOT NULL, path TEXT NOT NULL, chunk INTEGER NOT NULL, text TEXT NOT NULL,
    embedding {blob} NOT NULL, PRIMARY KEY (corpus, path, chunk)""",
)

TABLES = (
    RUNS,
    REVIEWS,
    RUN_EVENTS,
    TENANT_BUDGETS,
    API_KEYS,
    RATE_BUCKETS,
    WEBHOOKS,
    WEBHOOK_DELIVERIES,
    TOOL_CALLS,
    OUTBOX,
    STORE,
    CORPUS_FILES,
    CORPUS_CHUNKS,
)
"""Every table, for a reader of the schema (and a test that each is made as declared)."""


def create(db: Database, *tables: Table, upgrade: Callable[[], object] | None = None) -> None:
    """Create ``tables`` if missing, then run ``upgrade`` (a data migration that needs the
    tables but not yet the new columns), add the columns a table from an earlier release lacks,
    and create the indexes."""
    for table in tables:
        db.execute(table.ddl(db))
    if upgrade is not None:
        upgrade()
    for table in tables:
        have = db.columns(table.name) if table.added else set()
        for column, definition in table.added:
            if column not in have:
                _add_column(db, table.name, column, definition)
    for table in tables:
        for index in table.indexes:
            db.execute(index)


def _add_column(db: Database, table: str, column: str, definition: str) -> None:
    if db.postgres:
        db.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} {definition}")
        return
    try:
        db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
    except Exception:  # another process added it first
        if column not in db.columns(table):
            raise
